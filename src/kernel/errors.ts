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

  static fromInfo(info: IErrorInfo): PublishError {
    return new PublishError(info.code, info.message, info.hint, info.details);
  }
}

/** The line that installs the kernel side into the kernel's own environment. */
export const PIP_INSTALL_LINE = '%pip install jupyterlab-publish';
