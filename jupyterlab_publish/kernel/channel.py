"""One comm connection with the front end: parse requests, run them, send replies and progress.

Listing functions is quick and answered at once. Analysis and publishing run in a worker thread so
the kernel keeps executing cells; their progress is throttled because the Jupyter server
rate-limits iopub messages.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable

from ..errors import PublishError
from . import handlers, protocol

log = logging.getLogger(__name__)

# At most this many progress messages a second per request; a new stage is always sent.
PROGRESS_PER_SECOND = 4


class Channel:
    def __init__(self, comm: Any, namespace: Callable[[], dict[str, Any]]):
        self._comm = comm
        self._namespace = namespace
        self._send_lock = threading.Lock()
        self._cancel_events: dict[str, threading.Event] = {}
        # requests whose publish reached the target (a stage of protocol.COMMITTED_STAGES)
        self._committed: set[str] = set()
        self._publishing = threading.Lock()

    def handle_message(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data")
        try:
            request = protocol.parse_request(data)
        except PublishError as err:
            self._send(protocol.error(getattr(err, "request_id", None), err))
            return
        if request.method == "cancel":
            self._cancel(request)
        elif request.method == "list_functions":
            self._run(request)
        else:
            cancel = threading.Event()
            self._cancel_events[request.id] = cancel
            worker = threading.Thread(
                target=self._run, args=(request, cancel), name=f"jupyterlab-publish-{request.method}", daemon=True
            )
            worker.start()

    def _run(self, request: protocol.Request, cancel: threading.Event | None = None) -> None:
        try:
            if request.method == "publish":
                value = self._publish(request, cancel)
            else:
                value = handlers.HANDLERS[request.method](request.params, self._namespace())
            self._send(protocol.result(request.id, value))
        except PublishError as err:
            self._send(protocol.error(request.id, err))
        except Exception as exc:  # a bug: report it instead of leaving the front end waiting
            log.exception("jupyterlab-publish: %s failed", request.method)
            err = PublishError(
                "internal",
                f"{request.method} failed: {type(exc).__name__}: {exc}",
                "This is a bug in jupyterlab-publish; please report it with the details.",
                {"traceback": traceback.format_exc(limit=20)},
            )
            self._send(protocol.error(request.id, err))
        finally:
            self._cancel_events.pop(request.id, None)
            self._committed.discard(request.id)

    def _publish(self, request: protocol.Request, cancel: threading.Event | None) -> dict[str, Any]:
        # One publish at a time per kernel: two would race for the same endpoint and bundle files.
        if not self._publishing.acquire(blocking=False):
            raise PublishError("busy", "Another publish is running in this kernel.", "Wait for it or cancel it.")
        try:
            progress = self._progress_sender(request.id)
            return handlers.publish(request.params, self._namespace(), progress=progress, cancel=cancel)
        finally:
            self._publishing.release()

    def _cancel(self, request: protocol.Request) -> None:
        """Cancel a running request, unless its publish reached the target: then say it is too late
        (the new version goes live), rather than let the user believe nothing changed."""
        target = request.params["request_id"]
        event = self._cancel_events.get(target)
        too_late = target in self._committed
        if event is not None and not too_late:
            event.set()
        self._send(protocol.result(request.id, {"cancelled": event is not None and not too_late, "too_late": too_late}))

    def _progress_sender(self, request_id: str) -> Callable[[str, float, str], None]:
        last = {"stage": None, "time": 0.0}

        def send(stage: str, fraction: float, message: str) -> None:
            if stage in protocol.COMMITTED_STAGES:
                self._committed.add(request_id)
            now = time.monotonic()
            if stage == last["stage"] and now - last["time"] < 1.0 / PROGRESS_PER_SECOND:
                return
            last.update(stage=stage, time=now)
            self._send(protocol.progress(request_id, stage, fraction, message))

        return send

    def _send(self, data: dict[str, Any]) -> None:
        with self._send_lock:
            self._comm.send(data)
