import {
  Dialog,
  InputDialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';

import { KernelConnection, ConnectionRegistry } from '../kernel/connection';
import { PublishError } from '../kernel/errors';
import { IDeployment, IFunctionInfo, IPublishParams } from '../protocol';
import { IDeploymentTargets } from '../tokens';
import { IPublishRunner, PublishDialog } from './dialog';
import { showPublishError } from './errors';
import { ITargetChoice, PublishFormModel } from './model';
import { DeploymentResultBody } from './result';

export { stageLabel } from './stages';

export interface IPublishSettings {
  defaultTarget: string;
  /** Seconds the kernel may stay silent during a request. */
  requestTimeout: number;
}

export interface IFlowOptions {
  panel: NotebookPanel;
  cell: Cell;
  connections: ConnectionRegistry;
  trans: TranslationBundle;
  settings: IPublishSettings;
  /** Requests in flight, so an interrupt can cancel them. */
  inFlight: InFlightRequests;
  /** The configured targets the dialog's picker offers, when the Deployments plugin runs. */
  targets?: IDeploymentTargets | null;
  /** The target last chosen in each notebook (by path); the dialog records its choice here. */
  lastTargets?: Map<string, ITargetChoice>;
}

/** Publish requests running now, by kernel, so "interrupt kernel" also cancels them. */
export class InFlightRequests {
  add(connection: KernelConnection, requestId: string): void {
    this._items.set(requestId, connection);
  }
  delete(requestId: string): void {
    this._items.delete(requestId);
  }
  cancelForKernel(kernelId: string): void {
    for (const [id, connection] of this._items) {
      if (connection.kernel.id === kernelId) {
        void connection.cancel(id);
      }
    }
  }
  private _items = new Map<string, KernelConnection>();
}

/** The whole "Publish function" path for the active cell; errors are shown, never thrown. */
export async function publishFromCell(
  options: IFlowOptions
): Promise<IDeployment | null> {
  try {
    return await runFlow(options);
  } catch (error) {
    if (!(error instanceof PublishError && error.code === 'cancelled')) {
      await showPublishError(error, options.trans);
    }
    return null;
  }
}

async function runFlow(options: IFlowOptions): Promise<IDeployment | null> {
  const { panel, cell, trans } = options;
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new PublishError(
      'no_kernel',
      trans.__('This notebook has no running kernel.'),
      trans.__(
        'Start a Python kernel (Kernel → Change Kernel…), run the cell, then publish.'
      )
    );
  }
  if (cell.model.type !== 'code') {
    throw new PublishError(
      'no_function',
      trans.__('The selected cell is not a code cell.'),
      trans.__('Select the code cell that defines your function.')
    );
  }
  const connection = options.connections.get(kernel);
  const timeout = options.settings.requestTimeout * 1000;
  const fn = await pickFunction(options, connection, timeout);
  if (!fn) {
    return null;
  }

  const analysis = await withWaitNotice(kernel.status, trans, () =>
    connection.request('analyze', { function: fn.name }, { timeout })
  );
  const targets = options.targets;
  const model = new PublishFormModel(
    analysis,
    {
      functionName: fn.name,
      notebookPath: panel.context.path,
      cellId: cell.model.id,
      defaultTarget: options.settings.defaultTarget,
      targets: targets?.targets,
      lastTarget: options.lastTargets?.get(panel.context.path) ?? null,
      describeTarget: targets ? spec => targets.capabilities(spec) : undefined
    },
    trans,
    texts => connection.request('check_requirements', { texts }, { timeout })
  );
  let deployment: IDeployment | null;
  try {
    deployment = await publishInDialog(model, options, connection, timeout);
  } finally {
    options.lastTargets?.set(panel.context.path, model.targetChoice);
  }
  if (deployment) {
    Notification.success(
      trans.__(
        '%1 v%2 is live at %3',
        deployment.name,
        deployment.version,
        deployment.url
      ),
      { autoClose: 8000 }
    );
    await showDialog({
      title: trans.__('Published %1', deployment.name),
      body: new DeploymentResultBody(deployment, trans),
      buttons: [Dialog.okButton({ label: trans.__('Close') })]
    });
  }
  return deployment;
}

