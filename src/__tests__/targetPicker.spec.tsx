/**
 * The Publish dialog's target picker and Scale section (issues 11 and 12): the targets configured
 * in the settings, by name and spec; "Other…" for a typed spec; the request names the token by
 * where it is, never by value; replicas and CPUs only for a target that declares `scale`, sent as
 * `scale`; an `invalid_scale` refusal shown under the input its `details.field` names, with what
 * was typed kept. The real path (a browser, the kernel, a dir: target) is
 * ui-tests/tests/target-picker.spec.ts.
 */
import { Dialog } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';

import { PublishError } from '../kernel/errors';
import {
  checkReply,
  checkRequest,
  ICancelReply,
  IDeployment,
  IErrorMessage,
  IProgress,
  IPublishParams
} from '../protocol';
import { IPublishRunner, PublishDialog } from '../publish/dialog';
import { IPublishContext, PublishFormModel } from '../publish/model';
import { ITargetConfig } from '../tokens';
import { loadProtocolFixtures, predictorAnalysis } from './fixtures';

const trans = nullTranslator.load('jupyterlab_publish');
const fixtures = loadProtocolFixtures();

const LOCAL: ITargetConfig = { name: 'local', spec: 'local' };
const SHARED: ITargetConfig = {
  name: 'shared folder',
  spec: 'dir:/srv/bundles',
  tokenFile: '~/.config/shared-token'
};
const CLUSTER: ITargetConfig = {
  name: 'team cluster',
  spec: 'ray+http://127.0.0.1:8265',
  tokenEnv: 'RAY_DASHBOARD_TOKEN'
};
const TARGETS = [LOCAL, SHARED, CLUSTER];

/** Capabilities as the server extension describes them: only the cluster scales. */
const CAPABILITIES: { [spec: string]: string[] } = {
  local: ['list', 'show', 'versions', 'rollback', 'delete', 'logs'],
  'dir:/srv/bundles': ['list', 'show', 'versions'],
  'ray+http://127.0.0.1:8265': ['list', 'show', 'rollback', 'scale']
};

function context(changes: Partial<IPublishContext> = {}): IPublishContext {
  return {
    functionName: 'predictor',
    notebookPath: 'kmeans.ipynb',
    cellId: 'c-1',
    defaultTarget: 'local',
    targets: TARGETS,
    describeTarget: async spec => CAPABILITIES[spec] ?? null,
    ...changes
  };
}

/** A kernel error reply from the fixtures, by code and id, as the connection raises it. */
function fixtureError(code: string, id: string): PublishError {
  const message = fixtures.replies.valid.find(
    (m: any) => m.type === 'error' && m.error.code === code && m.id === id
  );
  return PublishError.fromInfo((checkReply(message) as IErrorMessage).error);
}

class ScriptedRunner implements IPublishRunner {
  constructor(private readonly _outcomes: (IDeployment | PublishError)[]) {}
  calls: IPublishParams[] = [];

  async publish(
    params: IPublishParams,
    _onProgress: (p: IProgress) => void
  ): Promise<IDeployment> {
    this.calls.push(params);
    const outcome = this._outcomes.shift();
    if (outcome instanceof PublishError || outcome === undefined) {
      throw outcome ?? new Error('no outcome scripted');
    }
    return outcome;
  }

  async cancel(): Promise<ICancelReply> {
    return { cancelled: true };
  }
}

async function settled() {
  for (let i = 0; i < 3; i++) {
    await new Promise(resolve => requestAnimationFrame(resolve));
  }
}

async function open(model: PublishFormModel, runner = new ScriptedRunner([])) {
  const dialog = new PublishDialog(model, trans, runner, 'Publish predictor');
  const result = dialog.launch();
  result.catch(() => undefined); // Dialog.flush() rejects a launch left open
  await dialog.ready;
  await settled();
  return { dialog, result, runner };
}

/** Change a form control the way a user's edit does, so React's onChange runs. */
function edit(element: HTMLInputElement | HTMLSelectElement, value: string) {
  const proto =
    element instanceof HTMLSelectElement
      ? HTMLSelectElement.prototype
      : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value')!.set!.call(element, value);
  element.dispatchEvent(
    new Event(element instanceof HTMLSelectElement ? 'change' : 'input', {
      bubbles: true
    })
  );
}

function q<T extends Element>(dialog: Dialog<unknown>, selector: string): T {
  return dialog.node.querySelector<T>(selector)!;
}

