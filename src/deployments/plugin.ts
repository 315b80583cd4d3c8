import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';

import {
  DEPLOYMENTS_PLUGIN_ID,
  DeploymentsCommandIDs,
  IDeploymentTargets,
  IPublisher,
  ITargetConfig
} from '../tokens';
import { DeploymentsClient, DeploymentsError, IProvenance } from './client';
import { DEFAULT_TARGETS, DeploymentsModel } from './model';
import { DeploymentsPanel, IDeploymentsActions } from './panel';

const DEFAULT_REFRESH_SECONDS = 10;

/** The configured targets, read from the settings; the dialog's picker reads them here too. */
export class DeploymentTargets implements IDeploymentTargets {
  /** `describe` asks the server extension what a target can do (the panel's cached answer). */
  constructor(
    private readonly _describe: (
      spec: string
    ) => Promise<ReadonlyArray<string> | null> = async () => null
  ) {}

  get targets(): ReadonlyArray<ITargetConfig> {
    return this._targets;
  }

  get changed(): ISignal<IDeploymentTargets, ReadonlyArray<ITargetConfig>> {
    return this._changed;
  }

  capabilities(spec: string): Promise<ReadonlyArray<string> | null> {
    return this._describe(spec);
  }

  set(targets: ReadonlyArray<ITargetConfig> | undefined): void {
    this._targets = targets && targets.length ? [...targets] : DEFAULT_TARGETS;
    this._changed.emit(this._targets);
  }

  private _targets: ReadonlyArray<ITargetConfig> = DEFAULT_TARGETS;
  private readonly _changed = new Signal<
    IDeploymentTargets,
    ReadonlyArray<ITargetConfig>
  >(this);
}

export interface IDeploymentsOptions {
  trans: TranslationBundle;
  publisher: IPublisher | null;
  palette: ICommandPalette | null;
  settingRegistry: ISettingRegistry | null;
  client?: DeploymentsClient;
}

