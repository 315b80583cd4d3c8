import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { asPublishError } from '../kernel/errors';

/**
 * Show an error with what happened and what to do next; unknown errors are shown as bugs.
 * With `action` (a button label, e.g. "Add pandas==3.1.1 and publish again") the dialog offers it
 * beside Cancel; the result says whether the user chose it.
 */
export async function showPublishError(
  error: unknown,
  trans: TranslationBundle,
  action?: string
): Promise<boolean> {
  const err = asPublishError(error, trans);
  const log =
    typeof err.details?.log === 'string' ? (err.details.log as string) : '';
  const result = await showDialog({
    title: trans.__('Could not publish'),
    body: (
      <div className="jp-PublishError" data-code={err.code}>
        <p className="jp-PublishError-message">{err.message}</p>
        {err.hint && <p className="jp-PublishError-hint">{err.hint}</p>}
        {log && <pre className="jp-PublishError-log">{log}</pre>}
      </div>
    ),
    buttons: action
      ? [Dialog.cancelButton(), Dialog.okButton({ label: action })]
      : [Dialog.okButton({ label: trans.__('OK') })]
  });
  return Boolean(action) && result.button.accept;
}
