/**
 * The comm protocol between this front end and the kernel — the mirror of
 * jupyterlab_publish/kernel/protocol.py. Both sides are tested against the same fixture messages
 * (protocol/fixtures/messages.json) so they cannot drift.
 */

export const COMM_TARGET = 'jupyterlab_publish';
/** Bump on any incompatible change (docs/protocol.md says what changed); a kernel with another
 * version is refused. Versioned apart from the package. */
export const PROTOCOL_VERSION = 5;

export const METHODS = [
  'list_functions',
  'analyze',
  'publish',
  'cancel',
  'check_requirements'
] as const;
export type Method = (typeof METHODS)[number];

export const STAGES = [
  'analysing',
  'sample',
  'pickling',
  'bundling',
  'preflight',
  'pushing',
  'installing',
  'starting',
  'smoke_test',
  'done'
] as const;
export type Stage = (typeof STAGES)[number];

/** Error codes of the kernel, the function server and the bundle runtime: one family, stable, so
 * the UI can map each to an action (jupyterlab_publish/errors.py holds the same list). */
export const KERNEL_ERROR_CODES = [
  'bad_request',
  'unknown_method',
  'syntax_error',
  'no_function',
  'not_defined',
  'stale_cell',
  'not_callable',
  'unpicklable',
  'invalid_name',
  'name_taken',
  'invalid_sample',
  'sample_failed',
  'missing_requirement',
  'preflight_failed',
  'cancelled',
  'busy',
  'internal',
  'unknown_target',
  'unsupported',
  'target_unreachable',
  'target_error',
  'invalid_scale',
  'insecure_target',
  'invalid_bundle',
  'environment_mismatch',
  'smoke_test_failed',
  'not_found',
  'unauthorized',
  'forbidden_origin',
  'payload_too_large',
  'headers_too_large',
  'unavailable',
  'worker_failed',
  'timeout',
  'method_not_allowed',
  'invalid_input',
  'function_error',
  'unserialisable_result',
  'batch_error',
  'bad_gateway'
] as const;
export type KernelErrorCode = (typeof KERNEL_ERROR_CODES)[number];

/** Errors the front end raises itself, before or around the kernel. */
export type ClientErrorCode =
  | 'no_kernel'
  | 'not_python'
  | 'package_missing'
  | 'protocol_mismatch'
  | 'kernel_restarted'
  | 'timeout';

export type ErrorCode = KernelErrorCode | ClientErrorCode;

export interface IErrorInfo {
  code: ErrorCode;
  message: string;
  hint: string;
  details?: { [key: string]: unknown };
}

export interface IFunctionInfo {
  name: string;
  signature: string;
  doc: string;
  line: number;
  is_async: boolean;
  /** The kernel holds a function of that name (the cell has run). */
  defined: boolean;
  /** The cell was edited after it last ran. */
  stale: boolean;
}

export interface IRequirement {
  name: string;
  /** The exact version when pinned with `==`, else empty. */
  version: string;
  why: string;
  /** The PEP 508 line (`scikit-learn==1.5.2`, `pandas[parquet]>=3`); the kernel parses it. */
  requirement?: string;
  chains?: string[];
  modules?: string[];
  /** Installed with `pip install -e`: the pinned version may not exist on the target's index. */
  editable?: boolean;
}

/** A warning or an error of the analysis; `path` leads to the captured object concerned. */
export interface IAnalysisProblem {
  code: string;
  message: string;
  hint: string;
  path?: string;
}

export interface ICapture {
  name: string;
  type: string;
  path: string;
  /** Bytes cloudpickle writes for it (a lower bound unless `size_status` is "measured"). */
  size?: number | null;
  /** "" (not measured), "measured", "over_limit", "timed_out" or "failed". */
  size_status?: string;
}

/** A plugin engine the code loads without importing it, offered to the user (not added). */
export interface IHint {
  distribution: string;
  version: string | null;
  reason: string;
  module: string;
}

/** One pinned distribution of the transitive closure of the requirements. */
export interface ILockEntry {
  name: string;
  version: string;
  required_by: string[];
}

