import { INotebookTracker } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';

import { ConnectionRegistry } from '../kernel/connection';
import { IDeployment } from '../protocol';
import { IDeploymentTargets, IPublisher } from '../tokens';
import { InFlightRequests, IPublishSettings, publishFromCell } from './flow';
import { ITargetChoice } from './model';

/** The IPublisher the plugin provides: one kernel connection per kernel, shared by every publish. */
export class Publisher implements IPublisher {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _trans: TranslationBundle,
    private readonly _settings: () => IPublishSettings
  ) {}

  get deploymentLive(): ISignal<IPublisher, IDeployment> {
    return this._deploymentLive;
  }

  async publish(
    options: IPublisher.IPublishOptions = {}
  ): Promise<IDeployment | null> {
    const panel = options.panel ?? this._tracker.currentWidget;
    const cell = options.cell ?? panel?.content.activeCell;
    if (!panel || !cell) {
      return null;
    }
    const deployment = await publishFromCell({
      panel,
      cell,
      connections: this._connections,
      trans: this._trans,
      settings: this._settings(),
      inFlight: this._inFlight,
      targets: this._targets,
      lastTargets: this._lastTargets
    });
    if (deployment) {
      this._deploymentLive.emit(deployment);
    }
    return deployment;
  }

  useTargets(targets: IDeploymentTargets): void {
    this._targets = targets;
  }

  /** A kernel was interrupted: cancel the publishes running in it. */
  cancelForKernel(kernelId: string): void {
    this._inFlight.cancelForKernel(kernelId);
  }

  private readonly _connections = new ConnectionRegistry(this._trans);
  private readonly _inFlight = new InFlightRequests();
  private _targets: IDeploymentTargets | null = null;
  /** The target last chosen in each notebook's dialog (by path), offered first next time. */
  private readonly _lastTargets = new Map<string, ITargetChoice>();
  private readonly _deploymentLive = new Signal<IPublisher, IDeployment>(this);
}
