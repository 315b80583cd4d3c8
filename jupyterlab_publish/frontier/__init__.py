"""Module frontier: which distributions a published function needs, and why.

Standard library only, so it runs in any kernel environment. Entry point: ``analyze_function``.
"""

from .analyzer import analyze_function
from .distributions import canonicalize_name, installed_version, invalidate_caches
from .lock import LockEntry, LockRoot, lock_closure
from .modules import find_distribution
from .report import Capture, FrontierReport, FrontierWarning, FunctionInfo, Hint, LocalModule, Requirement

__all__ = [
    "Capture",
    "FrontierReport",
    "FrontierWarning",
    "FunctionInfo",
    "Hint",
    "LocalModule",
    "LockEntry",
    "LockRoot",
    "Requirement",
    "analyze_function",
    "canonicalize_name",
    "find_distribution",
    "installed_version",
    "invalidate_caches",
    "lock_closure",
]