export interface IAnalysis {
  function: {
    name: string;
    qualname: string;
    module: string;
    signature: string;
    doc: string;
  };
  requirements: IRequirement[];
  local_modules: { name: string; path: string; why: string }[];
  captured: ICapture[];
  warnings: IAnalysisProblem[];
  /** What will fail once published (unpicklable captures, a capture over the size limit). */
  errors?: IAnalysisProblem[];
  hints?: IHint[];
  lock?: ILockEntry[];
  preload_modules?: string[];
  suggested_name: string;
  validators: string[];
}

/** Replicas and CPUs for a target that declares the `scale` capability (`Scale.to_dict()` of
 * jupyterlab_publish/targets/scale.py): a fixed `replicas` count, or autoscaling between
 * `min_replicas` and `max_replicas` aiming at `target_ongoing_requests` per replica. The target
 * checks them and refuses with `invalid_scale`, whose `details.field` names the field. */
export interface IScale {
  replicas?: number;
  min_replicas?: number;
  max_replicas?: number;
  target_ongoing_requests?: number;
  cpus?: number;
}

export interface IPublishParams {
  function: string;
  name: string;
  target: string | null;
  /** Where the kernel reads the target's token (protocol 5): an environment variable's name... */
  token_env?: string;
  /** ...or a file's path. The token itself never travels through the browser or the comm. */
  token_file?: string;
  /** Only for a target that scales (protocol 5). */
  scale?: IScale;
  /** What pip accepts, as text the kernel parses (protocol 3). */
  requirements: IRequirementParam[];
  validator: string | null;
  sample: unknown[] | { [key: string]: unknown } | null;
  new_version: boolean;
  notebook_path: string | null;
  cell_id: string | null;
  /** Run the pre-flight check before pushing (the kernel's default: true). */
  preflight?: boolean;
  /** Publish without a key (the kernel's default: false). */
  public?: boolean;
}

export interface IRequirementParam {
  requirement: string;
  why?: string;
}

/** The kernel's reading of requirement texts: one entry (or null) per text, in order. */
export interface ICheckRequirements {
  requirements: ((IRequirement & { installed: string | null }) | null)[];
  errors: { index: number; message: string; hint: string }[];
}

/** `details` of a `missing_requirement` error: the installed distribution to add. */
export interface IMissingRequirement {
  module: string;
  distribution: string;
  version: string;
  /** The declared requirements with this one added, as `name==version` lines. */
  requirements?: string[];
}

export interface IDeployment {
  name: string;
  version: number;
  url: string;
  target: string;
  key: string | null;
  curl: string;
  bundle_path?: string | null;
  /** What to put in the curl body when no sample was given (it holds a placeholder per parameter). */
  curl_note?: string;
  /** For a bundle nothing serves (a `dir:` target): the commands that serve it, so `curl` works. */
  serve?: string | null;
}

/** The kernel's answer to `cancel`: `too_late` once the push began (the new version goes live). */
export interface ICancelReply {
  cancelled: boolean;
  too_late?: boolean;
}

/** Parameters and result of each method. */
export interface IMethods {
  list_functions: {
    params: { code: string; cell_id?: string | null };
    result: { functions: IFunctionInfo[] };
  };
  analyze: {
    params: {
      function: string;
      validator?: string | null;
      /** Size thresholds in bytes or with a unit ("100MB"); the kernel's settings otherwise. */
      size_warning?: number | string | null;
      size_limit?: number | string | null;
    };
    result: IAnalysis;
  };
  publish: { params: IPublishParams; result: IDeployment };
  cancel: { params: { request_id: string }; result: ICancelReply };
  check_requirements: {
    params: { texts: string[] };
    result: ICheckRequirements;
  };
}

export interface IRequest<M extends Method = Method> {
  type: 'request';
  id: string;
  method: M;
  params: IMethods[M]['params'];
}

export interface IHello {
  type: 'hello';
  protocol_version: number;
  package_version: string;
  python_version: string;
  cloudpickle_version: string;
}

