/**
 * The Publish dialog keeps its state (issue 11): it publishes in place with a progress bar, shows a
 * failure next to the field it concerns with its fix as a button, keeps what the user typed, and
 * closes only on success. The runner answers with the protocol fixtures' own messages.
 */
import { Dialog } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';

import { PublishError, stripAnsi } from '../kernel/errors';
import {
  checkReply,
  IAnalysis,
  ICancelReply,
  IDeployment,
  IErrorMessage,
  IProgress,
  IPublishParams
} from '../protocol';
import { IPublishRunner, PublishDialog } from '../publish/dialog';
import {
  formatElapsed,
  PublishFormModel,
  stageProgress
} from '../publish/model';
import { DeploymentResultBody, safeHref } from '../publish/result';
import { loadProtocolFixtures, predictorAnalysis } from './fixtures';

const trans = nullTranslator.load('jupyterlab_publish');
const fixtures = loadProtocolFixtures();

function analysis(): IAnalysis {
  return predictorAnalysis({
    requirements: [
      {
        name: 'numpy',
        version: '2.1.3',
        why: 'predictor → import numpy → numpy 2.1.3',
        chains: [
          'predictor → import numpy → numpy 2.1.3',
          'predictor → kmodel (KMeans) → sklearn.cluster._kmeans → numpy 2.1.3'
        ]
      }
    ],
    errors: [],
    lock: [{ name: 'numpy', version: '2.1.3', required_by: ['predictor'] }]
  });
}

/** A kernel error reply from the fixtures, by code, as the connection turns it into an error. */
function fixtureError(code: string): PublishError {
  const message = fixtures.replies.valid.find(
    (m: any) => m.type === 'error' && m.error.code === code
  );
  return PublishError.fromInfo((checkReply(message) as IErrorMessage).error);
}

const DEPLOYMENT: IDeployment = fixtures.replies.valid.find(
  (m: any) => m.type === 'result' && m.id === 'r3'
).result;

/** Answers each publish with the next scripted outcome; records what it was asked. */
class ScriptedRunner implements IPublishRunner {
  constructor(private readonly _outcomes: (IDeployment | PublishError)[]) {}
  calls: IPublishParams[] = [];
  cancels = 0;
  cancelReply: ICancelReply = { cancelled: true };
  /** Resolves the publish in flight, for tests that look at the dialog meanwhile. */
  hold: Promise<void> | null = null;

  async publish(
    params: IPublishParams,
    onProgress: (p: IProgress) => void
  ): Promise<IDeployment> {
    this.calls.push(params);
    onProgress({
      type: 'progress',
      id: 'r3',
      stage: 'sample',
      fraction: 0.5,
      message: 'Running predictor on the sample input'
    });
    if (this.hold) {
      await this.hold;
    }
    const outcome = this._outcomes.shift();
    if (outcome instanceof PublishError || outcome === undefined) {
      throw outcome ?? new Error('no outcome scripted');
    }
    return outcome;
  }

  async cancel(): Promise<ICancelReply> {
    this.cancels++;
    return this.cancelReply;
  }
}

async function settled() {
  for (let i = 0; i < 3; i++) {
    await new Promise(resolve => requestAnimationFrame(resolve));
  }
}

async function open(runner: ScriptedRunner) {
  const model = new PublishFormModel(analysis(), {
    functionName: 'predictor',
    notebookPath: 'kmeans.ipynb',
    cellId: 'c-1',
    defaultTarget: 'local'
  });
  const dialog = new PublishDialog(model, trans, runner, 'Publish predictor');
  const result = dialog.launch();
  // Dialog.flush() rejects the launch of a dialog left open (by design here) with undefined.
  result.catch(() => undefined);
  await dialog.ready;
  await settled();
  return { model, dialog, result };
}

/** Fill the form as a user would, then click Publish. */
async function fillAndPublish(model: PublishFormModel, dialog: PublishDialog) {
  model.name = 'scorer';
  model.validator = 'validator';
  model.sampleText = '[[0.5, 0.5]]';
  model.isPublic = true;
  model.setVersion('numpy', '>=2,<3');
  dialog.resolve(1);
  await settled();
}

