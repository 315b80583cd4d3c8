/**
 * The Deployments panel's REST client, model and rendering, against a fake fetch that answers as
 * the server extension does (jupyterlab_publish/server/openapi.json). The real path — a browser,
 * the extension and a function server — is proven by ui-tests/tests/deployments.spec.ts.
 */
import { Dialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import Ajv from 'ajv';
import * as fs from 'fs';
import * as path from 'path';

import {
  DeploymentsClient,
  DeploymentsError,
  IFunction,
  IFunctionList
} from '../deployments/client';
import { DeploymentsModel } from '../deployments/model';
import {
  DeploymentsPanel,
  formatRate,
  formatScale,
  formatSeconds,
  IDeploymentsActions
} from '../deployments/panel';
import { activateDeployments, DeploymentTargets } from '../deployments/plugin';
import { DeploymentsCommandIDs, ITargetConfig } from '../tokens';

const trans = nullTranslator.load('jupyterlab_publish');
const LOCAL: ITargetConfig = { name: 'local', spec: 'local' };
const REMOTE: ITargetConfig = {
  name: 'team',
  spec: 'https://functions.example.org',
  tokenEnv: 'TEAM_TOKEN'
};
const KEY = 'k-3f9a-secret';

function predictor(overrides: Partial<IFunction> = {}): IFunction {
  return {
    name: 'predictor',
    url: 'http://127.0.0.1:8765/functions/predictor',
    live_version: 2,
    public: false,
    keyed: true,
    key: null,
    status: 'healthy',
    processes: 1,
    restarts: 0,
    versions: [
      {
        version: 1,
        status: 'retired',
        created: '2026-12-03T10:00:00+00:00',
        function: { name: 'predictor', signature: '(x)' },
        provenance: {
          notebook: 'kmeans.ipynb',
          cell_id: 'c1',
          source_hash: 'sha256:aaaaaaaaaaaaaaaa',
          user: 'ada'
        }
      },
      {
        version: 2,
        status: 'live',
        created: '2026-12-03T11:00:00+00:00',
        function: { name: 'predictor', signature: '(x)' },
        provenance: {
          notebook: 'kmeans.ipynb',
          cell_id: 'c2',
          source_hash: 'sha256:bbbbbbbbbbbbbbbb',
          user: 'ada'
        }
      }
    ],
    metrics: {
      requests: 12,
      errors: 1,
      error_rate: 1 / 12,
      p50: 0.0042,
      p99: 0.25,
      in_flight: 0
    },
    provenance: {
      notebook: 'work/kmeans.ipynb',
      notebook_path: 'work/kmeans.ipynb',
      cell_id: 'c2'
    },
    ...overrides
  };
}

interface ISeen {
  method: string;
  url: URL;
  body: string;
  headers: Headers;
}

/** A fetch that answers like the server extension and records every request. */
class FakeServer {
  seen: ISeen[] = [];
  functions: IFunction[] = [predictor()];
  started = true;
  /** Answers by "METHOD path", overriding the defaults below. */
  answers = new Map<string, [number, unknown]>();
  log = 'INFO: started\nINFO: POST / 200';

  settings(): ServerConnection.ISettings {
    return ServerConnection.makeSettings({
      baseUrl: 'http://localhost:8888/lab-base/',
      token: 'jupyter-session-token',
      fetch: (request: Request) => this.fetch(request)
    } as any);
  }

  private async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const body = await request.text();
    this.seen.push({
      method: request.method,
      url,
      body,
      headers: request.headers
    });
    const route = url.pathname.replace('/lab-base/jupyterlab-publish/', '');
    const [status, answer] =
      this.answers.get(`${request.method} ${route}`) ??
      this.answer(request.method, route, url, body);
    return new Response(
      typeof answer === 'string' ? answer : JSON.stringify(answer),
      { status, headers: { 'Content-Type': 'application/json' } }
    );
  }

  private answer(
    method: string,
    route: string,
    url: URL,
    body: string
  ): [number, unknown] {
    if (route === 'functions') {
      const list: IFunctionList = {
        target: url.searchParams.get('target')!,
        started: this.started,
        functions: this.functions,
        metrics_error: null
      };
      return [200, list];
    }
    if (route === 'functions/predictor' && method === 'GET') {
      const withKey = url.searchParams.get('key') === 'true';
      return [200, { ...this.functions[0], key: withKey ? KEY : null }];
    }
    if (route === 'functions/predictor/call') {
      return [200, { name: 'predictor', status: 200, ok: true, answer: [3] }];
    }
    if (route === 'functions/predictor/logs') {
      const since = url.searchParams.get('since');
      return [
        200,
        {
          name: 'predictor',
          version: 2,
          log: since ? 'INFO: POST / 200 (again)' : this.log,
          cursor: since ? 'c2' : 'c1',
          gap: false
        }
      ];
    }
    return [
      404,
      { error: 'not_found', message: `no route ${route}`, hint: '' }
    ];
  }
}

