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
  /**
   * The targets the Publish dialog's picker offers. The plugin that provides IDeploymentTargets
   * hands them over: this plugin cannot require them, since that one requires IPublisher. Without
   * them the dialog offers the default target and "Other…".
   */
  useTargets(targets: IDeploymentTargets): void;
}

export namespace IPublisher {
  export interface IPublishOptions {
    /** The notebook; the current one by default. */
    panel?: NotebookPanel;
    /** The code cell; the panel's active cell by default. */
    cell?: Cell;
  }
}

/** The Deployments panel's plugin: its settings (schema/deployments.json) list the targets. */
export const DEPLOYMENTS_PLUGIN_ID = 'jupyterlab-publish:deployments';

/** Commands of the Deployments panel (also in the command palette). */
export namespace DeploymentsCommandIDs {
  export const open = 'jupyterlab-publish:deployments-open';
  export const refresh = 'jupyterlab-publish:deployments-refresh';
  /** Args: `name`, optional `target` (spec) and `to` (version); asks which function when none is given. */
  export const rollback = 'jupyterlab-publish:deployments-rollback';
  /** Args: `name`, optional `target` (spec); always asks for confirmation. */
  export const remove = 'jupyterlab-publish:deployments-delete';
}

/**
 * A deploy target as the user configured it in the settings: a name, a spec (`local`,
 * `dir:/path`, `http(s)://host`, `ray://host:port`), and where its token is. The token itself
 * never appears in the settings, the browser or the comm: the Jupyter server (managing) and the
 * kernel (publishing) each read the variable or file (jupyterlab_publish/targets/tokens.py).
 */
export interface ITargetConfig {
  name: string;
  spec: string;
  /** An environment variable (of the Jupyter server and the kernel) holding the target's admin token. */
  tokenEnv?: string;
  /** A file (read by the Jupyter server and the kernel) holding the target's admin token. */
  tokenFile?: string;
}

/**
 * The configured deploy targets. The Deployments panel manages them; the Publish dialog's
 * target picker reads the same list from here.
 */
export const IDeploymentTargets = new Token<IDeploymentTargets>(
  'jupyterlab-publish:IDeploymentTargets',
  'The deploy targets configured in the settings, by name and spec.'
);

export interface IDeploymentTargets {
  /** The targets, in the order of the settings; never empty (the local server by default). */
  readonly targets: ReadonlyArray<ITargetConfig>;
  /** Emitted when the settings change the list. */
  readonly changed: ISignal<IDeploymentTargets, ReadonlyArray<ITargetConfig>>;
  /**
   * What a target can do, as the server extension describes it (`capabilities`: management verbs,
   * and `scale` when it takes replicas and CPUs); null when that cannot be known.
   */
  capabilities(spec: string): Promise<ReadonlyArray<string> | null>;
}
