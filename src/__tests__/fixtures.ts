import * as fs from 'fs';
import * as path from 'path';

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
