"""Bundle signatures: HMAC over manifest.json, checked before anything is unpacked or unpickled.

The end-to-end tests upload tampered archives to a real function server (the local target's,
started with shared environments for speed) and check that it refuses each one and that the
pickle inside — whose loading would create a marker file — was never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import build_bundle, pack_bundle, read_bundle, unpack_bundle
from jupyterlab_publish.bundle.signature import key_from_token, key_id, sign_manifest, user_key
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime.service import load_bundle
from jupyterlab_publish.state.paths import read_server_info
from jupyterlab_publish.targets.directory import DirectoryTarget
from jupyterlab_publish.targets.local import LocalTarget

KEY = key_from_token("the-admin-token")
OTHER_KEY = key_from_token("another-servers-token")

# Loading this function's pickle creates MARKER and says so on stderr: proof that someone unpickled
# it. A sandboxed worker cannot write the test's files, so the server's control reads its log.
UNPICKLED_LINE = "booby trap unpickled"
BOOBY_TRAPPED = """
class Trap:
    def __reduce__(self):
        return (exec, (TRAP_CODE, {"MARKER": MARKER}))
TRAP = Trap()
def add_one(x):
    TRAP
    return x + 1
"""
BENIGN = "def add_one(x):\n    return x + 1\n"


def make_bundle(root: Path, source: str, marker: Path, label: str):
    trap_code = (f"import sys; print({UNPICKLED_LINE!r}, file=sys.stderr, flush=True)\n"
                 "try:\n    open(MARKER, 'w').close()\nexcept OSError:\n    pass\n")
    ns = {"__name__": "__main__", "MARKER": str(marker), "TRAP_CODE": trap_code}
    exec(textwrap.dedent(source), ns)
    bundle = build_bundle(ns["add_one"], root / label, name="add-one", sample=[3])
    marker.unlink(missing_ok=True)  # whatever building did, the marker starts absent
    return bundle


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "unpickled.marker"


@pytest.fixture
def trapped(tmp_path, marker):
    return make_bundle(tmp_path / "bundles", BOOBY_TRAPPED, marker, "trapped")


@pytest.fixture
def benign(tmp_path, marker):
    return make_bundle(tmp_path / "bundles", BENIGN, marker, "benign")


def packed(bundle, signing_key=None) -> bytes:
    out = io.BytesIO()
    pack_bundle(bundle, out, signing_key=signing_key)
    return out.getvalue()


def members(archive: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar}


def repacked(entries: dict) -> bytes:
    """A .tar.gz of ``entries`` in the given order, as an attacker would write it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def flip_byte(data: bytes, needle: bytes) -> bytes:
    at = data.index(needle)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


# -- the forgeries, each a complete archive whose function.pkl would create the marker ------------


def swapped_pickle(benign, trapped, key) -> bytes:
    """A correctly signed benign bundle whose function.pkl was replaced on the way."""
    entries = members(packed(benign, key))
    entries["function.pkl"] = (trapped.path / "function.pkl").read_bytes()
    return repacked(entries)


def manifest_edited_to_match(benign, trapped, key) -> bytes:
    """The swap above, with the manifest's sha256 updated too: only the signature can tell."""
    entries = members(packed(benign, key))
    forged = (trapped.path / "function.pkl").read_bytes()
    manifest = json.loads(entries["manifest.json"])
    manifest["files"]["function.pkl"] = hashlib.sha256(forged).hexdigest()
    entries["manifest.json"] = json.dumps(manifest, indent=2).encode()
    entries["function.pkl"] = forged
    return repacked(entries)


def manifest_byte_flipped(benign, trapped, key) -> bytes:
    entries = members(packed(trapped, key))
    entries["manifest.json"] = flip_byte(entries["manifest.json"], b'"add_one"')
    return repacked(entries)


def unsigned(benign, trapped, key) -> bytes:
    return packed(trapped)


def foreign_signature(benign, trapped, key) -> bytes:
    return packed(trapped, OTHER_KEY if key != OTHER_KEY else KEY)


def signature_value_edited(benign, trapped, key) -> bytes:
    entries = members(packed(trapped, key))
    signature = json.loads(entries["signature.json"])
    signature["value"] = ("0" if signature["value"][0] != "0" else "1") + signature["value"][1:]
    entries["signature.json"] = json.dumps(signature).encode()
    return repacked(entries)


def signature_after_the_files(benign, trapped, key) -> bytes:
    entries = members(packed(trapped, key))
    signature = entries.pop("signature.json")
    return repacked({**entries, "signature.json": signature})


FORGERIES = [
    (swapped_pickle, "file_modified", "function.pkl does not match its sha256"),
    (manifest_edited_to_match, "bad_signature", "manifest was changed after the bundle was signed"),
    (manifest_byte_flipped, "bad_signature", "manifest was changed after the bundle was signed"),
    (unsigned, "unsigned", "not signed"),
    (foreign_signature, "foreign_key", "was signed with another key"),
    (signature_value_edited, "bad_signature", "signature does not match manifest.json"),
]


# -- signing and verifying, in process --------------------------------------------------------------


def test_a_signed_archive_unpacks_verified_and_keeps_its_signature(tmp_path, trapped, marker):
    archive = packed(trapped, KEY)
    assert list(members(archive))[:2] == ["manifest.json", "signature.json"]  # receivers can stream
    signature = json.loads(members(archive)["signature.json"])
    assert signature["algorithm"] == "hmac-sha256" and signature["key_id"] == key_id(KEY)
    assert packed(trapped, KEY) == archive  # still reproducible

    bundle = unpack_bundle(io.BytesIO(archive), tmp_path / "out", key=KEY)
    assert bundle.manifest == trapped.manifest
    assert read_bundle(bundle.path, key=KEY).manifest == trapped.manifest
    with pytest.raises(PublishError) as caught:
        read_bundle(bundle.path, key=OTHER_KEY)
    assert caught.value.details["reason"] == "foreign_key"
    assert not marker.exists()


