"""Bundles made by earlier versions stay loadable: the stored ones under ``data/old_bundles/``.

As cloudpickle's ``test_backward_compat.py``: ``data/generate_old_bundles.py`` built each stored
bundle with the code of its commit. Here today's reader verifies it (the signature, then every
file's sha256) and today's function server serves it, starting its runtime as the manifest's
runtime contract says (docs/bundle-format.md, "Runtime contracts"), never by probing the bundle.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jupyterlab_publish.bundle import build_bundle, read_bundle, unpack_bundle
from jupyterlab_publish.bundle.format import MANIFEST, OLDEST_RUNTIME_CONTRACT, RUNTIME_CONTRACT, runtime_contract
from jupyterlab_publish.bundle.reader import parse_manifest
from jupyterlab_publish.bundle.signature import key_from_token
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.functions.core import FunctionService
from jupyterlab_publish.functions.environment import SharedInterpreter
from jupyterlab_publish.functions.layout import Layout
from jupyterlab_publish.functions.settings import ServingSettings
from jupyterlab_publish.functions.workers import RUNTIME_CONTRACTS, WORKER_FLAGS, runtime_features

from function_server import HTTP_TIMEOUT, Server, call  # noqa: E402  (tests/ is on sys.path)

STORE = Path(__file__).resolve().parent / "data" / "old_bundles"
GENERATOR = STORE.parent / "generate_old_bundles.py"
LABELS = sorted(path.name for path in STORE.iterdir() if (path / "bundle.tar.gz").is_file())
RUNNING_MINOR = "{}.{}".format(*sys.version_info[:2])


def about(label: str) -> dict:
    return json.loads((STORE / label / "about.json").read_text("utf-8"))


@pytest.fixture(params=LABELS)
def stored(request):
    """(label, about.json, archive path) of one stored bundle this interpreter can unpickle."""
    label = request.param
    info = about(label)
    if info["python_minor"] != RUNNING_MINOR:
        pytest.skip(f"{label} was pickled on Python {info['python_minor']} and cloudpickle pickles do not cross "
                    f"minor versions; this is {RUNNING_MINOR}. Run it on {info['python_minor']} (as CI does), or "
                    f"store bundles for {RUNNING_MINOR} with {GENERATOR.name}.")
    return label, info, STORE / label / "bundle.tar.gz"


def test_the_store_pins_every_runtime_contract_with_and_without_the_manifest_field():
    contracts = {about(label)["runtime_contract"] for label in LABELS}
    assert contracts == set(range(OLDEST_RUNTIME_CONTRACT, RUNTIME_CONTRACT + 1)), (
        f"store a bundle of each runtime contract: run {GENERATOR.name} after adding a label")
    assert set(RUNTIME_CONTRACTS) == contracts  # the server knows how to start each of them
    assert {about(label)["manifest_says_runtime_contract"] for label in LABELS} == {True, False}


def test_new_bundles_say_the_runtime_contract_of_the_runtime_they_carry(tmp_path):
    def add(a, b=1):
        return a + b

    manifest = build_bundle(add, tmp_path / "b", name="add").manifest
    assert manifest["runtime_contract"] == RUNTIME_CONTRACT == max(RUNTIME_CONTRACTS)
    assert runtime_features(manifest) is RUNTIME_CONTRACTS[RUNTIME_CONTRACT]


def test_todays_reader_verifies_each_stored_bundle(stored, tmp_path):
    _, info, archive = stored
    key = key_from_token(info["signing_token"])
    # Signature first, then each file's sha256 while it streams in (as the server unpacks).
    bundle = unpack_bundle(archive, tmp_path / "unpacked", key=key)
    assert read_bundle(tmp_path / "unpacked", key=key).manifest == bundle.manifest
    assert sorted(bundle.manifest["files"]) == info["files"]
    assert runtime_contract(bundle.manifest) == info["runtime_contract"]
    assert ("runtime_contract" in bundle.manifest) == info["manifest_says_runtime_contract"]
    assert bundle.manifest["sample_output"] == 5

    with pytest.raises(PublishError) as refused:
        unpack_bundle(archive, tmp_path / "other-key", key=key_from_token("another server's token"))
    assert refused.value.code == "invalid_bundle" and refused.value.details["reason"] == "foreign_key"


def test_the_runtime_is_started_as_its_contract_says(stored, tmp_path):
    _, info, archive = stored
    manifest = unpack_bundle(archive, tmp_path / "b", key=key_from_token(info["signing_token"])).manifest
    features = runtime_features(manifest)
    assert features is RUNTIME_CONTRACTS[info["runtime_contract"]]
    assert features.flags <= set(WORKER_FLAGS)
    if features.flags:  # what the contract promises, its own service.py accepts
        offered = subprocess.run([sys.executable, str(tmp_path / "b" / "service.py"), "--help"],
                                 capture_output=True, text=True, check=True).stdout
        assert all(flag in offered for flag in features.flags), (sorted(features.flags), offered)


def test_a_newer_runtime_contract_is_refused_with_an_upgrade_hint(stored, tmp_path):
    _, info, archive = stored
    bundle = unpack_bundle(archive, tmp_path / "b", key=key_from_token(info["signing_token"]))
    for wrong, reason in ((RUNTIME_CONTRACT + 1, "unknown_runtime_contract"), ("2", None), (0, None)):
        manifest = dict(bundle.manifest, runtime_contract=wrong)
        with pytest.raises(PublishError) as refused:
            parse_manifest(json.dumps(manifest).encode())
        assert refused.value.code == "invalid_bundle", wrong
        assert refused.value.details.get("reason") == reason
        if reason:
            assert "Upgrade jupyterlab-publish" in refused.value.hint
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(dict(bundle.manifest, runtime_contract=RUNTIME_CONTRACT + 1)))
    with pytest.raises(PublishError):
        read_bundle(tmp_path / "b")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the workers' command lines from /proc")
def test_todays_function_service_serves_each_stored_bundle(stored, tmp_path):
    _, info, archive = stored
    contract = info["runtime_contract"]
    features = RUNTIME_CONTRACTS[contract]
    layout = Layout(tmp_path / "state")
    layout.create()

    async def scenario():
        service = FunctionService(layout, SharedInterpreter(), settings=ServingSettings(processes=1, concurrency=3),
                                  admin_token="admin", upstream="http://127.0.0.1:9",
                                  signing_key=key_from_token(info["signing_token"]))
        await service.open()
        try:
            answer = await service.publish("add", archive, False, "http://127.0.0.1:9")  # smoke-tests the sample
            assert answer["smoke_test"] == "passed"
            pool = service.workers["add"]
            assert pool.launch.features is features and pool.checks_keys == features.checks_keys
            (worker,) = pool.running()
            command = Path(f"/proc/{worker.pid}/cmdline").read_bytes().decode().split("\0")
            assert {flag for flag in WORKER_FLAGS if flag in command} == features.flags, command
            return await asyncio.to_thread(_calls, worker.url, answer["key"])  # blocking calls, off the loop
        finally:
            await service.close()

    results = asyncio.run(scenario())
    assert results["[2, 3]"] == (200, 5)
    assert results["{a: 4}"] == (200, 5)
    assert results["[-1]"][0] == 422 and results["[-1]"][1]["error"] == "invalid_input"
    # A runtime that checks keys refuses a call without one; an older one leaves that to the server.
    assert results["no key"][0] == (401 if features.checks_keys else 200)


def _calls(url: str, key: str) -> dict:
    return {
        "[2, 3]": call(url + "/", [2, 3], key=key),
        "{a: 4}": call(url + "/", {"a": 4}, key=key),
        "[-1]": call(url + "/", [-1], key=key),
        "no key": call(url + "/", [2, 3]),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``jupyter publish serve`` whose admin token signs like the stored bundles' publisher."""
    tokens = {about(label)["signing_token"] for label in LABELS}
    assert len(tokens) == 1
    state = tmp_path_factory.mktemp("old-bundles") / "state"
    state.mkdir()
    fd = os.open(state / "token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(tokens.pop() + "\n")
    started = Server(state).start()
    yield started
    started.stop()


def test_todays_function_server_publishes_and_serves_each_stored_bundle(stored, server):
    _, _, archive = stored
    name = "add"  # the name every stored bundle was built for: a server publishes a bundle only under its own
    admin = {"Authorization": f"Bearer {server.token}"}
    request = urllib.request.Request(f"{server.url}/api/functions/{name}/versions", data=archive.read_bytes(),
                                     method="POST", headers={**admin, "Content-Type": "application/gzip"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            published = json.loads(response.read())
        assert published["smoke_test"] == "passed" and published["key"]
        url = f"{server.url}/functions/{name}"
        assert call(url, [2, 3], key=published["key"]) == (200, 5)  # handed off or proxied, as the contract allows
        assert call(url, {"a": 4}, key=published["key"]) == (200, 5)
        status, body = call(url, [-1], key=published["key"])
        assert status == 422 and body["error"] == "invalid_input"
        assert call(url, [2, 3])[0] == 401  # keys hold whichever side checks them
    finally:  # the next stored bundle is published afresh under the same name
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/functions/{name}", method="DELETE",
                                                      headers=admin), timeout=HTTP_TIMEOUT).close()
