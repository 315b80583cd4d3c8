import { checkReply, IAnalysis } from '../protocol';
import {
  canonicalName,
  captureSize,
  formatBytes,
  PublishFormModel,
  requirementText
} from '../publish/model';
import { loadProtocolFixtures, predictorAnalysis } from './fixtures';

const fixtures = loadProtocolFixtures();

function analysis(): IAnalysis {
  return predictorAnalysis({
    requirements: [
      {
        name: 'numpy',
        version: '2.1.3',
        why: 'predictor → import numpy → numpy 2.1.3'
      },
      {
        name: 'scikit-learn',
        version: '1.5.2',
        why: 'predictor → kmodel (KMeans) → sklearn.cluster._kmeans → scikit-learn 1.5.2'
      }
    ],
    captured: [
      {
        name: 'kmodel',
        type: 'sklearn.cluster._kmeans.KMeans',
        path: 'predictor → kmodel'
      }
    ]
  });
}

/** The model of the dialog for `analysis()`; `trans` and `check` as the flow passes them. */
function model(
  trans?: ConstructorParameters<typeof PublishFormModel>[2],
  check?: ConstructorParameters<typeof PublishFormModel>[3]
): PublishFormModel {
  return new PublishFormModel(
    analysis(),
    {
      functionName: 'predictor',
      notebookPath: 'kmeans.ipynb',
      cellId: 'cell-1',
      defaultTarget: 'local'
    },
    trans,
    check
  );
}

