"""pack_bundle / unpack_bundle: round trips, reproducibility and hostile archives."""

import io
import tarfile
import textwrap

import pytest

from jupyterlab_publish.bundle import build_bundle, pack_bundle, read_bundle, unpack_bundle
from jupyterlab_publish.errors import PublishError


def notebook(source, **names):
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


@pytest.fixture
def bundle(tmp_path):
    ns = notebook("offset = 10\ndef shift(x):\n    return x + offset\n")
    return build_bundle(ns["shift"], tmp_path / "built", name="shift", sample=[1])


def contents(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_round_trip_through_a_file(tmp_path, bundle):
    archive = tmp_path / "shift.tar.gz"
    pack_bundle(bundle, archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "shift.tar.gz"]  # no temp files left
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
        assert all(m.isreg() and m.mode == 0o644 and m.uid == 0 for m in tar.getmembers())
    unpacked = unpack_bundle(archive, tmp_path / "unpacked")
    assert unpacked.path == tmp_path / "unpacked"
    assert unpacked.manifest == bundle.manifest
    assert contents(unpacked.path) == contents(bundle.path)
    assert read_bundle(unpacked.path).manifest == bundle.manifest


def test_round_trip_through_file_objects_is_reproducible(tmp_path, bundle):
    first, second = io.BytesIO(), io.BytesIO()
    pack_bundle(bundle, first)
    pack_bundle(bundle.path, second)  # a directory works as well as a Bundle
    assert first.getvalue() == second.getvalue()
    first.seek(0)
    unpacked = unpack_bundle(first, tmp_path / "from-memory")
    assert contents(unpacked.path) == contents(bundle.path)


def test_a_tampered_bundle_is_not_packed(tmp_path, bundle):
    (bundle.path / "function.pkl").write_bytes(b"evil")
    with pytest.raises(PublishError) as caught:
        pack_bundle(bundle, tmp_path / "x.tar.gz")
    assert caught.value.code == "invalid_bundle" and "function.pkl" in caught.value.message
    assert not (tmp_path / "x.tar.gz").exists()


def hostile_archive(members):
    """A .tar.gz of (name, data, kind) members, written by hand as an attacker could."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def bundle_members(bundle):
    return [(name, data, "file") for name, data in contents(bundle.path).items()]


@pytest.mark.parametrize(
    "extra, says",
    [
        (("../escaped.txt", b"x", "file"), "outside"),
        (("/tmp/absolute.txt", b"x", "file"), "absolute"),
        (("sub/../../escaped.txt", b"x", "file"), "outside"),
        (("link", "/etc/passwd", "symlink"), "not a regular file"),
        (("nested/file.txt", b"x", "file"), "top level"),
        (("manifest.json", b"{}", "file"), "twice"),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_written(tmp_path, bundle, extra, says):
    archive = hostile_archive(bundle_members(bundle) + [extra])
    dest = tmp_path / "work" / "dest"
    with pytest.raises(PublishError) as caught:
        unpack_bundle(archive, dest)
    assert caught.value.code == "invalid_bundle"
    assert says in caught.value.message
    assert not (tmp_path / "work").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_a_dot_prefix_and_directory_entry_are_tolerated(tmp_path, bundle):
    # `tar -C bundle -czf x.tar.gz .` produces './name' members and a '.' directory entry.
    members = [(".", b"", "dir")] + [(f"./{name}", data, kind) for name, data, kind in bundle_members(bundle)]
    unpacked = unpack_bundle(hostile_archive(members), tmp_path / "dest")
    assert contents(unpacked.path) == contents(bundle.path)


def test_an_archive_with_modified_content_fails_verification(tmp_path, bundle):
    members = [
        (name, b"tampered" if name == "function.pkl" else data, kind) for name, data, kind in bundle_members(bundle)
    ]
    with pytest.raises(PublishError) as caught:
        unpack_bundle(hostile_archive(members), tmp_path / "dest")
    assert caught.value.code == "invalid_bundle" and "function.pkl" in caught.value.message
    assert not (tmp_path / "dest").exists()


def test_not_an_archive(tmp_path):
    with pytest.raises(PublishError) as caught:
        unpack_bundle(io.BytesIO(b"this is not gzip"), tmp_path / "dest")
    assert caught.value.code == "invalid_bundle"
    assert not (tmp_path / "dest").exists()


def test_a_truncated_archive(tmp_path, bundle):
    buffer = io.BytesIO()
    pack_bundle(bundle, buffer)
    truncated = io.BytesIO(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(PublishError) as caught:
        unpack_bundle(truncated, tmp_path / "dest")
    assert caught.value.code == "invalid_bundle"
    assert not (tmp_path / "dest").exists()


def test_unpacking_onto_an_existing_directory_is_refused(tmp_path, bundle):
    buffer = io.BytesIO()
    pack_bundle(bundle, buffer)
    buffer.seek(0)
    with pytest.raises(PublishError) as caught:
        unpack_bundle(buffer, bundle.path)
    assert caught.value.code == "bad_request"