describe('the Publish dialog keeps its state', () => {
  afterEach(() => Dialog.flush());

  it('stays open after a fast failure, with the input intact and the error by the sample', async () => {
    const rejected = new PublishError(
      'invalid_sample',
      'the validator rejects the sample input: x must be a pair',
      'Give a sample the validator accepts, or fix the validator.'
    );
    const runner = new ScriptedRunner([rejected]);
    const { model, dialog } = await open(runner);
    await fillAndPublish(model, dialog);

    expect(dialog.isAttached).toBe(true);
    expect(model.publishing).toBe(false);
    const failure = dialog.node.querySelector('.jp-PublishDialog-failure')!;
    expect(failure.getAttribute('data-field')).toBe('sample');
    expect(failure.textContent).toContain('the validator rejects the sample');
    // next to the sample field: the element right after the sample's label
    expect(
      dialog.node.querySelector('.jp-PublishDialog-sample')!.closest('label')!
        .nextElementSibling
    ).toBe(failure);
    const params = runner.calls[0];
    expect(params).toMatchObject({
      name: 'scorer',
      validator: 'validator',
      sample: [[0.5, 0.5]],
      public: true,
      requirements: [{ requirement: 'numpy>=2,<3' }]
    });
    expect(model.toParams()).toEqual(params); // nothing typed was lost
    expect(
      dialog.node.querySelector<HTMLInputElement>('.jp-PublishDialog-name')!
        .value
    ).toBe('scorer');

    // editing the sample clears its failure
    model.edited('sample');
    expect(model.failure).toBeNull();
  });

  it('offers "Publish as a new version" by the name when it is taken, and closes on success', async () => {
    const taken = new PublishError(
      'name_taken',
      'scorer is already published on the local function server (live version 1).',
      'Publish it as a new version of that endpoint, or choose another name.'
    );
    const runner = new ScriptedRunner([taken, DEPLOYMENT]);
    const { model, dialog, result } = await open(runner);
    await fillAndPublish(model, dialog);

    const failure = dialog.node.querySelector(
      '.jp-PublishDialog-failure[data-field="name"]'
    )!;
    expect(failure.textContent).toContain('already published');
    const fixes = Array.from(
      failure.querySelectorAll<HTMLButtonElement>('.jp-PublishDialog-fix')
    );
    expect(fixes.map(b => b.textContent)).toEqual([
      'Publish as a new version',
      'Choose another name'
    ]);
    fixes[0].click();
    const { button } = await result;
    expect(button.accept).toBe(true);
    expect(dialog.deployment).toEqual(DEPLOYMENT);
    expect(runner.calls.map(c => c.new_version)).toEqual([false, true]);
    expect(runner.calls[1]).toMatchObject({ name: 'scorer', public: true });
  });

  it('a fix keeps the choices of the attempt that failed (a new version)', async () => {
    const taken = new PublishError('name_taken', 'taken', 'rename');
    const runner = new ScriptedRunner([
      taken,
      fixtureError('missing_requirement'),
      DEPLOYMENT
    ]);
    const { model, dialog, result } = await open(runner);
    await fillAndPublish(model, dialog);
    dialog.node
      .querySelector<HTMLButtonElement>(
        '.jp-PublishDialog-fix[data-fix="new_version"]'
      )!
      .click();
    await settled();
    dialog.node
      .querySelector<HTMLButtonElement>(
        '.jp-PublishDialog-fix[data-fix="add_requirement"]'
      )!
      .click();
    expect((await result).button.accept).toBe(true);
    expect(runner.calls.map(c => c.new_version)).toEqual([false, true, true]);
  });

  it('"Choose another name" keeps the dialog open and focuses the name', async () => {
    const taken = new PublishError('name_taken', 'taken', 'rename');
    const { model, dialog } = await open(new ScriptedRunner([taken]));
    await fillAndPublish(model, dialog);
    dialog.node
      .querySelector<HTMLButtonElement>(
        '.jp-PublishDialog-fix[data-fix="rename"]'
      )!
      .click();
    await settled();
    expect(dialog.isAttached).toBe(true);
    expect(document.activeElement).toBe(
      dialog.node.querySelector('.jp-PublishDialog-name')
    );
  });

  it('adds the missing requirement from the fix button and publishes again', async () => {
    const runner = new ScriptedRunner([
      fixtureError('missing_requirement'),
      DEPLOYMENT
    ]);
    const { model, dialog, result } = await open(runner);
    await fillAndPublish(model, dialog);
    const fix = dialog.node.querySelector<HTMLButtonElement>(
      '.jp-PublishDialog-failure[data-field="requirements"] .jp-PublishDialog-fix'
    )!;
    expect(fix.textContent).toBe('Add pandas==3.1.1 and publish again');
    fix.click();
    expect((await result).button.accept).toBe(true);
    expect(runner.calls[1].requirements.map(r => r.requirement)).toEqual([
      'numpy>=2,<3',
      'pandas==3.1.1'
    ]);
  });

  it('shows a progress bar with the stage, the fraction and the elapsed time', async () => {
    const runner = new ScriptedRunner([DEPLOYMENT]);
    let release!: () => void;
    runner.hold = new Promise(resolve => (release = resolve));
    const { model, dialog, result } = await open(runner);
    await fillAndPublish(model, dialog);
    const progress = dialog.node.querySelector('.jp-PublishDialog-progress')!;
    expect(progress.textContent).toContain('Running the sample');
    expect(progress.querySelector('progress')!.value).toBe(
      Math.round(stageProgress({ stage: 'sample', fraction: 0.5 }) * 100)
    );
    expect(
      progress.querySelector('.jp-PublishDialog-elapsed')!.textContent
    ).toMatch(/^\d+:\d\d$/);
    expect(
      dialog.node.querySelector<HTMLButtonElement>(
        '.jp-Dialog-button.jp-mod-accept'
      )!.disabled
    ).toBe(true);

    // Cancel while publishing asks the kernel; when it is too late, the dialog says so
    runner.cancelReply = { cancelled: false, too_late: true };
    dialog.reject();
    await settled();
    expect(runner.cancels).toBe(1);
    expect(progress.textContent).toContain('Too late to cancel');
    expect(dialog.isAttached).toBe(true);
    release();
    expect((await result).button.accept).toBe(true);
  });

  it('a cancelled publish says nothing changed, keeps the form, and Cancel then closes', async () => {
    const runner = new ScriptedRunner([
      new PublishError(
        'cancelled',
        'Publishing was cancelled.',
        'Nothing was changed.'
      )
    ]);
    const { model, dialog, result } = await open(runner);
    await fillAndPublish(model, dialog);
    const failure = dialog.node.querySelector('.jp-PublishDialog-failure')!;
    expect(failure.textContent).toContain('nothing changed on the target');
    expect(model.name).toBe('scorer');
    dialog.reject();
    expect((await result).button.accept).toBe(false);
  });
});

