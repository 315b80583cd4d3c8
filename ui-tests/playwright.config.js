/**
 * Galata configuration: a real JupyterLab (started by `jlpm start`) driven in Debian's Chromium.
 * Playwright must not download a browser here, so the executable is the system one.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  timeout: 240_000,
  retries: 0,
  workers: 1,
  reporter: [['list']],
  globalTeardown: require.resolve('./teardown.js'),
  use: {
    ...baseConfig.use,
    baseURL: 'http://127.0.0.1:8888',
    // Video needs Playwright's own ffmpeg download, which our machines cannot fetch.
    video: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  },
  webServer: {
    command: 'jlpm start',
    url: 'http://127.0.0.1:8888/lab',
    timeout: 120_000,
    reuseExistingServer: !process.env.CI
  }
};
