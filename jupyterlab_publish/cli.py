"""``jupyter publish``: publish from a notebook without a browser, and manage a function server.

    jupyter publish notebook kmeans.ipynb --function predictor --sample '[[0.5, 0.5]]' [--public]
    jupyter publish serve [--host 127.0.0.1] [--port N] [--state-dir D] [--processes N] ...
    jupyter publish list | show NAME | versions NAME | rollback NAME [--to N] | delete NAME
                    | logs NAME [--version N] [--lines N]          [--target SPEC] [--json]
    jupyter publish export NAME --format rayservice --target ray+http://... [-o FILE]

Scale (a target that scales, ``ray+http://...``): ``--replicas N``, or ``--min-replicas``/
``--max-replicas``/``--target-ongoing-requests`` to autoscale, and ``--cpus`` per replica.

``notebook`` runs the notebook in a real kernel (so the function closes over the same objects as
in JupyterLab) and calls ``jupyterlab_publish.publish`` there, exactly as the button does.
The management commands call the Target interface's verbs on ``--target`` (default: the local
function server, started if needed; or ``dir:/path``, or a function server's URL); a target that
lacks a verb says so and names the targets that have it. A URL is sent the admin token from
``$JUPYTERLAB_PUBLISH_TOKEN``, or the local server's own token when the URL is the local server's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from typing import Any, Optional

from .errors import PublishError
from .state.paths import TOKEN_FILE, default_state_dir, read_server_info
from .targets import Deployment, FunctionServerTarget, Target, get_target
from .targets.http import TOKEN_ENV
from .targets.local import LocalTarget
from .targets.ray import RayTarget
from .targets.rayservice import dump_manifest, rayservice_manifest
from .targets.scale import Scale

# The line the kernel prints with the outcome; everything else the notebook prints is passed on.
_RESULT_MARK = "__jupyterlab_publish_result__ "


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        return options.run(options)
    except PublishError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        if err.details.get("log") and err.code != "smoke_test_failed":  # that message holds it already
            print(f"--- worker log (last lines) ---\n{err.details['log']}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter publish", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    nb = commands.add_parser("notebook", help="run a notebook and publish one of its functions")
    nb.add_argument("notebook", help="path to the .ipynb file")
    nb.add_argument("--function", required=True, help="name of the function to publish")
    nb.add_argument("--name", help="endpoint name (default: derived from the function)")
    nb.add_argument("--validator", help="name of a notebook function that validates inputs")
    nb.add_argument("--sample", help="sample input as JSON: an array of positional arguments or an object")
    nb.add_argument("--requirement", action="append", dest="requirements", metavar="NAME[==VERSION]",
                    help="replace the analysed requirements (repeat for several)")
    nb.add_argument("--accept-hints", action="store_true",
                    help="also declare the plugin engines the analysis suggests (pandas' parquet engine...)")
    nb.add_argument("--target", help="local (default), dir:/path, http://host:port or "
                                     "ray+http://host:8265?store=URL (a Ray cluster's Serve)")
    nb.add_argument("--new-version", action="store_true", help="publish a new version of an existing endpoint")
    nb.add_argument("--public", action="store_true", help="let anyone call it without its key")
    nb.add_argument("--kernel", default="python3", help="kernel to run the notebook in (default: %(default)s)")
    nb.add_argument("--timeout", type=int, default=600, help="seconds each cell may run (default: %(default)s)")
    nb.add_argument("--json", action="store_true", help="print the deployment as JSON")
    scale = nb.add_argument_group("scale (targets that scale: ray)")
    scale.add_argument("--replicas", type=int, metavar="N", help="run N copies of the function")
    scale.add_argument("--min-replicas", type=int, metavar="N", help="autoscale from N replicas")
    scale.add_argument("--max-replicas", type=int, metavar="N", help="autoscale up to N replicas")
    scale.add_argument("--target-ongoing-requests", type=float, metavar="X",
                       help="autoscale to keep about X requests in progress per replica")
    scale.add_argument("--cpus", type=float, metavar="X", help="CPUs each replica reserves (e.g. 0.5)")
    nb.set_defaults(run=_publish_notebook)

    # Standard library only, cheap for --help; the functions package (starlette...) stays unloaded.
    from .functions.settings import add_arguments

    serve = commands.add_parser("serve", help="run the function server in the foreground")
    add_arguments(serve)
    serve.set_defaults(run=_serve)

    def managing(name: str, help_text: str, runner, *, named: bool = True, json_flag: bool = True):
        command = commands.add_parser(name, help=help_text)
        if named:
            command.add_argument("name", help="the function's endpoint name")
        command.add_argument("--target", help="local (default: the local function server, started if needed), "
                                              "dir:/path, a function server's URL or ray+http://host:8265?store=URL")
        if json_flag:
            command.add_argument("--json", action="store_true", help="print the answer as JSON")
        command.set_defaults(run=runner)
        return command

    managing("list", "list published functions", _list, named=False)
    managing("show", "show one function: URL, live version, key, versions", _show)
    managing("versions", "list one function's versions", _versions)
    rollback = managing("rollback", "make an earlier version live again", _rollback)
    rollback.add_argument("--to", type=int, metavar="VERSION",
                          help="the version to make live (default: the one live before the current one)")
    managing("delete", "delete a function and all its versions", _delete, json_flag=False)
    logs = managing("logs", "print the end of a version's worker log", _logs, json_flag=False)
    logs.add_argument("--version", type=int, metavar="N", help="which version (default: the live one)")
    logs.add_argument("--lines", type=int, default=200, metavar="N", help="how many lines (default: %(default)s)")
    export = managing("export", "write a deployment manifest of a function as it runs now", _export,
                      json_flag=False)
    export.add_argument("--format", required=True, choices=["rayservice"],
                        help="rayservice: a KubeRay RayService serving the same Serve config (ray targets)")
    export.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (default: standard output)")
    export.add_argument("--image", help="the container image of the Ray pods (it must hold jupyterlab-publish)")
    export.add_argument("--namespace", help="the Kubernetes namespace of the RayService")
    export.add_argument("--store-endpoint", metavar="URL",
                        help="the address the pods reach an S3-compatible bundle store at, when it differs from "
                             "this machine's (e.g. http://minio.storage.svc:9000)")
    return parser


_SCALE_FLAGS = ("replicas", "min_replicas", "max_replicas", "target_ongoing_requests", "cpus")


def _scale_of(options: argparse.Namespace) -> Optional[dict]:
    """The scale flags that were given, as ``publish(scale=...)`` takes them (checked there)."""
    given = {flag: getattr(options, flag) for flag in _SCALE_FLAGS if getattr(options, flag, None) is not None}
    return given or None


def _publish_notebook(options: argparse.Namespace) -> int:
    # Only this command runs a kernel: nbformat and nbclient load for it, not for every command.
    import nbformat
    from nbclient import NotebookClient  # (as above)
    from nbclient.exceptions import CellExecutionError  # (as above)

    if not os.path.isfile(options.notebook):
        raise PublishError("bad_request", f"No notebook at {options.notebook}.", "Check the path.")
    if options.sample is not None:
        try:
            json.loads(options.sample)
        except ValueError as exc:
            raise PublishError("invalid_sample", f"--sample is not JSON: {exc}", "Example: --sample '[[0.5, 0.5]]'") from None
    notebook = nbformat.read(options.notebook, as_version=4)
    workdir = os.path.dirname(os.path.abspath(options.notebook))
    client = NotebookClient(notebook, timeout=options.timeout, kernel_name=options.kernel, resources={"metadata": {"path": workdir}})
    with client.setup_kernel():
        try:
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
        except CellExecutionError as exc:
            raise PublishError(
                "not_defined", f"The notebook failed while running: {exc}".splitlines()[0], "Fix the notebook so it runs top to bottom."
            ) from None
        cell = nbformat.v4.new_code_cell(_publish_code(options, os.path.abspath(options.notebook)))
        notebook.cells.append(cell)
        client.execute_cell(cell, len(notebook.cells) - 1)
    outcome = _read_outcome(cell)
    if "error" in outcome:
        err = outcome["error"]
        raise PublishError(err["code"], err["message"], err.get("hint", ""))
    if options.json:
        print(json.dumps(outcome, indent=2))
    else:
        print(f"Published {outcome['name']} v{outcome['version']} at {outcome['url']}")
        print(outcome["curl"])
    return 0


def _publish_code(options: argparse.Namespace, notebook_path: str) -> str:
    """The cell run in the notebook's kernel: the same call the Publish button makes."""
    kwargs: dict[str, Any] = {
        "name": options.name,
        "target": options.target,
        "requirements": options.requirements,
        "sample": json.loads(options.sample) if options.sample is not None else None,
        "new_version": options.new_version,
        "public": options.public,
        "accept_hints": options.accept_hints,
        "provenance": {"notebook": notebook_path},
        "scale": _scale_of(options),
    }
    return "\n".join(
        [
            "import json as _json, jupyterlab_publish as _jp",
            "from jupyterlab_publish.errors import PublishError as _PublishError",
            f"_kwargs = _json.loads({json.dumps(json.dumps(kwargs))})",
            f"_validator = {options.validator or None}",
            "try:",
            f"    _d = _jp.publish({options.function}, validator=_validator, **_kwargs)",
            "    _out = dict(_d.to_dict(), curl=_d.curl(None if _kwargs['sample'] is None else _json.dumps(_kwargs['sample'])))",
            "except _PublishError as _e:",
            "    _out = {'error': _e.to_dict()}",
            "except NameError as _e:",
            "    _out = {'error': {'code': 'not_defined', 'message': str(_e), 'hint': 'Check the --function and --validator names.'}}",
            f"print({_RESULT_MARK!r} + _json.dumps(_out))",
        ]
    )


