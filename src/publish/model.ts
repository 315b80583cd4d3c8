import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import { asPublishError, PublishError } from '../kernel/errors';
import {
  IAnalysis,
  ICapture,
  ICheckRequirements,
  IHint,
  IMissingRequirement,
  IProgress,
  IPublishParams,
  IRequirement,
  IScale,
  STAGES
} from '../protocol';
import { ITargetConfig, TRANSLATION_DOMAIN } from '../tokens';

/** Endpoint names become URL segments and directory names on every target (same rule as the kernel). */
export const ENDPOINT_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Only to name a row before the kernel has read it; the kernel parses requirements (PEP 508). */
const LEADING_NAME = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/;

export interface IRequirementRow extends IRequirement {
  /** Added by the user rather than found by the analysis. */
  added: boolean;
}

/** Asks the kernel to read requirement texts (the `check_requirements` request). */
export type RequirementChecker = (
  texts: string[]
) => Promise<ICheckRequirements>;

/** The distribution a requirement text names (its leading name), for matching rows only. */
export function requirementName(text: string): string {
  return LEADING_NAME.exec(text)?.[1] ?? text.trim();
}

/** The PEP 508 text a row stands for: its own text, or name plus the edited version or range. */
export function requirementText(row: IRequirement): string {
  if (row.requirement) {
    return row.requirement;
  }
  const version = row.version.trim();
  if (!version) {
    return row.name;
  }
  // A bare version ("2.2.3") is a pin; anything else ("<2", ">=1.8,<2") is a specifier already.
  return /^[0-9]/.test(version)
    ? `${row.name}==${version}`
    : `${row.name}${version}`;
}

/** PEP 503 normalisation, so `Scikit_Learn` and `scikit-learn` are one row. */
export function canonicalName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** Decimal units, as the kernel's size thresholds are written (100MB, 2GB). */
export function formatBytes(size: number): string {
  for (const [unit, factor] of [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3]
  ] as const) {
    if (size >= factor) {
      return `${(size / factor).toFixed(1)} ${unit}`;
    }
  }
  return `${size} B`;
}

/** What to show next to a captured value for its pickled size; empty when it was not measured. */
export function captureSize(
  capture: ICapture,
  trans: TranslationBundle = nullTranslator.load(TRANSLATION_DOMAIN)
): string {
  const size = capture.size ?? null;
  switch (capture.size_status) {
    case 'measured':
      return size === null ? '' : formatBytes(size);
    case 'over_limit':
      return trans.__('> %1 (over the size limit)', formatBytes(size ?? 0));
    case 'timed_out':
      return size
        ? trans.__('≥ %1 (sizing stopped)', formatBytes(size))
        : trans.__('size not measured (time limit)');
    case 'failed':
      return trans.__('does not pickle');
    default:
      return '';
  }
}

/** The installed distribution a `missing_requirement` error asks to add, or null. */
export function missingRequirement(error: unknown): IMissingRequirement | null {
  if (
    !(error instanceof PublishError) ||
    error.code !== 'missing_requirement'
  ) {
    return null;
  }
  const details = error.details as Partial<IMissingRequirement>;
  if (typeof details.distribution !== 'string' || !details.distribution) {
    return null;
  }
  return {
    module: String(details.module ?? ''),
    distribution: details.distribution,
    version: typeof details.version === 'string' ? details.version : ''
  };
}

/** The part of the dialog a failed publish concerns: its message shows next to that field. */
export type FailureField =
  | 'name'
  | 'requirements'
  | 'sample'
  | 'target'
  | 'scale'
  | 'analysis'
  | 'general';

/** The scale settings, as `Scale.to_dict()` names them (jupyterlab_publish/targets/scale.py). */
export const SCALE_FIELDS = [
  'replicas',
  'min_replicas',
  'max_replicas',
  'target_ongoing_requests',
  'cpus'
] as const;
export type ScaleField = (typeof SCALE_FIELDS)[number];

