"""How the function server runs its workers: one set of settings, one set of command-line flags.

``jupyter publish serve`` and ``python -m jupyterlab_publish.functions serve`` share
``add_arguments`` (and ``server.serve_from_arguments``), and ``LocalTarget`` starts the latter, so
every entry point takes the same flags.
Importing this module is cheap (standard library only): a CLI's ``--help`` builds the parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Optional

from .environment import add_environment_arguments
from .sandbox import SANDBOX_CHOICES, SANDBOX_ENV, Sandbox, requested_mode

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # the runtime's own default: README's 413 threshold
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds a client has to send a request's line and headers
ALLOWED_HOSTS_ENV = "JUPYTERLAB_PUBLISH_ALLOWED_HOSTS"  # comma-separated, added to --allowed-host


@dataclasses.dataclass(frozen=True)
class ServingSettings:
    request_timeout: float = 300.0  # seconds one invocation may take before it answers 504
    max_body: int = DEFAULT_MAX_BODY  # largest invocation body, in bytes (413 beyond)
    concurrency: Optional[int] = None  # calls one worker process runs at once in threads (None: the runtime's default)
    processes: int = 1  # worker processes per live version
    # A worker whose /healthz has not answered for this long is stuck (e.g. in a C call that holds
    # the GIL) and is killed and restarted.
    health_timeout: float = 30.0
    # On SIGTERM: how long in-flight calls get to finish (and workers to drain) before the server
    # exits anyway; a second SIGTERM ends the wait at once.
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    # How workers are confined (sandbox.py); None: the fallback without a known state directory.
    sandbox: Optional[Sandbox] = None
    sandbox_mode: str = "auto"  # what was asked for: auto, bwrap or fallback (serve resolves it into sandbox)
    # Host names (``name`` or ``name:port``) the server answers to besides its loopback names and
    # bound address: what a client behind a proxy or on another machine puts in its Host header.
    allowed_hosts: tuple = ()
    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def __post_init__(self):
        for field, low in (("request_timeout", 0.001), ("max_body", 1), ("concurrency", 1), ("processes", 1),
                           ("health_timeout", 0.5), ("drain_timeout", 0.001), ("header_timeout", 0.1)):
            if getattr(self, field) is not None and getattr(self, field) < low:
                raise ValueError(f"{field.replace('_', '-')} must be at least {low}, not {getattr(self, field)}")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags: where to listen, where state lives, how workers run."""
    defaults = ServingSettings()
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind; 0 reuses the last port if free, else picks one (default: 0)")
    parser.add_argument("--state-dir", default=None,
                        help="where functions, versions and the admin token live "
                             "(default: $JUPYTERLAB_PUBLISH_STATE_DIR or <jupyter data dir>/jupyterlab_publish/server)")
    parser.add_argument("--request-timeout", type=_positive(float), default=defaults.request_timeout, metavar="S",
                        help="seconds one invocation may run before it is answered 504 (default: %(default)s)")
    parser.add_argument("--max-body", type=_positive(int), default=defaults.max_body, metavar="BYTES",
                        help="largest invocation body; larger ones get 413 (default: %(default)s)")
    parser.add_argument("--concurrency", type=_positive(int), default=defaults.concurrency, metavar="N",
                        help="calls each worker process runs at once in threads, others wait "
                             "(default: the worker runtime's own default)")
    parser.add_argument("--processes", type=_positive(int), default=defaults.processes, metavar="N",
                        help="worker processes per live version (default: %(default)s)")
    parser.add_argument("--health-timeout", type=_positive(float), default=defaults.health_timeout, metavar="S",
                        help="restart a worker whose /healthz has not answered for S seconds (default: %(default)s)")
    parser.add_argument("--drain-timeout", type=_positive(float), default=defaults.drain_timeout, metavar="S",
                        help="on SIGTERM, seconds in-flight calls get to finish before the server exits anyway; "
                             "a second SIGTERM exits at once (default: %(default)s)")
    parser.add_argument("--sandbox", choices=SANDBOX_CHOICES, default=None,
                        help="how workers are kept from the server's secrets: bwrap (a bubblewrap sandbox), "
                             "fallback (no sandbox: see README, 'Worker isolation'), auto (bwrap when it works, "
                             f"else fallback) (default: ${SANDBOX_ENV} or auto)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]", dest="allowed_hosts",
                        help="a Host name clients may use besides 127.0.0.1, localhost, [::1] and the bound address "
                             "(repeatable; without a port, any port); others are refused 403, which stops DNS "
                             f"rebinding (also ${ALLOWED_HOSTS_ENV}, comma-separated)")
    parser.add_argument("--header-timeout", type=_positive(float), default=defaults.header_timeout, metavar="S",
                        help="close a connection that has not sent a whole request line and headers within S "
                             "seconds (default: %(default)s)")
    parser.add_argument("--exit-with-pid", type=int, default=None, metavar="PID",
                        help="stop serving when process PID exits (the local server uses it to end with JupyterLab)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_environment_arguments(parser)  # --environments uv|shared, --offline, --find-links DIR


def from_arguments(options: argparse.Namespace) -> ServingSettings:
    return ServingSettings(
        request_timeout=options.request_timeout,
        max_body=options.max_body,
        concurrency=options.concurrency,
        processes=options.processes,
        health_timeout=options.health_timeout,
        drain_timeout=options.drain_timeout,
        sandbox_mode=requested_mode(options.sandbox),
        allowed_hosts=allowed_hosts(getattr(options, "allowed_hosts", ())),
        header_timeout=getattr(options, "header_timeout", DEFAULT_HEADER_TIMEOUT),
    )


def allowed_hosts(given=()) -> tuple:
    """The extra Host names: ``--allowed-host`` values and $JUPYTERLAB_PUBLISH_ALLOWED_HOSTS, lowercased."""
    names = list(given or ()) + os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    out = []
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        if any(c in name for c in "/@ \t") or name.startswith(("http:", "https:")):
            raise ValueError(f"allowed host {name!r} is not a host name: write it as it appears in the Host "
                             "header, e.g. functions.example.org or functions.example.org:8765")
        if name not in out:
            out.append(name)
    return tuple(out)


__all__ = ["ALLOWED_HOSTS_ENV", "DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_BODY", "ServingSettings", "add_arguments",
           "allowed_hosts", "from_arguments"]
