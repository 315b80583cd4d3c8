import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ITargetConfig } from '../tokens';
import {
  DeploymentsClient,
  DeploymentsError,
  ICallResult,
  IFunction,
  IRollback
} from './client';

export const DEFAULT_TARGETS: ReadonlyArray<ITargetConfig> = [
  { name: 'local', spec: 'local' }
];

/**
 * What the Deployments panel shows: the functions of the selected target, refreshed on demand
 * (a publish went live, the timer, an action). React components render it and listen to `changed`.
 */
export class DeploymentsModel implements IDisposable {
  constructor(readonly client: DeploymentsClient) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get targets(): ReadonlyArray<ITargetConfig> {
    return this._targets;
  }

  /** The target the panel shows; the first configured one until the user picks another. */
  get target(): ITargetConfig {
    return (
      this._targets.find(t => t.name === this._targetName) ?? this._targets[0]
    );
  }

  get functions(): ReadonlyArray<IFunction> {
    return this._functions;
  }

  /** False when the target's server is not running (nothing published yet, or it stopped). */
  get started(): boolean {
    return this._started;
  }

  /** Why the last refresh failed, or null. */
  get error(): DeploymentsError | null {
    return this._error;
  }

  /** Why the target's metrics could not be read (the functions are still listed), or null. */
  get metricsError(): { code: string; message: string } | null {
    return this._metricsError;
  }

  get loading(): boolean {
    return this._loading;
  }

  /**
   * Whether the selected target has a management verb (its declared capabilities); true while
   * they are not known yet, so nothing flickers away that the target turns out to have.
   */
  can(verb: string): boolean {
    const capabilities = this._capabilities.get(this.target.spec);
    return capabilities === undefined || capabilities.includes(verb);
  }

  /** Keys the user asked to see, by function name; hidden again with `hideKey`. */
  key(name: string): string | null {
    return this._keys.get(name) ?? null;
  }

  setTargets(targets: ReadonlyArray<ITargetConfig>): void {
    this._targets = targets.length ? [...targets] : [...DEFAULT_TARGETS];
    if (!this._targets.some(t => t.name === this._targetName)) {
      this._targetName = this._targets[0].name;
    }
    this._changed.emit();
  }

  selectTarget(name: string): void {
    if (name === this.target.name) {
      return;
    }
    this._targetName = name;
    this._functions = [];
    this._keys.clear();
    this._changed.emit();
    void this.refresh();
  }

  /** Ask the server again; overlapping calls share one request and re-ask once after it. */
  async refresh(): Promise<void> {
    if (this._inFlight) {
      this._again = true;
      return this._inFlight;
    }
    this._loading = true;
    this._changed.emit();
    this._inFlight = this._load();
    try {
      await this._inFlight;
    } finally {
      this._inFlight = null;
      this._loading = false;
      this._changed.emit();
    }
    if (this._again && !this._disposed) {
      this._again = false;
      await this.refresh();
    }
  }

  find(name: string): IFunction | undefined {
    return this._functions.find(f => f.name === name);
  }

  async revealKey(name: string): Promise<string | null> {
    const shown = await this.client.show(this.target, name, { key: true });
    if (shown.key) {
      this._keys.set(name, shown.key);
    }
    this._changed.emit();
    return shown.key;
  }

  hideKey(name: string): void {
    this._keys.delete(name);
    this._changed.emit();
  }

  async rollback(name: string, to?: number): Promise<IRollback> {
    try {
      return await this.client.rollback(this.target, name, to);
    } finally {
      await this.refresh();
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await this.client.delete(this.target, name);
      this._keys.delete(name);
    } finally {
      await this.refresh();
    }
  }

  async call(name: string, payload: string): Promise<ICallResult> {
    const result = await this.client.call(this.target, name, payload);
    void this.refresh(); // the request counters moved
    return result;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    Signal.clearData(this);
  }

  /**
   * What the server extension says a target can do, asked once per spec (the panel and the
   * Publish dialog's picker share the answer); null when it cannot be known (an unknown kind,
   * the server extension unreachable): callers then offer what they would by default.
   */
  async capabilitiesOf(spec: string): Promise<string[] | null> {
    const known = this._capabilities.get(spec);
    if (known) {
      return known;
    }
    try {
      const [described] = await this.client.targets([spec]);
      if (described?.capabilities) {
        this._capabilities.set(spec, described.capabilities);
        return described.capabilities;
      }
    } catch {
      // Unknown capabilities: every action is offered and a missing verb says so when used.
    }
    return null;
  }

  private async _load(): Promise<void> {
    const target = this.target;
    await this.capabilitiesOf(target.spec);
    try {
      const listed = await this.client.list(target);
      if (target !== this.target) {
        return; // the user switched targets meanwhile
      }
      this._functions = listed.functions;
      this._started = listed.started;
      this._metricsError = listed.metrics_error ?? null;
      this._error = null;
      for (const name of [...this._keys.keys()]) {
        if (!this.find(name)) {
          this._keys.delete(name);
        }
      }
    } catch (error) {
      this._error =
        error instanceof DeploymentsError
          ? error
          : new DeploymentsError('internal', String(error), '', 0);
    }
  }

  private _targets: ITargetConfig[] = [...DEFAULT_TARGETS];
  private _targetName = DEFAULT_TARGETS[0].name;
  private _functions: IFunction[] = [];
  private _started = true;
  private _error: DeploymentsError | null = null;
  private _metricsError: { code: string; message: string } | null = null;
  private _loading = false;
  private _inFlight: Promise<void> | null = null;
  private _again = false;
  private _disposed = false;
  private readonly _keys = new Map<string, string>();
  private readonly _capabilities = new Map<string, string[]>();
  private readonly _changed = new Signal<this, void>(this);
}
