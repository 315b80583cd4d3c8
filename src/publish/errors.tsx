import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { PublishError } from '../kernel/errors';

/** Show an error with what happened and what to do next; unknown errors are shown as bugs. */
export async function showPublishError(
  error: unknown,
  trans: TranslationBundle
): Promise<void> {
  const err =
    error instanceof PublishError
      ? error
      : new PublishError(
          'internal',
          String((error as Error)?.message ?? error),
          trans.__('This is a bug in jupyterlab-publish; please report it.')
        );
  const log = typeof err.details?.log === 'string' ? (err.details.log as string) : '';
  await showDialog({
    title: trans.__('Could not publish'),
    body: (
      <div className="jp-PublishError" data-code={err.code}>
        <p className="jp-PublishError-message">{err.message}</p>
        {err.hint && <p className="jp-PublishError-hint">{err.hint}</p>}
        {log && <pre className="jp-PublishError-log">{log}</pre>}
      </div>
    ),
    buttons: [Dialog.okButton({ label: trans.__('OK') })]
  });
}
