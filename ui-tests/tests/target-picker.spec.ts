/**
 * Issues 11 and 12 in a real JupyterLab and kernel: the Publish dialog's target field is a picker
 * of the targets configured in the settings (here the local function server and a dir: target in
 * a temporary folder). Picking the dir: one publishes there; neither runs more than one copy, so
 * the server extension describes them without the `scale` capability and the Scale section stays
 * hidden for both.
 */
import { expect, galata, test } from '@jupyterlab/galata';

import { COMMAND, FUNCTION_CELL, openAndRunExample } from './helpers';

const ROOT = `/tmp/jupyterlab-publish-picker-${Date.now()}`;
const SHARED = { name: 'shared folder', spec: `dir:${ROOT}` };

test.use({
  autoGoto: true,
  mockSettings: {
    ...galata.DEFAULT_SETTINGS,
    'jupyterlab-publish:deployments': {
      targets: [{ name: 'local', spec: 'local' }, SHARED]
    }
  }
});

test('pick a configured dir: target in the Publish dialog and publish there; no Scale section for either target', async ({
  page,
  tmpPath
}) => {
  await openAndRunExample(page, tmpPath);
  await page.notebook.selectCells(FUNCTION_CELL);
  await page
    .locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`)
    .click();
  const chooser = page
    .locator('.jp-Dialog')
    .filter({ hasText: 'Publish which function?' });
  await chooser.locator('select').selectOption('predictor');
  await chooser.locator('.jp-Dialog-button.jp-mod-accept').click();
  const dialog = page
    .locator('.jp-Dialog')
    .filter({ has: page.locator('.jp-PublishDialog') });
  await expect(dialog).toBeVisible({ timeout: 60_000 });

  // The configured targets by name and spec, then Other…; the settings' default picked.
  const picker = dialog.locator('.jp-PublishDialog-targetPicker');
  await expect(picker.locator('option')).toHaveText([
    'local',
    `shared folder — dir:${ROOT}`,
    'Other…'
  ]);
  await expect(picker).toHaveValue('local');
  await expect(dialog.locator('.jp-PublishDialog-target')).toHaveCount(0);

  // Once the server extension has described a target (its capabilities are on the field), the
  // Scale section would be there if it scaled: it is not, for either target.
  const field = dialog.locator('.jp-PublishDialog-targetField');
  const scale = dialog.locator('.jp-PublishDialog-scale');
  await expect(field).toHaveAttribute('data-capabilities', /\blist\b/);
  await expect(field).not.toHaveAttribute('data-capabilities', /\bscale\b/);
  await expect(scale).toHaveCount(0);

  await picker.selectOption(SHARED.name);
  await expect(field).toHaveAttribute('data-capabilities', /\bversions\b/);
  await expect(field).not.toHaveAttribute('data-capabilities', /\bscale\b/);
  await expect(scale).toHaveCount(0);

  const name = `picked-${Date.now() % 100000}`;
  await dialog.locator('.jp-PublishDialog-name').fill(name);
  await dialog.locator('.jp-PublishDialog-sample').fill('[[0.5, 0.5]]');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();

  // The dir: target's result: the bundle in the picked folder and how to serve it.
  const result = page.locator('.jp-PublishResult');
  await expect(result).toBeVisible({ timeout: 180_000 });
  await expect(result.locator('.jp-PublishResult-bundle')).toHaveText(
    `${ROOT}/${name}/v1`
  );
  await expect(result.locator('.jp-PublishResult-serve')).toContainText(
    `${ROOT}/${name}/v1/service.py`
  );
  await page.locator('.jp-Dialog-button.jp-mod-accept').click();

  // The next dialog in this notebook starts from that choice.
  await page
    .locator(`.jp-NotebookPanel-toolbar [data-command="${COMMAND}"]`)
    .click();
  await chooser.locator('select').selectOption('predictor');
  await chooser.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog).toBeVisible({ timeout: 60_000 });
  await expect(picker).toHaveValue(SHARED.name);
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});
