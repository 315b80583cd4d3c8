import { nullTranslator } from '@jupyterlab/translation';

import { PublishError } from '../kernel/errors';
import {
  checkReply,
  checkRequest,
  IErrorMessage,
  IPublishParams,
  makeRequest
} from '../protocol';
import {
  missingRequirement,
  preflightRetry,
  withRequirement
} from '../publish/preflight';
import { loadProtocolFixtures } from './fixtures';

const trans = nullTranslator.load('jupyterlab');
const fixtures = loadProtocolFixtures();

/** The kernel's error for `code`, as the fixtures shared with pytest spell it. */
function kernelError(code: string): PublishError {
  const message = fixtures.replies.valid.find(
    (m: any) => m.type === 'error' && m.error.code === code
  );
  return PublishError.fromInfo((checkReply(message) as IErrorMessage).error);
}

function params(overrides: Partial<IPublishParams> = {}): IPublishParams {
  return {
    function: 'summarise',
    name: 'summarise',
    target: 'local',
    requirements: [{ requirement: 'numpy==2.4.6', why: 'numpy' }],
    validator: null,
    sample: [[1, 2, 3]],
    new_version: true,
    notebook_path: 'stats.ipynb',
    cell_id: 'c-1',
    ...overrides
  };
}

describe('after a failed pre-flight check', () => {
  it('offers to add the missing distribution and publish the same thing again', () => {
    const error = kernelError('missing_requirement');
    expect(missingRequirement(error)).toEqual({
      module: 'pandas',
      distribution: 'pandas',
      version: '3.1.1'
    });
    const retry = preflightRetry(error, params(), trans);
    expect(retry?.label).toBe('Add pandas==3.1.1 and publish again');
    expect(retry?.params).toEqual(
      params({
        requirements: [
          { requirement: 'numpy==2.4.6', why: 'numpy' },
          {
            requirement: 'pandas==3.1.1',
            why: 'added after the pre-flight check'
          }
        ]
      })
    );
    // what is sent again is a valid publish request
    expect(() =>
      checkRequest(makeRequest('r2', 'publish', retry!.params))
    ).not.toThrow();
  });

  it('re-pins a distribution listed at another version, and never loops on the same one', () => {
    const error = kernelError('missing_requirement');
    const older = params({
      requirements: [{ requirement: 'Pandas==2.0.0' }]
    });
    expect(preflightRetry(error, older, trans)?.params.requirements).toEqual([
      { requirement: 'pandas==3.1.1', why: 'added after the pre-flight check' }
    ]);
    const already = params({
      requirements: [{ requirement: 'pandas == 3.1.1' }]
    });
    expect(preflightRetry(error, already, trans)).toBeNull();
  });

  it('offers to publish without the check when the answer differs, once', () => {
    const error = kernelError('preflight_failed');
    const retry = preflightRetry(error, params(), trans);
    expect(retry?.label).toBe('Publish without the check');
    expect(retry?.params).toEqual(params({ preflight: false }));
    expect(preflightRetry(error, retry!.params, trans)).toBeNull();
  });

  it('offers nothing for other errors or a missing_requirement without a distribution', () => {
    expect(
      preflightRetry(kernelError('not_defined'), params(), trans)
    ).toBeNull();
    expect(preflightRetry(new Error('boom'), params(), trans)).toBeNull();
    const bare = new PublishError('missing_requirement', 'needs x', '', {
      module: 'x'
    });
    expect(missingRequirement(bare)).toBeNull();
    expect(preflightRetry(bare, params(), trans)).toBeNull();
  });

  it('adds requirements by canonical name', () => {
    const added = withRequirement(params(), 'scikit-learn', '1.9.1');
    expect(
      withRequirement(added, 'Scikit_Learn', '1.9.2').requirements
    ).toEqual([
      { requirement: 'numpy==2.4.6', why: 'numpy' },
      {
        requirement: 'Scikit_Learn==1.9.2',
        why: 'added after the pre-flight check'
      }
    ]);
  });
});
