"""Supply chain: a distribution the kernel did not get from an index is never fetched from one.

A real local package (``jlp-local-probe``, a directory with a pyproject) is installed into a venv
that plays the kernel's environment, a function using it is bundled there (the lock reads the
venv's installed metadata, ``direct_url.json`` included) and pushed to a real
``jupyter publish serve --environments uv`` on 127.0.0.1:

- without a wheelhouse the publish is refused before anything is installed, naming the package,
  where it came from and the fix, and nothing goes live;
- with a wheelhouse that holds it the environment installs it from there (pinned to that file) and
  the function answers;
- installed by pip from a wheel, the kernel knows the wheel's sha256 and the lock carries it: a
  wheelhouse holding a different wheel under the same name and version is refused by the hash;
- a lock with a hash on every line is installed with ``--require-hashes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from jupyterlab_publish.bundle import read_bundle
from jupyterlab_publish.bundle.format import LOCK_FILE
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.functions.uv_environments import METADATA_FILE, find_uv, fully_hashed

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX process control")

from function_server import REPO, Server, call  # noqa: E402

PACKAGE = "jlp-local-probe"
USE_IT = """
def probe():
    import jlp_local_probe
    return jlp_local_probe.answer()
"""

# Run with the kernel venv's site-packages first on sys.path: builds the bundle there (so the lock
# sees the local package as that venv installed it) and prints the bundle's path and manifest.
BUILD = """
import json, sys
from jupyterlab_publish.bundle import build_bundle
namespace = {"__name__": "__main__"}
exec(sys.argv[1], namespace)
bundle = build_bundle(namespace["probe"], sys.argv[2], name="probe", sample=[],
                      requirements=[{"name": "jlp-local-probe", "why": "the function imports it"}])
print(json.dumps({"path": str(bundle.path), "manifest": bundle.manifest}))
"""


def _package(root: Path, answer: str) -> Path:
    package = root / "pkg"
    (package / "jlp_local_probe").mkdir(parents=True)
    (package / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{PACKAGE}"
        version = "0.1.0"
    """))
    (package / "jlp_local_probe" / "__init__.py").write_text(f"def answer():\n    return {answer!r}\n")
    return package


def _wheel(package: Path, out: Path) -> Path:
    subprocess.run([find_uv(), "build", "--quiet", "--wheel", str(package), "-o", str(out)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


def _kernel_venv(root: Path, install: str) -> Path:
    """A venv (with pip) holding the local package, installed by pip from ``install``; its site-packages."""
    venv = root / "kernel-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", install],
                   check=True, capture_output=True, timeout=300)
    (site,) = (venv / "lib").glob("python*/site-packages")
    return site