async function settled() {
  for (let i = 0; i < 3; i++) {
    await new Promise(resolve => requestAnimationFrame(resolve));
  }
}

describe('DeploymentsClient', () => {
  it('names the target by spec and where its token is, never the token itself', async () => {
    const server = new FakeServer();
    const client = new DeploymentsClient(server.settings());
    await client.list(REMOTE);
    const [request] = server.seen;
    expect(request.method).toBe('GET');
    expect(request.url.pathname).toBe('/lab-base/jupyterlab-publish/functions');
    expect(request.url.searchParams.get('target')).toBe(REMOTE.spec);
    expect(request.url.searchParams.get('token_env')).toBe('TEAM_TOKEN');
    // The Jupyter session authenticates the request (ServerConnection adds it).
    expect(request.headers.get('Authorization')).toBe(
      'token jupyter-session-token'
    );
  });

  it('asks for the key only when told to', async () => {
    const server = new FakeServer();
    const client = new DeploymentsClient(server.settings());
    expect((await client.show(LOCAL, 'predictor')).key).toBeNull();
    expect((await client.show(LOCAL, 'predictor', { key: true })).key).toBe(
      KEY
    );
    expect(server.seen[1].url.searchParams.get('key')).toBe('true');
  });

  it('sends rollback, delete, logs and try-it as the API describes them', async () => {
    const server = new FakeServer();
    server.answers.set('POST functions/predictor/rollback', [
      200,
      { name: 'predictor', version: 1, previous_version: 2, url: 'u' }
    ]);
    server.answers.set('DELETE functions/predictor', [
      200,
      { deleted: 'predictor' }
    ]);
    const client = new DeploymentsClient(server.settings());
    expect((await client.rollback(LOCAL, 'predictor', 1)).version).toBe(1);
    await client.delete(LOCAL, 'predictor');
    await client.logs(LOCAL, 'predictor', { lines: 50, since: 'c1' });
    await client.call(LOCAL, 'predictor', '[[0.5, 0.5]]');
    const [rollback, remove, logs, call] = server.seen;
    expect([rollback.method, JSON.parse(rollback.body)]).toEqual([
      'POST',
      { to: 1 }
    ]);
    expect(remove.method).toBe('DELETE');
    expect(logs.url.searchParams.get('lines')).toBe('50');
    expect(logs.url.searchParams.get('since')).toBe('c1');
    expect([call.method, call.body]).toEqual(['POST', '[[0.5, 0.5]]']);
    expect(client.docsUrl(REMOTE, 'predictor')).toBe(
      'http://localhost:8888/lab-base/jupyterlab-publish/functions/predictor/docs?target=https%3A%2F%2Ffunctions.example.org&token_env=TEAM_TOKEN'
    );
  });

  it('turns an error answer into a DeploymentsError with its code and hint', async () => {
    const server = new FakeServer();
    server.answers.set('GET functions', [
      400,
      {
        error: 'unknown_target',
        message: "no deploy target of kind 'ftp'",
        hint: "use 'local'"
      }
    ]);
    const client = new DeploymentsClient(server.settings());
    const error = await client.list(LOCAL).catch(e => e);
    expect(error).toBeInstanceOf(DeploymentsError);
    expect([error.code, error.message, error.hint, error.status]).toEqual([
      'unknown_target',
      "no deploy target of kind 'ftp'",
      "use 'local'",
      400
    ]);
  });

  it('says how to enable the server extension when its routes are missing', async () => {
    const server = new FakeServer();
    server.answers.set('GET functions', [404, '<html>404</html>']);
    const error = await new DeploymentsClient(server.settings())
      .list(LOCAL)
      .catch(e => e);
    expect(error.code).toBe('not_found');
    expect(error.hint).toContain(
      'jupyter server extension enable jupyterlab_publish'
    );
  });
});

