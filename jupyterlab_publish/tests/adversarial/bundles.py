"""Hostile bundle archives, each made from a genuine signed one by changing one thing.

A genuine archive is what ``FunctionServerTarget.push`` sends: ``pack_bundle`` signed with the key
derived from the admin token. Every variant here must be refused with ``invalid_bundle`` (or 413)
and leave no function behind.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib

from jupyterlab_publish.bundle import pack_bundle
from jupyterlab_publish.bundle.signature import key_from_token, sign_manifest

from function_server import adder, make_bundle

MANIFEST, SIGNATURE, FUNCTION = "manifest.json", "signature.json", "function.pkl"


def genuine(live, name: str) -> bytes:
    """A signed archive of a good bundle whose manifest names ``name`` (built once per name)."""
    cached = live.cache.get(("bundle", name))
    if cached is None:
        bundle = make_bundle(live.workdir, adder(7), "add", name, sample=[1])
        out = io.BytesIO()
        pack_bundle(bundle, out, signing_key=key_from_token(live.admin))
        cached = live.cache[("bundle", name)] = out.getvalue()
    return cached


def members(archive: bytes) -> list:
    """[(TarInfo, bytes)] of an archive, in order."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar:
            out.append((member, tar.extractfile(member).read() if member.isreg() else b""))
    return out


def repack(entries, *, compress: bool = True) -> bytes:
    """An archive of [(TarInfo, bytes)]; sizes are taken from the bytes of regular files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0) if compress else raw.getvalue()


def _entry(name: str, data: bytes = b"", kind=tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info, data


def _replace(entries, name: str, change) -> list:
    return [(info, change(data) if info.name == name else data) for info, data in entries]


def tampered_manifest(live, name: str) -> bytes:
    """The manifest changed after signing (the sample edited): the signature no longer matches."""
    edit = lambda data: data.replace(b'"sample": [', b'"sample": [0, ', 1)
    return repack(_replace(members(genuine(live, name)), MANIFEST, edit))


def tampered_file(live, name: str) -> bytes:
    """The pickle changed after signing: its sha256 no longer matches the manifest."""
    flip = lambda data: data[:-1] + bytes([data[-1] ^ 0xFF])
    return repack(_replace(members(genuine(live, name)), FUNCTION, flip))


def foreign_signature(live, name: str) -> bytes:
    """Signed with a key derived from another server's token."""
    bundle_entries = members(genuine(live, name))
    manifest = next(data for info, data in bundle_entries if info.name == MANIFEST)
    forged = sign_manifest(manifest, key_from_token("not-this-servers-token"))
    return repack(_replace(bundle_entries, SIGNATURE, lambda _: forged))


def unsigned(live, name: str) -> bytes:
    return repack([(info, data) for info, data in members(genuine(live, name)) if info.name != SIGNATURE])


def with_extra_member(live, name: str, extra: tuple) -> bytes:
    """The genuine members, then one more right after the signature (before any listed file)."""
    entries = members(genuine(live, name))
    return repack(entries[:2] + [extra] + entries[2:])


def traversal(live, name: str) -> bytes:
    return with_extra_member(live, name, _entry("../escaped.py", b"print('escaped')\n"))


def absolute(live, name: str) -> bytes:
    return with_extra_member(live, name, _entry("/tmp/jlp-absolute-probe.py", b"print('absolute')\n"))


def symlink(live, name: str) -> bytes:
    return with_extra_member(live, name, _entry("requirements.txt", kind=tarfile.SYMTYPE, link="/etc/passwd"))


def hardlink(live, name: str) -> bytes:
    return with_extra_member(live, name, _entry("requirements.txt", kind=tarfile.LNKTYPE, link="manifest.json"))


def duplicate(live, name: str) -> bytes:
    entries = members(genuine(live, name))
    return repack(entries + [entries[-1]])


def unlisted(live, name: str) -> bytes:
    return with_extra_member(live, name, _entry("extra.py", b"print('not in the manifest')\n"))


def truncated(live, name: str) -> bytes:
    archive = genuine(live, name)
    return archive[: len(archive) // 2]


def plain_tar(live, name: str) -> bytes:
    return repack(members(genuine(live, name)), compress=False)


def not_an_archive(live, name: str) -> bytes:
    return os.urandom(4096)


BOMB_BYTES = 96 * 1024**2  # decompressed; compressed it is about 100 KiB


def gzip_bomb(live, name: str) -> bytes:
    """A manifest member of 96 MiB of zeros (over the 64 MiB a manifest may use), 100 KiB on the wire."""
    cached = live.cache.get("bomb")
    if cached is None:
        header = tarfile.TarInfo(MANIFEST)
        header.size = BOMB_BYTES
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
        parts = [compressor.compress(header.tobuf(format=tarfile.PAX_FORMAT))]
        block = bytes(1024**2)
        parts += [compressor.compress(block) for _ in range(BOMB_BYTES // len(block))]
        parts.append(compressor.flush())
        cached = live.cache["bomb"] = b"".join(parts)
    return cached
