/**
 * The user path of issue 2 in a real JupyterLab and kernel: run the example notebook, publish
 * `predictor` from the toolbar and from the cell's context menu, read the URL from the UI and call
 * it over HTTP.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import {
  callHeaders,
  COMMAND,
  completePublishDialog,
  FUNCTION_CELL,
  IPublished,
  NOTEBOOK,
  openAndRunExample,
  readResult
} from './helpers';

test.use({ autoGoto: true });

async function expectServes(
  page: IJupyterLabPageFixture,
  published: IPublished,
  expected: string
) {
  const { url, key } = published;
  const headers = callHeaders(key);
  if (key) {
    const anonymous = await page.request.post(url, {
      headers: callHeaders(null),
      data: JSON.stringify([[0.5, 0.5]])
    });
    expect(anonymous.status()).toBe(401);
  }
  const ok = await page.request.post(url, {
    headers,
    data: JSON.stringify([[0.5, 0.5]])
  });
  expect(ok.status()).toBe(200);
  expect(JSON.stringify(await ok.json())).toBe(expected);
  const rejected = await page.request.post(url, {
    headers,
    data: JSON.stringify([[1, 2, 3]])
  });
  expect(rejected.status()).toBe(422);
}

test('publish from the notebook toolbar and call the URL', async ({
  page,
  tmpPath
}) => {
  const expected = await openAndRunExample(page, tmpPath);
  await page.notebook.selectCells(FUNCTION_CELL);
  await page
    .locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`)
    .click();
  const published = await completePublishDialog(page, 'predictor-toolbar');
  expect(published.url).toMatch(
    /^http:\/\/127\.0\.0\.1:\d+\/functions\/predictor-toolbar$/
  );
  expect(published.key).toBeTruthy();
  await expectServes(page, published, expected);
});

test('publish from the cell context menu, public, and call the URL', async ({
  page,
  tmpPath
}) => {
  const expected = await openAndRunExample(page, tmpPath);
  const cell = await page.notebook.getCellLocator(FUNCTION_CELL);
  await cell!.locator('.jp-InputArea-editor').click({ button: 'right' });
  await page.locator(`.lm-Menu-item[data-command="${COMMAND}"]`).click();
  const published = await completePublishDialog(page, 'predictor-menu', {
    public: true
  });
  expect(published.key).toBeNull();
  await expectServes(page, published, expected);
});

test('a cell without a function says so', async ({ page, tmpPath }) => {
  await openAndRunExample(page, tmpPath);
  await page.notebook.selectCells(1);
  await page
    .locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`)
    .click();
  const error = page.locator('.jp-PublishError[data-code="no_function"]');
  await expect(error).toContainText('defines no function');
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
});

test('a cell that has not run is run on request, then published', async ({
  page,
  tmpPath
}) => {
  await page.contents.uploadFile(
    path.resolve(__dirname, '..', '..', 'examples', NOTEBOOK),
    `${tmpPath}/${NOTEBOOK}`
  );
  await page.notebook.openByPath(`${tmpPath}/${NOTEBOOK}`);
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.runCell(1); // trains the model; the function cell stays unrun
  await page.notebook.selectCells(FUNCTION_CELL);
  await page.keyboard.press('Control+Alt+P'); // the shortcut, from command mode

  const picker = page
    .locator('.jp-Dialog')
    .filter({ hasText: 'Publish which function?' });
  await picker.locator('select').selectOption('predictor');
  await picker.locator('.jp-Dialog-button.jp-mod-accept').click();
  const offer = page
    .locator('.jp-Dialog')
    .filter({ hasText: 'not defined in the kernel yet' });
  await expect(offer).toBeVisible();
  await offer.locator('.jp-Dialog-button.jp-mod-accept').click();

  const dialog = page
    .locator('.jp-Dialog')
    .filter({ has: page.locator('.jp-PublishDialog') });
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await dialog.locator('.jp-PublishDialog-name').fill('predictor-after-run');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const { url, key } = await readResult(page);
  const answer = await page.request.post(url, {
    headers: callHeaders(key),
    data: JSON.stringify({ x: [0.5, 0.5] })
  });
  expect(answer.status()).toBe(200);
  expect(typeof (await answer.json())).toBe('number');
});
