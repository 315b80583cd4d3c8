import * as fs from 'fs';
import * as path from 'path';

import { IAnalysis } from '../protocol';

/** The fixture messages pytest checks too (jupyterlab_publish/tests/test_protocol.py). */
export function loadProtocolFixtures(): any {
  const file = path.resolve(
    __dirname,
    '..',
    '..',
    'protocol',
    'fixtures',
    'messages.json'
  );
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const NUMPY_WHY = 'predictor → import numpy → numpy 2.1.3';

/** The example's `predictor(x)` as the kernel analyses it (numpy only); `changes` override fields. */
export function predictorAnalysis(changes: Partial<IAnalysis> = {}): IAnalysis {
  return {
    function: {
      name: 'predictor',
      qualname: 'predictor',
      module: '__main__',
      signature: '(x)',
      doc: ''
    },
    requirements: [{ name: 'numpy', version: '2.1.3', why: NUMPY_WHY }],
    local_modules: [],
    captured: [],
    warnings: [],
    suggested_name: 'predictor',
    validators: ['validator'],
    ...changes
  };
}
