import { ServerConnection } from '@jupyterlab/services';

import { IScale } from '../protocol';
import { ITargetConfig } from '../tokens';

/** The REST API of the server extension (jupyterlab_publish/server/openapi.json). */
export const API_ROUTE = 'jupyterlab-publish';

export type FunctionStatus = 'healthy' | 'starting' | 'restarting' | 'failed';

export interface IProvenance {
  /** The notebook's path as the kernel saw it (relative to JupyterLab's root, or absolute). */
  notebook?: string | null;
  /** The same notebook as a path JupyterLab can open; null when it is outside its root. */
  notebook_path?: string | null;
  cell_id?: string | null;
  source_hash?: string | null;
  git_commit?: string | null;
  user?: string | null;
  package_version?: string | null;
}

export interface IVersion {
  version: number;
  status: 'staging' | 'live' | 'retired' | 'failed' | 'stored';
  created: string | null;
  function?: { name?: string; signature?: string; doc?: string } | null;
  provenance?: IProvenance | null;
}

export interface IMetrics {
  requests: number;
  errors: number;
  /** Share of 5xx answers; null before the first call. */
  error_rate: number | null;
  /** Seconds. */
  p50: number | null;
  p99: number | null;
  in_flight: number;
}

export interface IFunction {
  name: string;
  url: string;
  live_version: number | null;
  public: boolean | null;
  keyed: boolean;
  /** Only when asked for (`show(..., { key: true })`). */
  key: string | null;
  status: FunctionStatus | null;
  processes: number | null;
  restarts: number | null;
  versions: IVersion[];
  metrics: IMetrics | null;
  provenance: IProvenance | null;
  /** The live version's replicas and CPUs on a target that scales (`Scale.to_dict()`); else absent or null. */
  scale?: IScale | null;
}

export interface IFunctionList {
  target: string;
  /** False when the target's server is not running: nothing is served. */
  started: boolean;
  functions: IFunction[];
  metrics_error: { code: string; message: string } | null;
}

export interface ITargetDescription {
  spec: string;
  kind?: string;
  label?: string;
  started?: boolean;
  capabilities?: string[];
  error?: { code: string; message: string; hint?: string };
}

export interface IRollback {
  name: string;
  version: number;
  previous_version: number | null;
  url: string;
}

export interface ILogs {
  name: string;
  version: number;
  log: string;
  /** Pass back as `since` to get only the lines written after this answer. */
  cursor: string;
  /** The cursor was not found: `log` is the whole window, not a continuation. */
  gap: boolean;
}

export interface ICallResult {
  name: string;
  status: number;
  ok: boolean;
  answer: unknown;
}

/** A refusal of the API: the project's stable error code, message and hint. */
export class DeploymentsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'DeploymentsError';
  }
}

/** Talks to the server extension with the Jupyter session (auth and XSRF come from ServerConnection). */
export class DeploymentsClient {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  async targets(specs: string[]): Promise<ITargetDescription[]> {
    const query = specs.map(s => `spec=${encodeURIComponent(s)}`).join('&');
    const body = await this._request<{ targets: ITargetDescription[] }>(
      `targets?${query}`
    );
    return body.targets;
  }

  list(target: ITargetConfig): Promise<IFunctionList> {
    return this._request(`functions?${targetQuery(target)}`);
  }

  show(
    target: ITargetConfig,
    name: string,
    options: { key?: boolean } = {}
  ): Promise<IFunction> {
    const key = options.key ? '&key=true' : '';
    return this._request(`${functionPath(name)}?${targetQuery(target)}${key}`);
  }

  rollback(
    target: ITargetConfig,
    name: string,
    to?: number
  ): Promise<IRollback> {
    return this._request(
      `${functionPath(name)}/rollback?${targetQuery(target)}`,
      {
        method: 'POST',
        body: JSON.stringify(to === undefined ? {} : { to })
      }
    );
  }

  delete(target: ITargetConfig, name: string): Promise<{ deleted: string }> {
    return this._request(`${functionPath(name)}?${targetQuery(target)}`, {
      method: 'DELETE'
    });
  }

  logs(
    target: ITargetConfig,
    name: string,
    options: { version?: number; lines?: number; since?: string } = {}
  ): Promise<ILogs> {
    let query = targetQuery(target);
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined && value !== '') {
        query += `&${key}=${encodeURIComponent(String(value))}`;
      }
    }
    return this._request(`${functionPath(name)}/logs?${query}`);
  }

  /** Call the function server-side with its key; `payload` is the JSON text the user typed. */
  call(
    target: ITargetConfig,
    name: string,
    payload: string
  ): Promise<ICallResult> {
    return this._request(`${functionPath(name)}/call?${targetQuery(target)}`, {
      method: 'POST',
      body: payload
    });
  }

  /**
   * The function's documentation page through the server extension (fetched with the admin
   * token, sandboxed: no scripts), for a target the browser cannot reach itself.
   */
  docsUrl(target: ITargetConfig, name: string): string {
    return this._url(`${functionPath(name)}/docs?${targetQuery(target)}`);
  }

  private _url(path: string): string {
    return `${this.serverSettings.baseUrl.replace(/\/$/, '')}/${API_ROUTE}/${path}`;
  }

  private async _request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const url = this._url(path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        url,
        init,
        this.serverSettings
      );
    } catch (error) {
      throw new DeploymentsError(
        'target_unreachable',
        `cannot reach the Jupyter server: ${(error as Error).message}`,
        'check that JupyterLab is still running',
        0
      );
    }
    const text = await response.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      if (body && typeof body.error === 'string') {
        throw new DeploymentsError(
          body.error,
          body.message ?? '',
          body.hint ?? '',
          response.status
        );
      }
      if (response.status === 404 && !body) {
        throw new DeploymentsError(
          'not_found',
          'the jupyterlab-publish server extension is not running',
          'enable it with `jupyter server extension enable jupyterlab_publish` and restart JupyterLab',
          404
        );
      }
      throw new DeploymentsError(
        'internal',
        body?.message ?? `HTTP ${response.status}`,
        '',
        response.status
      );
    }
    return body as T;
  }
}

export function targetQuery(target: ITargetConfig): string {
  const parts = [`target=${encodeURIComponent(target.spec)}`];
  if (target.tokenEnv) {
    parts.push(`token_env=${encodeURIComponent(target.tokenEnv)}`);
  }
  if (target.tokenFile) {
    parts.push(`token_file=${encodeURIComponent(target.tokenFile)}`);
  }
  return parts.join('&');
}

function functionPath(name: string): string {
  return `functions/${encodeURIComponent(name)}`;
}
