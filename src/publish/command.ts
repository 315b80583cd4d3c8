import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';

import { publishIcon } from '../icons';
import { CommandIDs } from '../tokens';
import { Publisher } from './publisher';

/** Commands that interrupt a kernel; a publish running in that kernel is cancelled with them. */
const INTERRUPT_COMMANDS = [
  'notebook:interrupt-kernel',
  'kernelmenu:interrupt'
];

/** Register "Publish function": enabled for a notebook whose kernel speaks Python. */
export function addPublishCommand(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  trans: TranslationBundle,
  publisher: Publisher
): void {
  app.commands.addCommand(CommandIDs.publish, {
    label: trans.__('Publish function'),
    caption: trans.__(
      'Publish a function defined in this cell as a web service'
    ),
    icon: publishIcon,
    isEnabled: () => {
      const kernel = tracker.currentWidget?.sessionContext.session?.kernel;
      const language =
        tracker.currentWidget?.sessionContext.kernelPreference.language;
      return !!kernel && (!language || language.toLowerCase() === 'python');
    },
    execute: async args => {
      const panel = tracker.currentWidget;
      if (!panel) {
        return null;
      }
      // From the context menu, publish the cell that was right-clicked, active or not.
      const clicked = args.fromContextMenu
        ? app.contextMenuHitTest(node => node.classList.contains('jp-Cell'))
        : undefined;
      const cell =
        panel.content.widgets.find(widget => widget.node === clicked) ??
        panel.content.activeCell;
      if (!cell) {
        return null;
      }
      return publisher.publish({ panel, cell });
    }
  });

  tracker.currentChanged.connect(() =>
    app.commands.notifyCommandChanged(CommandIDs.publish)
  );
  tracker.widgetAdded.connect((_, panel) => {
    panel.sessionContext.statusChanged.connect(() =>
      app.commands.notifyCommandChanged(CommandIDs.publish)
    );
  });
  app.commands.commandExecuted.connect((_, args) => {
    if (INTERRUPT_COMMANDS.includes(args.id)) {
      const kernelId =
        tracker.currentWidget?.sessionContext.session?.kernel?.id;
      if (kernelId) {
        publisher.cancelForKernel(kernelId);
      }
    }
  });
}