/** The fields each scale mode shows and sends; CPUs per replica go with both. */
export const SCALE_MODE_FIELDS: {
  [mode in 'fixed' | 'autoscale']: ReadonlyArray<ScaleField>;
} = {
  fixed: ['replicas', 'cpus'],
  autoscale: ['min_replicas', 'max_replicas', 'target_ongoing_requests', 'cpus']
};

/** The target picked in the dialog: a configured one by name, or "Other…" with a typed spec. */
export interface ITargetChoice {
  /** A configured target's name; null for "Other…". */
  name: string | null;
  spec: string;
}

/** What the dialog is opened for: the function, where it came from, and the targets to offer. */
export interface IPublishContext {
  functionName: string;
  notebookPath: string | null;
  cellId: string | null;
  /** The spec the settings name as the default (`defaultTarget` of the Publish settings). */
  defaultTarget: string;
  /** The configured targets (Deployments settings), offered by the picker in this order. */
  targets?: ReadonlyArray<ITargetConfig>;
  /** The choice made last time in this notebook, preferred over the default while it exists. */
  lastTarget?: ITargetChoice | null;
  /** What a target can do (the server extension's description); the Scale section needs `scale`. */
  describeTarget?: (spec: string) => Promise<ReadonlyArray<string> | null>;
}

/** What the user can do about a failure, offered as a button next to its message. */
export type FixKind =
  'new_version' | 'rename' | 'add_requirement' | 'skip_preflight' | 'retry';

export interface IFix {
  kind: FixKind;
  label: string;
}

/** A publish that failed, shown inside the dialog; the form keeps everything the user entered. */
export interface IPublishFailure {
  field: FailureField;
  code: string;
  message: string;
  hint: string;
  /** A worker's or pre-flight's log, when the error carries one. */
  log: string;
  fixes: IFix[];
  /** Cancelled: not an error, said as an outcome. */
  cancelled: boolean;
  /** The error's `details.field` (e.g. the scale setting `max_replicas`), when it names one. */
  detail: string | null;
}

/** Where a publish is: shown as the dialog's progress bar. */
export interface IPublishProgress {
  stage: string;
  /** Of the current stage, within [0, 1]. */
  fraction: number;
  message: string;
  /** `Date.now()` when Publish was clicked, for the elapsed time. */
  startedAt: number;
  /** A cancel was asked for; `tooLate` once the kernel said the push had begun. */
  cancelling: boolean;
  tooLate: boolean;
}

/** Overall progress across the stages, for the dialog's bar. */
export function stageProgress(p: { stage: string; fraction: number }): number {
  const index = Math.max(0, STAGES.indexOf(p.stage as IProgress['stage']));
  return Math.min(
    1,
    (index + Math.max(0, Math.min(1, p.fraction))) / STAGES.length
  );
}

/** `m:ss` of a duration in milliseconds. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

/** The dialog field an error code concerns. */
export function failureField(error: PublishError): FailureField {
  switch (error.code) {
    case 'name_taken':
    case 'invalid_name':
      return 'name';
    case 'missing_requirement':
    case 'environment_mismatch':
      return 'requirements';
    case 'bad_request':
      // A refused requirement names its row; other bad requests are bugs.
      return error.details?.field === 'requirements'
        ? 'requirements'
        : 'general';
    case 'invalid_sample':
    case 'sample_failed':
    case 'invalid_input':
    case 'preflight_failed':
    case 'smoke_test_failed':
      return 'sample';
    case 'unknown_target':
    case 'target_unreachable':
    case 'target_error':
    case 'unauthorized':
    case 'insecure_target':
      return 'target';
    case 'invalid_scale':
      return 'scale';
    case 'unpicklable':
    case 'not_defined':
      return 'analysis';
    default:
      return 'general';
  }
}

/**
 * The state of the Publish dialog and its validation, kept apart from React so it is tested
 * directly. Every setter returns nothing; `errors` is recomputed from the state.
 */
