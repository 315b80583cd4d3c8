"""A target that uploads bundles to a function server's admin API, using only urllib.

The server (``jupyterlab_publish.functions``) does the staging, the smoke test and the switch; this
client packs, uploads, and reads the server's error answers back into the ``PublishError`` the
server raised: the body's ``error`` is one of ``ERROR_CODES``, so the code survives the hop (only
a code this client does not know becomes ``target_error``).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from ..errors import ERROR_CODES, HTTP_BODY_KEYS, PublishError
from .base import DEFAULT_LOG_LINES, Deployment, Gate, Progress, Target, call_with_key, check_name, progress_or_noop
from .results import (
    CallResult, FunctionInfo, FunctionMetrics, FunctionSummary, LogTail, RollbackResult, histogram_quantile,
)

TOKEN_ENV = "JUPYTERLAB_PUBLISH_TOKEN"
# Generous: the server starts a worker and runs the smoke test before it answers, and later
# versions will install packages there too.
DEFAULT_PUSH_TIMEOUT = 600.0
DEFAULT_TIMEOUT = 30.0
_UPLOAD_CHUNK = 256 * 1024
# How long the server keeps a staged version for ``gate`` (the kernel's pre-flight, whose own
# timeout is 120 s) before abandoning it by itself.
GATE_HOLD_SECONDS = 300


class _ProgressReader:
    """File wrapper that reports how much of the upload http.client has read so far."""

    def __init__(self, fileobj, size: int, report: Progress, start: float, end: float, on_done=None):
        self._file = fileobj
        self._on_done = on_done
        self._size = max(size, 1)
        self._sent = 0
        self._reported = -1.0
        self._report = report
        self._start, self._end = start, end

    def read(self, n: int = -1) -> bytes:
        chunk = self._file.read(_UPLOAD_CHUNK if n is None or n < 0 else min(n, _UPLOAD_CHUNK))
        if chunk:
            self._sent += len(chunk)
            done = self._sent / self._size
            # http.client reads 8 KiB at a time; report every 5% so a big model does not flood
            # the comm with thousands of progress events.
            if done - self._reported < 0.05 and self._sent < self._size:
                return chunk
            self._reported = done
            self._report(
                "pushing",
                self._start + (self._end - self._start) * done,
                f"uploaded {self._sent // 1024} of {self._size // 1024} KiB",
            )
        if self._sent >= self._size and self._on_done is not None:
            on_done, self._on_done = self._on_done, None
            on_done()
        return chunk



def _error_body(exc: urllib.error.HTTPError) -> dict:
    try:
        body = json.loads(exc.read().decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class FunctionServerTarget(Target):
    kind = "http"
    label = "Function server (URL)"
    spec_example = "https://functions.example.org"
    capabilities = frozenset({"list", "show", "versions", "rollback", "delete", "logs", "metrics", "call", "docs"})
    gates_switch = True

    def __init__(self, url: str, token: Optional[str] = None, *, timeout: float = DEFAULT_PUSH_TIMEOUT):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PublishError("unknown_target", f"{url!r} is not an http(s) URL", "write it as http://host:port")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.timeout = timeout

    @classmethod
    def from_spec(cls, spec: str, *, token: Optional[str] = None) -> "FunctionServerTarget":
        return cls(spec, token)

    def spec(self) -> str:
        return self.url

    def describe(self) -> dict:
        return {**super().describe(), "label": f"Function server {self.url}"}

    # -- push ------------------------------------------------------------------------------------

    def push(self, bundle: Any, progress: Optional[Progress] = None, *, new_version: bool = False,
             public: bool = False, gate: Optional[Gate] = None) -> Deployment:
        """Upload and go live. ``public=True`` lets anyone call the function without its key (each
        publish says which it wants); the key, the same for every version, is in ``Deployment.key``.

        With ``gate``, the server holds the started, smoke-tested version (``?hold=``) while
        ``gate()`` runs here, then switches to it; if ``gate()`` raises, the version is abandoned
        and the live one never stopped serving."""
        from ..bundle import pack_bundle  # pulls in cloudpickle; load on use
        from ..bundle.signature import key_from_token  # (as above)

        report = progress_or_noop(progress)
        name = check_name(bundle.manifest.get("name"))
        if not new_version:
            # Ask first: the server refuses a taken name before reading the upload, and a large
            # upload cut short that way would look like a network failure.
            self.refuse_taken_name(name)
        report("pushing", 0.0, "packing the bundle")
        with tempfile.TemporaryFile(suffix=".tar.gz") as archive:
            # Signed with the key derived from the admin token: the server refuses unsigned bundles.
            pack_bundle(bundle, archive, signing_key=key_from_token(self.token) if self.token else None)
            size = archive.tell()
            archive.seek(0)
            params = {"new_version": "true" if new_version else "false", "public": "true" if public else "false"}
            if gate is not None:
                params["hold"] = str(GATE_HOLD_SECONDS)
            query = urllib.parse.urlencode(params)
            # The server answers only once the new version is live (or rejected), so what follows
            # the upload is reported as one stage.
            uploaded = lambda: report(
                "starting", 0.5, "uploaded; the server is starting the new version and running its smoke test"
            )
            request = urllib.request.Request(
                f"{self.url}/api/functions/{name}/versions?{query}",
                data=_ProgressReader(archive, size, report, 0.05, 0.5, on_done=uploaded),
                method="POST",
                headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
            )
            report("pushing", 0.05, f"uploading {size // 1024} KiB to {self.url}")
            answer = self._send(request, self.timeout)
        if answer.get("staged"):
            answer = self._pass_gate(name, int(answer["version"]), gate, report)
        elif gate is not None:
            self._gate_after_the_switch(name, answer, gate)
        if answer.get("smoke_test") == "passed":
            report("smoke_test", 0.95, "smoke test passed")
        report("smoke_test", 1.0, f"version {answer['version']} is live at {answer['url']}")
        return Deployment(
            name=answer["name"],
            version=int(answer["version"]),
            url=answer["url"],
            target=self.kind,
            key=answer.get("key"),
            bundle_path=answer.get("bundle_dir"),
        )

    def _pass_gate(self, name: str, version: int, gate: Gate, report: Progress) -> dict:
        """Run the caller's check on a held version, then switch to it or abandon it."""
        where = f"{self.url}/api/functions/{name}/versions/{version}"
        report("starting", 0.9, f"version {version} started and passed its smoke test; waiting for the pre-flight")
        try:
            gate()
        except BaseException:
            try:
                self._send(urllib.request.Request(where, method="DELETE"), DEFAULT_TIMEOUT)
            except PublishError:
                pass  # the server abandons it anyway when the hold runs out; the gate's error matters
            raise
        return self._send(urllib.request.Request(where + "/promote", data=b"", method="POST"), DEFAULT_TIMEOUT)

    def _gate_after_the_switch(self, name: str, answer: dict, gate: Gate) -> None:
        """A server older than ``?hold=`` switched at once: run the gate anyway, and if it fails
        put back what was live before (or remove a first version) before raising its error."""
        try:
            gate()
        except BaseException:
            try:
                if int(answer["version"]) > 1:
                    self.rollback(name)
                else:
                    self.delete(name)
            except PublishError:
                pass  # the gate's error is the one to show; the server's state is in `show`
            raise

    # -- management verbs (the admin API) --------------------------------------------------------

    def list(self) -> list:
        answer = self._send(urllib.request.Request(f"{self.url}/api/functions"), DEFAULT_TIMEOUT)
        return [FunctionSummary.from_dict(entry) for entry in answer["functions"]]

    def show(self, name: str) -> FunctionInfo:
        request = urllib.request.Request(f"{self.url}/api/functions/{check_name(name)}")
        return FunctionInfo.from_dict(self._send(request, DEFAULT_TIMEOUT))

    def versions(self, name: str) -> list:
        return list(self.show(name).versions)

    def rollback(self, name: str, to: Optional[int] = None) -> RollbackResult:
        query = "" if to is None else "?" + urllib.parse.urlencode({"to": int(to)})
        request = urllib.request.Request(f"{self.url}/api/functions/{check_name(name)}/rollback{query}",
                                         data=b"", method="POST")
        # The server starts and health-checks the version before it answers.
        return RollbackResult.from_dict(self._send(request, DEFAULT_PUSH_TIMEOUT))

    def delete(self, name: str) -> None:
        request = urllib.request.Request(f"{self.url}/api/functions/{check_name(name)}", method="DELETE")
        self._send(request, DEFAULT_TIMEOUT)

    def logs(self, name: str, version: Optional[int] = None, lines: int = DEFAULT_LOG_LINES) -> LogTail:
        params = {"lines": int(lines)}
        if version is not None:
            params["version"] = int(version)
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}/api/functions/{check_name(name)}/logs?{query}")
        return LogTail.from_dict(self._send(request, DEFAULT_TIMEOUT))

    # -- transport -------------------------------------------------------------------------------

    def _send(self, request: urllib.request.Request, timeout: float) -> dict:
        request.add_header("Accept", "application/json")
        body, _ = self._fetch(request, timeout)
        try:
            return json.loads(body.decode("utf-8") or "{}")
        except ValueError as exc:  # not JSON: something else answers at that URL
            raise PublishError(
                "target_error",
                f"{self.url} answered with something that is not a function server's JSON",
                "check the target URL",
            ) from exc

    def _unreachable(self, reason: object) -> PublishError:
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return PublishError(
                "target_unreachable",
                f"the function server at {self.url} did not answer in time",
                "check that it is running and not overloaded, then try again",
            )
        return PublishError(
            "target_unreachable",
            f"cannot reach the function server at {self.url}: {reason}",
            "check the URL and that the server is running (start one with `jupyter publish serve`)",
        )

    def _answered_error(self, exc: urllib.error.HTTPError) -> PublishError:
        """The PublishError the server answered with: its code, message, hint and details (the
        other keys of its body), plus ``details["status"]``."""
        body = _error_body(exc)
        code = body.get("error")
        message = body.get("message") or f"the function server answered HTTP {exc.code}"
        hint = body.get("hint") or ""
        details = {key: value for key, value in body.items() if key not in HTTP_BODY_KEYS}
        details["status"] = exc.code
        if code == "unauthorized" or (code is None and exc.code == 401):
            # The admin API refused *our* token: for the publisher that is this target's
            # configuration, so it says which token to set (an invocation's 401 never comes here).
            return PublishError(
                "target_error",
                f"the function server at {self.url} refused the admin token ({message})",
                f"set {TOKEN_ENV} to the server's admin token (it is in the server's state directory, "
                "file 'token'), or pass token=...",
                details,
            )
        if code == "smoke_test_failed":
            log = details.get("log") or ""
            message = f"{message}\n--- worker log (last lines) ---\n{log}" if log else message
            hint = hint or "fix the function or the sample input and publish again; the previous version is still serving"
            details["log"] = log
        if code == "name_taken":
            hint = "publish a new version (new_version=True) or choose another name"
        if code not in ERROR_CODES:
            code = "target_error"  # an answer from a newer server, or not from a function server at all
        return PublishError(code, message, hint, details)

    # -- the Deployments panel's verbs: metrics, call, docs ---------------------------------------

    def metrics(self) -> list:
        """Each function's counters from the server's Prometheus ``/metrics``, summed over the
        processes and versions that served it."""
        # The exposition format is read by its own library, a dependency of the server side; the
        # kernel never asks for metrics, so it is loaded only here.
        from prometheus_client.parser import text_string_to_metric_families

        text, _ = self._fetch(urllib.request.Request(f"{self.url}/metrics"), DEFAULT_TIMEOUT)
        functions: dict = {}

        def entry(labels: dict) -> dict:
            return functions.setdefault(labels.get("function", ""), {
                "requests": 0, "errors": 0, "in_flight": 0, "buckets": {}})

        for family in text_string_to_metric_families(text.decode("utf-8", "replace")):
            for sample in family.samples:
                if "function" not in sample.labels:
                    continue
                into = entry(sample.labels)
                if sample.name == "jupyterlab_publish_requests_total":
                    into["requests"] += int(sample.value)
                elif sample.name == "jupyterlab_publish_errors_total":
                    into["errors"] += int(sample.value)
                elif sample.name == "jupyterlab_publish_in_flight":
                    into["in_flight"] += int(sample.value)
                elif sample.name == "jupyterlab_publish_request_seconds_bucket":
                    bound = float(sample.labels["le"])
                    into["buckets"][bound] = into["buckets"].get(bound, 0.0) + sample.value
        out = []
        for name, seen in sorted(functions.items()):
            buckets = sorted(seen["buckets"].items())
            out.append(FunctionMetrics(
                name=name, requests=seen["requests"], errors=seen["errors"],
                error_rate=seen["errors"] / seen["requests"] if seen["requests"] else None,
                p50=histogram_quantile(0.5, buckets), p99=histogram_quantile(0.99, buckets),
                in_flight=seen["in_flight"],
            ))
        return out

    def call(self, name: str, payload: Any) -> CallResult:
        """POST ``payload`` to the function with its key (from ``show``), as any caller would."""
        key = self.show(name).key
        try:
            return call_with_key(name, f"{self.url}/functions/{check_name(name)}", payload, key, DEFAULT_CALL_TIMEOUT)
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from exc
        except (ConnectionError, socket.timeout, TimeoutError) as exc:
            raise self._unreachable(exc) from exc

    def docs(self, name: str) -> str:
        """The function's /docs page, fetched with the admin token (keyed functions need one)."""
        html, _ = self._fetch(urllib.request.Request(f"{self.url}/functions/{check_name(name)}/docs"),
                              DEFAULT_TIMEOUT)
        return html.decode("utf-8", "replace")

    def _fetch(self, request: urllib.request.Request, timeout: float) -> tuple:
        """(body bytes, content type) of an admin-authorised request; failures as PublishErrors."""
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise self._answered_error(exc) from exc
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from exc
        except (ConnectionError, socket.timeout, TimeoutError) as exc:
            raise self._unreachable(exc) from exc


# A try-it call waits as long as a caller would; the server's own --request-timeout answers 504 first.
DEFAULT_CALL_TIMEOUT = 300.0