export interface IProgress {
  type: 'progress';
  id: string;
  stage: Stage;
  fraction: number;
  message: string;
}

export interface IResultMessage {
  type: 'result';
  id: string;
  result: { [key: string]: unknown };
}

export interface IErrorMessage {
  type: 'error';
  id: string | null;
  error: IErrorInfo;
}

export type Reply = IHello | IProgress | IResultMessage | IErrorMessage;

/** A malformed message; the text says what is wrong with it. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function makeRequest<M extends Method>(
  id: string,
  method: M,
  params: IMethods[M]['params']
): IRequest<M> {
  return { type: 'request', id, method, params };
}

const REQUIRED_PARAMS: { [M in Method]: string[] } = {
  list_functions: ['code'],
  analyze: ['function'],
  publish: ['function', 'name'],
  cancel: ['request_id'],
  check_requirements: []
};

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validate an outgoing request (the same rules the kernel applies). */
export function checkRequest(data: unknown): IRequest {
  if (!isObject(data)) {
    throw new ProtocolError('a request must be a JSON object');
  }
  if (typeof data.id !== 'string' || !data.id) {
    throw new ProtocolError("a request needs a non-empty string 'id'");
  }
  if (data.type !== 'request') {
    throw new ProtocolError(`unexpected message type ${String(data.type)}`);
  }
  if (!METHODS.includes(data.method as Method)) {
    throw new ProtocolError(`unknown method ${String(data.method)}`);
  }
  const params = data.params ?? {};
  if (!isObject(params)) {
    throw new ProtocolError("'params' must be a JSON object");
  }
  for (const key of REQUIRED_PARAMS[data.method as Method]) {
    if (typeof params[key] !== 'string') {
      throw new ProtocolError(
        `${String(data.method)} needs the parameter '${key}'`
      );
    }
  }
  if (data.method === 'publish') {
    // A target's token never crosses the comm: the request says where the kernel reads it.
    if ('token' in params) {
      throw new ProtocolError(
        "publish never carries a token: name where it is with 'token_env' or 'token_file'"
      );
    }
    for (const key of ['token_env', 'token_file']) {
      if (params[key] !== undefined && params[key] !== null) {
        if (typeof params[key] !== 'string') {
          throw new ProtocolError(`publish needs '${key}' to be a string`);
        }
      }
    }
  }
  if (
    data.method === 'check_requirements' &&
    !(
      Array.isArray(params.texts) &&
      params.texts.every(text => typeof text === 'string')
    )
  ) {
    throw new ProtocolError(
      "check_requirements needs 'texts' to be a list of strings"
    );
  }
  return data as unknown as IRequest;
}

/** Validate a message from the kernel and narrow its type. */
export function checkReply(data: unknown): Reply {
  if (!isObject(data)) {
    throw new ProtocolError('a reply must be a JSON object');
  }
  switch (data.type) {
    case 'hello':
      if (typeof data.protocol_version !== 'number') {
        throw new ProtocolError('hello needs a numeric protocol_version');
      }
      return data as unknown as IHello;
    case 'progress':
      if (typeof data.id !== 'string') {
        throw new ProtocolError('progress needs the request id');
      }
      if (!STAGES.includes(data.stage as Stage)) {
        throw new ProtocolError(`unknown progress stage ${String(data.stage)}`);
      }
      return data as unknown as IProgress;
    case 'result':
      if (typeof data.id !== 'string' || !isObject(data.result)) {
        throw new ProtocolError(
          'result needs the request id and an object result'
        );
      }
      return data as unknown as IResultMessage;
    case 'error': {
      const error = data.error;
      if (
        !isObject(error) ||
        !KERNEL_ERROR_CODES.includes(error.code as KernelErrorCode)
      ) {
        throw new ProtocolError(
          "error needs an 'error' object with a known code"
        );
      }
      return data as unknown as IErrorMessage;
    }
    default:
      throw new ProtocolError(`unknown reply type ${String(data.type)}`);
  }
}
