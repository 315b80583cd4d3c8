/**
 * Issue 11 in a real JupyterLab, kernel and function server: the Publish dialog keeps its state
 * (a fast failure leaves it open with the input intact and the error next to its field; a taken
 * name is found before anything is built; a progress bar; Cancel during a slow sample), and only
 * publishable functions are offered (no stale-cell false positive; undefined globals and open files
 * block Publish). With UPDATE_SCREENSHOTS=1 it refreshes the dialog's pictures in docs/.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import {
  clickPublish,
  FUNCTION_CELL,
  openAndRunExample,
  openPredictorDialog,
  publishDialog
} from './helpers';

test.use({ autoGoto: true });

const DOCS = path.resolve(__dirname, '..', '..', 'docs');

/** Record every stage the dialog's progress bar shows, in the page. */
async function recordStages(page: IJupyterLabPageFixture): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as any).__publishStages = seen;
    new MutationObserver(() => {
      const stage = document
        .querySelector('.jp-PublishDialog-progress')
        ?.getAttribute('data-stage');
      if (stage && seen[seen.length - 1] !== stage) {
        seen.push(stage);
      }
    }).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true
    });
  });
}

async function stagesSeen(page: IJupyterLabPageFixture): Promise<string[]> {
  return page.evaluate(() => (window as any).__publishStages as string[]);
}

/** A notebook whose first cell is `source`, uploaded (typing would auto-indent it), opened and
 * run; the cell selected. */
async function notebookWith(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  source: string
): Promise<void> {
  const name = `cell-${Date.now() % 1000000}.ipynb`;
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: {
        name: 'python3',
        display_name: 'Python 3',
        language: 'python'
      }
    },
    cells: [
      {
        cell_type: 'code',
        id: 'c-1',
        metadata: {},
        source,
        outputs: [],
        execution_count: null
      }
    ]
  };
  await page.contents.uploadContent(
    JSON.stringify(notebook),
    'text',
    `${tmpPath}/${name}`
  );
  await page.notebook.openByPath(`${tmpPath}/${name}`);
  await page.notebook.activate(name);
  await page.notebook.runCell(0);
  await page.notebook.selectCells(0);
}

