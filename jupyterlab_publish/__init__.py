"""jupyterlab-publish: publish a function from a notebook cell as a live, versioned web service.

``analyze`` and ``publish`` are imported lazily so that ``import jupyterlab_publish.kernel`` (run
silently by the front end in every kernel) stays cheap.
"""

from __future__ import annotations

from typing import Any

try:
    from ._version import __version__
except ImportError:  # a source checkout that was never built
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "analyze", "publish", "vectorized"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyterlab-publish"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    # By name only: Jupyter imports the server room when it loads the extension, never the kernel.
    return [{"module": "jupyterlab_publish.server"}]


def __getattr__(name: str) -> Any:
    if name in ("analyze", "publish"):
        from . import api  # on first use: the kernel imports this package in every notebook

        return getattr(api, name)
    if name == "vectorized":
        from .bundle.batching import vectorized  # on first use: it pulls in cloudpickle

        return vectorized
    raise AttributeError(f"module 'jupyterlab_publish' has no attribute {name!r}")