describe('DeploymentsModel', () => {
  it('loads the functions of the selected target and forgets them on a switch', async () => {
    const server = new FakeServer();
    const model = new DeploymentsModel(
      new DeploymentsClient(server.settings())
    );
    model.setTargets([LOCAL, REMOTE]);
    await model.refresh();
    expect(model.functions.map(f => f.name)).toEqual(['predictor']);
    model.selectTarget('team');
    expect(model.functions).toEqual([]);
    await model.refresh();
    expect(
      server.seen[server.seen.length - 1].url.searchParams.get('target')
    ).toBe(REMOTE.spec);
  });

  it('coalesces overlapping refreshes into one request and one re-ask', async () => {
    const server = new FakeServer();
    const model = new DeploymentsModel(
      new DeploymentsClient(server.settings())
    );
    await Promise.all([model.refresh(), model.refresh(), model.refresh()]);
    const lists = server.seen.filter(s =>
      s.url.pathname.endsWith('/functions')
    );
    expect(lists.length).toBe(2);
  });

  it('keeps the last good list and shows the error of a failed refresh', async () => {
    const server = new FakeServer();
    const model = new DeploymentsModel(
      new DeploymentsClient(server.settings())
    );
    await model.refresh();
    server.answers.set('GET functions', [
      502,
      { error: 'target_unreachable', message: 'down', hint: 'start it' }
    ]);
    await model.refresh();
    expect(model.error?.code).toBe('target_unreachable');
    expect(model.functions.length).toBe(1);
  });

  it('describes each target once, for the panel and the Publish dialog alike', async () => {
    const server = new FakeServer();
    server.answers.set('GET targets', [
      200,
      {
        targets: [
          { spec: REMOTE.spec, kind: 'http', capabilities: ['list', 'show'] }
        ]
      }
    ]);
    const model = new DeploymentsModel(
      new DeploymentsClient(server.settings())
    );
    const targets = new DeploymentTargets(spec => model.capabilitiesOf(spec));
    expect(await targets.capabilities(REMOTE.spec)).toEqual(['list', 'show']);
    expect(await model.capabilitiesOf(REMOTE.spec)).toEqual(['list', 'show']);
    expect(
      server.seen.filter(r => r.url.pathname.endsWith('/targets'))
    ).toHaveLength(1);
    // A target the server cannot describe (an error entry) has no known capabilities.
    server.answers.set('GET targets', [
      200,
      {
        targets: [
          { spec: 'ftp://x', error: { code: 'unknown_target', message: 'no' } }
        ]
      }
    ]);
    expect(await targets.capabilities('ftp://x')).toBeNull();
    expect(await new DeploymentTargets().capabilities('local')).toBeNull();
  });

  it('falls back to the local target when the settings list none', () => {
    const targets = new DeploymentTargets();
    const seen: ReadonlyArray<ITargetConfig>[] = [];
    targets.changed.connect((_, list) => seen.push(list));
    targets.set([]);
    expect(targets.targets).toEqual([LOCAL]);
    targets.set([REMOTE]);
    expect(seen).toEqual([[LOCAL], [REMOTE]]);
  });
});

