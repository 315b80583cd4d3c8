/**
 * The user path of issue 2 in a real JupyterLab and kernel: run the example notebook, publish
 * `predictor` from the toolbar and from the cell's context menu, read the URL from the UI and call
 * it over HTTP.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const NOTEBOOK = 'kmeans.ipynb';
const FUNCTION_CELL = 2;
const CALL_CELL = 3;
const COMMAND = 'jupyterlab-publish:publish';

test.use({ autoGoto: true });

async function openAndRunExample(page: IJupyterLabPageFixture, tmpPath: string): Promise<string> {
  await page.contents.uploadFile(
    path.resolve(__dirname, '..', '..', 'examples', NOTEBOOK),
    `${tmpPath}/${NOTEBOOK}`
  );
  await page.notebook.openByPath(`${tmpPath}/${NOTEBOOK}`);
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.run();
  const output = await page.notebook.getCellTextOutput(CALL_CELL);
  expect(output).not.toBeNull();
  return output![0].trim();
}

/** Pick `predictor`, fill the dialog, publish, and return the URL the result dialog shows. */
async function completePublishDialog(page: IJupyterLabPageFixture, name: string): Promise<string> {
  const picker = page.locator('.jp-Dialog').filter({ hasText: 'Publish which function?' });
  await expect(picker).toBeVisible();
  await picker.locator('select').selectOption('predictor');
  await picker.locator('.jp-Dialog-button.jp-mod-accept').click();

  const dialog = page.locator('.jp-Dialog').filter({ has: page.locator('.jp-PublishDialog') });
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await expect(dialog.locator('.jp-PublishDialog-signature')).toContainText('predictor(x)');
  const sklearn = dialog.locator('.jp-PublishDialog-requirement[data-name="scikit-learn"]');
  await expect(sklearn).toBeVisible();
  await expect(sklearn.locator('.jp-PublishDialog-why')).toContainText('kmodel');
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  await dialog.locator('.jp-PublishDialog-validator').selectOption('validator');
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  if (process.env.UPDATE_DOCS_SCREENSHOTS) {
    // The README's picture of the dialog: refreshed on request, never compared.
    await page.setViewportSize({ width: 1280, height: 1000 });
    await dialog.locator('.jp-Dialog-body').evaluate(body => body.scrollTo(0, 0));
    await dialog.locator('.jp-Dialog-content').screenshot({
      path: path.resolve(__dirname, '..', '..', 'docs', 'publish-dialog.png')
    });
  }
  const clicked = Date.now();
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();

  const url = page.locator('.jp-PublishResult-url');
  await expect(url).toBeVisible({ timeout: 180_000 });
  // Reported, never asserted: the click-to-URL figure for the closing notes and benchmarks.
  console.log(`click to URL for ${name}: ${Date.now() - clicked} ms`);
  await expect(page.locator('.jp-PublishResult-curl')).toContainText(`-d '[[0.5, 0.5]]'`);
  const href = (await url.textContent())!.trim();
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
  return href;
}

async function expectServes(page: IJupyterLabPageFixture, url: string, expected: string) {
  const headers = { 'Content-Type': 'application/json' };
  const ok = await page.request.post(url, { headers, data: JSON.stringify([[0.5, 0.5]]) });
  expect(ok.status()).toBe(200);
  expect(JSON.stringify(await ok.json())).toBe(expected);
  const rejected = await page.request.post(url, { headers, data: JSON.stringify([[1, 2, 3]]) });
  expect(rejected.status()).toBe(422);
}

test('publish from the notebook toolbar and call the URL', async ({ page, tmpPath }) => {
  const expected = await openAndRunExample(page, tmpPath);
  await page.notebook.selectCells(FUNCTION_CELL);
  await page.locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`).click();
  const url = await completePublishDialog(page, 'predictor-toolbar');
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/functions\/predictor-toolbar$/);
  await expectServes(page, url, expected);
});

test('publish from the cell context menu and call the URL', async ({ page, tmpPath }) => {
  const expected = await openAndRunExample(page, tmpPath);
  const cell = await page.notebook.getCellLocator(FUNCTION_CELL);
  await cell!.locator('.jp-InputArea-editor').click({ button: 'right' });
  await page.locator(`.lm-Menu-item[data-command="${COMMAND}"]`).click();
  const url = await completePublishDialog(page, 'predictor-menu');
  await expectServes(page, url, expected);
});

test('a cell without a function says so', async ({ page, tmpPath }) => {
  await openAndRunExample(page, tmpPath);
  await page.notebook.selectCells(1);
  await page.locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`).click();
  const error = page.locator('.jp-PublishError[data-code="no_function"]');
  await expect(error).toContainText('defines no function');
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
});

test('a cell that has not run is run on request, then published', async ({ page, tmpPath }) => {
  await page.contents.uploadFile(
    path.resolve(__dirname, '..', '..', 'examples', NOTEBOOK),
    `${tmpPath}/${NOTEBOOK}`
  );
  await page.notebook.openByPath(`${tmpPath}/${NOTEBOOK}`);
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.runCell(1); // trains the model; the function cell stays unrun
  await page.notebook.selectCells(FUNCTION_CELL);
  await page.keyboard.press('Control+Alt+P'); // the shortcut, from command mode

  const picker = page.locator('.jp-Dialog').filter({ hasText: 'Publish which function?' });
  await picker.locator('select').selectOption('predictor');
  await picker.locator('.jp-Dialog-button.jp-mod-accept').click();
  const offer = page.locator('.jp-Dialog').filter({ hasText: 'not defined in the kernel yet' });
  await expect(offer).toBeVisible();
  await offer.locator('.jp-Dialog-button.jp-mod-accept').click();

  const dialog = page.locator('.jp-Dialog').filter({ has: page.locator('.jp-PublishDialog') });
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await dialog.locator('.jp-PublishDialog-name').fill('predictor-after-run');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const url = (await page.locator('.jp-PublishResult-url').textContent({ timeout: 180_000 }))!.trim();
  const answer = await page.request.post(url, {
    headers: { 'Content-Type': 'application/json' },
    data: JSON.stringify({ x: [0.5, 0.5] })
  });
  expect(answer.status()).toBe(200);
  expect(typeof (await answer.json())).toBe('number');
});
