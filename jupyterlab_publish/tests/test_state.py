"""The shared local-state room: the one exclusive lock, atomic writes, log tails, paths."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupyterlab_publish.state.atomic import write_atomically
from jupyterlab_publish.state.lock import LockTimeout, exclusive_lock, try_hold
from jupyterlab_publish.state.logs import last_lines, tail
from jupyterlab_publish.state.paths import default_state_dir, user_key_path

HOLD_IN_ANOTHER_PROCESS = """
import sys
from jupyterlab_publish.state.lock import try_hold
fd = try_hold(sys.argv[1])
print("held" if fd is not None else "busy", flush=True)
sys.stdin.read()  # keep it until the test closes our stdin
"""


@pytest.fixture
def other_process_holding(tmp_path):
    path = tmp_path / "x.lock"
    child = subprocess.Popen([sys.executable, "-c", HOLD_IN_ANOTHER_PROCESS, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    yield path
    child.stdin.close()
    child.wait(10)


@pytest.mark.skipif(os.name == "nt", reason="flock semantics across processes are checked on POSIX")
def test_the_lock_is_exclusive_between_processes_and_waits_are_bounded(other_process_holding):
    assert try_hold(other_process_holding) is None
    with pytest.raises(LockTimeout) as caught:
        with exclusive_lock(other_process_holding, 0.2):
            pass
    assert caught.value.timeout == 0.2 and str(other_process_holding) in str(caught.value)
    with pytest.raises(RuntimeError, match="still busy"):
        with exclusive_lock(other_process_holding, 0.1, on_timeout=lambda e: RuntimeError(f"still busy: {e}")):
            pass


def test_the_lock_is_free_again_once_released(tmp_path):
    path = tmp_path / "y.lock"
    with exclusive_lock(path, 1.0):
        pass
    fd = try_hold(path)
    assert fd is not None
    os.close(fd)
    with exclusive_lock(path, 1.0):
        pass


def test_write_atomically_replaces_the_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "server.json"
    write_atomically(target, "old")
    write_atomically(target, "new", mode=0o600)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["server.json"]


def test_tail_reads_the_last_lines_from_the_end_within_a_byte_budget(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail(log, 3) == "line 99997\nline 99998\nline 99999"
    assert tail(log, 1000, max_bytes=20) == "ne 99998\nline 99999"  # the budget cuts the first line kept
    assert len(tail(log, 1000, max_bytes=100).encode()) <= 100
    assert tail(log, 0) == "" and tail(tmp_path / "missing.log", 5) == ""
    assert last_lines("\n\na\nb\nc\n\n", 2) == "b\nc"


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_STATE_DIR", raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path / "jupyterlab_publish" / "server"
    assert user_key_path() == tmp_path / "jupyterlab_publish" / "signing.key"