export class PublishFormModel {
  constructor(
    readonly analysis: IAnalysis,
    readonly context: IPublishContext,
    private readonly _trans: TranslationBundle = nullTranslator.load(
      TRANSLATION_DOMAIN
    ),
    /** Reads requirement texts in the kernel; without one, texts are sent unread and the
     * kernel refuses a bad one when publishing. */
    private readonly _check: RequirementChecker | null = null
  ) {
    this.name = analysis.suggested_name;
    this.targets = context.targets ?? [];
    const last = context.lastTarget;
    if (last?.name && this.targets.some(t => t.name === last.name)) {
      this.pickTarget(last.name);
    } else {
      this.target = last && !last.name ? last.spec : context.defaultTarget;
    }
    this.requirements = analysis.requirements.map(r => ({
      ...r,
      added: false
    }));
  }

  name: string;
  /** The configured targets the picker offers (may be empty: then only "Other…"). */
  readonly targets: ReadonlyArray<ITargetConfig>;
  /** The picked configured target's name; null when "Other…" is picked. */
  targetName: string | null = null;
  /** The spec typed under "Other…" (kept while another target is picked). */
  otherTarget = '';
  /** How the replicas are given, when the target scales. */
  scaleMode: 'fixed' | 'autoscale' = 'fixed';
  /** The scale inputs as typed (kept across mode switches and failures). */
  scaleInputs: { [field in ScaleField]: string } = {
    replicas: '',
    min_replicas: '',
    max_replicas: '',
    target_ongoing_requests: '',
    cpus: ''
  };
  validator: string | null = null;
  sampleText = '';
  /** Callable without the function's key (function-server targets; others ignore it). */
  isPublic = false;
  requirements: IRequirementRow[];
  /** The last publish's failure, shown next to its field until that field is edited. */
  failure: IPublishFailure | null = null;
  /** Set while a publish runs. */
  progress: IPublishProgress | null = null;

  get publishing(): boolean {
    return this.progress !== null;
  }

  /** The spec to publish to: the picked target's, or the one typed under "Other…". */
  get target(): string {
    return this.targetConfig?.spec ?? this.otherTarget.trim();
  }

  /** Choose by spec: the first configured target with that spec, else "Other…" with it typed. */
  set target(spec: string) {
    const configured = this.targets.find(t => t.spec === spec.trim());
    if (configured) {
      this.targetName = configured.name;
    } else {
      this.targetName = null;
      this.otherTarget = spec;
    }
  }

  /** The picked configured target (with where its token is), or null for "Other…". */
  get targetConfig(): ITargetConfig | null {
    return this.targets.find(t => t.name === this.targetName) ?? null;
  }

  /** What the next dialog in this notebook starts from. */
  get targetChoice(): ITargetChoice {
    return { name: this.targetConfig?.name ?? null, spec: this.target };
  }

  /** Pick a configured target by name, or "Other…" with null. */
  pickTarget(name: string | null): void {
    this.targetName =
      name !== null && this.targets.some(t => t.name === name) ? name : null;
  }

  /**
   * Ask what the current target can do, once per spec; resolves true when that changed what the
   * dialog shows (the Scale section appears for a target with the `scale` capability).
   */
  async loadCapabilities(): Promise<boolean> {
    const spec = this.target;
    const describe = this.context.describeTarget;
    if (!describe || !spec || this._capabilities.has(spec)) {
      return false;
    }
    this._capabilities.set(spec, null); // asked: one request per spec
    let capabilities: ReadonlyArray<string> | null = null;
    try {
      capabilities = await describe(spec);
    } catch {
      capabilities = null; // unknown: the section stays hidden; the kernel still checks scale
    }
    this._capabilities.set(spec, capabilities);
    return capabilities !== null && spec === this.target;
  }

  /** What the current target can do, once described; null while unknown. */
  get capabilities(): ReadonlyArray<string> | null {
    return this._capabilities.get(this.target) ?? null;
  }

  /** The current target takes scale settings (it declares the `scale` capability). */
  get canScale(): boolean {
    return this._capabilities.get(this.target)?.includes('scale') ?? false;
  }