describe('PublishFormModel', () => {
  it('starts from the analysis and produces publish parameters', () => {
    const m = model();
    m.sampleText = '[[0.5, 0.5]]';
    m.validator = 'validator';
    expect(m.isValid).toBe(true);
    expect(m.toParams()).toEqual({
      function: 'predictor',
      name: 'predictor',
      target: 'local',
      requirements: [
        { requirement: 'numpy==2.1.3', why: expect.any(String) },
        { requirement: 'scikit-learn==1.5.2', why: expect.any(String) }
      ],
      validator: 'validator',
      sample: [[0.5, 0.5]],
      new_version: false,
      notebook_path: 'kmeans.ipynb',
      cell_id: 'cell-1',
      public: false
    });
    expect(m.toParams(true).new_version).toBe(true);
    m.isPublic = true;
    expect(m.toParams().public).toBe(true);
  });

  it.each([
    'Predictor',
    '1abc',
    'has space',
    'under_score',
    '',
    'a'.repeat(64)
  ])('rejects the endpoint name %p', name => {
    const m = model();
    m.name = name;
    expect(m.errors.name).toMatch(/lowercase letters/);
    expect(m.isValid).toBe(false);
  });

  it('adds, re-pins and removes requirements', async () => {
    const m = model();
    expect(await m.addRequirement('pandas==2.2.3')).toBeNull();
    expect(m.requirements.find(r => r.name === 'pandas')).toMatchObject({
      requirement: 'pandas==2.2.3',
      why: 'added by you',
      added: true
    });
    expect(await m.addRequirement('Scikit_Learn==1.6.0')).toBeNull();
    expect(
      m.requirements.filter(r => canonicalName(r.name) === 'scikit-learn')
    ).toHaveLength(1);
    expect(
      requirementText(m.requirements.find(r => r.name === 'scikit-learn')!)
    ).toBe('Scikit_Learn==1.6.0');
    m.setVersion('numpy', ' 2.0.0 ');
    expect(m.requirements.find(r => r.name === 'numpy')!.version).toBe('2.0.0');
    expect(requirementText(m.requirements[0])).toBe('numpy==2.0.0');
    m.setVersion('numpy', '>=2,<3');
    expect(requirementText(m.requirements[0])).toBe('numpy>=2,<3');
    m.removeRequirement('numpy');
    expect(m.requirements.map(r => r.name)).toEqual(['scikit-learn', 'pandas']);
  });

  it('takes what pip accepts and leaves reading it to the kernel', async () => {
    const m = model();
    expect(await m.addRequirement('scikit-learn>=1.8')).toBeNull();
    expect(await m.addRequirement('pandas[parquet]')).toBeNull();
    expect(m.toParams().requirements).toEqual(
      expect.arrayContaining([
        { requirement: 'scikit-learn>=1.8', why: expect.any(String) },
        { requirement: 'pandas[parquet]', why: 'added by you' }
      ])
    );
    expect(await m.addRequirement('')).toMatch(/not a requirement/);
    expect(await m.addRequirement('>=2')).toMatch(/not a requirement/);
  });

  it('shows what the kernel refuses next to the requirements, until edited', async () => {
    const fixture = fixtures.replies.valid.find((r: any) => r.id === 'r7');
    const asked: string[][] = [];
    const m = model(undefined, async texts => {
      asked.push(texts);
      // The kernel's reading of the fixture's texts, for the texts asked about.
      const known: string[] = fixtures.requests.valid.find(
        (r: any) => r.id === 'r7'
      ).params.texts;
      const requirements = texts.map(
        t => fixture.result.requirements[known.indexOf(t)] ?? null
      );
      const errors = fixture.result.errors
        .filter((e: any) => texts.includes(known[e.index]))
        .map((e: any) => ({ ...e, index: texts.indexOf(known[e.index]) }));
      return { requirements, errors };
    });
    expect(await m.addRequirement('not a requirement!')).toMatch(
      /not a requirement pip accepts/
    );
    expect(await m.addRequirement('scikit-learn>=999')).toMatch(
      /does not allow scikit-learn 1.9.1/
    );
    expect(await m.addRequirement('scikit-learn>=1.8')).toBeNull();
    expect(m.requirements.find(r => r.name === 'scikit-learn')).toMatchObject({
      requirement: 'scikit-learn>=1.8',
      version: ''
    });
    m.setVersion('scikit-learn', '>=999');
    await m.checkRequirements();
    expect(asked[asked.length - 1]).toEqual([
      'numpy==2.1.3',
      'scikit-learn>=999'
    ]);
    expect(m.errors.requirements).toMatch(/does not allow scikit-learn 1.9.1/);
    expect(m.isValid).toBe(false);
    m.setVersion('scikit-learn', '>=1.8');
    expect(m.errors.requirements).toBeUndefined();
  });

  it('says its validation messages through the translator', () => {
    const said: string[] = [];
    const trans = {
      __: (text: string, ...args: unknown[]) => {
        said.push(text);
        return `«${text}»`;
      },
      _n: (one: string, many: string, n: number) => {
        said.push(n === 1 ? one : many);
        return `«${n === 1 ? one : many}»`;
      }
    } as any;
    const m = model(trans);
    m.name = 'Bad Name';
    m.sampleText = '42';
    expect(m.errors.name).toMatch(/^«Use 1–63 lowercase letters/);
    expect(m.errors.sample).toMatch(/^«The sample must be a JSON array/);
    expect(captureSize({ size_status: 'failed' } as any, trans)).toBe(
      '«does not pickle»'
    );
  });

  it.each([
    ['[[0.5, 0.5]', /not valid JSON/],
    ['42', /JSON array of positional arguments/],
    ['"text"', /JSON array of positional arguments/]
  ])('refuses the sample %p', (text, message) => {
    const m = model();
    m.sampleText = text;
    expect(m.errors.sample).toMatch(message);
  });

  it('takes a sample of named arguments and an empty sample', () => {
    const m = model();
    m.sampleText = '{"x": [0.5, 0.5]}';
    expect(m.toParams().sample).toEqual({ x: [0.5, 0.5] });
    m.sampleText = '  ';
    expect(m.toParams().sample).toBeNull();
  });
});

