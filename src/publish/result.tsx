import { Clipboard, ReactWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IDeployment } from '../protocol';

/** `url` when it is an absolute http(s) URL, else null: a server-supplied address becomes a link
 * only then (a `javascript:` or `data:` URL would run in JupyterLab's origin when clicked). */
export function safeHref(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:'
      ? parsed.href
      : null;
  } catch {
    return null;
  }
}

/** What a successful publish shows: where it is, a copyable curl command (with the key, if one is
 * needed) and, for a bundle nothing serves (a `dir:` target), how to serve it. */
export class DeploymentResultBody extends ReactWidget {
  constructor(
    readonly deployment: IDeployment,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-PublishResult');
  }

  protected render(): JSX.Element {
    const { deployment: d } = this;
    const trans = this._trans;
    const href = safeHref(d.url);
    return (
      <div>
        {d.serve ? (
          <>
            <p>
              {trans.__(
                'Version %1 of %2 is stored as a bundle (nothing serves it yet) in',
                d.version,
                d.name
              )}{' '}
              <code className="jp-PublishResult-bundle">
                {d.bundle_path ?? d.url}
              </code>
            </p>
            <p>
              {trans.__(
                'Serve it with the Python it was built for (in a terminal):'
              )}
            </p>
            <pre className="jp-PublishResult-serve">{d.serve}</pre>
            <button
              className="jp-Button jp-mod-styled jp-mod-reject jp-PublishResult-copyServe"
              onClick={() => Clipboard.copyToSystem(d.serve!)}
            >
              {trans.__('Copy serve command')}
            </button>
            <p>{trans.__('Then call it:')}</p>
          </>
        ) : (
          <>
            <p>
              {trans.__('Version %1 of %2 is live at', d.version, d.name)}{' '}
              {href ? (
                <a
                  className="jp-PublishResult-url"
                  href={href}
                  target="_blank"
                  rel="noreferrer"
                >
                  {d.url}
                </a>
              ) : (
                <code className="jp-PublishResult-url">{d.url}</code>
              )}
            </p>
            <p>{trans.__('Call it:')}</p>
          </>
        )}
        {d.key && (
          <p className="jp-PublishResult-key">
            {trans.__(
              'Callers need its key, sent as "Authorization: Bearer <key>" (included below). `jupyter publish show %1` shows it again.',
              d.name
            )}
          </p>
        )}
        <pre className="jp-PublishResult-curl">{d.curl}</pre>
        {d.curl_note && <p className="jp-PublishResult-note">{d.curl_note}</p>}
        <button
          className="jp-Button jp-mod-styled jp-mod-accept jp-PublishResult-copy"
          onClick={() => Clipboard.copyToSystem(d.curl)}
        >
          {trans.__('Copy curl command')}
        </button>
      </div>
    );
  }
}
