"""Serve one published function over HTTP: the entry point of the runtime every bundle carries.

The runtime's files are copied verbatim into every bundle and run inside the bundle's own
environment, next to ``manifest.json`` and ``function.pkl``:

    python service.py [--host 127.0.0.1] [--port 8000] [--bundle DIR] [--max-body BYTES]
                      [--name NAME] [--timeout SECONDS] [--concurrency N]
                      [--handoff-fd FD] [--upstream URL] [--allowed-hosts NAMES] [--slots-fd FD]

They may import only the standard library, ``cloudpickle``, ``starlette`` and ``uvicorn``
(``httptools`` and ``uvloop`` when installed) — never Jupyter and never ``jupyterlab_publish``. The
kernel imports the calling contract (``json_ready``, the argument and batching helpers) from here,
so importing this module needs neither starlette nor uvicorn (they are imported when serving).

    service_contract.py  the calling contract, JSON conversion, loading a bundle
    service_calls.py     calling the function: inline or in threads, batches, timeouts, counters
    service_describe.py  typed parameters, the OpenAPI document, the docs page
    service_http.py      auth, the invocation path, the pages, relaying foreign paths
    service_errors.py    the error codes and their HTTP statuses
    service_handoff.py   uvicorn, and connections the function server hands over

Auth: when the environment variable ``JUPYTERLAB_PUBLISH_KEYS_SHA256`` holds comma-separated hex
sha256 digests of the accepted keys, POST needs ``Authorization: Bearer <key>`` (else 401); unset
or empty, the function is public. GET routes are open, but show a keyed function's sample only
to callers that send its key.

The flags, that variable, the routes and the hand-off are runtime contract ``RUNTIME_CONTRACT``
(docs/bundle-format.md, "Runtime contracts"): change them only with a new contract number.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import stat
import sys
import threading
import time
from pathlib import Path

if not __package__:  # run (or loaded by path) from a bundle directory: the other files sit beside it
    _HERE = os.path.dirname(os.path.abspath(__file__))
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    import service_contract
    import service_handoff
    import service_http
    from service_contract import *  # noqa: F401,F403  (the contract, for callers of this module)
else:
    from . import service_contract, service_handoff, service_http
    from .service_contract import *  # noqa: F401,F403

# The runtime's files, in the order a bundle lists them; all travel together.
RUNTIME_FILES = ("service.py", "service_calls.py", "service_contract.py", "service_describe.py",
                 "service_errors.py", "service_handoff.py", "service_http.py")
KEYS_ENV = "JUPYTERLAB_PUBLISH_KEYS_SHA256"
DEFAULT_HOST = "127.0.0.1"  # loopback by default: exposing a function is the operator's decision
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY = service_http.DEFAULT_MAX_BODY
DEFAULT_CONCURRENCY = service_http.DEFAULT_CONCURRENCY
GRACEFUL_SHUTDOWN = 5.0  # seconds answers in progress get after SIGTERM, when no --timeout bounds them

log = logging.getLogger("jupyterlab_publish.service")


def create_endpoint(bundle_dir, *, key_digests: tuple | None = None, **options):
    """Load the bundle in ``bundle_dir`` and build its FunctionEndpoint (BundleError, SettingsError).

    ``options`` are name, max_body, timeout, concurrency, upstream, allowed_hosts and own_hosts;
    ``key_digests`` (sha256
    digests of the accepted keys) defaults to what ``JUPYTERLAB_PUBLISH_KEYS_SHA256`` says.
    """
    if key_digests is None:
        key_digests = service_http.read_key_digests(os.environ.get(KEYS_ENV), KEYS_ENV)
    return service_http.FunctionEndpoint(service_contract.load_bundle(bundle_dir), key_digests=key_digests, **options)


def create_endpoint_app(bundle_dir, *, max_body: int = DEFAULT_MAX_BODY, **options):
    """The ASGI app serving the bundle on the worker's own port; ``app.state.service`` is its endpoint."""
    return create_endpoint(bundle_dir, max_body=max_body, **options).private_app


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    return parse


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _is_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def own_hosts(host: str, port: int) -> tuple:
    """The Host names the worker's own address goes by (the server's probes and proxied calls)."""
    names = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if host in ("127.0.0.1", "::1"):
        names.append(f"localhost:{port}")
    return tuple(names)