describe('the analysis beyond requirements', () => {
  /** The analyze result shared with pytest (which checks the kernel sends exactly these fields). */
  function fixtureModel(): PublishFormModel {
    const reply = loadProtocolFixtures().replies.valid.find(
      (m: any) => m.id === 'r2'
    );
    const checked = checkReply(reply);
    return new PublishFormModel((checked as any).result as IAnalysis, {
      functionName: 'predictor',
      notebookPath: null,
      cellId: null,
      defaultTarget: 'local'
    });
  }

  it('offers hints and adds one only when accepted, pinned, with its reason', () => {
    const m = fixtureModel();
    expect(m.requirements.map(r => r.name)).toEqual(['pandas', 'mytools']);
    expect(m.pendingHints.map(h => h.distribution)).toEqual(['pyarrow']);
    m.acceptHint(m.pendingHints[0]);
    expect(m.pendingHints).toEqual([]);
    expect(m.requirements.find(r => r.name === 'pyarrow')).toMatchObject({
      version: '21.0.0',
      why: expect.stringContaining('read_parquet()'),
      added: true
    });
    expect(m.toParams().requirements).toContainEqual({
      requirement: 'pyarrow==21.0.0',
      why: expect.stringContaining('read_parquet()')
    });
    m.removeRequirement('pyarrow');
    expect(m.pendingHints.map(h => h.distribution)).toEqual(['pyarrow']);
  });

  it('does not offer a hint for a distribution the user already added', async () => {
    const m = fixtureModel();
    await m.addRequirement('PyArrow==20.0.0');
    expect(m.pendingHints).toEqual([]);
    m.acceptHint(m.analysis.hints![0]);
    expect(
      m.requirements.filter(r => canonicalName(r.name) === 'pyarrow')
    ).toHaveLength(1);
  });

  it('keeps editable requirements, errors and the lock from the kernel', () => {
    const m = fixtureModel();
    expect(m.requirements.find(r => r.name === 'mytools')!.editable).toBe(true);
    expect(m.analysis.errors![0].path).toBe(
      "predictor → helpers['db'] (sqlite3.Connection)"
    );
    expect(m.analysis.lock!.map(e => e.name)).toContain('numpy');
  });

  it('describes capture sizes for every status', () => {
    const [helpers, table] = fixtureModel().analysis.captured;
    expect(captureSize(helpers)).toBe('does not pickle');
    expect(captureSize(table)).toBe('152.0 MB');
    const base = { name: 'm', type: 'T', path: 'f → m' };
    expect(
      captureSize({ ...base, size: 2_100_000_000, size_status: 'over_limit' })
    ).toBe('> 2.1 GB (over the size limit)');
    expect(captureSize({ ...base, size: null, size_status: 'timed_out' })).toBe(
      'size not measured (time limit)'
    );
    expect(captureSize({ ...base, size: 5000, size_status: 'timed_out' })).toBe(
      '≥ 5.0 kB (sizing stopped)'
    );
    expect(captureSize(base)).toBe('');
    expect(formatBytes(999)).toBe('999 B');
  });

  it('blocks publishing while the analysis reports errors, whatever the form says', () => {
    const m = fixtureModel();
    expect(m.errors.analysis).toMatch(/^One problem blocks publishing/);
    expect(m.errors.analysis).toMatch(
      /run the cell again, and publish again\./
    );
    expect(m.isValid).toBe(false);
    // Errors are about captured values: no requirement, name or sample edit clears them.
    for (const req of [...m.requirements]) {
      m.removeRequirement(req.name);
    }
    m.name = 'predictor';
    m.sampleText = '[[0.5, 0.5]]';
    expect(Object.keys(m.errors)).toEqual(['analysis']);
    expect(m.isValid).toBe(false);
  });

  it('counts several analysis errors, and an empty list blocks nothing', () => {
    const problem = (code: string, path: string) => ({
      code,
      message: `${path} cannot be pickled.`,
      hint: 'Create it inside the function.',
      path
    });
    const blocked = new PublishFormModel(
      {
        ...analysis(),
        errors: [
          problem('unpicklable_lock', 'predictor → lock (_thread.lock)'),
          problem('unpicklable_file', 'predictor → handle (_io.BufferedReader)')
        ]
      },
      {
        functionName: 'predictor',
        notebookPath: null,
        cellId: null,
        defaultTarget: 'local'
      }
    );
    expect(blocked.errors.analysis).toMatch(/^2 problems block publishing/);
    expect(blocked.isValid).toBe(false);
    const clear = new PublishFormModel(
      { ...analysis(), errors: [] },
      blocked.context
    );
    expect(clear.errors.analysis).toBeUndefined();
    expect(clear.isValid).toBe(true);
  });

  it('works with an analysis from an older kernel that lacks the new fields', () => {
    const m = model();
    expect(m.pendingHints).toEqual([]);
    expect(captureSize(m.analysis.captured[0])).toBe('');
  });
});