describe('pieces of the dialog', () => {
  it('puts the sample run in the overall progress and formats elapsed time', () => {
    expect(stageProgress({ stage: 'sample', fraction: 0 })).toBeGreaterThan(
      stageProgress({ stage: 'analysing', fraction: 1 }) - 1e-9
    );
    expect(formatElapsed(75_400)).toBe('1:15');
  });

  it('strips terminal colour codes from kernel errors', () => {
    const error = PublishError.fromInfo({
      code: 'environment_mismatch',
      message: '\u001b[31merror\u001b[0m: No solution found',
      hint: '\u001b[1mpin\u001b[0m it',
      details: { log: '\u001b[2K  × \u001b[1mfailed\u001b[0m' }
    });
    expect(error.message).toBe('error: No solution found');
    expect(error.hint).toBe('pin it');
    expect(error.details.log).toBe('  × failed');
    expect(stripAnsi('plain')).toBe('plain');
  });
});

describe('the result dialog', () => {
  function render(deployment: IDeployment): HTMLElement {
    const body = new DeploymentResultBody(deployment, trans);
    document.body.appendChild(body.node);
    body.update();
    return body.node;
  }

  it('links only http(s) URLs', async () => {
    expect(safeHref('javascript:alert(1)')).toBeNull();
    expect(safeHref('data:text/html,<script>1</script>')).toBeNull();
    expect(safeHref('file:///etc/passwd')).toBeNull();
    expect(safeHref('not a url')).toBeNull();
    expect(safeHref('https://example.org/f')).toBe('https://example.org/f');

    const evil = render({
      ...DEPLOYMENT,
      url: 'javascript:alert(document.cookie)'
    });
    await settled();
    expect(evil.querySelector('a')).toBeNull();
    expect(evil.querySelector('.jp-PublishResult-url')!.textContent).toBe(
      'javascript:alert(document.cookie)'
    );
    const good = render(DEPLOYMENT);
    await settled();
    expect(good.querySelector('a')!.getAttribute('href')).toBe(DEPLOYMENT.url);
  });

  it('shows where a dir: bundle is and how to serve it, never a file: curl', async () => {
    const stored: IDeployment = fixtures.replies.valid.find(
      (m: any) => m.type === 'result' && m.id === 'r5'
    ).result;
    const node = render(stored);
    await settled();
    expect(node.querySelector('a')).toBeNull();
    expect(node.querySelector('.jp-PublishResult-bundle')!.textContent).toBe(
      '/tmp/out/predictor/v3'
    );
    expect(
      node.querySelector('.jp-PublishResult-serve')!.textContent
    ).toContain('service.py --host 127.0.0.1 --port 8000');
    expect(
      node.querySelector('.jp-PublishResult-curl')!.textContent
    ).not.toContain('file:');
    expect(node.querySelector('.jp-PublishResult-note')!.textContent).toContain(
      'replace each <…>'
    );
  });
});
