import { Dialog, ReactWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  ICancelReply,
  IDeployment,
  IProgress,
  IPublishParams
} from '../protocol';
import { stageLabel } from './stages';
import {
  captureSize,
  FailureField,
  FixKind,
  formatElapsed,
  IRequirementRow,
  PublishFormModel,
  requirementText,
  SCALE_MODE_FIELDS,
  ScaleField,
  stageProgress
} from './model';

/** What the dialog needs to publish in place: the flow's request, with progress and cancel. */
export interface IPublishRunner {
  /** Run the publish request; resolves with the deployment or rejects with a PublishError. */
  publish(
    params: IPublishParams,
    onProgress: (p: IProgress) => void
  ): Promise<IDeployment>;
  /** Ask the kernel to stop the running publish. */
  cancel(): Promise<ICancelReply>;
}

/** The body of the Publish dialog: renders the model and edits it in place. */
export class PublishDialogBody
  extends ReactWidget
  implements Dialog.IBodyWidget<IPublishParams>
{
  constructor(
    readonly model: PublishFormModel,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-PublishDialog');
  }

  /** Called with a fix the user chose from a failure (e.g. "Publish as a new version"). */
  onFix: (kind: FixKind) => void = () => undefined;

  getValue(): IPublishParams {
    return this.model.toParams();
  }

  protected render(): JSX.Element {
    return (
      <PublishForm
        model={this.model}
        trans={this._trans}
        onChange={() => this.update()}
        onFix={kind => this.onFix(kind)}
      />
    );
  }
}

/**
 * The Publish dialog, which keeps its state: Publish runs the request in place, with a progress
 * bar; a failure shows next to the field it concerns, with its fix as a button, and the form keeps
 * everything typed; only success closes it (resolving with the deployment). Cancel while publishing
 * cancels the request, and says so when it is too late (the push began).
 */
export class PublishDialog extends Dialog<IPublishParams> {
  constructor(
    readonly model: PublishFormModel,
    trans: TranslationBundle,
    private readonly _runner: IPublishRunner,
    title: string,
    body: PublishDialogBody = new PublishDialogBody(model, trans)
  ) {
    super({
      title,
      body,
      // Index 1, the default button, publishes; index 0 cancels.
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: trans.__('Publish') })
      ],
      focusNodeSelector: '.jp-PublishDialog-name'
    });
    this._publishBody = body;
    body.onFix = kind => this._applyFix(kind);
    this.addClass('jp-PublishDialog-window');
  }

  /** The deployment once published (the dialog then closes). */
  deployment: IDeployment | null = null;

  resolve(index?: number): void {
    if (index === undefined || index === 1) {
      void this._publish(this.model.toParams());
      return;
    }
    this.reject();
  }

  reject(): void {
    if (this.model.publishing) {
      void this._cancel();
      return;
    }
    super.reject();
  }

  /** The Dialog re-enables Publish on every `input` event for a valid form: keep it disabled
   * while a publish runs. */
  handleEvent(event: Event): void {
    super.handleEvent(event);
    if (event.type === 'input') {
      this._disableAccept();
    }
  }

  dispose(): void {
    window.clearInterval(this._ticker);
    super.dispose();
  }

  private _applyFix(kind: FixKind): void {
    const params = this.model.applyFix(kind);
    this._publishBody.update();
    if (params) {
      void this._publish(params);
    } else if (kind === 'rename') {
      const input = this.node.querySelector<HTMLInputElement>(
        '.jp-PublishDialog-name'
      );
      input?.focus();
      input?.select();
    }
  }

  private async _publish(params: IPublishParams): Promise<void> {
    const model = this.model;
    if (model.publishing || this._starting) {
      return; // one publish at a time: a second click waits for the first
    }
    this._starting = true;
    try {
      // The kernel reads every requirement before anything is built; a refusal shows by the list.
      await model.checkRequirements();
    } finally {
      this._starting = false;
    }
    if (!model.isValid) {
      this._publishBody.update();
      return;
    }
    model.startPublishing();
    this._setBusy(true);
    try {
      this.deployment = await this._runner.publish(params, p => {
        model.onProgress(p);
        this._publishBody.update();
      });
      model.progress = null;
      this._setBusy(false);
      super.resolve(1);
    } catch (error) {
      model.fail(error, params);
      this._setBusy(false);
    }
  }

  private async _cancel(): Promise<void> {
    const progress = this.model.progress;
    if (!progress || progress.cancelling) {
      return;
    }
    progress.cancelling = true;
    this._publishBody.update();
    try {
      const reply = await this._runner.cancel();
      if (reply.too_late && this.model.progress) {
        this.model.progress.tooLate = true;
      }
    } catch (error) {
      // The kernel did not answer the cancel: the publish's own outcome will still arrive.
      if (this.model.progress) {
        this.model.progress.cancelling = false;
      }
      console.warn('jupyterlab-publish: cancel failed', error);
    }
    this._publishBody.update();
  }

  /** While publishing: a ticking clock for the elapsed time; the Publish button disabled. */
  private _setBusy(busy: boolean): void {
    window.clearInterval(this._ticker);
    if (busy) {
      this._ticker = window.setInterval(() => this._publishBody.update(), 1000);
    }
    this._disableAccept();
    this._publishBody.update();
  }

  private _disableAccept(): void {
    const accept = this.node.querySelector<HTMLButtonElement>(
      '.jp-Dialog-button.jp-mod-accept'
    );
    if (accept && this.model.publishing) {
      accept.disabled = true;
    } else if (accept && !this.model.publishing && this.model.isValid) {
      accept.disabled = false;
    }
  }

  private readonly _publishBody: PublishDialogBody;
  private _ticker = 0;
  private _starting = false;
}

