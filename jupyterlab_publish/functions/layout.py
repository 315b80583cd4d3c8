"""Where the function server keeps things inside its state directory.

```
<state>/state.db                      functions and versions (sqlite)
<state>/token                         admin token, mode 0600
<state>/server.json                   {"pid", "url", "started"} while the server runs
<state>/last_port                     the port to try first next time, so URLs survive restarts
<state>/uploads/                      bundle archives being received
<state>/functions/<name>/v<N>/bundle/ the unpacked, verified bundle a worker serves
<state>/functions/<name>/v<N>/worker.log   output of the version's worker processes (appended)
<state>/functions/<name>/v<N>/worker.pid, worker-<i>.pid   one per running process
```
"""

from __future__ import annotations

import json
from pathlib import Path

from ..state.atomic import write_atomically
from ..state.paths import SERVER_INFO, TOKEN_FILE


class Layout:
    def __init__(self, root):
        self.root = Path(root).expanduser().resolve()

    def create(self) -> None:
        for directory in (self.root, self.uploads, self.functions):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # One made by an older version (or by hand) may be wider: it holds the token and the keys.
            directory.chmod(0o700)

    @property
    def db(self) -> Path:
        return self.root / "state.db"

    @property
    def token(self) -> Path:
        return self.root / TOKEN_FILE

    @property
    def server_info(self) -> Path:
        return self.root / SERVER_INFO

    @property
    def last_port(self) -> Path:
        return self.root / "last_port"

    @property
    def run_lock(self) -> Path:
        return self.root / "server.run.lock"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def functions(self) -> Path:
        return self.root / "functions"

    def function_dir(self, name: str) -> Path:
        return self.functions / name

    def version_dir(self, name: str, version: int) -> Path:
        return self.functions / name / f"v{version}"

    def write_server_info(self, info: dict) -> None:
        # Only this user's kernels read it; never a worker (sandbox.py's fallback runs them as another user).
        write_atomically(self.server_info, json.dumps(info, indent=1), mode=0o600)

    def remove_server_info(self, pid: int) -> None:
        """Remove server.json, but only if it still describes the process ``pid``."""
        try:
            current = json.loads(self.server_info.read_text("utf-8"))
        except (OSError, ValueError):
            return
        if current.get("pid") == pid:
            try:
                self.server_info.unlink()
            except FileNotFoundError:
                pass
