"""Deploy targets: one small interface (``push(bundle, progress) -> Deployment``) and a registry.

This package runs in the user's kernel: standard library (and, through the bundle API, cloudpickle)
only. It never imports ``jupyterlab_publish.functions``, which is the server process.
"""

from .base import Deployment, Progress, Target, check_name
from .registry import ENTRY_POINT_GROUP, available_targets, get_target

__all__ = [
    "Deployment",
    "DirectoryTarget",
    "ENTRY_POINT_GROUP",
    "FunctionServerTarget",
    "LocalTarget",
    "Progress",
    "Target",
    "available_targets",
    "check_name",
    "get_target",
]


def __getattr__(name):
    # The concrete targets load on first use, so importing the interface stays cheap.
    if name == "DirectoryTarget":
        from .directory import DirectoryTarget

        return DirectoryTarget
    if name == "FunctionServerTarget":
        from .http import FunctionServerTarget

        return FunctionServerTarget
    if name == "LocalTarget":
        from .local import LocalTarget

        return LocalTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