/** List the cell's functions, let the user pick one, and make sure the kernel runs its latest code. */
async function pickFunction(
  options: IFlowOptions,
  connection: KernelConnection,
  timeout: number
): Promise<IFunctionInfo | null> {
  const { cell, panel, trans } = options;
  const list = () =>
    withWaitNotice(connection.kernel.status, trans, () =>
      connection.request(
        'list_functions',
        { code: cell.model.sharedModel.getSource(), cell_id: cell.model.id },
        { timeout }
      )
    );
  let { functions } = await list();
  let chosen = functions[0];
  if (functions.length > 1) {
    const picked = await InputDialog.getItem({
      title: trans.__('Publish which function?'),
      items: functions.map(f => f.name),
      current: 0
    });
    if (!picked.button.accept || !picked.value) {
      return null;
    }
    chosen = functions.find(f => f.name === picked.value)!;
  }
  if (chosen.defined && !chosen.stale) {
    return chosen;
  }
  const answer = await showDialog({
    title: chosen.defined
      ? trans.__('The cell changed')
      : trans.__('The cell has not run'),
    body: chosen.defined
      ? trans.__(
          '`%1` was edited after the cell last ran. Run the cell to publish the code you see?',
          chosen.name
        )
      : trans.__(
          '`%1` is not defined in the kernel yet. Run the cell now?',
          chosen.name
        ),
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: trans.__('Run cell') })
    ]
  });
  if (!answer.button.accept) {
    return null;
  }
  const reply = await CodeCell.execute(cell as CodeCell, panel.sessionContext);
  if (!reply || reply.content.status !== 'ok') {
    throw new PublishError(
      'not_defined',
      trans.__('The cell raised an error when it ran.'),
      trans.__('Fix the error shown under the cell, then publish again.')
    );
  }
  ({ functions } = await list());
  const fresh = functions.find(f => f.name === chosen.name);
  if (!fresh?.defined) {
    throw new PublishError(
      'not_defined',
      trans.__(
        '`%1` is still not defined after running the cell.',
        chosen.name
      ),
      trans.__('Check that the cell defines it at the top level.')
    );
  }
  return fresh;
}

/**
 * Show the Publish dialog; it publishes in place (progress, cancel, failures by their field, fixes
 * as buttons) and closes only on success, with the deployment, or when the user cancels it idle.
 */
async function publishInDialog(
  model: PublishFormModel,
  options: IFlowOptions,
  connection: KernelConnection,
  timeout: number
): Promise<IDeployment | null> {
  let requestId: string | null = null;
  const runner: IPublishRunner = {
    publish: async (params: IPublishParams, onProgress) => {
      try {
        return await connection.request('publish', params, {
          timeout: Math.max(timeout, 600_000),
          onProgress,
          onSent: id => {
            requestId = id;
            options.inFlight.add(connection, id);
          }
        });
      } finally {
        if (requestId) {
          options.inFlight.delete(requestId);
        }
        requestId = null;
      }
    },
    cancel: async () =>
      requestId ? connection.cancel(requestId) : { cancelled: false }
  };
  const dialog = new PublishDialog(
    model,
    options.trans,
    runner,
    options.trans.__('Publish %1', model.context.functionName)
  );
  const result = await dialog.launch();
  return result.button.accept ? dialog.deployment : null;
}

/** How long a request to a busy kernel waits before the notice shows (a quick answer shows none). */
const WAIT_NOTICE_DELAY = 400;

/**
 * A request to a busy kernel waits in its queue: say so instead of looking stuck. The notice
 * always ends: JupyterLab draws a toast asynchronously and loses a dismiss that arrives before it
 * is drawn (a spinner left forever), so the notice shows only after a short wait, and ends as an
 * update that closes itself, which JupyterLab draws whether or not the first toast was.
 */
async function withWaitNotice<T>(
  status: string,
  trans: TranslationBundle,
  run: () => Promise<T>
): Promise<T> {
  if (status !== 'busy') {
    return run();
  }
  let id: string | null = null;
  const timer = window.setTimeout(() => {
    id = Notification.emit(
      trans.__('Waiting for the kernel to finish running…'),
      'in-progress',
      { autoClose: false }
    );
  }, WAIT_NOTICE_DELAY);
  try {
    return await run();
  } finally {
    window.clearTimeout(timer);
    if (id) {
      Notification.update({
        id,
        message: trans.__('The kernel is ready.'),
        type: 'default',
        autoClose: 1500
      });
    }
  }
}
