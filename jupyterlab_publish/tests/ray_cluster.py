"""A real local Ray head for the ray target's tests, and a local S3-compatible server (moto).

``RayHead.start(directory)`` runs ``ray start --head --block`` in its own process group with token
auth (``RAY_AUTH_MODE=token``, the token in a 0600 file), its own ``--temp-dir``, 2 CPUs, a small
object store, every port it opens on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray
use loopback as the node's address, as on a laptop) and free ports picked here. ``stop()`` ends the
process group and then any process still running from that temp dir: only what this head started.

``OTHER_APP`` is another team's Serve application (not ours) that the tests deploy first and that
must survive every publish, rollback and delete: ``other_app`` below is its builder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT = 120.0
STOP_TIMEOUT = 2.0
TOKEN = "jupyterlab-publish-test-token-" + os.urandom(8).hex()
OTHER_APP = "other-team"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def other_app(args: dict):
    """Another team's Serve application: answers its own name, untouched by jupyterlab-publish."""
    from ray import serve  # only the cluster runs this builder
    from starlette.responses import JSONResponse  # (as above)

    @serve.deployment(name="Other", ray_actor_options={"num_cpus": 0.1})
    class Other:
        async def __call__(self, request):
            return JSONResponse({"app": OTHER_APP, "greeting": args.get("greeting")})

    return Other.bind()


class RayHead:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        # Short, under /tmp: Ray's Unix sockets live in it, and their paths may not exceed 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="jlp-ray-", dir="/tmp"))
        self.token_file = self.directory / "token"
        self.dashboard_port = free_port()
        self.serve_port = free_port()
        self.process = None

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update({
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            # A replica that cannot start is tried once, not three times: the refusals come sooner.
            "RAY_SERVE_MAX_PER_REPLICA_RETRY_COUNT": "1",
            # The s3 store's replicas read moto with these (any values do); none reach the config.
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        })
        env.pop("RAY_AUTH_TOKEN", None)
        env.update(extra)
        return env

    def start(self) -> "RayHead":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(TOKEN + "\n")
        ray = str(Path(sys.executable).with_name("ray"))
        command = [
            ray, "start", "--head", "--block", "--port=0", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.temp_dir}", "--num-cpus=2", "--object-store-memory=200000000",
            "--include-dashboard=true", "--disable-usage-stats",
        ]
        self.log = open(self.directory / "ray-start.log", "wb")
        self.process = subprocess.Popen(command, env=self.env(), stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"ray start exited: {(self.directory / 'ray-start.log').read_text()[-3000:]}")
            try:
                self.get("/api/version")
                return self
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Ray head did not answer within the time allowed")
            time.sleep(0.5)

    def request(self, path: str, *, method: str = "GET", body=None, token: str | None = TOKEN, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.dashboard + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def get(self, path: str) -> dict:
        return json.loads(self.request(path).decode("utf-8") or "{}")

    def deploy_other_app(self, tests_dir: Path) -> dict:
        """Deploy OTHER_APP declaratively, as another team would, with Serve's proxy on our port."""
        app = {
            "name": OTHER_APP, "route_prefix": "/other", "import_path": "ray_cluster:other_app",
            "args": {"greeting": "still here"},
            "runtime_env": {"env_vars": {"PYTHONPATH": str(tests_dir)}},
        }
        config = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": self.serve_port},
                  "applications": [app]}
        self.request("/api/serve/applications/", method="PUT", body=config)
        self.wait_running(OTHER_APP)
        return app

    def wait_running(self, name: str, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            details = self.get("/api/serve/applications/").get("applications", {}).get(name) or {}
            if details.get("status") == "RUNNING":
                return details
            if details.get("status") == "DEPLOY_FAILED" or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {details}")
            time.sleep(0.5)

    def call_other_app(self) -> dict:
        with urllib.request.urlopen(self.serve_url + "/other", timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        # Ray's daemons may have left the group; what still runs from our temp dir is ours alone.
        for pid in self._own_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _own_pids(self) -> list:
        """Processes started for this head: Ray renames its daemons (``ray::DashboardAgent``), so
        they are found by the token path every one of them inherited in its environment."""
        marker = f"RAY_AUTH_TOKEN_PATH={self.token_file}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids


class S3Server:
    """moto's S3-compatible server on 127.0.0.1, in this process, with one bucket."""

    def __init__(self, bucket: str = "bundles"):
        self.bucket = bucket
        self.port = free_port()
        self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        from moto.server import ThreadedMotoServer  # a test dependency, loaded by the s3 tests only

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        import boto3  # moto's own dependency (as above)

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
