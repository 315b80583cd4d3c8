/** Command ids; the schema (schema/plugin.json) refers to them by these exact strings. */
export namespace CommandIDs {
  export const publish = 'jupyterlab-publish:publish';
}

export const PLUGIN_ID = 'jupyterlab-publish:plugin';
export const TRANSLATION_DOMAIN = 'jupyterlab_publish';