  /** Where a scale failure shows: under the input its `details.field` names when that input is
   * shown, else at the top of the Scale section (or by the target when the section is hidden). */
  get scaleFailureAt(): ScaleField | 'section' | null {
    const failure = this.failure;
    if (!failure || failure.field !== 'scale') {
      return null;
    }
    const shown = this.canScale ? SCALE_MODE_FIELDS[this.scaleMode] : [];
    return shown.includes(failure.detail as ScaleField)
      ? (failure.detail as ScaleField)
      : 'section';
  }

  /** Publish was clicked: show the bar from its first stage. */
  startPublishing(now = Date.now()): void {
    this.failure = null;
    this.progress = {
      stage: STAGES[0],
      fraction: 0,
      message: '',
      startedAt: now,
      cancelling: false,
      tooLate: false
    };
  }

  onProgress(p: IProgress): void {
    if (this.progress) {
      this.progress = {
        ...this.progress,
        stage: p.stage,
        fraction: p.fraction,
        message: p.message
      };
    }
  }

  /** The publish ended without a deployment: keep the form, show why next to its field. */
  fail(error: unknown, params: IPublishParams): void {
    this.progress = null;
    const err = asPublishError(error, this._trans);
    const log =
      typeof err.details?.log === 'string' ? (err.details.log as string) : '';
    const cancelled = err.code === 'cancelled';
    this.failure = {
      field: cancelled ? 'general' : failureField(err),
      code: err.code,
      message: cancelled
        ? this._trans.__(
            'Publishing was cancelled; nothing changed on the target.'
          )
        : err.message,
      hint: cancelled ? '' : err.hint,
      log,
      fixes: cancelled ? [] : this._fixes(err, params),
      cancelled,
      detail:
        typeof err.details?.field === 'string'
          ? (err.details.field as string)
          : null
    };
    if (err.code === 'missing_requirement') {
      this._missing = missingRequirement(err);
    }
    this._lastParams = params;
  }

  /**
   * Apply a fix the failure offered; the parameters to publish with next, or null when the fix
   * only changes the form (e.g. "Choose another name": the user types it, then clicks Publish).
   */
  applyFix(kind: FixKind): IPublishParams | null {
    this.failure = null;
    // A retry keeps the choices of the attempt that failed (a new version, a skipped check).
    const last = this._lastParams;
    const again = (): IPublishParams => ({
      ...this.toParams(last?.new_version ?? false),
      ...(last?.preflight === false ? { preflight: false } : {})
    });
    switch (kind) {
      case 'new_version':
        return { ...again(), new_version: true };
      case 'add_requirement': {
        const missing = this._missing;
        if (missing) {
          this._setRequirement(
            missing.distribution,
            missing.version,
            this._trans.__('added after the pre-flight check')
          );
        }
        return again();
      }
      case 'skip_preflight':
        return { ...again(), preflight: false };
      case 'retry':
        return again();
      case 'rename':
      default:
        return null;
    }
  }

  /** A field was edited: a failure about it no longer holds. */
  edited(field: FailureField): void {
    if (this.failure?.field === field) {
      this.failure = null;
    }
  }

  private _fixes(err: PublishError, params: IPublishParams): IFix[] {
    const trans = this._trans;
    switch (err.code) {
      case 'name_taken':
        return [
          { kind: 'new_version', label: trans.__('Publish as a new version') },
          { kind: 'rename', label: trans.__('Choose another name') }
        ];
      case 'missing_requirement': {
        const missing = missingRequirement(err);
        if (!missing) {
          return [];
        }
        const pin = missing.version
          ? `${missing.distribution}==${missing.version}`
          : missing.distribution;
        const listed = this.requirements.find(
          r => canonicalName(r.name) === canonicalName(missing.distribution)
        );
        // Already added and still missing: offering it again would loop.
        if (listed && (!missing.version || requirementText(listed) === pin)) {
          return [];
        }
        return [
          {
            kind: 'add_requirement',
            label: trans.__('Add %1 and publish again', pin)
          }
        ];
      }
      case 'preflight_failed':
        return params.preflight === false
          ? []
          : [
              {
                kind: 'skip_preflight',
                label: trans.__('Publish without the check')
              }
            ];
      case 'target_unreachable':
      case 'timeout':
      case 'busy':
        return [{ kind: 'retry', label: trans.__('Try again') }];
      default:
        return [];
    }
  }

