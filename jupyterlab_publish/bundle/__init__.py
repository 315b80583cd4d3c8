"""Bundles: a published function as a self-contained, verifiable directory.

A bundle holds the cloudpickled function (and validator), a pinned requirements.txt, the runtime's
``service.py`` and a ``manifest.json`` that lists every file with its sha256. This package runs in
the user's kernel, so it uses the standard library and cloudpickle only (and ``packaging``, through
``jupyterlab_publish.requirement``, to read requirements).
"""

from jupyterlab_publish.runtime.service import json_ready

from .archive import pack_bundle, unpack_bundle
from .build import build_bundle
from .diagnose import find_unpicklable
from .format import Bundle
from .reader import read_bundle

__all__ = [
    "Bundle",
    "build_bundle",
    "find_unpicklable",
    "json_ready",
    "pack_bundle",
    "read_bundle",
    "unpack_bundle",
]