describe('the Deployments panel', () => {
  let panel: DeploymentsPanel;
  let server: FakeServer;
  let actions: { [K in keyof IDeploymentsActions]: jest.Mock };

  async function show(
    functions?: IFunction[],
    started = true,
    capabilities?: string[]
  ) {
    server = new FakeServer();
    if (capabilities) {
      server.answers.set('GET targets', [
        200,
        { targets: [{ spec: 'local', kind: 'local', capabilities }] }
      ]);
    }
    if (functions) {
      server.functions = functions;
    }
    server.started = started;
    const model = new DeploymentsModel(
      new DeploymentsClient(server.settings())
    );
    actions = {
      rollback: jest.fn(async () => undefined),
      remove: jest.fn(async () => undefined),
      openSource: jest.fn(async () => undefined),
      openDocs: jest.fn()
    };
    panel = new DeploymentsPanel(model, trans, actions, () => 10);
    Widget.attach(panel, document.body);
    await model.refresh();
    await settled();
    return panel.node;
  }

  function click(node: Element | null) {
    expect(node).not.toBeNull();
    (node as HTMLElement).click();
  }

  afterEach(() => {
    panel.dispose();
  });

  it('shows each function with version, status, URL, access, metrics and where it came from', async () => {
    const node = await show();
    const item = node.querySelector('[data-name="predictor"]')!;
    expect(item.querySelector('.jp-Deployments-version')!.textContent).toBe(
      'v2'
    );
    const status = item.querySelector('.jp-Deployments-status')!;
    expect(status.textContent).toBe('healthy');
    expect(status.classList).toContain('jp-mod-healthy');
    expect(item.querySelector('.jp-Deployments-url')!.textContent).toBe(
      'http://127.0.0.1:8765/functions/predictor'
    );
    expect(item.querySelector('.jp-Deployments-access')!.textContent).toBe(
      'keyed'
    );
    expect(item.querySelector('.jp-Deployments-requests')!.textContent).toBe(
      '12'
    );
    expect(item.querySelector('.jp-Deployments-errorRate')!.textContent).toBe(
      '8.3%'
    );
    expect(item.textContent).toContain('4.2 ms');
    expect(item.textContent).toContain('250 ms');
    const source = item.querySelector('.jp-Deployments-source')!;
    expect(source.textContent).toBe('kmeans.ipynb(its cell)');
    click(source);
    expect(actions.openSource).toHaveBeenCalledWith(
      expect.objectContaining({ notebook_path: 'work/kmeans.ipynb' })
    );
  });

  it('names a notebook outside the served folder but cannot open it', async () => {
    const node = await show([
      predictor({
        provenance: { notebook: '/elsewhere/kmeans.ipynb', notebook_path: null }
      })
    ]);
    const source = node.querySelector<HTMLButtonElement>(
      '.jp-Deployments-source'
    )!;
    expect(source.disabled).toBe(true);
    expect(source.title).toContain('outside the folder JupyterLab serves');
  });

  it('hides the key until asked, then shows it with a copy button', async () => {
    const node = await show();
    expect(node.textContent).not.toContain(KEY);
    click(node.querySelector('.jp-Deployments-showKey'));
    await new Promise(resolve => setTimeout(resolve, 0));
    await settled();
    expect(node.querySelector('.jp-Deployments-key')!.textContent).toBe(KEY);
    expect(
      server.seen[server.seen.length - 1].url.searchParams.get('key')
    ).toBe('true');
    click(node.querySelector('.jp-Deployments-hideKey'));
    await settled();
    expect(node.textContent).not.toContain(KEY);
  });

  it('lists versions newest first with who, when and source, and rolls back to a retired one', async () => {
    const node = await show();
    click(node.querySelector('.jp-Deployments-expand'));
    await settled();
    const rows = Array.from(
      node.querySelectorAll('.jp-Deployments-versionRow')
    );
    expect(rows.map(r => r.getAttribute('data-version'))).toEqual(['2', '1']);
    expect(rows[0].textContent).toContain('by ada');
    expect(rows[0].textContent).toContain('source bbbbbbbbbb');
    expect(rows[0].querySelector('.jp-Deployments-rollback')).toBeNull();
    click(rows[1].querySelector('.jp-Deployments-rollback'));
    expect(actions.rollback).toHaveBeenCalledWith('predictor', 1);
    click(node.querySelector('.jp-Deployments-delete'));
    expect(actions.remove).toHaveBeenCalledWith('predictor');
    click(node.querySelector('.jp-Deployments-docs'));
    expect(actions.openDocs).toHaveBeenCalledWith('predictor');
  });

  it('calls the function from try-it and shows the answer, or the error inline', async () => {
    const node = await show();
    click(node.querySelector('.jp-Deployments-expand'));
    await settled();
    const textarea = node.querySelector<HTMLTextAreaElement>(
      '.jp-Deployments-payload'
    )!;
    expect(textarea.placeholder).toContain('predictor(x)');
    const call = node.querySelector<HTMLButtonElement>('.jp-Deployments-call')!;
    expect(call.disabled).toBe(true);
    // React listens to the native input event; set the value through the prototype setter.
    const setValue = (value: string) => {
      Object.getOwnPropertyDescriptor(
        HTMLTextAreaElement.prototype,
        'value'
      )!.set!.call(textarea, value);
      textarea.dispatchEvent(new Event('input', { bubbles: true }));
    };
    setValue('[[0.5, 0.5]]');
    await settled();
    click(call);
    await new Promise(resolve => setTimeout(resolve, 0));
    await settled();
    const answer = node.querySelector('.jp-Deployments-answer')!;
    expect(answer.classList).toContain('jp-mod-ok');
    expect(answer.textContent).toContain('HTTP 200');
    expect(server.seen.find(s => s.url.pathname.endsWith('/call'))!.body).toBe(
      '[[0.5, 0.5]]'
    );

    server.answers.set('POST functions/predictor/call', [
      422,
      {
        error: 'invalid_input',
        message: 'the body is not JSON',
        hint: 'write a JSON array'
      }
    ]);
    setValue('[1, ');
    await settled();
    click(call);
    await new Promise(resolve => setTimeout(resolve, 0));
    await settled();
    const inline = node.querySelector(
      '.jp-Deployments-tryIt .jp-Deployments-error'
    )!;
    expect(inline.textContent).toContain('the body is not JSON');
    expect(inline.textContent).toContain('write a JSON array');
  });

  it('tails the logs and, following, appends only the new lines', async () => {
    jest.useFakeTimers({ doNotFake: ['requestAnimationFrame'] });
    try {
      const node = await show();
      click(node.querySelector('.jp-Deployments-expand'));
      await settled();
      click(node.querySelector('.jp-Deployments-showLogs'));
      await jest.advanceTimersByTimeAsync(0);
      await settled();
      const log = () => node.querySelector('.jp-Deployments-log')!.textContent;
      expect(log()).toBe(server.log);
      click(node.querySelector('.jp-Deployments-follow'));
      await settled();
      await jest.advanceTimersByTimeAsync(2100);
      await settled();
      expect(log()).toBe(`${server.log}\nINFO: POST / 200 (again)`);
      const follows = server.seen.filter(s => s.url.searchParams.get('since'));
      expect(follows[0].url.searchParams.get('since')).toBe('c1');
    } finally {
      jest.useRealTimers();
    }
  });

  it('says when nothing is published, and when the server is not running', async () => {
    let node = await show([]);
    expect(node.querySelector('.jp-Deployments-empty')!.textContent).toContain(
      'Nothing is published here yet'
    );
    panel.dispose();
    node = await show([], false);
    expect(node.querySelector('.jp-Deployments-empty')!.textContent).toContain(
      'is not running'
    );
  });

  it('offers only the actions the target declares', async () => {
    const node = await show(undefined, true, [
      'list',
      'show',
      'versions',
      'delete'
    ]);
    click(node.querySelector('.jp-Deployments-expand'));
    await settled();
    expect(node.querySelector('.jp-Deployments-versionRow')).not.toBeNull();
    for (const absent of [
      '.jp-Deployments-rollback',
      '.jp-Deployments-tryIt',
      '.jp-Deployments-logs',
      '.jp-Deployments-docs'
    ]) {
      expect(node.querySelector(absent)).toBeNull();
    }
    expect(node.querySelector('.jp-Deployments-delete')).not.toBeNull();
    expect(server.seen[0].url.searchParams.getAll('spec')).toEqual(['local']);
  });

  it("shows a function's scale as one line, and nothing for a target that does not scale", async () => {
    const node = await show([
      predictor({ scale: { replicas: 2, cpus: 1 } }),
      predictor({
        name: 'scorer',
        scale: { min_replicas: 1, max_replicas: 4 }
      }),
      predictor({ name: 'plain', scale: null })
    ]);
    const line = (name: string) =>
      node.querySelector(
        `.jp-Deployments-function[data-name="${name}"] .jp-Deployments-scale`
      );
    expect(line('predictor')!.textContent).toBe('2 replicas, 1 CPU each');
    expect(line('scorer')!.textContent).toBe('1–4 replicas (autoscaling)');
    expect(line('plain')).toBeNull();
  });

  it('says why metrics are missing while still listing the functions', async () => {
    const node = await show();
    expect(node.querySelector('.jp-Deployments-note')).toBeNull();
    server.answers.set('GET functions', [
      200,
      {
        target: 'local',
        started: true,
        functions: [predictor({ metrics: null })],
        metrics_error: { code: 'target_error', message: 'metrics refused' }
      }
    ]);
    await panel.model.refresh();
    await settled();
    expect(node.querySelector('.jp-Deployments-note')!.textContent).toBe(
      'Metrics are unavailable: metrics refused'
    );
    expect(node.querySelector('[data-name="predictor"]')).not.toBeNull();
  });

  it('shows a failed function as failed', async () => {
    const node = await show([
      predictor({ status: 'failed', live_version: null, metrics: null })
    ]);
    expect(node.querySelector('.jp-Deployments-status')!.classList).toContain(
      'jp-mod-failed'
    );
    expect(node.querySelector('.jp-Deployments-requests')!.textContent).toBe(
      '—'
    );
  });
});

