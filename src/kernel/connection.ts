import { Kernel, KernelMessage } from '@jupyterlab/services';
import { PromiseDelegate, UUID } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';

import {
  checkReply,
  COMM_TARGET,
  IHello,
  IMethods,
  IProgress,
  makeRequest,
  Method,
  PROTOCOL_VERSION
} from '../protocol';
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
    private readonly _helloTimeout = 60_000
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

  /** Ask the kernel to stop a request; the request itself then fails with `cancelled`. */
  async cancel(requestId: string): Promise<boolean> {
    if (!this._pending.has(requestId)) {
      return false;
    }
    const reply = await this.request('cancel', { request_id: requestId }, { timeout: 10_000 });
    return reply.cancelled;
  }

  dispose(reason?: PublishError): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.kernel.statusChanged.disconnect(this._onStatus, this);
    const error =
      reason ??
      new PublishError(
        'kernel_restarted',
        'The kernel restarted or shut down while the request was running.',
        'Nothing was published. Run the notebook again, then publish.'
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
    const info = await this.kernel.info;
    const language = info.language_info?.name ?? '';
    if (language.toLowerCase() !== 'python') {
      throw new PublishError(
        'not_python',
        `This notebook's kernel runs ${language || 'an unknown language'}, not Python.`,
        'Switch the notebook to a Python 3 kernel (Kernel → Change Kernel…).'
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
        'The kernel closed the publish connection: jupyterlab-publish is not importable there.',
        `Install it in the kernel's environment with \`${PIP_INSTALL_LINE}\`, then restart the kernel.`
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
            'The kernel did not answer the publish handshake.',
            'The kernel may be busy running a cell: wait for it to finish or interrupt it, then try again.'
          )
        ),
      this._helloTimeout
    );
    try {
      const reply = await hello.promise;
      if (reply.protocol_version !== PROTOCOL_VERSION) {
        throw new PublishError(
          'protocol_mismatch',
          `The kernel speaks publish protocol ${reply.protocol_version}; JupyterLab speaks ${PROTOCOL_VERSION}.`,
          `Install the same jupyterlab-publish version in the kernel (${PIP_INSTALL_LINE}==<JupyterLab's version>) and restart it.`
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
    if (content.status === 'error') {
      if (content.ename === 'ModuleNotFoundError') {
        throw new PublishError(
          'package_missing',
          "jupyterlab-publish is not installed in this kernel's environment.",
          `Run \`${PIP_INSTALL_LINE}\` in a cell, restart the kernel, then publish again.`
        );
      }
      throw new PublishError(
        'package_missing',
        `The kernel could not load jupyterlab-publish: ${content.ename}: ${content.evalue}`,
        `Reinstall it in the kernel's environment with \`${PIP_INSTALL_LINE}\` and restart the kernel.`
      );
    }
  }

  private _onMessage(msg: KernelMessage.ICommMsgMsg): void {
    let reply;
    try {
      reply = checkReply(msg.content.data);
    } catch (error) {
      console.warn('jupyterlab-publish: ignoring a malformed kernel message', error);
      return;
    }
    if (reply.type === 'hello') {
      this._hello?.resolve(reply);
      return;
    }
    const pending = reply.id ? this._pending.get(reply.id) : undefined;
    if (!pending || !reply.id) {
      if (reply.type === 'error') {
        console.warn('jupyterlab-publish: kernel error without a request', reply.error);
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
          `The kernel did not answer ${pending.method} for ${Math.round(pending.timeout / 1000)} s.`,
          'The kernel may be busy running a cell or stuck: wait, or interrupt it and try again.'
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

  private _onStatus(_: Kernel.IKernelConnection, status: KernelMessage.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
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
  get(kernel: Kernel.IKernelConnection): KernelConnection {
    let connection = this._connections.get(kernel.id);
    if (!connection || connection.isDisposed || connection.kernel !== kernel) {
      connection?.dispose();
      connection = new KernelConnection(kernel);
      this._connections.set(kernel.id, connection);
    }
    return connection;
  }

  private _connections = new Map<string, KernelConnection>();
}
