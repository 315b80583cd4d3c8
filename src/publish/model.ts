import { IAnalysis, ICapture, IHint, IPublishParams, IRequirement } from '../protocol';

/** Endpoint names become URL segments and directory names on every target (same rule as the kernel). */
export const ENDPOINT_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const REQUIREMENT = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:==\s*([A-Za-z0-9.+!_-]+))?\s*$/;
const VERSION = /^[A-Za-z0-9.+!_-]*$/;

export interface IRequirementRow extends IRequirement {
  /** Added by the user rather than found by the analysis. */
  added: boolean;
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
export function captureSize(capture: ICapture): string {
  const size = capture.size ?? null;
  switch (capture.size_status) {
    case 'measured':
      return size === null ? '' : formatBytes(size);
    case 'over_limit':
      return `> ${formatBytes(size ?? 0)} (over the size limit)`;
    case 'timed_out':
      return size ? `≥ ${formatBytes(size)} (sizing stopped)` : 'size not measured (time limit)';
    case 'failed':
      return 'does not pickle';
    default:
      return '';
  }
}

/**
 * The state of the Publish dialog and its validation, kept apart from React so it is tested
 * directly. Every setter returns nothing; `errors` is recomputed from the state.
 */
export class PublishFormModel {
  constructor(
    readonly analysis: IAnalysis,
    readonly context: {
      functionName: string;
      notebookPath: string | null;
      cellId: string | null;
      defaultTarget: string;
    }
  ) {
    this.name = analysis.suggested_name;
    this.target = context.defaultTarget;
    this.requirements = analysis.requirements.map(r => ({ ...r, added: false }));
  }

  name: string;
  target: string;
  validator: string | null = null;
  sampleText = '';
  /** Callable without the function's key (function-server targets; others ignore it). */
  isPublic = false;
  requirements: IRequirementRow[];

  /** Add `name` or `name==version`; returns an error message, or null when added. */
  addRequirement(text: string): string | null {
    const match = REQUIREMENT.exec(text);
    if (!match) {
      return `"${text}" is not a requirement: write a name, optionally with ==version (e.g. pandas==2.2.3).`;
    }
    const [, name, version = ''] = match;
    const existing = this.requirements.find(r => canonicalName(r.name) === canonicalName(name));
    if (existing) {
      existing.version = version || existing.version;
      return null;
    }
    this.requirements.push({ name, version, why: 'added by you', added: true });
    return null;
  }

  /** The analysis' plugin-engine hints whose distribution is not a requirement (yet). */
  get pendingHints(): IHint[] {
    const listed = new Set(this.requirements.map(r => canonicalName(r.name)));
    return (this.analysis.hints ?? []).filter(h => !listed.has(canonicalName(h.distribution)));
  }

  /** Add a hinted distribution, pinned to its installed version, with the hint's reason as why. */
  acceptHint(hint: IHint): void {
    if (this.requirements.some(r => canonicalName(r.name) === canonicalName(hint.distribution))) {
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
  }

  setVersion(name: string, version: string): void {
    const row = this.requirements.find(r => r.name === name);
    if (row) {
      row.version = version.trim();
    }
  }

  /** Field → message for every invalid field; empty when the form can be submitted. */
  get errors(): { [field: string]: string } {
    const errors: { [field: string]: string } = {};
    if (!ENDPOINT_NAME.test(this.name)) {
      errors.name =
        'Use 1–63 lowercase letters, digits and dashes, starting with a letter.';
    }
    const badVersion = this.requirements.find(r => !VERSION.test(r.version));
    if (badVersion) {
      errors.requirements = `"${badVersion.version}" is not a version of ${badVersion.name}.`;
    }
    const sample = this._parseSample();
    if (sample.error) {
      errors.sample = sample.error;
    }
    // About values the function captured, not about this form: no edit here clears them.
    const blocking = this.analysis.errors ?? [];
    if (blocking.length) {
      errors.analysis =
        `${blocking.length === 1 ? 'A captured value' : `${blocking.length} captured values`} will not ` +
        'work once published. Fix the cell so the function no longer captures them, run it again, ' +
        'and publish again.';
    }
    return errors;
  }

  get isValid(): boolean {
    return Object.keys(this.errors).length === 0;
  }

  /** The publish request parameters; call only when `isValid`. */
  toParams(newVersion = false): IPublishParams {
    return {
      function: this.context.functionName,
      name: this.name,
      target: this.target || null,
      requirements: this.requirements.map(({ name, version }) => ({ name, version })),
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
      return { value: null, error: `The sample is not valid JSON: ${(error as Error).message}` };
    }
    if (typeof value !== 'object' || value === null) {
      return {
        value: null,
        error:
          'The sample must be a JSON array of positional arguments or an object of named arguments, e.g. [[0.5, 0.5]].'
      };
    }
    return { value: value as IPublishParams['sample'] };
  }
}