describe('formatting', () => {
  it('gives latencies in ms or s and error rates in percent', () => {
    expect(formatSeconds(null, trans)).toBe('—');
    expect(formatSeconds(0.0042, trans)).toBe('4.2 ms');
    expect(formatSeconds(0.25, trans)).toBe('250 ms');
    expect(formatSeconds(1.5, trans)).toBe('1.50 s');
    expect(formatRate(null)).toBe('—');
    expect(formatRate(0)).toBe('0.0%');
    expect(formatRate(0.005)).toBe('0.50%');
  });
});

describe('formatScale', () => {
  it.each([
    [{ replicas: 1 }, '1 replica'],
    [{ replicas: 3, cpus: 0.5 }, '3 replicas, 0.5 CPUs each'],
    [{}, '1 replica'],
    [{ max_replicas: 4 }, '0–4 replicas (autoscaling)'],
    [
      { min_replicas: 2, max_replicas: 8, target_ongoing_requests: 2, cpus: 2 },
      '2–8 replicas (autoscaling, 2 ongoing requests each), 2 CPUs each'
    ]
  ])('describes %j as %s (as Scale.describe() does)', (scale, text) => {
    expect(formatScale(scale, trans)).toBe(text);
  });

  it('is null without a scale', () => {
    expect(formatScale(null, trans)).toBeNull();
    expect(formatScale(undefined, trans)).toBeNull();
  });
});

