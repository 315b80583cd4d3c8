import { Dialog, ReactWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IPublishParams } from '../protocol';
import {
  captureSize,
  IRequirementRow,
  PublishFormModel,
  requirementText
} from './model';

/** The body of the Publish dialog: renders the model and edits it in place. */
export class PublishDialogBody
  extends ReactWidget
  implements Dialog.IBodyWidget<IPublishParams>
{
  constructor(
    readonly model: PublishFormModel,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-PublishDialog');
  }

  getValue(): IPublishParams {
    return this.model.toParams();
  }

  protected render(): JSX.Element {
    return (
      <PublishForm
        model={this.model}
        trans={this._trans}
        onChange={() => this.update()}
      />
    );
  }
}

/** The version field of a row: its pin, or the range the user wrote after the name. */
function versionShown(row: IRequirementRow): string {
  if (row.version || !row.requirement) {
    return row.version;
  }
  return row.requirement.startsWith(row.name)
    ? row.requirement.slice(row.name.length).trim()
    : '';
}

interface IFormProps {
  model: PublishFormModel;
  trans: TranslationBundle;
  onChange: () => void;
}

function PublishForm({ model, trans, onChange }: IFormProps): JSX.Element {
  const [newRequirement, setNewRequirement] = React.useState('');
  const [addError, setAddError] = React.useState<string | null>(null);
  const errors = model.errors;
  const fn = model.analysis.function;
  const form = React.useRef<HTMLDivElement>(null);
  // The Dialog disables its accept button (and ignores Enter) while its body holds a
  // `.jp-mod-error` element, but re-checks only on `input` events: send one after every render,
  // so an invalid form blocks Publish from the start and a fixed one unblocks it.
  React.useEffect(() => {
    form.current?.dispatchEvent(new Event('input'));
  });
  const change = (apply: () => void) => {
    apply();
    onChange();
  };
  const add = async () => {
    const error = await model.addRequirement(newRequirement);
    setAddError(error);
    if (!error) {
      setNewRequirement('');
    }
    onChange();
  };
  // The kernel reads an edited version or range once the user leaves the field.
  const recheck = () => void model.checkRequirements().then(onChange);

  return (
    <div
      ref={form}
      className={`jp-PublishDialog-form${model.isValid ? '' : ' jp-mod-error'}`}
    >
      <div className="jp-PublishDialog-signature">
        <code>
          {fn.name}
          {fn.signature}
        </code>
        {fn.doc && <span className="jp-PublishDialog-doc"> — {fn.doc}</span>}
      </div>

      <label className="jp-PublishDialog-field">
        <span>{trans.__('Endpoint name')}</span>
        <input
          className="jp-mod-styled jp-PublishDialog-name"
          value={model.name}
          spellCheck={false}
          onChange={e => change(() => (model.name = e.target.value))}
        />
        {errors.name && (
          <span className="jp-PublishDialog-error">{errors.name}</span>
        )}
      </label>

      <fieldset className="jp-PublishDialog-requirements">
        <legend>{trans.__('Requirements')}</legend>
        {model.requirements.length === 0 && (
          <p className="jp-PublishDialog-empty">
            {trans.__('Only the standard library: nothing to install.')}
          </p>
        )}
        <table>
          <tbody>
            {model.requirements.map(req => (
              <tr
                key={req.name}
                className="jp-PublishDialog-requirement"
                data-name={req.name}
              >
                <td className="jp-PublishDialog-reqName">
                  {req.name}
                  {req.editable && (
                    <span
                      className="jp-PublishDialog-editable"
                      title={trans.__(
                        'Installed in editable mode: the target may not find this version'
                      )}
                    >
                      {' '}
                      {trans.__('(editable)')}
                    </span>
                  )}
                </td>
                <td>
                  <input
                    className="jp-mod-styled jp-PublishDialog-version"
                    value={versionShown(req)}
                    placeholder={trans.__('latest')}
                    aria-label={trans.__('Version or range of %1', req.name)}
                    title={requirementText(req)}
                    onChange={e =>
                      change(() => model.setVersion(req.name, e.target.value))
                    }
                    onBlur={recheck}
                  />
                </td>
                <td
                  className="jp-PublishDialog-why"
                  title={(req.chains ?? [req.why]).join('\n')}
                >
                  {req.why}
                </td>
                <td>
                  <button
                    className="jp-Button jp-mod-minimal jp-PublishDialog-remove"
                    title={trans.__('Remove %1', req.name)}
                    onClick={() =>
                      change(() => model.removeRequirement(req.name))
                    }
                  >
                    ✕
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {errors.requirements && (
          <span className="jp-PublishDialog-error">{errors.requirements}</span>
        )}
        <div className="jp-PublishDialog-add">
          <input
            className="jp-mod-styled"
            value={newRequirement}
            placeholder={trans.__(
              'Add a requirement, e.g. pandas==2.2.3 or scikit-learn>=1.8'
            )}
            onChange={e => setNewRequirement(e.target.value)}
            onKeyDown={e => {
              if (e.key === 'Enter') {
                e.preventDefault();
                e.stopPropagation();
                void add();
              }
            }}
          />
          <button
            className="jp-Button jp-mod-styled jp-mod-reject"
            onClick={() => void add()}
          >
            {trans.__('Add')}
          </button>
        </div>
        {addError && <span className="jp-PublishDialog-error">{addError}</span>}
        <Hints model={model} trans={trans} onChange={onChange} />
      </fieldset>

      <Problems model={model} trans={trans} />
      <Notes model={model} trans={trans} />

      <label className="jp-PublishDialog-field">
        <span>{trans.__('Deploy target')}</span>
        <input
          className="jp-mod-styled jp-PublishDialog-target"
          value={model.target}
          spellCheck={false}
          title={trans.__(
            'local (the embedded function server), dir:/path, or http://host:port'
          )}
          onChange={e => change(() => (model.target = e.target.value))}
        />
      </label>

      <label className="jp-PublishDialog-field">
        <span>{trans.__('Validator (optional)')}</span>
        <select
          className="jp-mod-styled jp-PublishDialog-validator"
          value={model.validator ?? ''}
          onChange={e =>
            change(() => (model.validator = e.target.value || null))
          }
        >
          <option value="">{trans.__('None')}</option>
          {model.analysis.validators.map(name => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>

      <label className="jp-PublishDialog-field">
        <span>{trans.__('Sample input (JSON, optional)')}</span>
        <textarea
          className="jp-mod-styled jp-PublishDialog-sample"
          value={model.sampleText}
          rows={2}
          spellCheck={false}
          placeholder={trans.__(
            'Positional arguments as an array, e.g. [[0.5, 0.5]]'
          )}
          onChange={e => change(() => (model.sampleText = e.target.value))}
        />
        {errors.sample && (
          <span className="jp-PublishDialog-error">{errors.sample}</span>
        )}
      </label>

      <label className="jp-PublishDialog-check">
        <input
          type="checkbox"
          className="jp-PublishDialog-public"
          checked={model.isPublic}
          onChange={e => change(() => (model.isPublic = e.target.checked))}
        />
        <span>
          {trans.__(
            'Public: anyone who can reach the target may call it without a key'
          )}
        </span>
      </label>
    </div>
  );
}

/** Plugin engines the code loads without importing them: offered, added only on request. */
function Hints({ model, trans, onChange }: IFormProps): JSX.Element | null {
  const hints = model.pendingHints;
  if (!hints.length) {
    return null;
  }
  return (
    <ul className="jp-PublishDialog-hints">
      {hints.map(hint => (
        <li
          key={hint.distribution}
          className="jp-PublishDialog-hint"
          data-name={hint.distribution}
        >
          {trans.__('Suggested:')} <code>{hint.distribution}</code>{' '}
          {hint.version ?? ''}{' '}
          <span className="jp-PublishDialog-why">{hint.reason}</span>{' '}
          <button
            className="jp-Button jp-mod-styled jp-mod-reject jp-PublishDialog-acceptHint"
            onClick={() => {
              model.acceptHint(hint);
              onChange();
            }}
          >
            {trans.__('Add')}
          </button>
        </li>
      ))}
    </ul>
  );
}

/** What will fail once published: it blocks Publish (see `errors.analysis` of the model). */
function Problems({
  model,
  trans
}: {
  model: PublishFormModel;
  trans: TranslationBundle;
}) {
  const errors = model.analysis.errors ?? [];
  if (!errors.length) {
    return null;
  }
  return (
    <div className="jp-PublishDialog-problems" role="alert">
      <strong>
        {trans.__('These captured values will not work once published:')}
      </strong>
      <ul>
        {errors.map((e, i) => (
          <li key={`e-${i}`} className="jp-PublishDialog-error">
            {e.message} {e.hint}
          </li>
        ))}
      </ul>
      <p className="jp-PublishDialog-blocked">
        {trans.__(
          'Publishing is blocked until they are fixed. Editing the requirements does not help: change the cell so the function no longer captures them, run the cell again, then publish again.'
        )}
      </p>
    </div>
  );
}

/** What the analysis shipped by value or could not see. */
function Notes({
  model,
  trans
}: {
  model: PublishFormModel;
  trans: TranslationBundle;
}) {
  const { local_modules, captured, warnings } = model.analysis;
  const lock = model.analysis.lock ?? [];
  if (
    !local_modules.length &&
    !captured.length &&
    !warnings.length &&
    !lock.length
  ) {
    return null;
  }
  return (
    <details className="jp-PublishDialog-notes" open={warnings.length > 0}>
      <summary>
        {trans.__('Captured objects, local modules and warnings')}
        {warnings.length > 0 && ` (${warnings.length})`}
      </summary>
      <ul>
        {captured.map(c => (
          <li key={`c-${c.path}`}>
            {trans.__('captures')} <code>{c.name}</code> ({c.type})
            {captureSize(c, trans) && (
              <span className="jp-PublishDialog-size">
                {' '}
                — {captureSize(c, trans)}
              </span>
            )}
          </li>
        ))}
        {local_modules.map(m => (
          <li key={`m-${m.name}`}>
            {trans.__('ships local module')} <code>{m.name}</code>{' '}
            {trans.__('by value')}
          </li>
        ))}
        {warnings.map((w, i) => (
          <li key={`w-${i}`} className="jp-PublishDialog-warning">
            {w.message} {w.hint}
          </li>
        ))}
        {lock.length > 0 && (
          <li
            className="jp-PublishDialog-lock"
            title={lock
              .map(e => `${e.name}==${e.version} (${e.required_by.join(', ')})`)
              .join('\n')}
          >
            {trans.__(
              'locks %1 distributions (the requirements and their dependencies)',
              lock.length
            )}
          </li>
        )}
      </ul>
    </details>
  );
}
