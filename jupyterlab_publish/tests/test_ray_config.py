"""The ray target's pure parts: the Serve config it builds, the bundle store, and its spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.targets import get_target
from jupyterlab_publish.targets import ray_config
from jupyterlab_publish.targets.bundle_store import BundleStore
from jupyterlab_publish.targets.ray import RayTarget
from jupyterlab_publish.targets.scale import Scale

DIGEST = "ab" * 32


def manifest(**extra):
    return {"name": "double", "requirements": [], "lock": [], "batching": None, **extra}


def app(name="double", **options):
    return ray_config.application(name=name, version=3, store_url="s3://b/p", digest=DIGEST, key_digests=["cd" * 32],
                                  scale=Scale.from_dict(options.pop("scale", None)), manifest=options.pop("manifest", manifest()),
                                  storage_options={"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}, **options)


def test_an_application_names_the_replica_builder_the_bundle_and_key_digests_and_no_secret():
    built = app()
    assert built["name"] == "double" and built["route_prefix"] == "/functions/double"
    assert built["import_path"] == "jupyterlab_publish.ray_serve.replica:build"
    assert built["args"] == {"name": "double", "version": 3, "store": "s3://b/p", "digest": DIGEST,
                             "key_digests": ["cd" * 32], "insecure": False,
                             "storage_options": {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}}
    assert "runtime_env" not in built  # no requirement: the cluster's jupyterlab-publish has the runtime
    # Up to 64 calls per replica at once: Serve's default of 5 makes its proxy back off under load.
    assert built["deployments"] == [{"name": "PublishedFunction", "num_replicas": 1, "max_ongoing_requests": 64}]


@pytest.mark.parametrize("scale, expected", [
    ({"replicas": 2, "cpus": 0.5}, {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}),
    ({"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3},
     {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "initial_replicas": 1, "target_ongoing_requests": 3}}),
    ({"max_replicas": 2}, {"autoscaling_config": {"min_replicas": 0, "max_replicas": 2, "initial_replicas": 1}}),
])
def test_scale_becomes_replicas_or_autoscaling_and_reads_back_the_same(scale, expected):
    built = app(scale=scale)
    assert built["deployments"] == [{"name": "PublishedFunction", **expected, "max_ongoing_requests": 64}]
    assert ray_config.scale_of(built) == Scale.from_dict(scale).to_dict() | (
        {"min_replicas": 0} if "max_replicas" in scale and "min_replicas" not in scale else {})


def test_a_vectorised_function_may_hold_a_whole_batch_in_progress():
    built = app(manifest=manifest(batching={"max_batch_size": 64, "max_wait_ms": 2.0}))
    assert built["deployments"][0]["max_ongoing_requests"] == 128


def test_the_environment_is_the_locked_pins_without_the_runtime_own():
    lock = [{"name": "anyio", "version": "4.0", "required_by": ["starlette"]},
            {"name": "numpy", "version": "2.1.0", "required_by": ["double", "pandas"]},
            {"name": "pandas", "version": "2.2.0", "required_by": ["double"]},
            {"name": "starlette", "version": "0.40.0", "required_by": ["service runtime"]},
            {"name": "tzdata", "version": "2024.1", "required_by": ["Pandas"]}]
    found = manifest(requirements=[{"name": "pandas", "version": "2.2.0"}], lock=lock)
    pins = ["numpy==2.1.0", "pandas==2.2.0", "tzdata==2024.1"]  # not starlette's tree
    assert ray_config.runtime_env(found) == {"pip": {"packages": pins, "pip_check": False}}
    assert ray_config.runtime_env(found, "uv") == {"uv": {"packages": pins}}
    assert ray_config.runtime_env(found, "none") is None


def test_a_distribution_from_outside_an_index_is_refused_before_anything_is_stored():
    lock = [{"name": "mylib", "version": "0.1", "required_by": ["double"], "origin": "file:///home/me/mylib"}]
    with pytest.raises(PublishError) as caught:
        ray_config.runtime_env(manifest(requirements=[{"name": "mylib"}], lock=lock))
    assert caught.value.code == "environment_mismatch" and "mylib" in caught.value.message


def test_the_merged_config_carries_every_other_application_unchanged_and_replaces_ours():
    other = {"name": "other", "route_prefix": "/other", "import_path": "x:y", "args": {"a": 1}}
    old = app(scale={"replicas": 1})
    status = {"proxy_location": "HeadOnly",
              "http_options": {"host": "127.0.0.1", "port": 8123, "ssl_keyfile": None, "keep_alive_timeout_s": 90},
              "applications": {"other": {"deployed_app_config": other}, "double": {"deployed_app_config": old}}}
    new = app(scale={"replicas": 2})
    merged = ray_config.merged_config(status, "double", new, host="127.0.0.1", port=8000)
    assert merged == {"proxy_location": "HeadOnly",
                      "http_options": {"host": "127.0.0.1", "port": 8123, "keep_alive_timeout_s": 90},
                      "applications": [other, new]}
    removed = ray_config.merged_config(status, "double", None, host="127.0.0.1", port=8000)
    assert removed["applications"] == [other]
    fresh = ray_config.merged_config({"applications": {}}, "double", new, host="127.0.0.1", port=8000)
    assert fresh["http_options"] == {"host": "127.0.0.1", "port": 8000}


def test_an_application_started_with_serve_run_is_never_dropped_by_a_config():
    status = {"applications": {"notebook-app": {"deployed_app_config": None, "status": "RUNNING"}}}
    with pytest.raises(PublishError) as caught:
        ray_config.merged_config(status, "double", app(), host="127.0.0.1", port=8000)
    assert caught.value.code == "target_error" and "notebook-app" in caught.value.message


def test_the_spec_reads_the_dashboard_and_store_and_refuses_a_token_or_no_store():
    target = get_target("ray+http://127.0.0.1:8265?store=file:///srv/b&env=uv&insecure=1", token="t")
    assert isinstance(target, RayTarget)
    assert (target.dashboard, target.store_url, target.env, target.insecure) == (
        "http://127.0.0.1:8265", "file:///srv/b", "uv", True)
    assert get_target(target.spec(), token="t").spec() == target.spec()
    for spec, code in [("ray+http://127.0.0.1:8265", "unknown_target"),
                       ("ray+http://127.0.0.1:8265?store=file:///x&token=abc", "bad_request"),
                       ("ray+http://127.0.0.1:8265?store=file:///x&colour=red", "unknown_target"),
                       ("ray+http://127.0.0.1:8265?store=file:///x&env=conda", "unknown_target")]:
        with pytest.raises(PublishError) as caught:
            get_target(spec, token="t")
        assert caught.value.code == code, spec


def test_a_function_key_is_derived_from_the_token_so_any_token_holder_shows_the_same_one():
    one = get_target("ray+http://127.0.0.1:1?store=file:///x", token="secret")
    two = get_target("ray+http://127.0.0.1:1?store=file:///x", token="secret")
    other = get_target("ray+http://127.0.0.1:1?store=file:///x", token="another")
    assert one.function_key("double") == two.function_key("double") != other.function_key("double")
    assert one.function_key("double") != one.function_key("triple")


# -- the bundle store ------------------------------------------------------------------------------


def test_the_store_keeps_bundles_by_digest_and_never_overwrites_a_version(tmp_path):
    store = BundleStore(f"file://{tmp_path}/store")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"archive bytes")
    digest = store.put_bundle(str(archive))
    assert store.put_bundle(str(archive)) == digest  # same bytes, same name, written once
    assert store.read_bundle(digest) == b"archive bytes"
    assert store.bundle_url(digest) == f"file://{tmp_path}/store/bundles/sha256/{digest}.tar.gz"
    assert [store.add_version("double", {"digest": digest}) for _ in range(3)] == [1, 2, 3]
    assert [r["version"] for r in store.records("double")] == [1, 2, 3]
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".partial")]
    store.mark_failed("double", 2)
    assert store.failed_versions("double") == {2}
    store.delete_function("double")
    assert store.records("double") == [] and store.read_bundle(digest) == b"archive bytes"


def test_a_changed_stored_bundle_is_refused_by_its_digest(tmp_path):
    store = BundleStore(f"file://{tmp_path}")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"the real bundle")
    digest = store.put_bundle(str(archive))
    path = tmp_path / "bundles" / "sha256" / f"{digest}.tar.gz"
    os.chmod(path, 0o644)
    path.write_bytes(b"something else")
    with pytest.raises(PublishError) as caught:
        store.read_bundle(digest)
    assert caught.value.code == "invalid_bundle"
    with pytest.raises(PublishError) as caught:
        store.fetch_bundle(digest, str(tmp_path / "fetched.tar.gz"))
    assert caught.value.code == "invalid_bundle" and not (tmp_path / "fetched.tar.gz").exists()


def test_a_bundle_is_fetched_to_a_file_checked_as_it_streams(tmp_path):
    store = BundleStore(f"file://{tmp_path}/store")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(os.urandom(3 * 1024 * 1024 + 7))  # more than one chunk
    digest = store.put_bundle(str(archive))
    fetched = store.fetch_bundle(digest, str(tmp_path / "copy.tar.gz"))
    assert Path(fetched).read_bytes() == archive.read_bytes()
    with pytest.raises(PublishError) as caught:
        store.fetch_bundle("cd" * 32, str(tmp_path / "other.tar.gz"))
    assert caught.value.code == "not_found" and not (tmp_path / "other.tar.gz").exists()


def test_an_unreadable_token_file_is_reported_when_the_token_is_needed_not_when_listing_targets(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    target = get_target("ray+http://127.0.0.1:9?store=file:///x")
    assert target.describe()["kind"] == "ray"
    with pytest.raises(PublishError) as caught:
        target.list()
    assert caught.value.code == "target_error" and "RAY_AUTH_TOKEN_PATH" in caught.value.message