/** The version field of a row: its pin, or the range the user wrote after the name. */
function versionShown(row: IRequirementRow): string {
  if (row.version || !row.requirement) {
    return row.version;
  }
  return row.requirement.startsWith(row.name)
    ? row.requirement.slice(row.name.length).trim()
    : '';
}

interface IFormProps {
  model: PublishFormModel;
  trans: TranslationBundle;
  onChange: () => void;
  onFix?: (kind: FixKind) => void;
}

/** A long "why" chain: its first line shown whole (wrapped), the others behind a toggle. */
function WhyChains({
  req,
  trans
}: {
  req: IRequirementRow;
  trans: TranslationBundle;
}): JSX.Element {
  const chains = req.chains?.length ? req.chains : [req.why];
  if (chains.length <= 1) {
    return <span className="jp-PublishDialog-chain">{chains[0]}</span>;
  }
  return (
    <details className="jp-PublishDialog-chains">
      <summary>
        <span className="jp-PublishDialog-chain">{chains[0]}</span>{' '}
        <span className="jp-PublishDialog-more">
          {trans.__('(+%1 more)', chains.length - 1)}
        </span>
      </summary>
      {chains.slice(1).map((chain, i) => (
        <div key={i} className="jp-PublishDialog-chain">
          {chain}
        </div>
      ))}
    </details>
  );
}

