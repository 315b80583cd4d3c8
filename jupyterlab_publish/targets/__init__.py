"""Deploy targets: one interface (``push`` and the management verbs a target declares in
``capabilities``) and a registry that finds targets by spec.

This package runs in the user's kernel: standard library (and, through the bundle API, cloudpickle)
only. It never imports ``jupyterlab_publish.functions``, which is the server process.
"""

from .base import CAPABILITIES, Deployment, Progress, Target, check_name
from .directory import DirectoryTarget
from .http import FunctionServerTarget
from .local import LocalTarget
from .registry import ENTRY_POINT_GROUP, available_targets, describe_targets, get_target
from .results import CallResult, FunctionInfo, FunctionMetrics, FunctionSummary, LogTail, RollbackResult, VersionInfo

__all__ = [
    "CAPABILITIES",
    "CallResult",
    "ENTRY_POINT_GROUP",
    "Deployment",
    "DirectoryTarget",
    "FunctionInfo",
    "FunctionMetrics",
    "FunctionServerTarget",
    "FunctionSummary",
    "LocalTarget",
    "LogTail",
    "Progress",
    "RollbackResult",
    "Target",
    "VersionInfo",
    "available_targets",
    "check_name",
    "describe_targets",
    "get_target",
]

