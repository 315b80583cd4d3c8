import { Clipboard, Notification } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import {
  Button,
  caretDownIcon,
  caretRightIcon,
  copyIcon,
  deleteIcon,
  historyIcon,
  launchIcon,
  notebookIcon,
  ReactWidget,
  refreshIcon,
  ToolbarButtonComponent,
  UseSignal
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { IScale } from '../protocol';
import { deploymentsIcon } from './icons';
import {
  DeploymentsError,
  ICallResult,
  IFunction,
  IMetrics,
  IProvenance,
  IVersion
} from './client';
import { DeploymentsModel } from './model';

/** What the panel's buttons do; the plugin routes them through its commands (with confirmations). */
export interface IDeploymentsActions {
  rollback(name: string, to?: number): Promise<void>;
  remove(name: string): Promise<void>;
  openSource(provenance: IProvenance): Promise<void>;
  openDocs(name: string): void;
}

/** How often logs are re-read while "follow" is on, in ms. */
export const FOLLOW_INTERVAL = 2000;
const LOG_LINES = 200;

/**
 * The Deployments sidebar: what is live on the selected target, refreshed on a timer while the
 * panel is visible (and whenever the plugin says a publish went live).
 */
export class DeploymentsPanel extends ReactWidget {
  constructor(
    readonly model: DeploymentsModel,
    private readonly _trans: TranslationBundle,
    private readonly _actions: IDeploymentsActions,
    private readonly _interval: () => number
  ) {
    super();
    this.id = 'jp-publish-deployments';
    this.addClass('jp-Deployments');
    this.title.icon = deploymentsIcon;
    this.title.caption = _trans.__('Deployments');
  }

  /** Restart the refresh timer (the interval setting changed). */
  restartTimer(): void {
    this._stopTimer();
    if (this.isVisible) {
      this._timer = window.setInterval(
        () => void this.model.refresh(),
        this._interval() * 1000
      );
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.refresh();
    this.restartTimer();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopTimer();
  }

  dispose(): void {
    this._stopTimer();
    super.dispose();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <DeploymentsView
            model={this.model}
            trans={this._trans}
            actions={this._actions}
          />
        )}
      </UseSignal>
    );
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _timer: number | null = null;
}

interface IViewProps {
  model: DeploymentsModel;
  trans: TranslationBundle;
  actions: IDeploymentsActions;
}

export function DeploymentsView(props: IViewProps): JSX.Element {
  const { model, trans } = props;
  return (
    <div className="jp-Deployments-body">
      <div className="jp-Deployments-header">
        <h2 className="jp-Deployments-title">{trans.__('Deployments')}</h2>
        <ToolbarButtonComponent
          className="jp-Deployments-refresh"
          icon={refreshIcon}
          tooltip={trans.__('Refresh')}
          enabled={!model.loading}
          onClick={() => void model.refresh()}
        />
      </div>
      <label className="jp-Deployments-target">
        <span>{trans.__('Target')}</span>
        <select
          className="jp-mod-styled"
          value={model.target.name}
          onChange={event => model.selectTarget(event.target.value)}
        >
          {model.targets.map(t => (
            <option key={t.name} value={t.name}>
              {t.name === t.spec ? t.name : `${t.name} (${t.spec})`}
            </option>
          ))}
        </select>
      </label>
      {model.error && <ErrorNote error={model.error} trans={trans} />}
      {!model.error && !model.started && (
        <p className="jp-Deployments-empty">
          {trans.__(
            'The function server of this target is not running, so nothing is live. Publishing a function starts it.'
          )}
        </p>
      )}
      {!model.error && model.started && model.functions.length === 0 && (
        <p className="jp-Deployments-empty">
          {model.loading
            ? trans.__('Loading…')
            : trans.__(
                'Nothing is published here yet. Publish a function from a notebook cell with the Publish button of the notebook toolbar.'
              )}
        </p>
      )}
      {model.metricsError && model.functions.length > 0 && (
        <p className="jp-Deployments-note" title={model.metricsError.message}>
          {trans.__('Metrics are unavailable: %1', model.metricsError.message)}
        </p>
      )}
      <ul className="jp-Deployments-list">
        {model.functions.map(fn => (
          <FunctionItem key={fn.name} fn={fn} {...props} />
        ))}
      </ul>
    </div>
  );
}

function ErrorNote(props: {
  error: DeploymentsError;
  trans: TranslationBundle;
}): JSX.Element {
  const { error } = props;
  return (
    <div className="jp-Deployments-error" role="alert">
      <div className="jp-Deployments-errorMessage">{error.message}</div>
      {error.hint && <div className="jp-Deployments-hint">{error.hint}</div>}
    </div>
  );
}

