"""Function code cannot reach the server's secrets (README, "Worker isolation").

A real ``jupyter publish serve`` on 127.0.0.1 serves a function written to steal: it tries to read
the admin token, ``state.db`` and ``server.json``, to list and write into the state directory, to
reach them through the server's ``/proc/PID/root``, and reports what happened, so each assertion is
on a real outcome inside the worker. bubblewrap is installed by the project's setup
(scripts/install-sandbox.sh), so the sandboxed mode is asserted, not skipped; the fallback mode is
run explicitly, and as the server picks it when bwrap cannot be found.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from jupyterlab_publish.state.paths import read_server_info

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap and /proc are Linux's")

from function_server import REPO, Server, adder, call, make_bundle  # noqa: E402

SNOOP = """
def snoop(state, server_pid):
    import os
    out = {"cwd": os.getcwd(), "uid": os.getuid(), "token_in_env": "JUPYTERLAB_PUBLISH_TOKEN" in os.environ,
           "state_in_env": "JUPYTERLAB_PUBLISH_STATE_DIR" in os.environ}
    targets = {"token": os.path.join(state, "token"), "state.db": os.path.join(state, "state.db"),
               "server.json": os.path.join(state, "server.json"),
               "token via /proc": "/proc/%d/root%s/token" % (server_pid, state),
               "another function's bundle": os.path.join(state, "functions", "other", "v1", "bundle", "manifest.json")}
    for what, path in targets.items():
        try:
            with open(path, "rb") as handle:
                out[what] = "read %d bytes" % len(handle.read())
        except OSError as exc:
            out[what] = type(exc).__name__
    try:
        out["listing"] = sorted(os.listdir(state))
    except OSError as exc:
        out["listing"] = type(exc).__name__
    try:
        with open(os.path.join(state, "planted"), "w") as handle:
            handle.write("function code was here")
        out["write"] = "written"
    except OSError as exc:
        out["write"] = type(exc).__name__
    try:
        import tempfile
        with tempfile.NamedTemporaryFile() as handle:  # a private /tmp still works
            handle.write(b"scratch")
        out["tmp"] = "ok"
    except OSError as exc:
        out["tmp"] = type(exc).__name__
    return out