def graceful_timeout(timeout: float | None) -> float:
    """Seconds calls in progress get after SIGTERM: long enough for a call to get its 504."""
    return GRACEFUL_SHUTDOWN if timeout is None else timeout + 1.0


def _let_calls_go(service) -> None:
    """After shutdown: a call still running in a pool thread would hold up the exit, which joins them."""
    service.executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 1.0
    for thread in threading.enumerate():
        if thread.name.startswith(service_http.POOL_PREFIX):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("a call is still running after shutdown; exiting without waiting for it")
                logging.shutdown()
                os._exit(0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve a jupyterlab-publish bundle over HTTP.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s)")
    parser.add_argument(
        "--bundle", type=Path, default=Path(__file__).resolve().parent,
        help="bundle directory (default: the directory of this file)",
    )
    parser.add_argument("--max-body", type=_positive(int), default=DEFAULT_MAX_BODY, metavar="BYTES",
                        help="largest request body accepted, in bytes; larger get 413 (default: %(default)s)")
    parser.add_argument("--name", default=None,
                        help="endpoint name: also serve /functions/NAME[/openapi.json|/docs] (default: the bundle's)")
    parser.add_argument("--timeout", type=_positive(float), default=None, metavar="SECONDS",
                        help="answer 504 when a call in a thread runs longer (default: no limit)")
    parser.add_argument("--concurrency", type=_positive(int), default=DEFAULT_CONCURRENCY, metavar="N",
                        help="calls running at once in threads; others wait (default: %(default)s)")
    parser.add_argument("--handoff-fd", type=int, default=None, metavar="FD",
                        help="inherited AF_UNIX socket over which the function server passes connections")
    parser.add_argument("--upstream", default=None, metavar="URL",
                        help="the function server: other paths on handed-off connections are relayed there")
    parser.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                        help="comma-separated Host names (host or host:port) requests may name; others, and "
                             "requests from pages of other sites, get 403 (default: no check)")
    parser.add_argument("--slots-fd", type=int, default=None, metavar="FD",
                        help="inherited file the server maps too: the state of each handed-off connection")
    options = parser.parse_args(argv)
    if options.handoff_fd is not None and not _is_socket(options.handoff_fd):
        print(f"error: --handoff-fd {options.handoff_fd} is not an open socket of this process; pass the "
              "descriptor of an inherited AF_UNIX socket (subprocess pass_fds)", file=sys.stderr)
        return 2
    if options.slots_fd is not None and not _is_file(options.slots_fd):
        print(f"error: --slots-fd {options.slots_fd} is not an open file of this process; pass the descriptor "
              "of the slot table the server created (subprocess pass_fds)", file=sys.stderr)
        return 2
    try:
        service = create_endpoint(options.bundle, name=options.name, max_body=options.max_body,
                                  timeout=options.timeout, concurrency=options.concurrency, upstream=options.upstream,
                                  allowed_hosts=options.allowed_hosts,
                                  own_hosts=own_hosts(options.host, options.port))
        if options.slots_fd is not None:
            service.slots = service_handoff.SlotTable(options.slots_fd)
    except (service_contract.BundleError, service_http.SettingsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    handoff = "" if options.handoff_fd is None else f", connections handed over on fd {options.handoff_fd}"
    print(f"serving {service.served.name!r} at http://{options.host}:{options.port}/ and {service.prefix}{handoff}",
          file=sys.stderr, flush=True)
    # One process: the function's state (a model, caches) lives once; scale with more processes.
    # A call hung in a thread must not hold a shutdown forever: answers still due get until their
    # timeout (then a 504), or a few seconds when calls have no timeout.
    config = service_handoff.uvicorn_config(service.private_app, host=options.host, port=options.port,
                                            timeout_graceful_shutdown=graceful_timeout(options.timeout))
    server = service_handoff.make_server(config, service, options.handoff_fd)
    service_handoff.run_event_loop(server.serve())
    _let_calls_go(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
