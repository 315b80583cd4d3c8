import { IAnalysis } from '../protocol';
import { canonicalName, PublishFormModel } from '../publish/model';

function analysis(): IAnalysis {
  return {
    function: { name: 'predictor', qualname: 'predictor', module: '__main__', signature: '(x)', doc: '' },
    requirements: [
      { name: 'numpy', version: '2.1.3', why: 'predictor → import numpy → numpy 2.1.3' },
      {
        name: 'scikit-learn',
        version: '1.5.2',
        why: 'predictor → kmodel (KMeans) → sklearn.cluster._kmeans → scikit-learn 1.5.2'
      }
    ],
    local_modules: [],
    captured: [{ name: 'kmodel', type: 'sklearn.cluster._kmeans.KMeans', path: 'predictor → kmodel' }],
    warnings: [],
    suggested_name: 'predictor',
    validators: ['validator']
  };
}

function model(): PublishFormModel {
  return new PublishFormModel(analysis(), {
    functionName: 'predictor',
    notebookPath: 'kmeans.ipynb',
    cellId: 'cell-1',
    defaultTarget: 'local'
  });
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
        { name: 'numpy', version: '2.1.3' },
        { name: 'scikit-learn', version: '1.5.2' }
      ],
      validator: 'validator',
      sample: [[0.5, 0.5]],
      new_version: false,
      notebook_path: 'kmeans.ipynb',
      cell_id: 'cell-1'
    });
    expect(m.toParams(true).new_version).toBe(true);
  });

  it.each(['Predictor', '1abc', 'has space', 'under_score', '', 'a'.repeat(64)])(
    'rejects the endpoint name %p',
    name => {
      const m = model();
      m.name = name;
      expect(m.errors.name).toMatch(/lowercase letters/);
      expect(m.isValid).toBe(false);
    }
  );

  it('adds, re-pins and removes requirements', () => {
    const m = model();
    expect(m.addRequirement('pandas==2.2.3')).toBeNull();
    expect(m.requirements.find(r => r.name === 'pandas')).toMatchObject({
      version: '2.2.3',
      why: 'added by you',
      added: true
    });
    expect(m.addRequirement('Scikit_Learn==1.6.0')).toBeNull();
    expect(m.requirements.filter(r => canonicalName(r.name) === 'scikit-learn')).toHaveLength(1);
    expect(m.requirements.find(r => r.name === 'scikit-learn')!.version).toBe('1.6.0');
    m.setVersion('numpy', ' 2.0.0 ');
    expect(m.requirements.find(r => r.name === 'numpy')!.version).toBe('2.0.0');
    m.removeRequirement('numpy');
    expect(m.requirements.map(r => r.name)).toEqual(['scikit-learn', 'pandas']);
  });

  it('explains a requirement it cannot take', () => {
    const m = model();
    expect(m.addRequirement('numpy>=2')).toMatch(/not a requirement/);
    expect(m.addRequirement('')).toMatch(/not a requirement/);
    m.setVersion('numpy', '2.0 beta');
    expect(m.errors.requirements).toMatch(/not a version of numpy/);
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
