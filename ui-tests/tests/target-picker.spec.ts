/**
 * Issues 11 and 12 in a real JupyterLab and kernel: the Publish dialog's target field is a picker
 * of the targets configured in the settings (here the local function server, a dir: target in a
 * temporary folder, and a Ray cluster's dashboard address). Picking the dir: one publishes there;
 * neither it nor local runs more than one copy, so the server extension describes them without
 * the `scale` capability and the Scale section stays hidden for both. The ray target declares
 * `scale`: its section appears, and a setting the target refuses comes back from the kernel under
 * the field it names (no cluster is needed: the target checks scale before anything else).
 */
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';

import { openAndRunExample, openPredictorDialog } from './helpers';

const ROOT = `/tmp/jupyterlab-publish-picker-${Date.now()}`;
const SHARED = { name: 'shared folder', spec: `dir:${ROOT}` };
// Nothing listens there: the scale check comes before the target talks to the cluster.
const CLUSTER = {
  name: 'team cluster',
  spec: `ray+http://127.0.0.1:9?store=file://${ROOT}-store`
};

test.use({
  autoGoto: true,
  mockSettings: {
    ...galata.DEFAULT_SETTINGS,
    'jupyterlab-publish:deployments': {
      targets: [{ name: 'local', spec: 'local' }, SHARED, CLUSTER]
    }
  }
});

test('pick a configured dir: target in the Publish dialog and publish there; no Scale section for either target', async ({
  page,
  tmpPath
}) => {
  await openAndRunExample(page, tmpPath);
  const dialog = await openPredictorDialog(page);

  // The configured targets by name and spec, then Other…; the settings' default picked.
  const picker = dialog.locator('.jp-PublishDialog-targetPicker');
  await expect(picker.locator('option')).toHaveText([
    'local',
    `shared folder — dir:${ROOT}`,
    `team cluster — ${CLUSTER.spec}`,
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
  await openPredictorDialog(page);
  await expect(picker).toHaveValue(SHARED.name);
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});

test('a target that scales shows the Scale section; a refused setting comes back under its field', async ({
  page,
  tmpPath
}) => {
  await openAndRunExample(page, tmpPath);
  const dialog = await openPredictorDialog(page);
  const field = dialog.locator('.jp-PublishDialog-targetField');
  await dialog
    .locator('.jp-PublishDialog-targetPicker')
    .selectOption(CLUSTER.name);
  await expect(field).toHaveAttribute('data-capabilities', /\bscale\b/);
  const scale = dialog.locator('.jp-PublishDialog-scale');
  await expect(scale).toBeVisible();

  await scale.locator('.jp-PublishDialog-scaleMode-autoscale').check();
  const input = (name: string) =>
    scale.locator(`.jp-PublishDialog-scaleInput[data-field="${name}"]`);
  await input('min_replicas').fill('5');
  await input('max_replicas').fill('4');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();

  // The target refused it in the kernel, naming min_replicas: shown there, everything kept.
  const failure = scale.locator(
    '.jp-PublishDialog-scaleField:has([data-field="min_replicas"]) .jp-PublishDialog-failure'
  );
  await expect(failure).toContainText(
    'min_replicas (5) is above max_replicas (4)',
    { timeout: 60_000 }
  );
  await expect(failure).toHaveAttribute('data-code', 'invalid_scale');
  await expect(input('min_replicas')).toHaveAttribute('aria-invalid', 'true');
  await expect(input('min_replicas')).toHaveValue('5');
  await expect(input('max_replicas')).toHaveValue('4');
  await expect(dialog).toBeVisible();

  // Back to a target that runs one copy: the section goes.
  await dialog.locator('.jp-PublishDialog-targetPicker').selectOption('local');
  await expect(scale).toHaveCount(0);
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});
