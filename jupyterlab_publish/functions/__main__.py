"""``python -m jupyterlab_publish.functions serve [--host H] [--port N] [--state-dir D]``."""

from __future__ import annotations

import argparse
import sys

from . import serve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyterlab_publish.functions",
                                     description="The jupyterlab-publish local function server.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve published functions until interrupted")
    run.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    run.add_argument("--port", type=int, default=0,
                     help="port to bind; 0 reuses the last port if free, else picks one (default: 0)")
    run.add_argument("--state-dir", default=None,
                     help="where functions, versions and the admin token live "
                          "(default: $JUPYTERLAB_PUBLISH_STATE_DIR or <jupyter data dir>/jupyterlab_publish/server)")
    run.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    options = parser.parse_args(argv)
    return serve(options.host, options.port, options.state_dir, log_level=options.log_level)


if __name__ == "__main__":
    sys.exit(main())