/** Build the panel, its commands and palette entries; returns the targets the settings name. */
export async function activateDeployments(
  app: JupyterFrontEnd,
  options: IDeploymentsOptions
): Promise<{ panel: DeploymentsPanel; targets: DeploymentTargets }> {
  const { trans, publisher, palette, settingRegistry } = options;
  const model = new DeploymentsModel(
    options.client ?? new DeploymentsClient(app.serviceManager.serverSettings)
  );
  const targets = new DeploymentTargets(spec => model.capabilitiesOf(spec));
  targets.changed.connect((_, list) => model.setTargets(list));
  let refreshSeconds = DEFAULT_REFRESH_SECONDS;

  const actions: IDeploymentsActions = {
    rollback: (name, to) =>
      app.commands.execute(DeploymentsCommandIDs.rollback, {
        name,
        ...(to === undefined ? {} : { to })
      }),
    remove: name =>
      app.commands.execute(DeploymentsCommandIDs.remove, { name }),
    openSource: provenance => openSource(app, provenance, trans),
    openDocs: name => {
      // The function server's own page: it names the URL callers use, and its try-it form works
      // there (a keyed function's sample shows only once its key is given).
      const fn = model.find(name);
      if (fn) {
        window.open(`${fn.url}/docs`, '_blank', 'noopener');
      }
    }
  };
  const panel = new DeploymentsPanel(
    model,
    trans,
    actions,
    () => refreshSeconds
  );
  app.shell.add(panel, 'left', { rank: 650 });

  publisher?.deploymentLive.connect(() => void model.refresh());

  /** The function the command's args name, or the one the user picks. */
  const pick = async (
    args: any,
    title: string,
    eligible: (name: string) => boolean
  ): Promise<string | null> => {
    if (typeof args.name === 'string' && args.name) {
      return args.name;
    }
    await model.refresh();
    const names = model.functions.map(f => f.name).filter(eligible);
    if (names.length === 0) {
      Notification.info(trans.__('No published function to choose from.'));
      return null;
    }
    const chosen = await InputDialog.getItem({
      title,
      items: names,
      okLabel: trans.__('Choose'),
      cancelLabel: trans.__('Cancel')
    });
    return chosen.button.accept ? chosen.value : null;
  };

  const fail = (what: string, error: unknown) => {
    const e = error as DeploymentsError;
    Notification.error(
      e.hint ? `${what}: ${e.message} — ${e.hint}` : `${what}: ${e.message}`,
      { autoClose: false }
    );
  };

  app.commands.addCommand(DeploymentsCommandIDs.open, {
    label: trans.__('Open Deployments Panel'),
    caption: trans.__('What you published: versions, keys, logs, try-it'),
    icon: args => (args.isPalette ? undefined : panel.title.icon),
    execute: () => app.shell.activateById(panel.id)
  });
  app.commands.addCommand(DeploymentsCommandIDs.refresh, {
    label: trans.__('Refresh Deployments'),
    execute: () => model.refresh()
  });
  app.commands.addCommand(DeploymentsCommandIDs.rollback, {
    label: args =>
      args.name
        ? trans.__('Roll Back %1', args.name as string)
        : trans.__('Roll Back a Published Function…'),
    caption: trans.__('Make an earlier version live again'),
    execute: async args => {
      const name = await pick(
        args,
        trans.__('Roll back which function?'),
        n => (model.find(n)?.versions.length ?? 0) > 1
      );
      if (!name) {
        return;
      }
      const to = typeof args.to === 'number' ? args.to : undefined;
      try {
        const done = await model.rollback(name, to);
        Notification.success(
          trans.__(
            '%1: version %2 is live again (was %3)',
            done.name,
            done.version,
            done.previous_version ?? '—'
          ),
          { autoClose: 5000 }
        );
      } catch (error) {
        fail(trans.__('Rollback of %1 failed', name), error);
      }
    }
  });
  app.commands.addCommand(DeploymentsCommandIDs.remove, {
    label: args =>
      args.name
        ? trans.__('Delete %1…', args.name as string)
        : trans.__('Delete a Published Function…'),
    caption: trans.__('Remove a function and all its versions'),
    execute: async args => {
      const name = await pick(
        args,
        trans.__('Delete which function?'),
        () => true
      );
      if (!name) {
        return;
      }
      const answer = await showDialog({
        title: trans.__('Delete %1?', name),
        body: trans.__(
          'All versions of %1 are removed and its URL stops answering. Its callers get 404. This cannot be undone.',
          name
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.warnButton({ label: trans.__('Delete') })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
      try {
        await model.remove(name);
        Notification.success(trans.__('%1 was deleted', name), {
          autoClose: 5000
        });
      } catch (error) {
        fail(trans.__('Deleting %1 failed', name), error);
      }
    }
  });
  const category = trans.__('Deployments');
  for (const command of [
    DeploymentsCommandIDs.open,
    DeploymentsCommandIDs.refresh,
    DeploymentsCommandIDs.rollback,
    DeploymentsCommandIDs.remove
  ]) {
    palette?.addItem({ command, category, args: { isPalette: true } });
  }

  if (settingRegistry) {
    try {
      const settings = await settingRegistry.load(DEPLOYMENTS_PLUGIN_ID);
      const read = () => {
        targets.set(settings.get('targets').composite as any);
        refreshSeconds =
          (settings.get('refreshInterval').composite as number) ||
          DEFAULT_REFRESH_SECONDS;
        panel.restartTimer();
      };
      read();
      settings.changed.connect(read);
    } catch (error) {
      console.warn(
        'jupyterlab-publish: cannot load the Deployments settings',
        error
      );
    }
  }
  return { panel, targets };
}

/** Open the notebook a version came from and select the cell it was published from. */
async function openSource(
  app: JupyterFrontEnd,
  provenance: IProvenance,
  trans: TranslationBundle
): Promise<void> {
  if (!provenance.notebook_path) {
    return;
  }
  const widget: any = await app.commands.execute('docmanager:open', {
    path: provenance.notebook_path
  });
  if (!widget?.content?.widgets || !provenance.cell_id) {
    return;
  }
  await widget.context?.ready;
  const notebook = widget.content;
  const index = notebook.widgets.findIndex(
    (cell: any) => cell.model.id === provenance.cell_id
  );
  if (index < 0) {
    Notification.warning(
      trans.__(
        'The cell this was published from is no longer in %1.',
        provenance.notebook_path
      ),
      { autoClose: 5000 }
    );
    return;
  }
  notebook.activeCellIndex = index;
  await notebook.scrollToItem(index, 'center');
}