test('a fast failure keeps the dialog open with the input intact and the error by its field; a taken name is found before building', async ({
  page,
  tmpPath
}) => {
  await openAndRunExample(page, tmpPath);
  const name = `dialog-${Date.now() % 100000}`;
  let dialog = await openPredictorDialog(page);
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  await dialog.locator('.jp-PublishDialog-validator').selectOption('validator');
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  await dialog.locator('.jp-PublishDialog-public').check();
  if (process.env.UPDATE_SCREENSHOTS) {
    // The README's pictures of the dialog, light and dark: refreshed on request, never compared.
    await page.setViewportSize({ width: 1280, height: 1000 });
    await dialog.locator('.jp-PublishDialog-lock summary').click();
    await dialog.locator('.jp-Dialog-content').screenshot({
      path: path.join(DOCS, 'publish-dialog.png')
    });
    await page.theme.setDarkTheme();
    dialog = publishDialog(page);
    await dialog.locator('.jp-Dialog-content').screenshot({
      path: path.join(DOCS, 'publish-dialog-dark.png')
    });
    await page.theme.setLightTheme();
    dialog = publishDialog(page);
  }

  // The validator rejects the sample: found in the notebook in a moment; nothing is lost.
  await dialog.locator('.jp-PublishDialog-sample').fill('[[1, 2, 3]]');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const failure = dialog.locator(
    '.jp-PublishDialog-failure[data-field="sample"]'
  );
  await expect(failure).toContainText('the validator rejects the sample', {
    timeout: 60_000
  });
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('.jp-PublishDialog-name')).toHaveValue(name);
  await expect(dialog.locator('.jp-PublishDialog-validator')).toHaveValue(
    'validator'
  );
  await expect(dialog.locator('.jp-PublishDialog-sample')).toHaveValue(
    '[[1, 2, 3]]'
  );
  await expect(dialog.locator('.jp-PublishDialog-public')).toBeChecked();
  // The error sits right under the sample field, and no progress notification is left spinning.
  await expect(
    dialog.locator(
      '.jp-PublishDialog-field:has(.jp-PublishDialog-sample) + .jp-PublishDialog-failure'
    )
  ).toHaveCount(1);
  await expect(page.locator('.jp-Notification-Toast-in-progress')).toHaveCount(
    0
  );
  await expect(page.locator('.Toastify__toast')).toHaveCount(0);

  // Fix the sample and publish from the same dialog: a progress bar, then the result.
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  await expect(failure).toHaveCount(0);
  await recordStages(page);
  const clicked = Date.now();
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog.locator('.jp-PublishDialog-bar')).toBeVisible();
  await expect(dialog.locator('.jp-PublishDialog-elapsed')).toHaveText(
    /^\d+:\d\d$/
  );
  await expect(page.locator('.jp-PublishResult-url')).toBeVisible({
    timeout: 180_000
  });
  // Reported, never asserted: the click-to-URL figure for the closing notes.
  console.log(`click to URL for ${name}: ${Date.now() - clicked} ms`);
  // The bar renders once a frame, so quick stages may not show: the pre-flight's stage is
  // reported as it starts, alongside the push, and may be passed over. It never shows twice (the
  // kernel reports it once: test_publish_flow.py counts the kernel's own events).
  const stages = await stagesSeen(page);
  expect(stages.filter(s => s === 'preflight').length).toBeLessThanOrEqual(1);
  await page.locator('.jp-Dialog-button.jp-mod-accept').click(); // close the result

  // The same name again: refused before anything is analysed or built, fixed from the dialog.
  dialog = await openPredictorDialog(page);
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  await recordStages(page);
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const taken = dialog.locator('.jp-PublishDialog-failure[data-field="name"]');
  await expect(taken).toHaveAttribute('data-code', 'name_taken', {
    timeout: 60_000
  });
  await expect(taken).toContainText('exists already');
  expect(await stagesSeen(page)).toEqual(['analysing']); // the bar's first stage: nothing built
  await taken
    .locator('.jp-PublishDialog-fix', { hasText: 'Publish as a new version' })
    .click();
  await expect(page.locator('.jp-PublishResult')).toContainText(
    `Version 2 of ${name}`,
    {
      timeout: 180_000
    }
  );
  expect(
    (await stagesSeen(page)).filter(s => s === 'preflight').length
  ).toBeLessThanOrEqual(1);
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
});

test('Cancel during a slow sample stops it and keeps the dialog', async ({
  page,
  tmpPath
}) => {
  await notebookWith(
    page,
    tmpPath,
    [
      'import time',
      'finished = []',
      'def slow(x):',
      '    end = time.monotonic() + 120',
      '    while time.monotonic() < end:',
      '        pass',
      '    finished.append(x)',
      '    return x'
    ].join('\n')
  );
  await clickPublish(page);
  const dialog = publishDialog(page);
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await dialog.locator('.jp-PublishDialog-sample').fill('[1]');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog.locator('.jp-PublishDialog-stage')).toHaveText(
    'Running the sample',
    {
      timeout: 60_000
    }
  );
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
  // The outcome comes from the publish thread itself, so it arrives only once the 120 s loop
  // was interrupted.
  const cancelled = dialog.locator(
    '.jp-PublishDialog-failure[data-code="cancelled"]'
  );
  await expect(cancelled).toContainText('nothing changed on the target', {
    timeout: 15_000
  });
  await expect(dialog.locator('.jp-PublishDialog-sample')).toHaveValue('[1]');
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click(); // Cancel closes it now
  await expect(dialog).toHaveCount(0);
});

test('a cell with an import and a def is not reported stale right after it ran', async ({
  page,
  tmpPath
}) => {
  await notebookWith(
    page,
    tmpPath,
    'import os\ndef a(n):\n    return os.getcwd()'
  );
  await clickPublish(page);
  await expect(publishDialog(page)).toBeVisible({ timeout: 60_000 });
  await expect(
    page.locator('.jp-Dialog', { hasText: 'edited after the cell last ran' })
  ).toHaveCount(0);
  await publishDialog(page).locator('.jp-Dialog-button.jp-mod-reject').click();
});