  /** Add a row, or re-pin the listed one, keeping the user's other edits. */
  private _setRequirement(name: string, version: string, why: string): void {
    const existing = this.requirements.find(
      r => canonicalName(r.name) === canonicalName(name)
    );
    if (existing) {
      existing.version = version;
      delete existing.requirement;
    } else {
      this.requirements.push({ name, version, why, added: true });
    }
    this._requirementErrors.delete(canonicalName(name));
  }

  /** Add what pip accepts (`pandas==2.2.3`, `scikit-learn>=1.8`, `pandas[parquet]`); the kernel
   * reads it. Resolves to an error message, or null when added. */
  async addRequirement(text: string): Promise<string | null> {
    const trimmed = text.trim();
    const leading = LEADING_NAME.exec(trimmed);
    if (!leading) {
      return this._trans.__(
        '"%1" is not a requirement: write what pip accepts, e.g. pandas==2.2.3 or scikit-learn>=1.8.',
        trimmed
      );
    }
    let entry: IRequirement = {
      name: leading[1],
      version: '',
      why: this._trans.__('added by you'),
      requirement: trimmed
    };
    if (this._check) {
      const checked = await this._check([trimmed]);
      const refused = checked.errors[0];
      if (refused || !checked.requirements[0]) {
        return refused
          ? `${refused.message} ${refused.hint}`.trim()
          : this._trans.__('The kernel could not read "%1".', trimmed);
      }
      entry = { ...checked.requirements[0], why: entry.why };
    }
    const existing = this.requirements.find(
      r => canonicalName(r.name) === canonicalName(entry.name)
    );
    if (existing) {
      existing.version = entry.version;
      existing.requirement = entry.requirement;
    } else {
      this.requirements.push({ ...entry, added: true });
    }
    this._requirementErrors.delete(canonicalName(entry.name));
    return null;
  }

  /** Ask the kernel to read every row; its refusals show as the requirements field's error. */
  async checkRequirements(): Promise<void> {
    if (!this._check || this.requirements.length === 0) {
      return;
    }
    const rows = [...this.requirements];
    const checked = await this._check(rows.map(requirementText));
    this._requirementErrors.clear();
    for (const error of checked.errors) {
      const row = rows[error.index];
      if (row) {
        this._requirementErrors.set(
          canonicalName(row.name),
          `${error.message} ${error.hint}`.trim()
        );
      }
    }
  }

  /** The analysis' plugin-engine hints whose distribution is not a requirement (yet). */
  get pendingHints(): IHint[] {
    const listed = new Set(this.requirements.map(r => canonicalName(r.name)));
    return (this.analysis.hints ?? []).filter(
      h => !listed.has(canonicalName(h.distribution))
    );
  }

  /** Add a hinted distribution, pinned to its installed version, with the hint's reason as why. */
  acceptHint(hint: IHint): void {
    if (
      this.requirements.some(
        r => canonicalName(r.name) === canonicalName(hint.distribution)
      )
    ) {
      return;
    }
    this.requirements.push({
      name: hint.distribution,
      version: hint.version ?? '',
      why: hint.reason,
      added: true
    });
  }

  removeRequirement(name: string): void {
    this.requirements = this.requirements.filter(r => r.name !== name);
    this._requirementErrors.delete(canonicalName(name));
  }

  /** Edit a row's version: a bare version pins it, a specifier (`>=1.8,<2`) makes it a range. */
  setVersion(name: string, version: string): void {
    const row = this.requirements.find(r => r.name === name);
    if (row) {
      row.version = version.trim();
      delete row.requirement; // the row's text is now its name and this version
      this._requirementErrors.delete(canonicalName(name));
    }
  }

