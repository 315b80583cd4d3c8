/** Stop the function server the published endpoints ran on (it outlives JupyterLab by design). */
const fs = require('fs');
const path = require('path');

module.exports = async () => {
  const marker = path.join(__dirname, '.state-dir');
  if (!fs.existsSync(marker)) {
    return;
  }
  const stateDir = fs.readFileSync(marker, 'utf8').trim();
  const serverFile = path.join(stateDir, 'server.json');
  if (fs.existsSync(serverFile)) {
    const { pid } = JSON.parse(fs.readFileSync(serverFile, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already stopped
    }
  }
  fs.rmSync(marker, { force: true });
};
