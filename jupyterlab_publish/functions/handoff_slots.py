"""The server's side of the slot table: answering the clients of a worker that died mid-call.

A handed-off client talks to its worker directly, so when the worker dies the server alone can still
answer it, and only if it kept a copy of the connection and knows what was happening on it
(docs/bundle-format.md, "Connection hand-off", contract 3). So for every worker that takes
connections the server creates a small shared file of one-byte slots (``--slots-fd``), sends each
connection with its slot number, and keeps its own copy of the descriptor. The worker writes the
slot's state as requests come and go (plain stores into the mapping: no system call per request).
When the worker is gone, the server reads the table: a call was running → a JSON 502 saying so; the
connection was never taken up, or was idle between requests, or released by the draining worker
(SIGTERM: a new version went live) → the server serves it from now on
(nothing of a request was read from it: its next request is proxied to a running worker), else a
JSON 503 / a close; the answer was being written → closed. Slots the worker marked closed are freed
as the table is swept.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import mmap
import os
import socket
import tempfile
import threading
from typing import Optional

from ..errors import PublishError
from ..runtime.service_handoff import (
    SLOT_CLOSED,
    SLOT_FREE,
    SLOT_HANDED,
    SLOT_IDLE,
    SLOT_PAYLOAD,
    SLOT_RELEASED,
    SLOT_RUNNING,
    SLOT_WRITING,
    UNTRACKED,
)

log = logging.getLogger("jupyterlab_publish.functions")

SLOTS = 4096  # connections one worker can have tracked at once; beyond, they are handed off untracked
_PROBES = 8  # slots looked at per hand-off before giving up on tracking that connection


def _answer(error: PublishError) -> bytes:
    body = json.dumps(error.http_body()).encode("utf-8")
    status = error.http_status
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _read_what_waits(conn: socket.socket, limit: int = 1 << 20) -> None:
    conn.setblocking(False)
    read = 0
    while read < limit:
        try:
            chunk = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            return
        read += len(chunk)


class HandedConnections:
    """One worker's slot table and the server's copies of the connections handed to it."""

    def __init__(self, name: str, slots: int = SLOTS):
        self.name = name
        self.size = slots
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("jupyterlab-publish-slots", os.MFD_CLOEXEC)
        else:  # no memfd (macOS): an unlinked temporary file does the same
            with tempfile.TemporaryFile() as spool:
                self.fd = os.dup(spool.fileno())
        os.ftruncate(self.fd, slots)  # zeroes: every slot SLOT_FREE
        self.map = mmap.mmap(self.fd, slots)
        self.held: dict = {}  # slot -> the server's copy of the connection
        self.cursor = 0
        self.lock = threading.Lock()  # the event loop hands off and sweeps; stopping a worker runs in a thread
        self.closed = False
        self.serve_locally = None  # (loop, serve(conn)): how the server serves a connection it takes back

    def hand_off(self, control: socket.socket, conn: socket.socket, serve_locally=None) -> bool:
        """Send ``conn`` to the worker with a slot, keeping our copy; False if it could not be sent.

        ``serve_locally(conn)``, called on this (the front's) event loop, serves a connection with the
        server's own app: where the idle connections of a dead worker go."""
        if serve_locally is not None and self.serve_locally is None:
            self.serve_locally = (asyncio.get_running_loop(), serve_locally)
        with self.lock:
            slot = self._free_slot()
            if slot is not None:
                self.map[slot] = SLOT_HANDED
            try:
                socket.send_fds(control, [SLOT_PAYLOAD.pack(UNTRACKED if slot is None else slot)], [conn.fileno()])
            except OSError:
                if slot is not None:
                    self.map[slot] = SLOT_FREE
                return False
            if slot is None:
                conn.close()  # untracked: the worker holds the only copy, as before the slot table
            else:
                self.held[slot] = conn
            return True

    def _free_slot(self) -> Optional[int]:
        if self.closed:
            return None
        for _ in range(_PROBES):
            slot = self.cursor
            self.cursor = (slot + 1) % self.size
            conn = self.held.get(slot)
            if conn is None:
                return slot
            if self.map[slot] == SLOT_CLOSED:
                conn.close()
                del self.held[slot]
                return slot
        return None

    def sweep(self) -> None:
        """Close our copies of the connections the worker has closed, serve those it released (frees
        their slots)."""
        with self.lock:
            if self.closed:
                return
            for slot in [slot for slot in self.held if self.map[slot] in (SLOT_CLOSED, SLOT_RELEASED)]:
                conn = self.held.pop(slot)
                if self.map[slot] == SLOT_CLOSED or not self._take_back(conn):
                    conn.close()
                self.map[slot] = SLOT_FREE

    def worker_gone(self, why: str) -> dict:
        """The worker has exited: answer or close every connection it had; counts by outcome."""
        died = PublishError(
            "worker_failed", f"the worker serving {self.name} {why} while the call was running; the call may "
            "not have finished", f"see `jupyter publish logs {self.name}`; the worker is being restarted")
        unserved = PublishError(
            "unavailable", f"the worker serving {self.name} {why} before it read this request; nothing ran",
            "send the request again")
        outcome = {"answered_502": 0, "answered_503": 0, "closed": 0, "served_here": 0}
        with self.lock:
            self.closed = True
            held, self.held = self.held, {}
            for slot, conn in held.items():
                state = self.map[slot]
                # WRITING too: the worker marks a connection idle just after writing its answer, and a
                # worker killed in between has nearly always written all of it. The client, which
                # reads an answer before sending its next request, then goes on as if nothing happened;
                # if the answer was cut short, it gets nothing more and the server closes the
                # connection after its header timeout (only a pipelining client could be misled).
                if state in (SLOT_HANDED, SLOT_IDLE, SLOT_RELEASED, SLOT_WRITING) and self._take_back(conn):
                    outcome["served_here"] += 1
                    continue
                answer = _answer(died) if state == SLOT_RUNNING else _answer(unserved) if state == SLOT_HANDED else None
                try:
                    if answer is not None:
                        _read_what_waits(conn)  # closing on unread bytes would reset the connection
                        conn.setblocking(True)
                        conn.settimeout(1.0)  # a client that reads nothing must not hold the server
                        conn.sendall(answer)
                        outcome["answered_502" if state == SLOT_RUNNING else "answered_503"] += 1
                    else:
                        outcome["closed"] += 1
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the client has gone too
                finally:
                    conn.close()
            self.map.close()
            os.close(self.fd)
        if outcome["answered_502"] or outcome["answered_503"] or outcome["served_here"] or outcome["closed"]:
            log.warning("the worker serving %s %s: answered %d call(s) in progress with 502 and %d unread request(s) "
                        "with 503; %d idle connection(s) are routed again, %d closed", self.name, why,
                        outcome["answered_502"], outcome["answered_503"], outcome["served_here"], outcome["closed"])
        return outcome

    def _take_back(self, conn: socket.socket) -> bool:
        """Have the server serve a connection none of whose next request the worker read."""
        if self.serve_locally is None:
            return False
        loop, serve = self.serve_locally
        try:
            loop.call_soon_threadsafe(serve, conn)  # worker_gone runs in a thread; serving is the loop's
        except RuntimeError:  # the loop has closed: the server is exiting
            return False
        return True


__all__ = ["HandedConnections", "SLOTS"]