describe('the target picker', () => {
  afterEach(() => Dialog.flush());

  it('offers the configured targets by name and spec, then Other…, starting at the default', async () => {
    const model = new PublishFormModel(predictorAnalysis(), context(), trans);
    const { dialog } = await open(model);
    const picker = q<HTMLSelectElement>(
      dialog,
      '.jp-PublishDialog-targetPicker'
    );
    expect(Array.from(picker.options).map(o => o.textContent)).toEqual([
      'local',
      'shared folder — dir:/srv/bundles',
      'team cluster — ray+http://127.0.0.1:8265',
      'Other…'
    ]);
    expect(picker.value).toBe('local');
    expect(q(dialog, '.jp-PublishDialog-target')).toBeNull(); // no free text field
    expect(model.toParams()).toMatchObject({ target: 'local' });
    expect(model.toParams()).not.toHaveProperty('token_env');
  });

  it('sends the picked target by spec with where its token is, never a token', async () => {
    const model = new PublishFormModel(predictorAnalysis(), context(), trans);
    const { dialog, runner } = await open(model);
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), 'shared folder');
    await settled();
    expect(q(dialog, '.jp-PublishDialog-targetNote').textContent).toBe(
      'Token: read by the kernel from ~/.config/shared-token'
    );
    dialog.resolve(1);
    await settled();
    const [params] = runner.calls;
    expect(params).toMatchObject({
      target: 'dir:/srv/bundles',
      token_file: '~/.config/shared-token'
    });
    expect(params).not.toHaveProperty('token');
    expect(params).not.toHaveProperty('token_env');
    // What the connection would send passes the protocol's own check.
    expect(() =>
      checkRequest({ type: 'request', id: 'r1', method: 'publish', params })
    ).not.toThrow();
  });

  it('reveals a text field under Other… and sends what was typed', async () => {
    const model = new PublishFormModel(predictorAnalysis(), context(), trans);
    const { dialog } = await open(model);
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), '');
    await settled();
    const field = q<HTMLInputElement>(dialog, '.jp-PublishDialog-target');
    expect(field).not.toBeNull();
    // Nothing typed yet: Publish waits for a spec rather than guessing one.
    const publish = q<HTMLButtonElement>(
      dialog,
      '.jp-Dialog-button.jp-mod-accept'
    );
    expect(model.errors.target).toContain('Type a target spec');
    expect(publish.disabled).toBe(true);
    edit(field, 'http://127.0.0.1:9000');
    await settled();
    expect(publish.disabled).toBe(false);
    expect(model.toParams()).toMatchObject({ target: 'http://127.0.0.1:9000' });
    expect(model.toParams()).not.toHaveProperty('token_file');
    // Back to a configured target: the typed spec is kept for later, not sent.
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), 'local');
    await settled();
    expect(model.target).toBe('local');
    expect(model.otherTarget).toBe('http://127.0.0.1:9000');
  });

  it('keeps the settings default: a configured spec is picked, any other is typed under Other…', () => {
    const byDefault = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: 'dir:/srv/bundles' }),
      trans
    );
    expect(byDefault.targetName).toBe('shared folder');
    const typed = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: 'http://10.0.0.5:8765' }),
      trans
    );
    expect(typed.targetName).toBeNull();
    expect(typed.toParams().target).toBe('http://10.0.0.5:8765');
    // Without configured targets (no Deployments plugin), only Other… with the default.
    const bare = new PublishFormModel(
      predictorAnalysis(),
      context({ targets: undefined }),
      trans
    );
    expect(bare.targets).toEqual([]);
    expect(bare.toParams().target).toBe('local');
  });

  it("starts from the notebook's last choice while that target is still configured", () => {
    const again = new PublishFormModel(
      predictorAnalysis(),
      context({ lastTarget: { name: 'team cluster', spec: CLUSTER.spec } }),
      trans
    );
    expect(again.targetName).toBe('team cluster');
    const removed = new PublishFormModel(
      predictorAnalysis(),
      context({ lastTarget: { name: 'gone', spec: 'dir:/old' } }),
      trans
    );
    expect(removed.target).toBe('local'); // the default again
    const typed = new PublishFormModel(
      predictorAnalysis(),
      context({ lastTarget: { name: null, spec: 'dir:/tmp/mine' } }),
      trans
    );
    expect(typed.targetChoice).toEqual({ name: null, spec: 'dir:/tmp/mine' });
  });
});

