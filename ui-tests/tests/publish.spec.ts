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

async function openAndRunExample(
  page: IJupyterLabPageFixture,
  tmpPath: string
): Promise<string> {
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
interface IPublished {
  url: string;
  /** The bearer key from the result's curl line; null when the function was published public. */
  key: string | null;
}

/** The URL and key the result dialog shows, then closes it. */
async function readResult(page: IJupyterLabPageFixture): Promise<IPublished> {
  const url = (await page
    .locator('.jp-PublishResult-url')
    .textContent({ timeout: 180_000 }))!.trim();
  const curl = (await page.locator('.jp-PublishResult-curl').textContent())!;
  const key = /Authorization: Bearer ([^'\s]+)/.exec(curl)?.[1] ?? null;
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();
  return { url, key };
}

function callHeaders(key: string | null): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json'
  };
  if (key) {
    headers['Authorization'] = `Bearer ${key}`;
  }
  return headers;
}

async function completePublishDialog(
  page: IJupyterLabPageFixture,
  name: string,
  options: { public?: boolean } = {}
): Promise<IPublished> {
  const picker = page
    .locator('.jp-Dialog')
    .filter({ hasText: 'Publish which function?' });
  await expect(picker).toBeVisible();
  await picker.locator('select').selectOption('predictor');
  await picker.locator('.jp-Dialog-button.jp-mod-accept').click();

  const dialog = page
    .locator('.jp-Dialog')
    .filter({ has: page.locator('.jp-PublishDialog') });
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await expect(dialog.locator('.jp-PublishDialog-signature')).toContainText(
    'predictor(x)'
  );
  const sklearn = dialog.locator(
    '.jp-PublishDialog-requirement[data-name="scikit-learn"]'
  );
  await expect(sklearn).toBeVisible();
  await expect(sklearn.locator('.jp-PublishDialog-why')).toContainText(
    'kmodel'
  );
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  await dialog.locator('.jp-PublishDialog-validator').selectOption('validator');
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  if (process.env.UPDATE_DOCS_SCREENSHOTS) {
    // The README's picture of the dialog: refreshed on request, never compared.
    await page.setViewportSize({ width: 1280, height: 1000 });
    await dialog
      .locator('.jp-Dialog-body')
      .evaluate(body => body.scrollTo(0, 0));
    await dialog.locator('.jp-Dialog-content').screenshot({
      path: path.resolve(__dirname, '..', '..', 'docs', 'publish-dialog.png')
    });
  }
  if (options.public) {
    await dialog.locator('.jp-PublishDialog-public').check();
  }
  const clicked = Date.now();
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();

  const url = page.locator('.jp-PublishResult-url');
  await expect(url).toBeVisible({ timeout: 180_000 });
  // Reported, never asserted: the click-to-URL figure for the closing notes and benchmarks.
  console.log(`click to URL for ${name}: ${Date.now() - clicked} ms`);
  await expect(page.locator('.jp-PublishResult-curl')).toContainText(
    `-d '[[0.5, 0.5]]'`
  );
  return readResult(page);
}

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
