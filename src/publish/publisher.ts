import { INotebookTracker } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';

import { ConnectionRegistry } from '../kernel/connection';
import { IDeployment } from '../protocol';
import { IPublisher } from '../tokens';
import { InFlightRequests, IPublishSettings, publishFromCell } from './flow';

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
      inFlight: this._inFlight
    });
    if (deployment) {
      this._deploymentLive.emit(deployment);
    }
    return deployment;
  }

  /** A kernel was interrupted: cancel the publishes running in it. */
  cancelForKernel(kernelId: string): void {
    this._inFlight.cancelForKernel(kernelId);
  }

  private readonly _connections = new ConnectionRegistry(this._trans);
  private readonly _inFlight = new InFlightRequests();
  private readonly _deploymentLive = new Signal<IPublisher, IDeployment>(this);
}
