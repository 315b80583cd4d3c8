import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { activateDeployments } from './deployments/plugin';
import { addPublishCommand } from './publish/command';
import { IPublishSettings } from './publish/flow';
import { Publisher } from './publish/publisher';
import {
  CommandIDs,
  DEPLOYMENTS_PLUGIN_ID,
  IDeploymentTargets,
  IPublisher,
  PLUGIN_ID,
  TRANSLATION_DOMAIN
} from './tokens';

/** The Publish function command, its palette entry and its settings; provides IPublisher.
 * Toolbar button, cell menu entry and shortcut are declared in schema/plugin.json. */
const plugin: JupyterFrontEndPlugin<IPublisher> = {
  id: PLUGIN_ID,
  description: 'Publish a function from a notebook cell as a web service.',
  autoStart: true,
  provides: IPublisher,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISettingRegistry, ITranslator],
  activate: async (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    const settings: IPublishSettings = {
      defaultTarget: 'local',
      requestTimeout: 120
    };
    const publisher = new Publisher(tracker, trans, () => settings);
    addPublishCommand(app, tracker, trans, publisher);
    palette?.addItem({
      command: CommandIDs.publish,
      category: trans.__('Notebook Operations')
    });
    if (settingRegistry) {
      const loaded = await settingRegistry.load(PLUGIN_ID);
      const read = () => {
        settings.defaultTarget =
          (loaded.get('defaultTarget').composite as string) || 'local';
        settings.requestTimeout = loaded.get('requestTimeout')
          .composite as number;
      };
      read();
      loaded.changed.connect(read);
    }
    return publisher;
  }
};

/** The Deployments panel in the left sidebar, its commands and settings; provides the targets. */
const deployments: JupyterFrontEndPlugin<IDeploymentTargets> = {
  id: DEPLOYMENTS_PLUGIN_ID,
  description:
    'Manage published functions: versions, keys, metrics, logs, try-it, rollback and delete.',
  autoStart: true,
  provides: IDeploymentTargets,
  optional: [IPublisher, ICommandPalette, ISettingRegistry, ITranslator],
  activate: async (
    app: JupyterFrontEnd,
    publisher: IPublisher | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    const { targets } = await activateDeployments(app, {
      trans,
      publisher,
      palette,
      settingRegistry
    });
    // The Publish dialog's target picker offers the same configured targets.
    publisher?.useTargets(targets);
    return targets;
  }
};

export * from './tokens';
export default [plugin, deployments];
