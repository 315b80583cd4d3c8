"""Module frontier: which distributions a published function needs, and why.

The standard library, plus ``packaging`` (through ``jupyterlab_publish.requirement``, imported when
a requirement is first read), so it runs in any kernel environment. Entry point: ``analyze_function``.
"""

from .analyzer import analyze_function
from .distributions import installed_version, invalidate_caches
from .lock import LockEntry, LockRoot, lock_closure
from .modules import find_distribution
from .report import AnalysedRequirement, Capture, FrontierReport, FrontierWarning, FunctionInfo, Hint, LocalModule

__all__ = [
    "AnalysedRequirement",
    "Capture",
    "FrontierReport",
    "FrontierWarning",
    "FunctionInfo",
    "Hint",
    "LocalModule",
    "LockEntry",
    "LockRoot",
    "analyze_function",
    "find_distribution",
    "installed_version",
    "invalidate_caches",
    "lock_closure",
]