def _read_outcome(cell: Any) -> dict[str, Any]:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(_RESULT_MARK):
                return json.loads(line[len(_RESULT_MARK):])
    raise PublishError("internal", "The kernel did not report the publish outcome.", "Run the notebook in JupyterLab to see what happens.")


def _serve(options: argparse.Namespace) -> int:
    # starlette and uvicorn load only when serving
    from .functions.server import serve_from_arguments

    return serve_from_arguments(options)


def _management_target(options: argparse.Namespace) -> Target:
    """The target ``--target`` names; a function server URL gets its admin token here."""
    target = get_target(options.target)
    if isinstance(target, FunctionServerTarget) and not target.token:
        target.token = _local_token_for(target.url)
        if not target.token:
            raise PublishError("target_error", f"no admin token for {target.url}",
                               f"set {TOKEN_ENV} to the server's admin token (file 'token' in its state directory)")
    return target


def _origin(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port, parts.path.rstrip("/")


def _local_token_for(url: str) -> Optional[str]:
    """The local server's admin token if ``url`` is the running local server's own address, else None.

    Only that server gets it: the token is the key to every function on this machine, and a
    --target URL may be anyone's.
    """
    state_dir = default_state_dir()
    info = read_server_info(state_dir)
    if info is None or _origin(info["url"]) != _origin(url):
        return None
    try:
        token = (state_dir / TOKEN_FILE).read_text("utf-8").strip() or None
    except OSError:
        return None
    if token is not None:
        # server.json only names a server: the token goes there once it proved it holds it.
        LocalTarget(state_dir).proven(info)
    return token


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _list(options: argparse.Namespace) -> int:
    functions = _management_target(options).list()
    if options.json:
        _print_json([fn.to_dict() for fn in functions])
        return 0
    if not functions:
        print("No functions published yet.")
    for fn in functions:
        access = {True: "public", False: "key", None: "-"}[fn.public]
        live = "-" if fn.live_version is None else f"v{fn.live_version}"
        print(f"{fn.name}\t{live}\t{access}\t{fn.url}")
    return 0


def _show(options: argparse.Namespace) -> int:
    target = _management_target(options)
    info = target.show(options.name)
    if options.json:
        _print_json(info.to_dict())
        return 0
    print(f"name: {info.name}")
    print(f"url: {info.url}")
    print(f"live version: {'none (nothing serves it)' if info.live_version is None else info.live_version}")
    if info.public is not None:
        print("key: none (public)" if info.public else f"key: {info.key}")
    if info.scale is not None:
        print(f"scale: {Scale.from_dict(info.scale).describe()}")
    if info.status is not None:
        print(f"status: {info.status}")
    if info.live_version is not None:
        deployment = Deployment(info.name, info.live_version, info.url, target.kind, key=info.key)
        print(f"call it: {deployment.curl()}")
    print("versions:")
    _print_versions(info.versions, indent="  ")
    return 0


def _print_versions(versions, indent: str = "") -> None:
    for version in versions:
        columns = [f"v{version.version}", version.status, version.created or "-"]
        if version.location:
            columns.append(version.location)
        print(indent + "\t".join(columns))


def _versions(options: argparse.Namespace) -> int:
    versions = _management_target(options).versions(options.name)
    if options.json:
        _print_json([version.to_dict() for version in versions])
    else:
        _print_versions(versions)
    return 0


def _rollback(options: argparse.Namespace) -> int:
    answer = _management_target(options).rollback(options.name, options.to)
    if options.json:
        _print_json(answer.to_dict())
    else:
        print(f"{answer.name} v{answer.version} is live again (was v{answer.previous_version}).")
    return 0


def _delete(options: argparse.Namespace) -> int:
    _management_target(options).delete(options.name)
    print(f"Deleted {options.name}.")
    return 0


def _logs(options: argparse.Namespace) -> int:
    answer = _management_target(options).logs(options.name, options.version, options.lines)
    sys.stdout.write(answer.log + ("\n" if answer.log else ""))
    return 0


def _export(options: argparse.Namespace) -> int:
    """The function's Serve config, as the ray target runs it, as a KubeRay RayService manifest."""
    target = _management_target(options)
    if not isinstance(target, RayTarget):
        raise PublishError("unsupported", f"--format rayservice exports what a ray target runs; {target.spec()} is "
                           f"a {target.kind} target", "give --target ray+http://HOST:8265?store=...")
    config = target.serve_config([options.name])
    key = target.show(options.name).key
    # The default image must match the cluster's Ray and the Python that pickled the function.
    versions = {"ray_version": target.cluster_ray_version(), "python": target.python_minor(options.name)}
    manifest = rayservice_manifest(
        config, name=options.name, image=options.image, namespace=options.namespace,
        secrets=[secret for secret in (target.token, key) if secret], store_endpoint=options.store_endpoint,
        **{option: value for option, value in versions.items() if value})
    text = dump_manifest(manifest)
    if options.output:
        with open(options.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"Wrote the RayService {options.name} to {options.output}.", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
