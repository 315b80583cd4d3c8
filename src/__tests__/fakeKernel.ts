import { Signal } from '@lumino/signaling';

import { COMM_TARGET, PROTOCOL_VERSION } from '../protocol';

/** A comm whose far side is a scripted kernel: the kernel's `onRequest` decides what each request gets back. */
export class FakeComm {
  constructor(private readonly _kernel: FakeKernel) {}
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  isDisposed = false;
  sent: any[] = [];
  open(): void {
    this._kernel.onOpen(this);
  }
  send(data: any): void {
    this.sent.push(data);
    this._kernel.onRequest(this, data);
  }
  close(): void {
    this.isDisposed = true;
  }
  deliver(data: any): void {
    this.onMsg({ content: { data } });
  }
}

export class FakeKernel {
  id = 'kernel-1';
  status = 'idle';
  statusChanged = new Signal<this, string>(this);
  disposed = new Signal<this, void>(this);
  language = 'python';
  executeReply: any = { status: 'ok' };
  hello: any = {
    type: 'hello',
    protocol_version: PROTOCOL_VERSION,
    package_version: '0.1.0',
    python_version: '3.11.7',
    cloudpickle_version: '3.1.2'
  };
  comms: FakeComm[] = [];
  executed: any[] = [];
  /** Called for every request; by default answers each with an empty result. */
  onRequest = (comm: FakeComm, data: any): void =>
    comm.deliver({ type: 'result', id: data.id, result: {} });

  get info(): Promise<any> {
    return Promise.resolve({ language_info: { name: this.language } });
  }
  requestExecute(content: any): any {
    this.executed.push(content);
    return { done: Promise.resolve({ content: this.executeReply }) };
  }
  createComm(target: string): any {
    expect(target).toBe(COMM_TARGET);
    const comm = new FakeComm(this);
    this.comms.push(comm);
    return comm;
  }
  onOpen(comm: FakeComm): void {
    setTimeout(() => comm.deliver(this.hello), 0);
  }
  setStatus(status: string): void {
    this.status = status;
    this.statusChanged.emit(status);
  }
}
