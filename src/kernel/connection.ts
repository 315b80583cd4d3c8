import { Kernel, KernelMessage } from '@jupyterlab/services';
import { PromiseDelegate, UUID } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import {
  checkReply,
  COMM_TARGET,
  ICancelReply,
  IHello,
  IMethods,
  IProgress,
  makeRequest,
  Method,
  PROTOCOL_VERSION
} from '../protocol';
import { TRANSLATION_DOMAIN } from '../tokens';
import { PIP_INSTALL_LINE, PublishError } from './errors';

/** Code run silently in the kernel before the comm opens; idempotent. */
export const BOOTSTRAP_CODE =
  'import jupyterlab_publish.kernel as _jupyterlab_publish_kernel\n' +
  '_jupyterlab_publish_kernel.register()\n' +
  'del _jupyterlab_publish_kernel';

export interface IRequestOptions {
  onProgress?: (progress: IProgress) => void;
  /** Fail if the kernel says nothing for this long (ms); progress resets the clock. */
  timeout?: number;
  /** Called with the request id once sent, so the caller can cancel it. */
  onSent?: (requestId: string) => void;
}

interface IPending {
  method: Method;
  resolve: (value: any) => void;
  reject: (error: PublishError) => void;
  onProgress?: (progress: IProgress) => void;
  timeout: number;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * One comm with the jupyterlab_publish target in one kernel: bootstrap, version handshake,
 * requests with ids and inactivity timeouts. When the kernel restarts or dies, every request in
 * flight fails with `kernel_restarted` and the connection is disposed; the next use makes a new one.
 */
export class KernelConnection implements IDisposable {
  constructor(
    readonly kernel: Kernel.IKernelConnection,
    private readonly _helloTimeout = 60_000,
    private readonly _trans: TranslationBundle = nullTranslator.load(
      TRANSLATION_DOMAIN
    )
  ) {
    kernel.statusChanged.connect(this._onStatus, this);
    kernel.disposed.connect(() => this.dispose(), this);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The kernel's hello; bootstraps the comm on first call. */
  ready(): Promise<IHello> {
    if (!this._ready) {
      this._ready = this._connect();
      this._ready.catch(() => this.dispose());
    }
    return this._ready;
  }

  async request<M extends Method>(
    method: M,
    params: IMethods[M]['params'],
    options: IRequestOptions = {}
  ): Promise<IMethods[M]['result']> {
    await this.ready();
    const id = UUID.uuid4();
    const result = new Promise<IMethods[M]['result']>((resolve, reject) => {
      const pending: IPending = {
        method,
        resolve,
        reject,
        onProgress: options.onProgress,
        timeout: options.timeout ?? 120_000
      };
      this._pending.set(id, pending);
      this._armTimer(id, pending);
    });
    this._comm!.send(makeRequest(id, method, params) as any);
    options.onSent?.(id);
    return result;
  }

  /** Ask the kernel to stop a request; the request itself then fails with `cancelled`, unless
   * the reply says `too_late` (a publish that reached its target goes on to its result). */
  async cancel(requestId: string): Promise<ICancelReply> {
    if (!this._pending.has(requestId)) {
      return { cancelled: false };
    }
    return this.request(
      'cancel',
      { request_id: requestId },
      { timeout: 10_000 }
    );
  }

  dispose(reason?: PublishError): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.kernel.statusChanged.disconnect(this._onStatus, this);
    const trans = this._trans;
    const error =
      reason ??
      new PublishError(
        'kernel_restarted',
        trans.__(
          'The kernel restarted or shut down while the request was running.'
        ),
        trans.__('Nothing was published. Run the notebook again, then publish.')
      );
    this._failAll(error);
    if (this._comm && !this._comm.isDisposed) {
      try {
        this._comm.close();
      } catch {
        // the kernel is gone; nothing to close
      }
    }
  }

