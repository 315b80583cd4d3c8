import { Dialog } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';

import { IAnalysis } from '../protocol';
import { PublishDialogBody } from '../publish/dialog';
import { PublishFormModel } from '../publish/model';
import { predictorAnalysis } from './fixtures';

const trans = nullTranslator.load('jupyterlab_publish');

function analysis(errors: IAnalysis['errors']): IAnalysis {
  return predictorAnalysis({
    captured: [
      { name: 'lock', type: '_thread.lock', path: 'predictor → lock' }
    ],
    errors,
    validators: []
  });
}

const LOCK_ERROR = {
  code: 'unpicklable_lock',
  message:
    'predictor → lock (_thread.lock) is a lock or thread: it cannot be pickled.',
  hint: 'Create the lock inside the function.',
  path: 'predictor → lock (_thread.lock)'
};

/** The Publish dialog as the flow shows it, launched for real in the page. */
async function open(errors: IAnalysis['errors']) {
  const model = new PublishFormModel(analysis(errors), {
    functionName: 'predictor',
    notebookPath: null,
    cellId: null,
    defaultTarget: 'local'
  });
  const body = new PublishDialogBody(model, trans);
  const dialog = new Dialog({
    title: 'Publish predictor',
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
  });
  const result = dialog.launch();
  await dialog.ready;
  await settled();
  const publish = dialog.node.querySelector<HTMLButtonElement>(
    '.jp-Dialog-button.jp-mod-accept'
  )!;
  return { model, body, dialog, result, publish };
}

/** Let React commit and its effects run (a few animation frames). */
async function settled() {
  for (let i = 0; i < 3; i++) {
    await new Promise(resolve => requestAnimationFrame(resolve));
  }
}

describe('the Publish dialog', () => {
  afterEach(() => {
    Dialog.flush();
  });

  it('blocks Publish while the analysis reports errors, and still lists them and closes', async () => {
    const { dialog, result, publish } = await open([LOCK_ERROR]);
    expect(publish.disabled).toBe(true);
    const problems = dialog.node.querySelector('.jp-PublishDialog-problems')!;
    expect(problems.textContent).toContain(LOCK_ERROR.message);
    expect(problems.textContent).toContain(
      'Publishing is blocked until they are fixed'
    );
    expect(problems.textContent).toContain(
      'run the cell again, then publish again'
    );

    dialog.resolve(1); // what Enter does: refused while the form is invalid
    await settled();
    expect(dialog.isAttached).toBe(true);

    dialog.resolve(0); // Cancel still closes it
    expect((await result).button.accept).toBe(false);
  });

  it('enables Publish for a valid form, and follows edits both ways', async () => {
    const { model, body, dialog, result, publish } = await open([]);
    expect(dialog.node.querySelector('.jp-PublishDialog-problems')).toBeNull();
    expect(publish.disabled).toBe(false);

    model.name = 'Not A Name';
    body.update();
    await settled();
    expect(publish.disabled).toBe(true);

    model.name = 'predictor';
    body.update();
    await settled();
    expect(publish.disabled).toBe(false);
    dialog.resolve(1);
    expect((await result).button.accept).toBe(true);
  });

  it("returns the form's publish parameters through getValue()", async () => {
    const { model, body, dialog, result } = await open([]);
    model.name = 'scorer';
    model.sampleText = '[[0.5, 0.5]]';
    model.isPublic = true;
    body.update();
    await settled();
    expect(body.getValue()).toEqual(model.toParams());
    dialog.resolve(1);
    const { value } = await result;
    expect(value).toEqual(model.toParams());
    expect(value).toMatchObject({
      name: 'scorer',
      sample: [[0.5, 0.5]],
      public: true,
      requirements: [{ requirement: 'numpy==2.1.3', why: expect.any(String) }]
    });
  });
});