"""


def _publish_snoop(server: Server, tmp: Path):
    bundle = make_bundle(tmp, SNOOP, "snoop", "snoop")
    return server.target().push(bundle, lambda *a, **k: None)


def test_function_code_in_the_sandbox_cannot_read_or_write_the_state_directory(tmp_path):
    assert shutil.which("bwrap"), "bubblewrap is missing: `make setup` installs it (scripts/install-sandbox.sh)"
    server = Server(tmp_path / "state").start()
    try:
        sandbox = read_server_info(server.state)["sandbox"]
        assert sandbox["mode"] == "bwrap" and sandbox["secrets_hidden"] is True, sandbox
        server.target().push(make_bundle(tmp_path, adder(1), "add", "other", sample=[1]))
        assert (server.state / "functions" / "other" / "v1" / "bundle" / "manifest.json").is_file()
        deployment = _publish_snoop(server, tmp_path)
        status, seen = call(deployment.url, [str(server.state), server.process.pid], key=deployment.key)
        assert status == 200, seen
        for secret in ("token", "state.db", "server.json", "token via /proc", "another function's bundle"):
            assert not seen[secret].startswith("read"), (secret, seen)
        assert not isinstance(seen["listing"], list) or not {"token", "state.db", "server.json"} & set(seen["listing"])
        assert seen["write"] != "written", seen
        assert not (server.state / "planted").exists()
        assert seen["token_in_env"] is False and seen["state_in_env"] is False
        assert not Path(seen["cwd"]).is_relative_to(server.state)
        assert seen["tmp"] == "ok"
        # The call reached the worker through the inherited hand-off socket, inside the sandbox.
        status, health = call(server.url + "/healthz", method="GET")
        assert status == 200 and health["handed_off"] >= 1, health
        assert health["sandbox"] == {"mode": "bwrap", "secrets_hidden": True}, health
        # The server's own files are all still there and its admin API still works with the token.
        assert (server.state / "token").read_text().strip() == server.token
        assert sorted(f.name for f in server.target().list()) == ["other", "snoop"]
    finally:
        server.stop()


def test_the_fallback_mode_keeps_workers_out_of_the_state_directory_and_says_what_it_cannot_hide(tmp_path):
    server = Server(tmp_path / "state", "--sandbox", "fallback").start()
    try:
        sandbox = read_server_info(server.state)["sandbox"]
        assert sandbox["mode"] == "fallback" and sandbox["secrets_hidden"] is False, sandbox
        status, health = call(server.url + "/healthz", method="GET")
        assert health["sandbox"] == {"mode": "fallback", "secrets_hidden": False}, health
        deployment = _publish_snoop(server, tmp_path)
        status, seen = call(deployment.url, [str(server.state), server.process.pid], key=deployment.key)
        assert status == 200, seen
        cwd = Path(seen["cwd"])
        assert not cwd.is_relative_to(server.state) and cwd.name.startswith("jupyterlab-publish-worker-"), seen
        assert cwd.is_dir() and oct(cwd.stat().st_mode & 0o777) == "0o700"
        assert seen["token_in_env"] is False and seen["state_in_env"] is False
        assert oct((server.state / "token").stat().st_mode & 0o777) == "0o600"
        # The server's interpreter here lives where an unprivileged account cannot run it (or the
        # server is not root): the worker runs as the server's user, and its log says what that means.
        assert seen["uid"] == os.getuid()
        assert "as the server's user: function code can read the server's secrets" in \
            server.target().logs("snoop").log
    finally:
        server.stop()
    assert not cwd.exists(), "a stopped worker's private directory is removed"
    log = (tmp_path / "state.log").read_text()
    assert "WITHOUT a sandbox" in log and "install bubblewrap" in log


SYSTEM_PYTHON = Path("/usr/bin/python{}.{}".format(*sys.version_info[:2]))


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping a worker to an unprivileged account needs a root server")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason=f"no {SYSTEM_PYTHON} an unprivileged account can run")
def test_a_root_server_in_the_fallback_mode_runs_workers_as_nobody_who_cannot_reach_the_secrets(tmp_path):
    # The state directory where an unprivileged account can reach it (pytest's own tmp is 0700, as
    # /root is), with environments built on the system's Python, which `nobody` can run.
    parent = Path(tempfile.mkdtemp(prefix="jlp-fallback-"))
    parent.chmod(0o711)
    server = Server(parent / "state", "--sandbox", "fallback", "--environments", "uv",
                    "--base-python", str(SYSTEM_PYTHON)).start()
    try:
        sandbox = read_server_info(server.state)["sandbox"]
        assert (sandbox["mode"], sandbox["worker_user"]) == ("fallback", "nobody"), sandbox
        deployment = _publish_snoop(server, tmp_path)
        status, seen = call(deployment.url, [str(server.state), server.process.pid], key=deployment.key)
        assert status == 200, seen
        assert seen["uid"] == pwd.getpwnam("nobody").pw_uid
        for secret in ("token", "state.db", "server.json", "token via /proc"):
            assert seen[secret] == "PermissionError", (secret, seen)
        assert seen["listing"] == "PermissionError" and seen["write"] == "PermissionError", seen
        assert not (server.state / "planted").exists()
        assert not Path(seen["cwd"]).is_relative_to(server.state) and seen["tmp"] == "ok"
        assert seen["token_in_env"] is False and seen["state_in_env"] is False
        assert "without a sandbox, as nobody" in server.target().logs("snoop").log
        # The server itself still reads and writes its state: the admin API and the token work.
        assert [f.name for f in server.target().list()] == ["snoop"]
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


def test_without_bwrap_auto_falls_back_and_a_required_sandbox_refuses_to_start(tmp_path, monkeypatch):
    # A PATH without bwrap: what a machine without bubblewrap looks like to the server.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_SANDBOX", raising=False)
    server = Server(tmp_path / "state").start()
    try:
        sandbox = read_server_info(server.state)["sandbox"]
        assert (sandbox["mode"], sandbox["secrets_hidden"]) == ("fallback", False)
        assert sandbox["reason"] == "bubblewrap (bwrap) is not installed"
    finally:
        server.stop()

    # A bwrap that cannot sandbox anything (as in a container that forbids namespaces) fails the
    # self-test: auto falls back and says why.
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = Server(tmp_path / "state").start()
    try:
        sandbox = read_server_info(server.state)["sandbox"]
        assert sandbox["mode"] == "fallback", sandbox
        assert sandbox["reason"].startswith("bwrap failed its self-test (exit status 1)"), sandbox
        assert "No permissions to create new namespace" in sandbox["reason"]
    finally:
        server.stop()
    fake.unlink()

    env = dict(os.environ, PYTHONPATH=str(REPO), JUPYTERLAB_PUBLISH_SANDBOX="bwrap")
    refused = subprocess.run(
        [sys.executable, "-m", "jupyterlab_publish.cli", "serve", "--state-dir", str(tmp_path / "other"),
         "--environments", "shared"], capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "--sandbox bwrap: bubblewrap (bwrap) is not installed" in refused.stderr
    assert read_server_info(tmp_path / "other") is None

    env["JUPYTERLAB_PUBLISH_SANDBOX"] = "everything"
    unknown = subprocess.run(
        [sys.executable, "-m", "jupyterlab_publish.cli", "serve", "--state-dir", str(tmp_path / "other")],
        capture_output=True, text=True, timeout=60, env=env)
    assert unknown.returncode == 2 and "use one of auto, bwrap, fallback" in unknown.stderr