  private async _connect(): Promise<IHello> {
    const trans = this._trans;
    const info = await this.kernel.info;
    const language = info.language_info?.name ?? '';
    if (language.toLowerCase() !== 'python') {
      throw new PublishError(
        'not_python',
        language
          ? trans.__("This notebook's kernel runs %1, not Python.", language)
          : trans.__(
              "This notebook's kernel runs an unknown language, not Python."
            ),
        trans.__(
          'Switch the notebook to a Python 3 kernel (Kernel → Change Kernel…).'
        )
      );
    }
    await this._bootstrap();
    const hello = new PromiseDelegate<IHello>();
    this._hello = hello;
    const comm = this.kernel.createComm(COMM_TARGET);
    this._comm = comm;
    comm.onMsg = msg => this._onMessage(msg);
    comm.onClose = () => {
      const error = new PublishError(
        'package_missing',
        trans.__(
          'The kernel closed the publish connection: jupyterlab-publish is not importable there.'
        ),
        trans.__(
          "Install it in the kernel's environment with `%1`, then restart the kernel.",
          PIP_INSTALL_LINE
        )
      );
      hello.reject(error);
      this.dispose(error);
    };
    comm.open({});
    const timer = setTimeout(
      () =>
        hello.reject(
          new PublishError(
            'timeout',
            trans.__('The kernel did not answer the publish handshake.'),
            trans.__(
              'The kernel may be busy running a cell: wait for it to finish or interrupt it, then try again.'
            )
          )
        ),
      this._helloTimeout
    );
    try {
      const reply = await hello.promise;
      if (reply.protocol_version !== PROTOCOL_VERSION) {
        throw new PublishError(
          'protocol_mismatch',
          trans.__(
            'The kernel speaks publish protocol %1; JupyterLab speaks %2.',
            reply.protocol_version,
            PROTOCOL_VERSION
          ),
          trans.__(
            "Install the same jupyterlab-publish version in the kernel (%1==<JupyterLab's version>) and restart it.",
            PIP_INSTALL_LINE
          )
        );
      }
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  private async _bootstrap(): Promise<void> {
    const future = this.kernel.requestExecute({
      code: BOOTSTRAP_CODE,
      silent: true,
      store_history: false,
      stop_on_error: false
    });
    const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
    const content = reply.content;
    const trans = this._trans;
    if (content.status === 'error') {
      if (content.ename === 'ModuleNotFoundError') {
        throw new PublishError(
          'package_missing',
          trans.__(
            "jupyterlab-publish is not installed in this kernel's environment."
          ),
          trans.__(
            'Run `%1` in a cell, restart the kernel, then publish again.',
            PIP_INSTALL_LINE
          )
        );
      }
      throw new PublishError(
        'package_missing',
        trans.__(
          'The kernel could not load jupyterlab-publish: %1: %2',
          content.ename,
          content.evalue
        ),
        trans.__(
          "Reinstall it in the kernel's environment with `%1` and restart the kernel.",
          PIP_INSTALL_LINE
        )
      );
    }
  }

  private _onMessage(msg: KernelMessage.ICommMsgMsg): void {
    let reply;
    try {
      reply = checkReply(msg.content.data);
    } catch (error) {
      console.warn(
        'jupyterlab-publish: ignoring a malformed kernel message',
        error
      );
      return;
    }
    if (reply.type === 'hello') {
      this._hello?.resolve(reply);
      return;
    }
    const pending = reply.id ? this._pending.get(reply.id) : undefined;
    if (!pending || !reply.id) {
      if (reply.type === 'error') {
        console.warn(
          'jupyterlab-publish: kernel error without a request',
          reply.error
        );
      }
      return;
    }
    if (reply.type === 'progress') {
      this._armTimer(reply.id, pending);
      pending.onProgress?.(reply);
      return;
    }
    this._settle(reply.id);
    if (reply.type === 'result') {
      pending.resolve(reply.result);
    } else {
      pending.reject(PublishError.fromInfo(reply.error));
    }
  }

  private _armTimer(id: string, pending: IPending): void {
    if (pending.timer) {
      clearTimeout(pending.timer);
    }
    pending.timer = setTimeout(() => {
      this._settle(id);
      pending.reject(
        new PublishError(
          'timeout',
          this._trans.__(
            'The kernel did not answer %1 for %2 s.',
            pending.method,
            Math.round(pending.timeout / 1000)
          ),
          this._trans.__(
            'The kernel may be busy running a cell or stuck: wait, or interrupt it and try again.'
          )
        )
      );
    }, pending.timeout);
  }

  private _settle(id: string): void {
    const pending = this._pending.get(id);
    if (pending?.timer) {
      clearTimeout(pending.timer);
    }
    this._pending.delete(id);
  }

  private _failAll(error: PublishError): void {
    this._hello?.reject(error);
    for (const [id, pending] of [...this._pending]) {
      this._settle(id);
      pending.reject(error);
    }
  }

  private _onStatus(
    _: Kernel.IKernelConnection,
    status: KernelMessage.Status
  ): void {
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead'
    ) {
      this.dispose();
    }
  }

  private _comm: Kernel.IComm | null = null;
  private _disposed = false;
  private _hello: PromiseDelegate<IHello> | null = null;
  private _pending = new Map<string, IPending>();
  private _ready: Promise<IHello> | null = null;
}

/** One live KernelConnection per kernel; a disposed one is replaced on next use. */
export class ConnectionRegistry {
  constructor(
    private readonly _trans: TranslationBundle = nullTranslator.load(
      TRANSLATION_DOMAIN
    )
  ) {}

  get(kernel: Kernel.IKernelConnection): KernelConnection {
    let connection = this._connections.get(kernel.id);
    if (!connection || connection.isDisposed || connection.kernel !== kernel) {
      connection?.dispose();
      connection = new KernelConnection(kernel, undefined, this._trans);
      this._connections.set(kernel.id, connection);
    }
    return connection;
  }

  private _connections = new Map<string, KernelConnection>();
}
