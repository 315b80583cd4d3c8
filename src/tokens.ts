import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import { IDeployment } from './protocol';

/** Command ids; the schema (schema/plugin.json) refers to them by these exact strings. */
export namespace CommandIDs {
  export const publish = 'jupyterlab-publish:publish';
}

export const PLUGIN_ID = 'jupyterlab-publish:plugin';
export const TRANSLATION_DOMAIN = 'jupyterlab_publish';

/**
 * Publishes functions from notebook cells. Other plugins require it to start a publish or to
 * hear when a deployment goes live (the Deployments panel refreshes on `deploymentLive`).
 */
export const IPublisher = new Token<IPublisher>(
  'jupyterlab-publish:IPublisher',
  'Publishes notebook functions as web services and tells when a deployment goes live.'
);

export interface IPublisher {
  /**
   * Run the Publish flow for a cell: pick the function, analyse it, show the dialog, publish.
   * Resolves to the live deployment, or null when the user cancelled or an error was shown.
   */
  publish(options?: IPublisher.IPublishOptions): Promise<IDeployment | null>;
  /** Emitted once a published version is live, with its deployment. */
  readonly deploymentLive: ISignal<IPublisher, IDeployment>;
}

export namespace IPublisher {
  export interface IPublishOptions {
    /** The notebook; the current one by default. */
    panel?: NotebookPanel;
    /** The code cell; the panel's active cell by default. */
    cell?: Cell;
  }
}