describe('the Scale section', () => {
  afterEach(() => Dialog.flush());

  it('is shown only for a target that declares the scale capability', async () => {
    const model = new PublishFormModel(predictorAnalysis(), context(), trans);
    const { dialog } = await open(model);
    expect(q(dialog, '.jp-PublishDialog-scale')).toBeNull(); // local runs one copy
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), 'team cluster');
    await settled();
    expect(q(dialog, '.jp-PublishDialog-scale')).not.toBeNull();
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), 'shared folder');
    await settled();
    expect(q(dialog, '.jp-PublishDialog-scale')).toBeNull();
    // A target whose capabilities cannot be known shows none either.
    const unknown = new PublishFormModel(
      predictorAnalysis(),
      context({
        describeTarget: async () => null,
        defaultTarget: CLUSTER.spec
      }),
      trans
    );
    await unknown.loadCapabilities();
    expect(unknown.canScale).toBe(false);
  });

  it('sends fixed replicas or autoscaling bounds, with CPUs, as scale', async () => {
    const model = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: CLUSTER.spec }),
      trans
    );
    const { dialog } = await open(model);
    const input = (field: string) =>
      q<HTMLInputElement>(
        dialog,
        `.jp-PublishDialog-scaleInput[data-field="${field}"]`
      );
    expect(model.toParams()).not.toHaveProperty('scale'); // nothing typed: the target's default
    edit(input('replicas'), '2');
    edit(input('cpus'), '1');
    await settled();
    expect(model.toParams()).toMatchObject({
      target: CLUSTER.spec,
      token_env: 'RAY_DASHBOARD_TOKEN',
      scale: { replicas: 2, cpus: 1 }
    });

    q<HTMLInputElement>(
      dialog,
      '.jp-PublishDialog-scaleMode-autoscale'
    ).click();
    await settled();
    expect(input('replicas')).toBeNull();
    edit(input('min_replicas'), '1');
    edit(input('max_replicas'), '4');
    edit(input('target_ongoing_requests'), '2');
    await settled();
    expect(model.toParams().scale).toEqual({
      min_replicas: 1,
      max_replicas: 4,
      target_ongoing_requests: 2,
      cpus: 1
    });
    // Switching back keeps what was typed for the fixed count.
    q<HTMLInputElement>(dialog, '.jp-PublishDialog-scaleMode-fixed').click();
    await settled();
    expect(input('replicas').value).toBe('2');

    // The same values are not sent to a target that runs one copy.
    edit(q(dialog, '.jp-PublishDialog-targetPicker'), 'local');
    await settled();
    expect(model.toParams()).not.toHaveProperty('scale');
  });

  it('blocks Publish on a value that is not a number', () => {
    const model = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: CLUSTER.spec }),
      trans
    );
    return model.loadCapabilities().then(() => {
      model.scaleInputs.replicas = 'two';
      expect(model.errors.scale).toBe('replicas must be a number, not "two".');
      expect(model.isValid).toBe(false);
      model.scaleInputs.replicas = '2';
      expect(model.isValid).toBe(true);
    });
  });

  it('shows an invalid_scale refusal under the field it names, keeping every input', async () => {
    const model = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: CLUSTER.spec }),
      trans
    );
    const refused = fixtureError('invalid_scale', 'r8');
    const { dialog, runner } = await open(model, new ScriptedRunner([refused]));
    q<HTMLInputElement>(
      dialog,
      '.jp-PublishDialog-scaleMode-autoscale'
    ).click();
    await settled();
    const input = (field: string) =>
      q<HTMLInputElement>(
        dialog,
        `.jp-PublishDialog-scaleInput[data-field="${field}"]`
      );
    edit(input('min_replicas'), '5');
    edit(input('max_replicas'), '4');
    await settled();
    dialog.resolve(1);
    await settled();

    expect(runner.calls[0].scale).toEqual({ min_replicas: 5, max_replicas: 4 });
    expect(dialog.isAttached).toBe(true);
    const failure = q(dialog, '.jp-PublishDialog-failure[data-field="scale"]');
    expect(failure.textContent).toContain(
      'min_replicas (5) is above max_replicas (4)'
    );
    expect(failure.textContent).toContain('lower min_replicas');
    expect(input('min_replicas').closest('label')!.contains(failure)).toBe(
      true
    );
    expect(input('min_replicas').getAttribute('aria-invalid')).toBe('true');
    expect(input('min_replicas').value).toBe('5');
    expect(input('max_replicas').value).toBe('4');

    // Fixing the value clears it.
    edit(input('min_replicas'), '1');
    await settled();
    expect(q(dialog, '.jp-PublishDialog-failure')).toBeNull();
  });

  it('shows a refusal of the whole setting by the section, and by the target when it is hidden', async () => {
    const model = new PublishFormModel(
      predictorAnalysis(),
      context({ defaultTarget: CLUSTER.spec }),
      trans
    );
    const { dialog } = await open(
      model,
      new ScriptedRunner([fixtureError('invalid_scale', 'r9')])
    );
    edit(
      q<HTMLInputElement>(
        dialog,
        '.jp-PublishDialog-scaleInput[data-field="replicas"]'
      ),
      '2'
    );
    await settled();
    dialog.resolve(1);
    await settled();
    expect(model.scaleFailureAt).toBe('section');
    const failure = q(dialog, '.jp-PublishDialog-failure[data-field="scale"]');
    expect(failure.textContent).toContain('runs one copy of a function');
    expect(q(dialog, '.jp-PublishDialog-scale').contains(failure)).toBe(false);
    expect(q(dialog, '.jp-PublishDialog-scale').nextElementSibling).toBe(
      failure
    );
  });
});
