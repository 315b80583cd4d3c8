"""Build real site-packages directories for the frontier tests: module files plus ``.dist-info``
metadata written the way installers write it (METADATA with Requires-Dist, RECORD with sha256
hashes, top_level.txt, direct_url.json for editable installs)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
import textwrap
from pathlib import Path


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class Site:
    """A directory on ``sys.path`` named site-packages, so the frontier treats it as installed code."""

    def __init__(self, root: Path):
        self.root = root
        self.tops: set[str] = set()

    def module(self, relative: str, source: str = "VALUE = 1\n") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        self.tops.add(relative.split("/")[0].removesuffix(".py"))
        return path

    def dist(
        self,
        name: str,
        version: str,
        *,
        files: tuple[str, ...] = (),
        requires: tuple[str, ...] = (),
        top_level: tuple[str, ...] | None = None,
        editable_url: str | None = None,
        extra_files: dict[str, str] | None = None,
        wrong_hashes: bool = False,
    ) -> Path:
        """A distribution; ``files`` are paths under the site (hashed into RECORD as they are now)."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
        (info / "METADATA").write_text(metadata)
        for relative, text in (extra_files or {}).items():
            (self.root / relative).write_text(text)
            files = (*files, relative)
        if top_level is not None:
            (info / "top_level.txt").write_text("\n".join(top_level) + "\n")
        if editable_url is not None:
            (info / "direct_url.json").write_text(json.dumps({"url": editable_url, "dir_info": {"editable": True}}))
        rows = []
        for relative in files:
            data = (self.root / relative).read_bytes()
            digest = record_hash(data + b"changed" if wrong_hashes else data)
            rows.append(f"{relative},{digest},{len(data)}\n")
        rows.append(f"{info.name}/METADATA,,\n")
        (info / "RECORD").write_text("".join(rows))
        importlib.invalidate_caches()
        return info

    def forget_imports(self) -> None:
        for name in list(sys.modules):
            if name.partition(".")[0] in self.tops:
                del sys.modules[name]


def make_site(tmp_path: Path, monkeypatch, name: str = "site-packages") -> Site:
    root = tmp_path / name
    root.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(root))
    return Site(root)


def notebook(source: str, **names) -> dict:
    """Run ``source`` as a notebook cell would: in a namespace whose ``__name__`` is ``__main__``."""
    namespace = {"__name__": "__main__", **names}
    exec(compile(textwrap.dedent(source), "<cell>", "exec", dont_inherit=True), namespace)
    return namespace
