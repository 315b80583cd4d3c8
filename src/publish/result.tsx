import { Clipboard, ReactWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IDeployment } from '../protocol';

/** What a successful publish shows: the URL and a copyable curl command (with the key, if one is needed). */
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
    return (
      <div>
        <p>
          {trans.__('Version %1 of %2 is live at', d.version, d.name)}{' '}
          <a
            className="jp-PublishResult-url"
            href={d.url}
            target="_blank"
            rel="noreferrer"
          >
            {d.url}
          </a>
        </p>
        <p>{trans.__('Call it:')}</p>
        {d.key && (
          <p className="jp-PublishResult-key">
            {trans.__(
              'Callers need its key, sent as "Authorization: Bearer <key>" (included below). `jupyter publish show %1` shows it again.',
              d.name
            )}
          </p>
        )}
        <pre className="jp-PublishResult-curl">{d.curl}</pre>
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
