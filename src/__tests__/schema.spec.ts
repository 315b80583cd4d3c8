import Ajv2020 from 'ajv/dist/2020';
import * as fs from 'fs';
import * as path from 'path';

import { IAnalysis, IDeployment, IPublishParams } from '../protocol';
import { PublishFormModel } from '../publish/model';
import { loadProtocolFixtures } from './fixtures';

/** The JSON Schemas pytest validates against too (jupyterlab_publish/tests/test_protocol_schema.py). */
const SCHEMA_DIR = path.resolve(__dirname, '..', '..', 'protocol', 'schema');
const schemas = fs
  .readdirSync(SCHEMA_DIR)
  .filter(name => name.endsWith('.schema.json'))
  .map(name =>
    JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, name), 'utf8'))
  );
const ajv = new Ajv2020({ allErrors: true, strict: false });
schemas.forEach(schema => ajv.addSchema(schema));
const base = (
  schemas.find(s => s.$id.endsWith('/messages.schema.json')).$id as string
).replace(/messages\.schema\.json$/, '');

function check(reference: string, instance: unknown): string[] {
  const validate = ajv.getSchema(base + reference);
  if (!validate) {
    throw new Error(`no schema ${reference}`);
  }
  return validate(instance)
    ? []
    : (validate.errors ?? []).map(e => `${e.instancePath} ${e.message}`);
}

const fixtures = loadProtocolFixtures();
const methods: { [id: string]: string } = Object.fromEntries(
  fixtures.requests.valid.map((m: any) => [m.id, m.method])
);

describe('the protocol schemas', () => {
  it('are all loaded, each under its own id', () => {
    expect(schemas.length).toBeGreaterThanOrEqual(5);
    for (const schema of schemas) {
      expect(schema.$schema).toBe(
        'https://json-schema.org/draft/2020-12/schema'
      );
    }
  });

  it.each(
    [...fixtures.requests.valid, ...fixtures.replies.valid].map(
      (m: any, i: number) => [`${m.type} ${m.method ?? m.id ?? i}`, m]
    )
  )('accept the valid fixture %s', (_label, message) => {
    expect(check('messages.schema.json', message)).toEqual([]);
  });

  it.each(
    fixtures.requests.invalid.map((c: any) => [c.why, c.message]) as [
      string,
      unknown
    ][]
  )('refuse the invalid request: %s', (_why: string, message: unknown) => {
    expect(check('messages.schema.json', message)).not.toEqual([]);
  });

  it('type each result by the method it answers', () => {
    const results = fixtures.replies.valid.filter(
      (m: any) => m.type === 'result'
    );
    for (const message of results) {
      expect(
        check(
          `messages.schema.json#/$defs/results/${methods[message.id]}`,
          message.result
        )
      ).toEqual([]);
    }
  });
});

describe('what the front end builds and reads', () => {
  it('sends publish parameters the schema accepts', async () => {
    const analysisReply = fixtures.replies.valid.find(
      (m: any) => m.type === 'result' && methods[m.id] === 'analyze'
    );
    const analysis = analysisReply.result as IAnalysis;
    expect(check('analysis.schema.json', analysis)).toEqual([]);
    const model = new PublishFormModel(analysis, {
      functionName: 'predictor',
      notebookPath: 'kmeans.ipynb',
      cellId: 'c-1',
      defaultTarget: 'local'
    });
    await model.addRequirement('scikit-learn>=1.8');
    model.setVersion('pandas', '>=3,<4');
    model.sampleText = '[[0.5, 0.5]]';
    const params: IPublishParams = model.toParams(true);
    expect(check('publish-params.schema.json', params)).toEqual([]);
  });

  it('reads deployments shaped as the schema says', () => {
    const deployment = fixtures.replies.valid.find(
      (m: any) => m.type === 'result' && methods[m.id] === 'publish'
    ).result as IDeployment;
    expect(check('deployment.schema.json', deployment)).toEqual([]);
    const keys: (keyof IDeployment)[] = ['name', 'version', 'url', 'key'];
    keys.forEach(key => expect(deployment).toHaveProperty(key));
  });
});