def _bundle_in(site: Path, out: Path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    done = subprocess.run([sys.executable, "-c", BUILD, USE_IT, str(out)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout.strip().splitlines()[-1])
    return read_bundle(built["path"]), built["manifest"]


def _uv_server(state: Path, *flags: str) -> Server:
    return Server(state, "--environments", "uv", *flags).start()


def test_a_package_installed_from_a_directory_is_named_and_refused_without_a_wheelhouse(tmp_path):
    site = _kernel_venv(tmp_path, str(_package(tmp_path, "from the local package")))
    bundle, manifest = _bundle_in(site, tmp_path / "bundle")
    (entry,) = [e for e in manifest["lock"] if e["name"] == PACKAGE]
    assert entry["origin"] == (tmp_path / "pkg").as_uri()
    assert "not from a package index: installed from a local directory" in (bundle.path / LOCK_FILE).read_text()

    server = _uv_server(tmp_path / "state")
    try:
        with pytest.raises(PublishError) as refused:
            server.target().push(bundle)
        assert refused.value.code == "environment_mismatch"
        assert f"{PACKAGE} 0.1.0 (installed in the kernel from {(tmp_path / 'pkg').as_uri()})" in refused.value.message
        assert "does not look them up on its index" in refused.value.message
        assert "--find-links WHEELHOUSE" in refused.value.hint
        assert server.target().list() == []
        envs = server.state / "envs"
        assert not envs.exists() or not [p for p in envs.iterdir() if p.is_dir()]  # nothing was installed
    finally:
        server.stop()


def test_a_wheelhouse_that_holds_the_local_package_supplies_it(tmp_path):
    package = _package(tmp_path, "from the local package")
    wheel = _wheel(package, tmp_path / "wheelhouse")
    site = _kernel_venv(tmp_path, str(package))
    bundle, _ = _bundle_in(site, tmp_path / "bundle")

    server = _uv_server(tmp_path / "state", "--find-links", str(wheel.parent))
    try:
        deployment = server.target().push(bundle)
        assert call(deployment.url, [], key=deployment.key) == (200, "from the local package")
        (metadata,) = (server.state / "envs").glob(f"*/{METADATA_FILE}")
        assert json.loads(metadata.read_text())["from_wheelhouse"] == [f"{PACKAGE} @ {wheel.as_uri()}"]
    finally:
        server.stop()


def test_the_wheel_hash_the_kernel_recorded_refuses_a_different_wheel_of_the_same_version(tmp_path):
    original = _wheel(_package(tmp_path / "a", "the original"), tmp_path / "built")
    site = _kernel_venv(tmp_path, str(original))  # pip records the wheel's sha256 (PEP 610 archive_info)
    bundle, manifest = _bundle_in(site, tmp_path / "bundle")
    digest = __import__("hashlib").sha256(original.read_bytes()).hexdigest()
    assert f"{PACKAGE}==0.1.0 --hash=sha256:{digest}" in (bundle.path / LOCK_FILE).read_text()

    impostor = _wheel(_package(tmp_path / "b", "an impostor"), tmp_path / "impostor")
    assert impostor.name == original.name and impostor.read_bytes() != original.read_bytes()
    server = _uv_server(tmp_path / "state", "--find-links", str(impostor.parent))
    try:
        with pytest.raises(PublishError) as refused:
            server.target().push(bundle)
        assert refused.value.code == "environment_mismatch"
        assert f"{PACKAGE} 0.1.0 with the sha256 {digest} of the file the kernel installed" in refused.value.message
        assert server.target().list() == []
    finally:
        server.stop()

    shutil.copy(original, impostor)  # the wheelhouse now holds the very wheel the kernel installed
    server = _uv_server(tmp_path / "state", "--find-links", str(impostor.parent))
    try:
        deployment = server.target().push(bundle)
        assert call(deployment.url, [], key=deployment.key) == (200, "the original")
    finally:
        server.stop()


def test_only_a_lock_hashed_on_every_line_is_installed_with_require_hashes():
    assert fully_hashed("# a comment\nsix==1.17.0 --hash=sha256:" + "0" * 64 + "  # required\n")
    assert not fully_hashed("six==1.17.0 --hash=sha256:" + "0" * 64 + "\nstarlette==0.37.2\n")
    assert not fully_hashed("six>=1 --hash=sha256:" + "0" * 64 + "\n")
    assert not fully_hashed("# only comments\n")
    assert not fully_hashed(None)


def _hashed_lock_bundle(tmp: Path, wheelhouse: Path, tamper: bool = False):
    """A real bundle whose requirements.lock carries the sha256 of every wheel in ``wheelhouse``
    (downloaded for its pins), re-described in its manifest; the target signs it when pushing."""
    from jupyterlab_publish.bundle import build_bundle

    namespace: dict = {"__name__": "__main__"}
    exec("def double(x):\n    return 2 * x\n", namespace)
    built = build_bundle(namespace["double"], tmp / ("tampered" if tamper else "hashed"), name="hashed", sample=[2])
    lock_path = built.path / LOCK_FILE
    pins = [line.split()[0] for line in lock_path.read_text().splitlines() if line and not line.startswith("#")]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(wheelhouse), *pins], check=True, capture_output=True, timeout=600)
    lines = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if tamper and not lines:
            digest = "0" * 64
        lines.append(f"{name}=={version} --hash=sha256:{digest}\n")
    lock_path.write_text("# every line hashed\n" + "".join(lines))
    manifest_path = built.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][LOCK_FILE] = hashlib.sha256(lock_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    (built.path / "signature.json").unlink(missing_ok=True)
    return read_bundle(built.path), lines


def test_a_lock_hashed_on_every_line_is_installed_with_require_hashes_and_a_wrong_hash_refused(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    bundle, lines = _hashed_lock_bundle(tmp_path, wheelhouse)
    assert fully_hashed("".join(lines))
    tampered, _ = _hashed_lock_bundle(tmp_path, tmp_path / "wheelhouse-2", tamper=True)
    server = _uv_server(tmp_path / "state", "--offline", "--find-links", str(wheelhouse))
    try:
        with pytest.raises(PublishError) as refused:
            server.target().push(tampered)
        assert refused.value.code == "environment_mismatch" and "0" * 64 in refused.value.message
        assert server.target().list() == []

        deployment = server.target().push(bundle)
        assert call(deployment.url, [21], key=deployment.key) == (200, 42)
        (metadata,) = (server.state / "envs").glob(f"*/{METADATA_FILE}")
        assert json.loads(metadata.read_text())["hashes_required"] is True
    finally:
        server.stop()
