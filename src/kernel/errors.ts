import { TranslationBundle } from '@jupyterlab/translation';

import { ErrorCode, IErrorInfo } from '../protocol';

/** An error the user can act on: `message` says what happened, `hint` what to do next. */
export class PublishError extends Error implements IErrorInfo {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint: string = '',
    readonly details: { [key: string]: unknown } = {}
  ) {
    super(message);
    this.name = 'PublishError';
  }

  /** From the wire; terminal escape codes are removed here too, whatever the sender did. */
  static fromInfo(info: IErrorInfo): PublishError {
    const details: { [key: string]: unknown } = {};
    for (const [key, value] of Object.entries(info.details ?? {})) {
      details[key] = typeof value === 'string' ? stripAnsi(value) : value;
    }
    return new PublishError(
      info.code,
      stripAnsi(info.message),
      stripAnsi(info.hint ?? ''),
      details
    );
  }
}

/** `error` as a PublishError; anything else thrown is an `internal` error, shown as a bug. */
export function asPublishError(
  error: unknown,
  trans: TranslationBundle
): PublishError {
  if (error instanceof PublishError) {
    return error;
  }
  return new PublishError(
    'internal',
    String((error as Error)?.message ?? error),
    trans.__('This is a bug in jupyterlab-publish; please report it.')
  );
}

// CSI sequences (colours, cursor moves), OSC sequences (links, titles) and two-character escapes.
const ANSI_ESCAPE =
  // eslint-disable-next-line no-control-regex
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/** `text` without terminal escape codes (uv and pip colour their errors). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_ESCAPE, '');
}

/** The line that installs the kernel side into the kernel's own environment. */
export const PIP_INSTALL_LINE = '%pip install jupyterlab-publish';
