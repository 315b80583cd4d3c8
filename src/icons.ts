import { LabIcon } from '@jupyterlab/ui-components';

import publishSvg from '../style/icons/publish.svg';

export const publishIcon = new LabIcon({
  name: 'jupyterlab-publish:publish',
  svgstr: publishSvg
});