/** A publish failure next to the field it concerns, with its fixes as buttons. */
function Failure({
  model,
  field,
  trans,
  onFix
}: {
  model: PublishFormModel;
  field: FailureField;
  trans: TranslationBundle;
  onFix?: (kind: FixKind) => void;
}): JSX.Element | null {
  const failure = model.failure;
  if (!failure || failure.field !== field) {
    return null;
  }
  return (
    <div
      className={`jp-PublishDialog-failure${failure.cancelled ? ' jp-mod-cancelled' : ''}`}
      data-code={failure.code}
      data-field={field}
      role="alert"
    >
      <p className="jp-PublishDialog-failureMessage">{failure.message}</p>
      {failure.hint && (
        <p className="jp-PublishDialog-failureHint">{failure.hint}</p>
      )}
      {failure.log && (
        <details className="jp-PublishDialog-failureLog">
          <summary>{trans.__('Log')}</summary>
          <pre>{failure.log}</pre>
        </details>
      )}
      {failure.fixes.length > 0 && (
        <div className="jp-PublishDialog-fixes">
          {failure.fixes.map(fix => (
            <button
              key={fix.kind}
              type="button"
              className="jp-Button jp-mod-styled jp-mod-accept jp-PublishDialog-fix"
              data-fix={fix.kind}
              onClick={() => onFix?.(fix.kind)}
            >
              {fix.label}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

/** The progress of a running publish: stage, a bar, the fraction and the elapsed time. */
function Progress({
  model,
  trans
}: {
  model: PublishFormModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const progress = model.progress;
  if (!progress) {
    return null;
  }
  const overall = stageProgress(progress);
  const percent = Math.round(overall * 100);
  const elapsed = formatElapsed(Date.now() - progress.startedAt);
  return (
    <div
      className="jp-PublishDialog-progress"
      data-stage={progress.stage}
      aria-live="polite"
    >
      <div className="jp-PublishDialog-progressHead">
        <span className="jp-PublishDialog-stage">
          {stageLabel(progress.stage, trans)}
        </span>
        <span className="jp-PublishDialog-percent">{percent}%</span>
        <span className="jp-PublishDialog-elapsed">{elapsed}</span>
      </div>
      <progress
        className="jp-PublishDialog-bar"
        max={100}
        value={percent}
        aria-label={trans.__('Publishing progress')}
      />
      {progress.message && (
        <div className="jp-PublishDialog-progressMessage">
          {progress.message}
        </div>
      )}
      {progress.cancelling && (
        <div className="jp-PublishDialog-cancelling">
          {progress.tooLate
            ? trans.__(
                'Too late to cancel: the bundle is being pushed, and this version goes live when it is done.'
              )
            : trans.__('Cancelling…')}
        </div>
      )}
    </div>
  );
}

function PublishForm({
  model,
  trans,
  onChange,
  onFix
}: IFormProps): JSX.Element {
  const [newRequirement, setNewRequirement] = React.useState('');
  const [addError, setAddError] = React.useState<string | null>(null);
  const errors = model.errors;
  const fn = model.analysis.function;
  const form = React.useRef<HTMLDivElement>(null);
  // The Dialog disables its accept button (and ignores Enter) while its body holds a
  // `.jp-mod-error` element, but re-checks only on `input` events: send one after every render,
  // so an invalid form blocks Publish from the start and a fixed one unblocks it.
  React.useEffect(() => {
    form.current?.dispatchEvent(new Event('input'));
  });
  const change = (field: FailureField, apply: () => void) => {
    apply();
    model.edited(field);
    onChange();
  };
  const add = async () => {
    const error = await model.addRequirement(newRequirement);
    setAddError(error);
    if (!error) {
      setNewRequirement('');
      model.edited('requirements');
    }
    onChange();
  };
  // The kernel reads an edited version or range once the user leaves the field.
  const recheck = () => void model.checkRequirements().then(onChange);
  const lock = model.analysis.lock ?? [];

  return (
    <div
      ref={form}
      className={`jp-PublishDialog-form${model.isValid ? '' : ' jp-mod-error'}`}
    >
      <fieldset className="jp-PublishDialog-inputs" disabled={model.publishing}>
        <div className="jp-PublishDialog-signature">
          <code>
            {fn.name}
            {fn.signature}
          </code>
          {fn.doc && <span className="jp-PublishDialog-doc"> — {fn.doc}</span>}
        </div>

        <Problems model={model} trans={trans} />
        <Failure model={model} field="analysis" trans={trans} onFix={onFix} />

        <label className="jp-PublishDialog-field">
          <span>{trans.__('Endpoint name')}</span>
          <input
            className="jp-mod-styled jp-PublishDialog-name"
            value={model.name}
            spellCheck={false}
            onChange={e => change('name', () => (model.name = e.target.value))}
          />
          {errors.name && (
            <span className="jp-PublishDialog-error">{errors.name}</span>
          )}
        </label>
        <Failure model={model} field="name" trans={trans} onFix={onFix} />

        <fieldset className="jp-PublishDialog-requirements">
          <legend>{trans.__('Requirements')}</legend>
          {model.requirements.length === 0 && (
            <p className="jp-PublishDialog-empty">
              {trans.__('Only the standard library: nothing to install.')}
            </p>
          )}
          <table>
            <tbody>
              {model.requirements.map(req => (
                <tr
                  key={req.name}
                  className="jp-PublishDialog-requirement"
                  data-name={req.name}
                >
                  <td className="jp-PublishDialog-reqName">
                    {req.name}
                    {req.editable && (
                      <span
                        className="jp-PublishDialog-editable"
                        title={trans.__(
                          'Installed in editable mode: the target may not find this version'
                        )}
                      >
                        {' '}
                        {trans.__('(editable)')}
                      </span>
                    )}
                  </td>
                  <td>
                    <input
                      className="jp-mod-styled jp-PublishDialog-version"
                      value={versionShown(req)}
                      placeholder={trans.__('latest')}
                      aria-label={trans.__('Version or range of %1', req.name)}
                      title={requirementText(req)}
                      onChange={e =>
                        change('requirements', () =>
                          model.setVersion(req.name, e.target.value)
                        )
                      }
                      onBlur={recheck}
                    />
                  </td>
                  <td className="jp-PublishDialog-why">
                    <WhyChains req={req} trans={trans} />
                  </td>
                  <td>
                    <button
                      type="button"
                      className="jp-Button jp-mod-minimal jp-PublishDialog-remove"
                      title={trans.__('Remove %1', req.name)}
                      onClick={() =>
                        change('requirements', () =>
                          model.removeRequirement(req.name)
                        )
                      }
                    >
                      ✕
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {errors.requirements && (
            <span className="jp-PublishDialog-error">
              {errors.requirements}
            </span>
          )}
          <div className="jp-PublishDialog-add">
            <input
              className="jp-mod-styled"
              value={newRequirement}
              placeholder={trans.__(
                'Add a requirement, e.g. pandas==2.2.3 or scikit-learn>=1.8'
              )}
              onChange={e => setNewRequirement(e.target.value)}
              onKeyDown={e => {
                if (e.key === 'Enter') {
                  e.preventDefault();
                  e.stopPropagation();
                  void add();
                }
              }}
            />
            <button
              type="button"
              className="jp-Button jp-mod-styled jp-mod-reject"
              onClick={() => void add()}
            >
              {trans.__('Add')}
            </button>
          </div>
          {addError && (
            <span className="jp-PublishDialog-error">{addError}</span>
          )}
          <Hints model={model} trans={trans} onChange={onChange} />
          {lock.length > 0 && (
            <details className="jp-PublishDialog-lock">
              <summary>
                {trans.__(
                  'Lock: %1 distributions (the requirements and their dependencies)',
                  lock.length
                )}
              </summary>
              <table>
                <tbody>
                  {lock.map(entry => (
                    <tr key={entry.name} data-name={entry.name}>
                      <td className="jp-PublishDialog-reqName">
                        {entry.name}=={entry.version}
                      </td>
                      <td className="jp-PublishDialog-why">
                        {trans.__(
                          'required by %1',
                          entry.required_by.join(', ')
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
          )}
        </fieldset>
        <Failure
          model={model}
          field="requirements"
          trans={trans}
          onFix={onFix}
        />

        <Notes model={model} trans={trans} />

        <div className="jp-PublishDialog-row">
          <TargetPicker model={model} trans={trans} onChange={onChange} />

          <label className="jp-PublishDialog-field">
            <span>{trans.__('Validator (optional)')}</span>
            <select
              className="jp-mod-styled jp-PublishDialog-validator"
              value={model.validator ?? ''}
              onChange={e =>
                change(
                  'sample',
                  () => (model.validator = e.target.value || null)
                )
              }
            >
              <option value="">{trans.__('None')}</option>
              {model.analysis.validators.map(name => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </label>
        </div>
        <Failure model={model} field="target" trans={trans} onFix={onFix} />
        <ScaleSection model={model} trans={trans} onChange={onChange} />
        {model.scaleFailureAt === 'section' && (
          <Failure model={model} field="scale" trans={trans} onFix={onFix} />
        )}

        <label className="jp-PublishDialog-field">
          <span>{trans.__('Sample input (JSON, optional)')}</span>
          <textarea
            className="jp-mod-styled jp-PublishDialog-sample"
            value={model.sampleText}
            rows={2}
            spellCheck={false}
            placeholder={trans.__(
              'Positional arguments as an array, e.g. [[0.5, 0.5]]'
            )}
            onChange={e =>
              change('sample', () => (model.sampleText = e.target.value))
            }
          />
          {errors.sample && (
            <span className="jp-PublishDialog-error">{errors.sample}</span>
          )}
        </label>
        <Failure model={model} field="sample" trans={trans} onFix={onFix} />

        <label className="jp-PublishDialog-check">
          <input
            type="checkbox"
            className="jp-PublishDialog-public"
            checked={model.isPublic}
            onChange={e =>
              change('general', () => (model.isPublic = e.target.checked))
            }
          />
          <span>
            {trans.__(
              'Public: anyone who can reach the target may call it without a key'
            )}
          </span>
        </label>
      </fieldset>

      <Failure model={model} field="general" trans={trans} onFix={onFix} />
      <Progress model={model} trans={trans} />
    </div>
  );
}

/** The value of the picker's "Other…" entry: never a target's name (names are not empty). */
const OTHER_TARGET = '';

/**
 * The deploy target: a picker of the targets configured in the settings (name and spec), and
 * "Other…" for a spec typed here. A configured target's token stays where the settings say (a
 * variable or a file the kernel reads); this only says where.
 */
function TargetPicker({ model, trans, onChange }: IFormProps): JSX.Element {
  const config = model.targetConfig;
  // Ask what the picked target can do (the Scale section needs "scale"); a typed spec is asked
  // once the user leaves its field, not on every keystroke.
  React.useEffect(() => {
    void model.loadCapabilities().then(changed => changed && onChange());
  }, [model.targetName]);
  const edit = (apply: () => void) => {
    apply();
    model.edited('target');
    model.edited('scale');
    onChange();
  };
  return (
    <div
      className="jp-PublishDialog-field jp-PublishDialog-targetField"
      data-capabilities={model.capabilities?.join(' ')}
    >
      <label htmlFor={PICKER_ID}>{trans.__('Deploy target')}</label>
      <select
        id={PICKER_ID}
        className="jp-mod-styled jp-PublishDialog-targetPicker"
        value={model.targetName ?? OTHER_TARGET}
        title={model.target}
        onChange={e => edit(() => model.pickTarget(e.target.value || null))}
      >
        {model.targets.map(t => (
          <option key={t.name} value={t.name} data-spec={t.spec}>
            {t.name === t.spec ? t.name : `${t.name} — ${t.spec}`}
          </option>
        ))}
        <option value={OTHER_TARGET}>{trans.__('Other…')}</option>
      </select>
      {config === null && (
        <input
          className="jp-mod-styled jp-PublishDialog-target"
          value={model.otherTarget}
          spellCheck={false}
          aria-label={trans.__('Target spec')}
          placeholder={trans.__('local, dir:/path, http://host:port')}
          title={trans.__(
            'local (the embedded function server), dir:/path, or http://host:port'
          )}
          onChange={e => edit(() => (model.otherTarget = e.target.value))}
          onBlur={() =>
            void model.loadCapabilities().then(changed => changed && onChange())
          }
        />
      )}
      {model.errors.target && (
        <span className="jp-PublishDialog-error">{model.errors.target}</span>
      )}
      {config && (config.tokenEnv || config.tokenFile) && (
        <span className="jp-PublishDialog-targetNote">
          {config.tokenEnv
            ? trans.__('Token: read by the kernel from $%1', config.tokenEnv)
            : trans.__(
                'Token: read by the kernel from %1',
                config.tokenFile ?? ''
              )}
        </span>
      )}
    </div>
  );
}

const PICKER_ID = 'jp-PublishDialog-targetPicker';

/**
 * Replicas and CPUs, for a target that declares the `scale` capability; absent for targets that
 * run one copy. A refusal (`invalid_scale`) shows under the input its `details.field` names.
 */
function ScaleSection({
  model,
  trans,
  onChange
}: IFormProps): JSX.Element | null {
  if (!model.canScale) {
    return null;
  }
  const fields = SCALE_MODE_FIELDS[model.scaleMode];
  const labels: { [field in ScaleField]: string } = {
    replicas: trans.__('Replicas'),
    min_replicas: trans.__('Min replicas'),
    max_replicas: trans.__('Max replicas'),
    target_ongoing_requests: trans.__('Ongoing requests per replica'),
    cpus: trans.__('CPUs per replica')
  };
  const placeholders: { [field in ScaleField]: string } = {
    replicas: '1',
    min_replicas: '1',
    max_replicas: '4',
    target_ongoing_requests: '2',
    cpus: '1'
  };
  const edit = (apply: () => void) => {
    apply();
    model.edited('scale');
    onChange();
  };
  const failedAt = model.scaleFailureAt;
  return (
    <fieldset className="jp-PublishDialog-scale" data-mode={model.scaleMode}>
      <legend>{trans.__('Scale')}</legend>
      <div className="jp-PublishDialog-scaleModes" role="radiogroup">
        {(['fixed', 'autoscale'] as const).map(mode => (
          <label key={mode} className="jp-PublishDialog-check">
            <input
              type="radio"
              name="jp-PublishDialog-scaleMode"
              className={`jp-PublishDialog-scaleMode-${mode}`}
              checked={model.scaleMode === mode}
              onChange={() => edit(() => (model.scaleMode = mode))}
            />
            <span>
              {mode === 'fixed'
                ? trans.__('Fixed replicas')
                : trans.__('Autoscaling')}
            </span>
          </label>
        ))}
      </div>
      <div className="jp-PublishDialog-scaleInputs">
        {fields.map(field => (
          <label
            key={field}
            className="jp-PublishDialog-field jp-PublishDialog-scaleField"
          >
            <span>{labels[field]}</span>
            <input
              type="number"
              min={field === 'min_replicas' ? 0 : field === 'cpus' ? 0.1 : 1}
              step={
                field === 'cpus' || field === 'target_ongoing_requests'
                  ? 'any'
                  : 1
              }
              className={`jp-mod-styled jp-PublishDialog-scaleInput${failedAt === field ? ' jp-mod-invalid' : ''}`}
              data-field={field}
              aria-invalid={failedAt === field}
              value={model.scaleInputs[field]}
              placeholder={placeholders[field]}
              onChange={e =>
                edit(() => (model.scaleInputs[field] = e.target.value))
              }
            />
            {failedAt === field && (
              <Failure model={model} field="scale" trans={trans} />
            )}
          </label>
        ))}
      </div>
      {model.errors.scale && (
        <span className="jp-PublishDialog-error">{model.errors.scale}</span>
      )}
    </fieldset>
  );
}

/** Plugin engines the code loads without importing them: offered, added only on request. */
function Hints({ model, trans, onChange }: IFormProps): JSX.Element | null {
  const hints = model.pendingHints;
  if (!hints.length) {
    return null;
  }
  return (
    <ul className="jp-PublishDialog-hints">
      {hints.map(hint => (
        <li
          key={hint.distribution}
          className="jp-PublishDialog-hint"
          data-name={hint.distribution}
        >
          {trans.__('Suggested:')} <code>{hint.distribution}</code>{' '}
          {hint.version ?? ''}{' '}
          <span className="jp-PublishDialog-why">{hint.reason}</span>{' '}
          <button
            type="button"
            className="jp-Button jp-mod-styled jp-mod-reject jp-PublishDialog-acceptHint"
            onClick={() => {
              model.acceptHint(hint);
              onChange();
            }}
          >
            {trans.__('Add')}
          </button>
        </li>
      ))}
    </ul>
  );
}

/** What will fail once published: it blocks Publish (see `errors.analysis` of the model). */
function Problems({
  model,
  trans
}: {
  model: PublishFormModel;
  trans: TranslationBundle;
}) {
  const errors = model.analysis.errors ?? [];
  if (!errors.length) {
    return null;
  }
  return (
    <div className="jp-PublishDialog-problems" role="alert">
      <strong>{trans.__('This will not work once published:')}</strong>
      <ul>
        {errors.map((e, i) => (
          <li
            key={`e-${i}`}
            className="jp-PublishDialog-error"
            data-code={e.code}
          >
            <span className="jp-PublishDialog-problem">{e.message}</span>{' '}
            <span className="jp-PublishDialog-problemFix">{e.hint}</span>
          </li>
        ))}
      </ul>
      <p className="jp-PublishDialog-blocked">
        {trans.__(
          'Publishing is blocked until they are fixed. Editing the requirements does not help: change the notebook as each fix says, run the cell again, then publish again.'
        )}
      </p>
    </div>
  );
}

/** What the analysis shipped by value or could not see. */
function Notes({
  model,
  trans
}: {
  model: PublishFormModel;
  trans: TranslationBundle;
}) {
  const { local_modules, captured, warnings } = model.analysis;
  if (!local_modules.length && !captured.length && !warnings.length) {
    return null;
  }
  return (
    <details className="jp-PublishDialog-notes" open={warnings.length > 0}>
      <summary>
        {trans.__('Captured objects, local modules and warnings')}
        {warnings.length > 0 && ` (${warnings.length})`}
      </summary>
      <ul>
        {captured.map(c => (
          <li key={`c-${c.path}`}>
            {trans.__('captures')} <code>{c.name}</code> ({c.type})
            {captureSize(c, trans) && (
              <span className="jp-PublishDialog-size">
                {' '}
                — {captureSize(c, trans)}
              </span>
            )}
          </li>
        ))}
        {local_modules.map(m => (
          <li key={`m-${m.name}`}>
            {trans.__('ships local module')} <code>{m.name}</code>{' '}
            {trans.__('by value')}
          </li>
        ))}
        {warnings.map((w, i) => (
          <li key={`w-${i}`} className="jp-PublishDialog-warning">
            {w.message} {w.hint}
          </li>
        ))}
      </ul>
    </details>
  );
}