  /** Field → message for every invalid field; empty when the form can be submitted. */
  get errors(): { [field: string]: string } {
    const errors: { [field: string]: string } = {};
    if (!ENDPOINT_NAME.test(this.name)) {
      errors.name = this._trans.__(
        'Use 1–63 lowercase letters, digits and dashes, starting with a letter.'
      );
    }
    const refused = [...this._requirementErrors.values()];
    if (refused.length) {
      errors.requirements = refused.join('\n');
    }
    const sample = this._parseSample();
    if (sample.error) {
      errors.sample = sample.error;
    }
    if (this.targetName === null && !this.otherTarget.trim()) {
      errors.target = this._trans.__(
        'Type a target spec (local, dir:/path, http://host:port), or pick a configured target.'
      );
    }
    const scale = this._parseScale();
    if (scale.error) {
      errors.scale = scale.error;
    }
    // About values the function captured, not about this form: no edit here clears them.
    const blocking = this.analysis.errors ?? [];
    if (blocking.length) {
      errors.analysis = this._trans._n(
        'One problem blocks publishing: fix it in the notebook (the fix is given with it), run the cell again, and publish again.',
        '%1 problems block publishing: fix them in the notebook (the fix is given with each), run the cells again, and publish again.',
        blocking.length
      );
    }
    return errors;
  }

  get isValid(): boolean {
    return Object.keys(this.errors).length === 0;
  }

  /** The publish request parameters; call only when `isValid`. */
  toParams(newVersion = false): IPublishParams {
    const config = this.targetConfig;
    const scale = this._parseScale().value;
    return {
      function: this.context.functionName,
      name: this.name,
      target: this.target || null,
      // Where the kernel reads the token; never the token (the settings never hold it).
      ...(config?.tokenEnv ? { token_env: config.tokenEnv } : {}),
      ...(config?.tokenFile ? { token_file: config.tokenFile } : {}),
      ...(scale ? { scale } : {}),
      requirements: this.requirements.map(row => ({
        requirement: requirementText(row),
        why: row.why
      })),
      validator: this.validator,
      sample: this._parseSample().value,
      new_version: newVersion,
      notebook_path: this.context.notebookPath,
      cell_id: this.context.cellId,
      public: this.isPublic
    };
  }

  private _parseSample(): { value: IPublishParams['sample']; error?: string } {
    const text = this.sampleText.trim();
    if (!text) {
      return { value: null };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return {
        value: null,
        error: this._trans.__(
          'The sample is not valid JSON: %1',
          (error as Error).message
        )
      };
    }
    if (typeof value !== 'object' || value === null) {
      return {
        value: null,
        error: this._trans.__(
          'The sample must be a JSON array of positional arguments or an object of named arguments, e.g. [[0.5, 0.5]].'
        )
      };
    }
    return { value: value as IPublishParams['sample'] };
  }

  /**
   * The scale to send: only for a target that scales, only the current mode's fields, only those
   * given. The target checks ranges and contradictions (one rule, the kernel's); here only that
   * each is a number, so a typo never travels as a string.
   */
  private _parseScale(): { value: IScale | null; error?: string } {
    if (!this.canScale) {
      return { value: null };
    }
    const value: IScale = {};
    for (const field of SCALE_MODE_FIELDS[this.scaleMode]) {
      const text = this.scaleInputs[field].trim();
      if (!text) {
        continue;
      }
      const number = Number(text);
      if (!Number.isFinite(number)) {
        return {
          value: null,
          error: this._trans.__('%1 must be a number, not "%2".', field, text)
        };
      }
      value[field] = number;
    }
    return { value: Object.keys(value).length ? value : null };
  }

  /** Spec → its capabilities (null: asked, or unknown). */
  private readonly _capabilities = new Map<
    string,
    ReadonlyArray<string> | null
  >();
  /** Canonical name → the kernel's reason for refusing that row. */
  private _requirementErrors = new Map<string, string>();
  /** The parameters of the publish that failed last. */
  private _lastParams: IPublishParams | null = null;
  /** The distribution the last `missing_requirement` failure asked to add. */
  private _missing: ReturnType<typeof missingRequirement> = null;
}
