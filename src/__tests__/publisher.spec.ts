import { Dialog } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';

import plugins, { IPublisher } from '../index';
import { IDeployment } from '../protocol';
import { DeploymentTargets } from '../deployments/plugin';
import { PublishDialog } from '../publish/dialog';
import { Publisher } from '../publish/publisher';
import { FakeKernel } from './fakeKernel';
import { loadProtocolFixtures } from './fixtures';

const fixtures = loadProtocolFixtures();

/** The fixture result of the request with this id (r1 list_functions, r2 analyze, r6 publish). */
function fixtureResult(id: string): any {
  return fixtures.replies.valid.find(
    (m: any) => m.type === 'result' && m.id === id
  ).result;
}

/** The fixture analysis without its blocking errors (a capture that does not pickle). */
function publishable(): any {
  return { ...fixtureResult('r2'), errors: [] };
}

/** A kernel that answers the whole publish path the way the fixtures say the real one does. */
function scriptedKernel(): { kernel: FakeKernel; requests: any[] } {
  const kernel = new FakeKernel();
  const requests: any[] = [];
  kernel.onRequest = (comm, data) => {
    requests.push(data);
    const reply = (result: unknown) =>
      setTimeout(() => comm.deliver({ type: 'result', id: data.id, result }));
    switch (data.method) {
      case 'list_functions':
        return reply(fixtureResult('r1'));
      case 'analyze':
        return reply(publishable());
      case 'check_requirements':
        return reply({
          requirements: data.params.texts.map((text: string) => ({
            name: text.split(/[=<>!~[ ;]/)[0],
            version: '',
            why: '',
            requirement: text,
            installed: null
          })),
          errors: []
        });
      case 'publish':
        comm.deliver({
          type: 'progress',
          id: data.id,
          stage: 'pushing',
          fraction: 0.5,
          message: 'half way'
        });
        return reply(fixtureResult('r6'));
    }
  };
  return { kernel, requests };
}

/** A notebook whose active code cell defines `predictor`, running in `kernel`. */
function notebook(kernel: FakeKernel): any {
  const cell = {
    model: {
      type: 'code',
      id: 'c-1',
      sharedModel: { getSource: () => 'def predictor(x):\n    return x\n' }
    }
  };
  return {
    sessionContext: { session: { kernel } },
    context: { path: 'kmeans.ipynb' },
    content: { activeCell: cell }
  };
}

/**
 * Answer every dialog the flow opens, as a user would: `answer` gets its title and returns the
 * button index (undefined: the default button, i.e. Publish, OK or Close). Resolves to the titles.
 */
function answerDialogs(
  answer: (title: string, dialog: Dialog<unknown>) => number | undefined = () =>
    undefined
): { titles: string[]; stop: () => void } {
  const titles: string[] = [];
  const seen = new Set<Dialog<unknown>>();
  const timer = setInterval(() => {
    const dialog = Dialog.tracker.currentWidget;
    if (dialog && !seen.has(dialog) && dialog.isAttached) {
      seen.add(dialog);
      // Let header and body render (the Publish dialog validates after its first render).
      setTimeout(() => {
        const title =
          dialog.node.querySelector('.jp-Dialog-header')?.textContent ?? '';
        titles.push(title);
        dialog.resolve(answer(title, dialog));
      }, 50);
    }
  }, 10);
  return { titles, stop: () => clearInterval(timer) };
}

describe('IPublisher', () => {
  afterEach(() => Dialog.flush());

  it('is the token the plugin provides', () => {
    expect(plugins.map(p => p.provides)).toContain(IPublisher);
    expect(IPublisher.name).toBe('jupyterlab-publish:IPublisher');
  });

  it('tells listeners when a publish goes live, with the deployment the kernel sent', async () => {
    const { kernel, requests } = scriptedKernel();
    const panel = notebook(kernel);
    const publisher = new Publisher(
      { currentWidget: panel } as any,
      nullTranslator.load('jupyterlab_publish'),
      () => ({ defaultTarget: 'local', requestTimeout: 120 })
    );
    const heard: IDeployment[] = [];
    publisher.deploymentLive.connect((sender, live) => {
      expect(sender).toBe(publisher);
      heard.push(live);
    });
    const dialogs = answerDialogs();
    let deployment: IDeployment | null;
    try {
      deployment = await publisher.publish();
    } finally {
      dialogs.stop();
    }

    expect(dialogs.titles).toEqual([
      'Publish predictor',
      'Published predictor'
    ]);
    expect(deployment).toEqual(fixtureResult('r6'));
    expect(heard).toEqual([deployment]);
    expect(requests.map(r => r.method)).toEqual([
      'list_functions',
      'analyze',
      'check_requirements',
      'publish'
    ]);
    // What the dialog's getValue() gave is what the kernel was asked to publish.
    const analysis = publishable();
    const published = requests[3].params;
    expect(published).toMatchObject({
      function: 'predictor',
      name: analysis.suggested_name,
      target: 'local',
      notebook_path: 'kmeans.ipynb',
      cell_id: 'c-1',
      new_version: false
    });
    expect(published.requirements).toHaveLength(analysis.requirements.length);
    expect(requests[2].params.texts).toEqual(
      published.requirements.map((r: any) => r.requirement)
    );
  });

  it("offers the configured targets and starts from the notebook's last choice", async () => {
    const { kernel, requests } = scriptedKernel();
    const publisher = new Publisher(
      { currentWidget: notebook(kernel) } as any,
      nullTranslator.load('jupyterlab_publish'),
      () => ({ defaultTarget: 'local', requestTimeout: 120 })
    );
    const targets = new DeploymentTargets(async spec =>
      spec === 'local' ? ['list'] : null
    );
    targets.set([
      { name: 'local', spec: 'local' },
      {
        name: 'team',
        spec: 'https://functions.example.org',
        tokenEnv: 'TEAM_TOKEN'
      }
    ]);
    publisher.useTargets(targets);
    const picked: string[] = [];
    const dialogs = answerDialogs((title, dialog) => {
      const picker = dialog.node.querySelector<HTMLSelectElement>(
        '.jp-PublishDialog-targetPicker'
      );
      if (picker) {
        picked.push(picker.value);
        if (picker.value === 'local') {
          // The user picks "team" (the model is what the select's onChange sets).
          (dialog as PublishDialog).model.pickTarget('team');
        }
      }
      return undefined;
    });
    try {
      await publisher.publish();
      await publisher.publish();
    } finally {
      dialogs.stop();
    }
    expect(picked).toEqual(['local', 'team']); // the second dialog remembered the choice
    const published = requests.filter(r => r.method === 'publish');
    expect(published.map(r => [r.params.target, r.params.token_env])).toEqual([
      ['https://functions.example.org', 'TEAM_TOKEN'],
      ['https://functions.example.org', 'TEAM_TOKEN']
    ]);
    expect(JSON.stringify(published)).not.toContain('"token"');
  });

  it('stays silent when the user cancels, and without a notebook', async () => {
    const { kernel, requests } = scriptedKernel();
    const publisher = new Publisher(
      { currentWidget: notebook(kernel) } as any,
      nullTranslator.load('jupyterlab_publish'),
      () => ({ defaultTarget: 'local', requestTimeout: 120 })
    );
    const heard: IDeployment[] = [];
    publisher.deploymentLive.connect((_, live) => heard.push(live));
    const dialogs = answerDialogs(() => 0); // Cancel
    try {
      expect(await publisher.publish()).toBeNull();
    } finally {
      dialogs.stop();
    }
    expect(dialogs.titles).toEqual(['Publish predictor']);
    expect(requests.map(r => r.method)).not.toContain('publish');

    const nowhere = new Publisher(
      { currentWidget: null } as any,
      nullTranslator.load('jupyterlab_publish'),
      () => ({ defaultTarget: 'local', requestTimeout: 1 })
    );
    nowhere.deploymentLive.connect((_, live) => heard.push(live));
    expect(await nowhere.publish()).toBeNull();
    expect(heard).toEqual([]);
  });
});
