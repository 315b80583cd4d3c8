import {
  BOOTSTRAP_CODE,
  ConnectionRegistry,
  KernelConnection
} from '../kernel/connection';
import { PublishError } from '../kernel/errors';
import { PROTOCOL_VERSION } from '../protocol';
import { FakeKernel } from './fakeKernel';

function connect(kernel: FakeKernel): KernelConnection {
  return new KernelConnection(kernel as any, 1000);
}

async function rejection(promise: Promise<unknown>): Promise<PublishError> {
  try {
    await promise;
  } catch (error) {
    return error as PublishError;
  }
  throw new Error('expected a rejection');
}

describe('KernelConnection', () => {
  it('bootstraps silently, shakes hands, and resolves requests by id', async () => {
    const kernel = new FakeKernel();
    kernel.onRequest = (comm, data) =>
      comm.deliver({
        type: 'result',
        id: data.id,
        result: { functions: [], echo: data.params }
      });
    const connection = connect(kernel);
    const hello = await connection.ready();
    expect(hello.python_version).toBe('3.11.7');
    expect(kernel.executed).toEqual([
      expect.objectContaining({
        code: BOOTSTRAP_CODE,
        silent: true,
        store_history: false
      })
    ]);
    const result: any = await connection.request('list_functions', {
      code: 'def f(): pass'
    });
    expect(result.echo).toEqual({ code: 'def f(): pass' });
    const [request] = kernel.comms[0].sent;
    expect(request).toMatchObject({
      type: 'request',
      method: 'list_functions'
    });
  });

  it('passes progress to the caller and turns kernel errors into PublishErrors', async () => {
    const kernel = new FakeKernel();
    kernel.onRequest = (comm, data) => {
      comm.deliver({
        type: 'progress',
        id: data.id,
        stage: 'pickling',
        fraction: 0.5,
        message: 'half'
      });
      comm.deliver({
        type: 'error',
        id: data.id,
        error: { code: 'name_taken', message: 'exists', hint: 'new version' }
      });
    };
    const connection = connect(kernel);
    const stages: string[] = [];
    const error = await rejection(
      connection.request(
        'analyze',
        { function: 'f' },
        { onProgress: p => stages.push(p.stage) }
      )
    );
    expect(stages).toEqual(['pickling']);
    expect(error).toBeInstanceOf(PublishError);
    expect([error.code, error.hint]).toEqual(['name_taken', 'new version']);
  });

  it('fails every request in flight when the kernel restarts, then reconnects', async () => {
    const kernel = new FakeKernel();
    kernel.onRequest = () => undefined; // the kernel never answers
    const registry = new ConnectionRegistry();
    const first = registry.get(kernel as any);
    const pending = first.request('publish', {} as any, { timeout: 60_000 });
    await new Promise(resolve => setTimeout(resolve, 10));
    kernel.setStatus('restarting');
    const error = await rejection(pending);
    expect(error.code).toBe('kernel_restarted');
    expect(first.isDisposed).toBe(true);

    kernel.onRequest = (comm, data) =>
      comm.deliver({ type: 'result', id: data.id, result: { ok: 1 } });
    const second = registry.get(kernel as any);
    expect(second).not.toBe(first);
    await expect(second.request('analyze', { function: 'f' })).resolves.toEqual(
      { ok: 1 }
    );
  });

  it('times out a silent kernel with an actionable message', async () => {
    const kernel = new FakeKernel();
    kernel.onRequest = () => undefined;
    const error = await rejection(
      connect(kernel).request('analyze', { function: 'f' }, { timeout: 20 })
    );
    expect(error.code).toBe('timeout');
    expect(error.hint).toMatch(/busy/);
  });

  it('cancels a request by id', async () => {
    const kernel = new FakeKernel();
    let publishId = '';
    kernel.onRequest = (comm, data) => {
      if (data.method === 'publish') {
        publishId = data.id;
      } else if (data.method === 'cancel') {
        comm.deliver({
          type: 'result',
          id: data.id,
          result: { cancelled: true }
        });
        comm.deliver({
          type: 'error',
          id: data.params.request_id,
          error: {
            code: 'cancelled',
            message: 'Publishing was cancelled.',
            hint: ''
          }
        });
      }
    };
    const connection = connect(kernel);
    let sentId = '';
    const publishing = connection.request('publish', {} as any, {
      onSent: id => (sentId = id)
    });
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(sentId).toBe(publishId);
    await expect(connection.cancel(sentId)).resolves.toEqual({
      cancelled: true
    });
    expect((await rejection(publishing)).code).toBe('cancelled');
  });

  it('says how to install the package when the kernel lacks it', async () => {
    const kernel = new FakeKernel();
    kernel.executeReply = {
      status: 'error',
      ename: 'ModuleNotFoundError',
      evalue: "No module named 'jupyterlab_publish'"
    };
    const error = await rejection(connect(kernel).ready());
    expect(error.code).toBe('package_missing');
    expect(error.hint).toContain('%pip install jupyterlab-publish');
  });

  it('refuses a kernel that is not Python, and one speaking another protocol version', async () => {
    const r = new FakeKernel();
    r.language = 'R';
    expect((await rejection(connect(r).ready())).code).toBe('not_python');

    const old = new FakeKernel();
    old.hello = { ...old.hello, protocol_version: PROTOCOL_VERSION + 1 };
    const error = await rejection(connect(old).ready());
    expect(error.code).toBe('protocol_mismatch');
  });

  it('reports a comm the kernel closes as a missing package', async () => {
    const kernel = new FakeKernel();
    kernel.onOpen = comm => setTimeout(() => comm.onClose({}), 0);
    const error = await rejection(connect(kernel).ready());
    expect(error.code).toBe('package_missing');
  });
});

describe('what the connection tells the user', () => {
  it('goes through the translator', async () => {
    const trans = {
      __: (text: string, ...args: unknown[]) =>
        `«${text.replace(/%(\d)/g, (_, n) => String(args[Number(n) - 1]))}»`
    } as any;
    const r = new FakeKernel();
    r.language = 'R';
    const error = await rejection(
      new KernelConnection(r as any, 1000, trans).ready()
    );
    expect(error.message).toBe("«This notebook's kernel runs R, not Python.»");
    expect(error.hint).toMatch(/^«Switch the notebook/);

    const silent = new FakeKernel();
    silent.onRequest = () => undefined;
    const registry = new ConnectionRegistry(trans);
    const timeout = await rejection(
      registry
        .get(silent as any)
        .request('analyze', { function: 'f' }, { timeout: 20 })
    );
    expect(timeout.message).toBe(
      '«The kernel did not answer analyze for 0 s.»'
    );
  });
});