describe('the Deployments settings schema', () => {
  const schema = JSON.parse(
    fs.readFileSync(
      path.resolve(__dirname, '..', '..', 'schema', 'deployments.json'),
      'utf8'
    )
  );
  const validate = new Ajv({ strict: false }).compile(schema);

  it('accepts targets by name and spec with where their token is', () => {
    expect(
      validate({
        targets: [
          LOCAL,
          REMOTE,
          { name: 'f', spec: 'dir:/srv/b', tokenFile: '~/t' },
          { name: 'cluster', spec: 'ray://10.0.0.2:8265', tokenEnv: 'RAY_T' },
          { name: 'dash', spec: 'ray+https://ray.example.org' }
        ]
      })
    ).toBe(true);
  });

  it.each([
    ['a token in the settings', { name: 'x', spec: 'local', token: 's3cret' }],
    ['an unknown spec', { name: 'x', spec: 'ftp://host' }],
    ['a target without a name', { spec: 'local' }],
    ['a bad variable name', { name: 'x', spec: 'local', tokenEnv: 'A-B' }]
  ])('refuses %s', (_why, target) => {
    expect(validate({ targets: [target] })).toBe(false);
  });
});

describe('the Deployments commands', () => {
  async function activate() {
    const server = new FakeServer();
    server.answers.set('DELETE functions/predictor', [
      200,
      { deleted: 'predictor' }
    ]);
    const commands = new CommandRegistry();
    const app = {
      commands,
      shell: { add: jest.fn(), activateById: jest.fn() },
      serviceManager: { serverSettings: server.settings() }
    };
    const live = new Signal<any, any>({});
    const { panel } = await activateDeployments(app as any, {
      trans,
      publisher: { deploymentLive: live } as any,
      palette: null,
      settingRegistry: null,
      client: new DeploymentsClient(server.settings())
    });
    return { server, commands, app, live, panel };
  }

  afterEach(() => {
    Dialog.flush();
  });

  it('refreshes the panel when a publish goes live', async () => {
    const { server, live, panel } = await activate();
    live.emit({ name: 'predictor', version: 3 });
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(server.seen.some(s => s.url.pathname.endsWith('/functions'))).toBe(
      true
    );
    expect(panel.model.functions.map(f => f.name)).toEqual(['predictor']);
    panel.dispose();
  });

  it('deletes only after the confirmation is accepted', async () => {
    const { server, commands, panel } = await activate();
    const deletes = () => server.seen.filter(s => s.method === 'DELETE');

    let done = commands.execute(DeploymentsCommandIDs.remove, {
      name: 'predictor'
    });
    let dialog = await waitForDialog();
    expect(dialog.textContent).toContain('Delete predictor?');
    expect(dialog.textContent).toContain('cannot be undone');
    dialog.querySelector<HTMLElement>('.jp-mod-reject')!.click();
    await done;
    expect(deletes()).toEqual([]);

    done = commands.execute(DeploymentsCommandIDs.remove, {
      name: 'predictor'
    });
    dialog = await waitForDialog();
    dialog.querySelector<HTMLElement>('.jp-mod-accept')!.click();
    await done;
    expect(deletes().map(s => s.url.pathname)).toEqual([
      '/lab-base/jupyterlab-publish/functions/predictor'
    ]);
    panel.dispose();
  });

  it('rolls back to the version it is given', async () => {
    const { server, commands, panel } = await activate();
    server.answers.set('POST functions/predictor/rollback', [
      200,
      { name: 'predictor', version: 1, previous_version: 2, url: 'u' }
    ]);
    await commands.execute(DeploymentsCommandIDs.rollback, {
      name: 'predictor',
      to: 1
    });
    const rollback = server.seen.find(s =>
      s.url.pathname.endsWith('/rollback')
    )!;
    expect(JSON.parse(rollback.body)).toEqual({ to: 1 });
    panel.dispose();
  });
});

async function waitForDialog(): Promise<HTMLElement> {
  for (let i = 0; i < 50; i++) {
    const dialog = document.querySelector<HTMLElement>('.jp-Dialog');
    if (dialog) {
      await settled();
      return dialog;
    }
    await new Promise(resolve => setTimeout(resolve, 10));
  }
  throw new Error('no dialog was shown');
}
