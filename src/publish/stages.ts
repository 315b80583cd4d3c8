import { TranslationBundle } from '@jupyterlab/translation';

/** What the progress bar calls a stage; literal strings so they reach the catalog. */
export function stageLabel(stage: string, trans: TranslationBundle): string {
  switch (stage) {
    case 'analysing':
      return trans.__('Analysing');
    case 'sample':
      return trans.__('Running the sample');
    case 'pickling':
      return trans.__('Pickling');
    case 'bundling':
      return trans.__('Bundling');
    case 'preflight':
      return trans.__('Pre-flight check');
    case 'pushing':
      return trans.__('Pushing');
    case 'installing':
      return trans.__('Installing');
    case 'starting':
      return trans.__('Starting');
    case 'smoke_test':
      return trans.__('Smoke test');
    case 'done':
      return trans.__('Done');
    default:
      return stage;
  }
}