/** Captures that cannot work where the function is served: each blocks Publish with the fix. */
const BLOCKERS = [
  {
    title: 'undefined globals block Publish with their names and the fix',
    // As after a kernel restart where only the function's cell ran: `model` does not exist.
    source: 'def score(x):\n    return model.predict([x])[0]',
    code: 'undefined_name',
    says: [
      "uses 'model', which is not defined in the kernel",
      'Run the cell that defines model'
    ]
  },
  {
    title: 'a captured open file blocks Publish with its path and the fix',
    source: [
      "with open('words.txt', 'w') as out:",
      "    out.write('alpha\\nbeta\\n')",
      "words = open('words.txt')",
      'def first_word():',
      '    return words.readline().strip()'
    ].join('\n'),
    code: 'file_snapshot',
    says: [
      'is an open text file (words.txt)',
      'Read the contents into a variable'
    ]
  }
];

for (const blocker of BLOCKERS) {
  test(blocker.title, async ({ page, tmpPath }) => {
    await notebookWith(page, tmpPath, blocker.source);
    await clickPublish(page);
    const dialog = publishDialog(page);
    await expect(dialog).toBeVisible({ timeout: 60_000 });
    const problem = dialog.locator(
      `.jp-PublishDialog-problems [data-code="${blocker.code}"]`
    );
    for (const text of blocker.says) {
      await expect(problem).toContainText(text);
    }
    await expect(
      dialog.locator('.jp-Dialog-button.jp-mod-accept')
    ).toBeDisabled();
    await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
  });
}

test('the notice shown while the kernel is busy ends', async ({
  page,
  tmpPath
}) => {
  await notebookWith(
    page,
    tmpPath,
    'import time\ndef pause(s):\n    time.sleep(s)'
  );
  await page.notebook.addCell('code', 'pause(4)');
  const last = (await page.notebook.getCellCount()) - 1;
  void page.notebook.runCell(last); // the kernel is busy for a while
  await expect(page.locator('.jp-InputPrompt', { hasText: '[*]' })).toHaveCount(
    1
  );
  await page.notebook.selectCells(0);
  await clickPublish(page);
  await expect(page.locator('.jp-Notification-Toast-in-progress')).toHaveCount(
    1
  );
  const dialog = publishDialog(page);
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('.jp-Notification-Toast-in-progress')).toHaveCount(
    0,
    {
      timeout: 10_000
    }
  );
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});

test('a dir: result shows where the bundle is and how to serve it; without a sample the curl body names the parameters', async ({
  page,
  tmpPath
}) => {
  await openAndRunExample(page, tmpPath);
  const dialog = await openPredictorDialog(page);
  const name = `stored-${Date.now() % 100000}`;
  const root = `/tmp/jupyterlab-publish-galata-${Date.now()}`;
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  // A spec not in the settings: typed under the picker's "Other…".
  await dialog
    .locator('.jp-PublishDialog-targetPicker')
    .selectOption({ label: 'Other…' });
  await dialog.locator('.jp-PublishDialog-target').fill(`dir:${root}`);
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const result = page.locator('.jp-PublishResult');
  await expect(result).toBeVisible({ timeout: 180_000 });
  await expect(result.locator('.jp-PublishResult-bundle')).toHaveText(
    `${root}/${name}/v1`
  );
  await expect(result.locator('.jp-PublishResult-serve')).toContainText(
    `${root}/${name}/v1/service.py --host 127.0.0.1 --port 8000`
  );
  const curl = result.locator('.jp-PublishResult-curl');
  await expect(curl).not.toContainText('file:');
  await expect(curl).toContainText(`http://127.0.0.1:8000/functions/${name}`);
  await expect(curl).toContainText('{"x": "<x>"}');
  await expect(result.locator('.jp-PublishResult-note')).toContainText(
    'replace each <…>'
  );
  await expect(result.locator('a')).toHaveCount(0);
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
});
