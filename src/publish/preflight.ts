import { TranslationBundle } from '@jupyterlab/translation';

import { PublishError } from '../kernel/errors';
import { IPublishParams } from '../protocol';
import { canonicalName, missingRequirement, requirementName } from './model';

export { missingRequirement };

/** A second attempt the error dialog can offer after the kernel's pre-flight check failed. */
export interface IRetry {
  /** The dialog button, e.g. "Add pandas==3.1.1 and publish again". */
  label: string;
  params: IPublishParams;
}

/** `params` with the distribution added, or re-pinned when it is listed already; `why` says where it
 * came from (the caller translates it). */
export function withRequirement(
  params: IPublishParams,
  name: string,
  version: string,
  why = 'added after the pre-flight check'
): IPublishParams {
  const others = params.requirements.filter(
    r => canonicalName(requirementName(r.requirement)) !== canonicalName(name)
  );
  const requirement = version ? `${name}==${version}` : name;
  return {
    ...params,
    requirements: [...others, { requirement, why }]
  };
}

/**
 * What to offer after a failed pre-flight check: add the distribution the function turned out to
 * need, or publish without the check (a function whose answer is not deterministic, a target with
 * another Python). Null when there is nothing sensible to retry, e.g. the distribution was
 * already added and is still reported missing, so the dialog never loops.
 */
export function preflightRetry(
  error: unknown,
  params: IPublishParams,
  trans: TranslationBundle
): IRetry | null {
  const missing = missingRequirement(error);
  if (missing) {
    const pin = missing.version
      ? `${missing.distribution}==${missing.version}`
      : missing.distribution;
    const listed = params.requirements.find(
      r =>
        canonicalName(requirementName(r.requirement)) ===
        canonicalName(missing.distribution)
    );
    if (
      listed &&
      (!missing.version || listed.requirement.replace(/\s/g, '') === pin)
    ) {
      return null;
    }
    return {
      label: trans.__('Add %1 and publish again', pin),
      params: withRequirement(
        params,
        missing.distribution,
        missing.version,
        trans.__('added after the pre-flight check')
      )
    };
  }
  if (
    error instanceof PublishError &&
    error.code === 'preflight_failed' &&
    params.preflight !== false
  ) {
    return {
      label: trans.__('Publish without the check'),
      params: { ...params, preflight: false }
    };
  }
  return null;
}
