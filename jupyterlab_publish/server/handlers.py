"""Thin tornado handlers for the Deployments API (openapi.json): read the request, run the
service's blocking call in an executor, answer JSON. Every refusal is a ``PublishError``, answered
with its code's status from ``errors.HTTP_STATUS`` and the same body the function server sends.

Jupyter's ``APIHandler`` gives the auth (``@authenticated``, ``@authorized``) and refuses a
cookie-authenticated request without the XSRF token — here GETs too (see ``_Common.prepare``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
from pathlib import Path
from typing import Any, Optional

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import PublishError
from ..names import check_endpoint_name
from .service import Deployments, TargetRef

ROUTE = "jupyterlab-publish"
# Jupyter's authorizer is asked for this resource (read for GET, write for POST and DELETE).
AUTH_RESOURCE = "jupyterlab_publish"
OPENAPI = Path(__file__).with_name("openapi.json")
# Sandbox the proxied docs page: it is the function server's HTML, shown on Jupyter's origin, so
# it may not run scripts or reach anything (its try-it form works on the function server's own page).
DOCS_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _answers(method):
    """Run a handler method; a PublishError becomes its JSON answer, anything else an ``internal`` one."""

    @functools.wraps(method)
    async def wrapped(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except PublishError as exc:
            self._answer_error(exc)
        except Exception as exc:  # a bug: say what it was in the project's error shape
            self.log.exception("jupyterlab_publish: %s %s failed", self.request.method, self.request.path)
            self._answer_error(PublishError("internal", f"the Deployments API failed: {type(exc).__name__}: {exc}",
                                            "see the Jupyter server's log"))

    return wrapped


class _Common:
    """What every handler of the API shares; mixed into APIHandler (JSON) or JupyterHandler (HTML)."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, service: Deployments, executor: concurrent.futures.Executor) -> None:
        self.service = service
        self.executor = executor

    async def prepare(self) -> None:
        await super().prepare()
        # Every route may send a target's token (or a file's content named as one) to the spec the
        # request names, so a GET is checked like a POST: a link on another site, followed with the
        # session cookie, must not make this server send a secret anywhere. JupyterLab's requests
        # carry the XSRF header; token-authenticated API clients need none (Jupyter's own rule).
        if self.request.method in ("GET", "HEAD"):
            self.check_xsrf_cookie()

    async def run(self, fn, *args) -> Any:
        """A blocking target call, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    def _answer_error(self, exc: PublishError) -> None:
        self.set_status(exc.http_status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(exc.http_body()))

    def answer(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def target_ref(self) -> TargetRef:
        spec = self.get_query_argument("target", "").strip()
        if not spec:
            raise PublishError("bad_request", "the request names no target",
                               "add ?target=<spec>, e.g. ?target=local or ?target=http://host:port")
        return TargetRef(spec=spec, token_env=self.get_query_argument("token_env", None) or None,
                         token_file=self.get_query_argument("token_file", None) or None)

    def number(self, name: str, default: Optional[int], value: Any = None) -> Optional[int]:
        value = self.get_query_argument(name, None) if value is None else value
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise PublishError("bad_request", f"{name}={value!r} is not a whole number", f"e.g. {name}=2") from None

    def json_body(self) -> Any:
        raw = self.request.body or b""
        if not raw.strip():
            raise PublishError("bad_request", "the request has no JSON body",
                               "send the function's arguments as JSON, e.g. [[0.5, 0.5]]")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise PublishError("invalid_input", f"the body is not JSON: {exc}",
                               "write a JSON array (positional arguments) or object (keyword arguments)") from None


class _Handler(_Common, APIHandler):
    pass


class TargetsHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def get(self):
        specs = [spec.strip() for spec in self.get_query_arguments("spec") if spec.strip()] or ["local"]
        self.answer({"targets": await self.run(self.service.targets, specs)})


class FunctionsHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def get(self):
        self.answer(await self.run(self.service.list, self.target_ref()))


class FunctionHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def get(self, name: str):
        with_key = self.get_query_argument("key", "false").lower() in ("1", "true", "yes")
        self.answer(await self.run(self.service.show, self.target_ref(), check_endpoint_name(name), with_key))

    @web.authenticated
    @authorized
    @_answers
    async def delete(self, name: str):
        self.answer(await self.run(self.service.delete, self.target_ref(), check_endpoint_name(name)))


class RollbackHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def post(self, name: str):
        # ``to`` comes as ?to=N or as {"to": N}; without either, the version live before this one.
        body = self.json_body() if (self.request.body or b"").strip() else {}
        if not isinstance(body, dict):
            raise PublishError("bad_request", "the rollback body must be a JSON object", 'send {"to": 2} or nothing')
        to = self.number("to", None, body.get("to"))
        self.answer(await self.run(self.service.rollback, self.target_ref(), check_endpoint_name(name), to))


class LogsHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def get(self, name: str):
        self.answer(await self.run(
            self.service.logs, self.target_ref(), check_endpoint_name(name), self.number("version", None),
            self.number("lines", 200), self.get_query_argument("since", None),
        ))


class CallHandler(_Handler):
    @web.authenticated
    @authorized
    @_answers
    async def post(self, name: str):
        ref, payload = self.target_ref(), self.json_body()
        self.answer(await self.run(self.service.call, ref, check_endpoint_name(name), payload))


class DocsHandler(_Common, JupyterHandler):
    """An HTML page, so not an APIHandler (which answers JSON only); a browser tab opening it
    without a session is sent to the login page."""

    @web.authenticated
    @authorized
    @_answers
    async def get(self, name: str):
        html = await self.run(self.service.docs, self.target_ref(), check_endpoint_name(name))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", DOCS_CSP)
        self.finish(html)


class OpenAPIHandler(_Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(OPENAPI.read_bytes())


def setup_handlers(web_app, service: Deployments, executor: Optional[concurrent.futures.Executor] = None) -> None:
    # A few threads: each request waits on a target over HTTP; rollbacks wait for a health check.
    executor = executor or concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="jupyterlab-publish")
    base = url_path_join(web_app.settings["base_url"], ROUTE)
    name = r"(?P<name>[^/]+)"
    options = {"service": service, "executor": executor}
    web_app.add_handlers(".*$", [
        (url_path_join(base, "targets"), TargetsHandler, options),
        (url_path_join(base, "functions"), FunctionsHandler, options),
        (url_path_join(base, "functions", name), FunctionHandler, options),
        (url_path_join(base, "functions", name, "rollback"), RollbackHandler, options),
        (url_path_join(base, "functions", name, "logs"), LogsHandler, options),
        (url_path_join(base, "functions", name, "call"), CallHandler, options),
        (url_path_join(base, "functions", name, "docs"), DocsHandler, options),
        (url_path_join(base, "openapi.json"), OpenAPIHandler, options),
    ])
