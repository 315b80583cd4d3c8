"""``python -m jupyterlab_publish.functions serve [flags]``: the same flags as ``jupyter publish serve``."""

from __future__ import annotations

import argparse
import sys

from .server import serve_from_arguments
from .settings import add_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyterlab_publish.functions",
                                     description="The jupyterlab-publish local function server.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve published functions until interrupted")
    add_arguments(run)
    return serve_from_arguments(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