const STATUS_LABELS: { [status: string]: string } = {
  healthy: 'healthy',
  starting: 'starting',
  restarting: 'restarting',
  failed: 'failed'
};

export function formatSeconds(
  seconds: number | null,
  trans: TranslationBundle
): string {
  if (seconds === null || seconds === undefined) {
    return '—';
  }
  if (seconds < 1) {
    return trans.__('%1 ms', (seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0));
  }
  return trans.__('%1 s', seconds.toFixed(2));
}

export function formatRate(rate: number | null): string {
  if (rate === null || rate === undefined) {
    return '—';
  }
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 2 : 1)}%`;
}

/**
 * A function's scale as one line, like `jupyter publish show` (Scale.describe()): "2 replicas,
 * 1 CPU each" or "1–4 replicas (autoscaling)"; null when the target does not scale.
 */
export function formatScale(
  scale: IScale | null | undefined,
  trans: TranslationBundle
): string | null {
  if (!scale) {
    return null;
  }
  let text: string;
  if (typeof scale.max_replicas === 'number') {
    const min = scale.min_replicas ?? 0;
    text =
      typeof scale.target_ongoing_requests === 'number'
        ? trans.__(
            '%1–%2 replicas (autoscaling, %3 ongoing requests each)',
            min,
            scale.max_replicas,
            scale.target_ongoing_requests
          )
        : trans.__('%1–%2 replicas (autoscaling)', min, scale.max_replicas);
  } else {
    const count = scale.replicas ?? 1;
    text = trans._n('%1 replica', '%1 replicas', count);
  }
  if (typeof scale.cpus === 'number') {
    text = trans._n('%2, %1 CPU each', '%2, %1 CPUs each', scale.cpus, text);
  }
  return text;
}

function CopyButton(props: {
  text: string;
  label: string;
  className?: string;
}): JSX.Element {
  return (
    <Button
      minimal
      small
      className={`jp-Deployments-copy ${props.className ?? ''}`}
      title={props.label}
      aria-label={props.label}
      onClick={() => Clipboard.copyToSystem(props.text)}
    >
      <copyIcon.react tag="span" />
    </Button>
  );
}

function FunctionItem(props: IViewProps & { fn: IFunction }): JSX.Element {
  const { fn, model, trans, actions } = props;
  const [open, setOpen] = React.useState(false);
  const key = model.key(fn.name);
  const status = fn.status ?? 'stored';
  const scale = formatScale(fn.scale, trans);
  return (
    <li className="jp-Deployments-function" data-name={fn.name}>
      <button
        className="jp-Deployments-expand"
        aria-expanded={open}
        title={open ? trans.__('Hide details') : trans.__('Show details')}
        onClick={() => setOpen(!open)}
      >
        {open ? (
          <caretDownIcon.react tag="span" />
        ) : (
          <caretRightIcon.react tag="span" />
        )}
        <span className="jp-Deployments-name">{fn.name}</span>
      </button>
      <div className="jp-Deployments-badges">
        {fn.live_version !== null && (
          <span className="jp-Deployments-version">
            {trans.__('v%1', fn.live_version)}
          </span>
        )}
        <span
          className={`jp-Deployments-status jp-mod-${status}`}
          title={trans.__(
            '%1 worker processes running; %2 restarts',
            fn.processes ?? 0,
            fn.restarts ?? 0
          )}
        >
          {trans.__(STATUS_LABELS[status] ?? status)}
        </span>
        <span className="jp-Deployments-access">
          {fn.public ? trans.__('public') : trans.__('keyed')}
        </span>
      </div>
      {scale && (
        <div className="jp-Deployments-row jp-Deployments-scale">{scale}</div>
      )}
      <div className="jp-Deployments-row">
        <a
          className="jp-Deployments-url"
          href={fn.url}
          target="_blank"
          rel="noreferrer"
          title={fn.url}
        >
          {fn.url}
        </a>
        <CopyButton text={fn.url} label={trans.__('Copy URL')} />
      </div>
      {fn.keyed && (
        <div className="jp-Deployments-row jp-Deployments-keyRow">
          <span className="jp-Deployments-label">{trans.__('Key')}</span>
          <code className="jp-Deployments-key">{key ?? '••••••••••••'}</code>
          {key ? (
            <>
              <CopyButton text={key} label={trans.__('Copy key')} />
              <Button
                minimal
                small
                className="jp-Deployments-hideKey"
                onClick={() => model.hideKey(fn.name)}
              >
                {trans.__('Hide')}
              </Button>
            </>
          ) : (
            model.can('show') && (
              <Button
                minimal
                small
                className="jp-Deployments-showKey"
                onClick={() =>
                  model
                    .revealKey(fn.name)
                    .catch((error: DeploymentsError) =>
                      Notification.error(
                        trans.__(
                          'Cannot show the key of %1: %2',
                          fn.name,
                          error.message
                        ),
                        { autoClose: 8000 }
                      )
                    )
                }
              >
                {trans.__('Show key')}
              </Button>
            )
          )}
        </div>
      )}
      <Metrics metrics={fn.metrics} trans={trans} />
      {fn.provenance?.notebook && (
        <div className="jp-Deployments-row">
          <button
            className="jp-Deployments-source"
            disabled={!fn.provenance.notebook_path}
            title={
              fn.provenance.notebook_path
                ? trans.__(
                    'Open %1 at the cell this was published from',
                    fn.provenance.notebook_path
                  )
                : trans.__(
                    '%1 is outside the folder JupyterLab serves',
                    fn.provenance.notebook
                  )
            }
            onClick={() => void actions.openSource(fn.provenance!)}
          >
            <notebookIcon.react tag="span" />
            <span>{basename(fn.provenance.notebook)}</span>
            {fn.provenance.cell_id && (
              <span className="jp-Deployments-cell">
                {trans.__('(its cell)')}
              </span>
            )}
          </button>
        </div>
      )}
      {open && <FunctionDetails {...props} />}
    </li>
  );
}

function Metrics(props: {
  metrics: IMetrics | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { metrics: m, trans } = props;
  return (
    <dl className="jp-Deployments-metrics">
      <div>
        <dt>{trans.__('Requests')}</dt>
        <dd className="jp-Deployments-requests">{m ? m.requests : '—'}</dd>
      </div>
      <div>
        <dt>{trans.__('Errors')}</dt>
        <dd className="jp-Deployments-errorRate">
          {m ? formatRate(m.error_rate) : '—'}
        </dd>
      </div>
      <div>
        <dt>{trans.__('p50')}</dt>
        <dd>{m ? formatSeconds(m.p50, trans) : '—'}</dd>
      </div>
      <div>
        <dt>{trans.__('p99')}</dt>
        <dd>{m ? formatSeconds(m.p99, trans) : '—'}</dd>
      </div>
    </dl>
  );
}

function FunctionDetails(props: IViewProps & { fn: IFunction }): JSX.Element {
  const { fn, model, trans, actions } = props;
  const versions = [...fn.versions].reverse(); // newest first
  return (
    <div className="jp-Deployments-details">
      <section>
        <h3>{trans.__('Versions')}</h3>
        <ul className="jp-Deployments-versions">
          {versions.map(v => (
            <VersionRow
              key={v.version}
              version={v}
              trans={trans}
              onRollback={
                model.can('rollback')
                  ? () => void actions.rollback(fn.name, v.version)
                  : null
              }
            />
          ))}
        </ul>
      </section>
      {model.can('call') && <TryIt {...props} />}
      {model.can('logs') && <Logs {...props} />}
      <div className="jp-Deployments-actions">
        {model.can('docs') && (
          <Button
            small
            minimal
            className="jp-Deployments-docs"
            onClick={() => actions.openDocs(fn.name)}
          >
            <launchIcon.react tag="span" />
            {trans.__('Docs page')}
          </Button>
        )}
        {model.can('delete') && (
          <Button
            small
            minimal
            className="jp-Deployments-delete"
            onClick={() => void actions.remove(fn.name)}
          >
            <deleteIcon.react tag="span" />
            {trans.__('Delete…')}
          </Button>
        )}
      </div>
    </div>
  );
}

function basename(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

function shortHash(hash: string | null | undefined): string {
  return hash ? hash.replace(/^sha256:/, '').slice(0, 10) : '';
}

function VersionRow(props: {
  version: IVersion;
  trans: TranslationBundle;
  /** Null when the target cannot roll back. */
  onRollback: (() => void) | null;
}): JSX.Element {
  const { version: v, trans } = props;
  const when = v.created ? new Date(v.created).toLocaleString() : '';
  const who = v.provenance?.user;
  return (
    <li
      className={`jp-Deployments-versionRow jp-mod-${v.status}`}
      data-version={v.version}
    >
      <div>
        <span className="jp-Deployments-versionNumber">
          {trans.__('v%1', v.version)}
        </span>{' '}
        <span className="jp-Deployments-versionStatus">
          {trans.__(v.status)}
        </span>
      </div>
      <div className="jp-Deployments-versionMeta">
        {when}
        {who ? ` · ${trans.__('by %1', who)}` : ''}
        {v.provenance?.source_hash && (
          <span title={v.provenance.source_hash}>
            {' · '}
            {trans.__('source %1', shortHash(v.provenance.source_hash))}
          </span>
        )}
      </div>
      {v.status === 'retired' && props.onRollback && (
        <Button
          small
          minimal
          className="jp-Deployments-rollback"
          title={trans.__('Make version %1 live again', v.version)}
          onClick={props.onRollback}
        >
          <historyIcon.react tag="span" />
          {trans.__('Roll back to v%1', v.version)}
        </Button>
      )}
    </li>
  );
}

function TryIt(props: IViewProps & { fn: IFunction }): JSX.Element {
  const { fn, model, trans } = props;
  const [payload, setPayload] = React.useState('');
  const [result, setResult] = React.useState<ICallResult | null>(null);
  const [error, setError] = React.useState<DeploymentsError | null>(null);
  const [busy, setBusy] = React.useState(false);
  const send = async () => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await model.call(fn.name, payload));
    } catch (e) {
      setError(
        e instanceof DeploymentsError
          ? e
          : new DeploymentsError('internal', String(e), '', 0)
      );
    } finally {
      setBusy(false);
    }
  };
  const served = fn.versions.find(v => v.version === fn.live_version)?.function;
  const signature = served?.signature
    ? `${served.name ?? fn.name}${served.signature}`
    : '';
  return (
    <section className="jp-Deployments-tryIt">
      <h3>{trans.__('Try it')}</h3>
      <textarea
        className="jp-Deployments-payload jp-mod-styled"
        spellCheck={false}
        rows={3}
        value={payload}
        placeholder={trans.__(
          'JSON arguments: an array (positional) or an object (by name)%1',
          signature ? ` — ${signature}` : ''
        )}
        onChange={event => setPayload(event.target.value)}
      />
      <Button
        small
        className="jp-Deployments-call"
        disabled={busy || !payload.trim()}
        onClick={() => void send()}
      >
        {busy ? trans.__('Calling…') : trans.__('Call')}
      </Button>
      {error && <ErrorNote error={error} trans={trans} />}
      {result && (
        <div
          className={`jp-Deployments-answer ${result.ok ? 'jp-mod-ok' : 'jp-mod-failed'}`}
        >
          <div className="jp-Deployments-answerStatus">
            {trans.__('HTTP %1', result.status)}
          </div>
          <pre>{JSON.stringify(result.answer, null, 2)}</pre>
        </div>
      )}
    </section>
  );
}

function Logs(props: IViewProps & { fn: IFunction }): JSX.Element {
  const { fn, model, trans } = props;
  const [shown, setShown] = React.useState(false);
  const [follow, setFollow] = React.useState(false);
  const [log, setLog] = React.useState('');
  const [error, setError] = React.useState<DeploymentsError | null>(null);
  const cursor = React.useRef('');
  const version = React.useRef<number | null>(null);
  const pre = React.useRef<HTMLPreElement>(null);

  const read = React.useCallback(
    async (continuing: boolean) => {
      try {
        const answer = await model.client.logs(model.target, fn.name, {
          lines: LOG_LINES,
          since: continuing ? cursor.current : undefined
        });
        const fresh =
          !continuing || answer.gap || answer.version !== version.current;
        cursor.current = answer.cursor;
        version.current = answer.version;
        setError(null);
        setLog(previous =>
          fresh
            ? answer.log
            : answer.log
              ? `${previous}${previous ? '\n' : ''}${answer.log}`
              : previous
        );
      } catch (e) {
        setError(e as DeploymentsError);
      }
    },
    [fn.name, model]
  );

  React.useEffect(() => {
    if (!shown) {
      return;
    }
    void read(false);
    if (!follow) {
      return;
    }
    const timer = window.setInterval(() => void read(true), FOLLOW_INTERVAL);
    return () => window.clearInterval(timer);
  }, [shown, follow, read]);

  React.useEffect(() => {
    if (follow && pre.current) {
      pre.current.scrollTop = pre.current.scrollHeight;
    }
  }, [log, follow]);

  return (
    <section className="jp-Deployments-logs">
      <h3>
        <button
          className="jp-Deployments-showLogs"
          aria-expanded={shown}
          onClick={() => setShown(!shown)}
        >
          {shown ? (
            <caretDownIcon.react tag="span" />
          ) : (
            <caretRightIcon.react tag="span" />
          )}
          {trans.__('Logs')}
        </button>
      </h3>
      {shown && (
        <>
          <div className="jp-Deployments-logTools">
            <label>
              <input
                type="checkbox"
                className="jp-Deployments-follow"
                checked={follow}
                onChange={event => setFollow(event.target.checked)}
              />
              {trans.__('Follow')}
            </label>
            <Button small minimal onClick={() => void read(false)}>
              <refreshIcon.react tag="span" />
              {trans.__('Reload')}
            </Button>
          </div>
          {error && <ErrorNote error={error} trans={trans} />}
          <pre ref={pre} className="jp-Deployments-log">
            {log || trans.__('(the log is empty)')}
          </pre>
        </>
      )}
    </section>
  );
}