@pytest.mark.parametrize("forge, reason, says", FORGERIES + [
    (signature_after_the_files, "unsigned", "not signed"),  # it must precede the files
])
def test_forgeries_are_refused_before_any_file_is_written(tmp_path, benign, trapped, marker, forge, reason, says):
    archive = forge(benign, trapped, KEY)
    dest = tmp_path / "work" / "bundle"
    with pytest.raises(PublishError) as caught:
        unpack_bundle(io.BytesIO(archive), dest, key=KEY)
    assert caught.value.code == "invalid_bundle"
    assert says in caught.value.message, caught.value.message
    assert caught.value.hint
    assert caught.value.details["reason"] == reason
    assert not (tmp_path / "work").exists()  # not even the temporary directory is left
    assert not marker.exists()


def test_keys_derive_from_the_token():
    assert key_from_token("t") == key_from_token("t\n")  # as read from the token file
    assert key_from_token("t") != key_from_token("u")
    assert len(key_id(KEY)) == 16 and key_id(KEY) != key_id(OTHER_KEY)
    with pytest.raises(PublishError):
        key_from_token("")


# -- the directory target signs with a per-user key -------------------------------------------------


def test_directory_target_signs_with_a_private_per_user_key(tmp_path, monkeypatch, trapped, marker):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    deployment = DirectoryTarget(tmp_path / "out").push(trapped)
    key_file = tmp_path / "data" / "jupyterlab_publish" / "signing.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = user_key()
    assert user_key() == key  # created once, then reused
    version = Path(deployment.bundle_path)
    assert read_bundle(version, key=key).manifest == trapped.manifest

    manifest = version / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"add_one"', b'"add_two"'))
    with pytest.raises(PublishError) as caught:
        read_bundle(version, key=key)
    assert caught.value.details["reason"] == "bad_signature"
    # A bundle that merely sits in a directory is not verified without a key, as before.
    manifest.write_bytes(manifest.read_bytes().replace(b'"add_two"', b'"add_one"'))
    assert read_bundle(version).manifest == trapped.manifest

    # The runtime needs no key: standalone `python service.py` serves the signed bundle as before.
    assert load_bundle(version).function(1) == 2
    assert marker.exists()  # (and that is what loading the pickle does)


def test_a_readable_user_key_is_refused(tmp_path):
    path = tmp_path / "signing.key"
    user_key(path)
    path.chmod(0o644)
    with pytest.raises(PublishError) as caught:
        user_key(path)
    assert "chmod 600" in caught.value.hint


# -- through a running function server ---------------------------------------------------------------


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_ENVIRONMENTS", "shared")  # signatures, not environments
    monkeypatch.delenv("JUPYTERLAB_PUBLISH_SERVER_PYTHON", raising=False)
    target = LocalTarget()
    target.ensure_server()
    yield target
    target.stop()


def upload(target: LocalTarget, archive: bytes):
    info = read_server_info(target.state_dir)
    request = urllib.request.Request(
        info["url"] + "/api/functions/add-one/versions", data=archive, method="POST",
        headers={"Content-Type": "application/gzip", "Authorization": f"Bearer {target.admin_token()}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_server_refuses_every_forgery_without_unpickling(server, benign, trapped, marker):
    key = key_from_token(server.admin_token())
    for forge, reason, says in FORGERIES:
        status, body = upload(server, forge(benign, trapped, key))
        assert (status, body["error"], body.get("reason")) == (400, "invalid_bundle", reason), (forge, body)
        assert says in body["message"] and body["hint"], body
        assert not marker.exists(), forge.__name__
        assert list((server.state_dir / "functions").iterdir()) == []
        assert list((server.state_dir / "uploads").iterdir()) == []

    # The control: the same booby-trapped bundle, correctly signed, is accepted, and its worker
    # loads the pickle, which says so in its log. So no worker above means "never unpickled".
    status, body = upload(server, packed(trapped, key))
    assert status == 201, body
    worker_logs = (server.state_dir / "functions" / "add-one").glob("v1/worker*.log")
    assert any(UNPICKLED_LINE in path.read_text() for path in worker_logs)


def test_publishing_through_the_target_signs_with_the_token(server, trapped, marker):
    deployment = server.push(trapped)
    assert deployment.version == 1
    version_bundle = server.state_dir / "functions" / "add-one" / "v1" / "bundle"
    key = key_from_token(server.admin_token())
    signature = json.loads((version_bundle / "signature.json").read_text())
    assert signature["key_id"] == key_id(key)
    assert read_bundle(version_bundle, key=key).manifest == trapped.manifest
    assert sign_manifest((version_bundle / "manifest.json").read_bytes(), key) == \
        (version_bundle / "signature.json").read_bytes()


def test_the_standalone_service_serves_an_unsigned_bundle(tmp_path, benign):
    # `python service.py --bundle DIR` knows nothing of signatures: an unsigned bundle still loads.
    code = "import sys; from service import load_bundle; print(load_bundle(sys.argv[1]).function(41))"
    done = subprocess.run([sys.executable, "-c", code, str(benign.path)], capture_output=True, text=True,
                          cwd=str(benign.path), env={**os.environ, "PYTHONPATH": str(benign.path)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
