"""Kernel side of jupyterlab-publish. The front end runs ``register()`` silently, then opens a comm.

Imports only the standard library, ``comm`` and (lazily, when publishing) ``cloudpickle``.
"""

from __future__ import annotations

import builtins
import platform
import sys
from typing import Any

from . import protocol

_registered = False


def user_namespace() -> dict[str, Any]:
    """The namespace the user's cells run in (IPython's user_ns, else ``__main__``)."""
    get_ipython = getattr(builtins, "get_ipython", None)
    shell = get_ipython() if get_ipython else None
    if shell is not None and hasattr(shell, "user_ns"):
        return shell.user_ns
    return vars(sys.modules["__main__"])


def register() -> None:
    """Register the comm target; calling it again (each time the front end connects) is harmless."""
    global _registered
    if _registered:
        return
    from comm import get_comm_manager

    get_comm_manager().register_target(protocol.COMM_TARGET, _on_open)
    _registered = True


def _on_open(comm: Any, open_msg: dict[str, Any]) -> None:
    from .._version import __version__
    from .channel import Channel

    channel = Channel(comm, user_namespace)
    comm.on_msg(channel.handle_message)
    comm.send(protocol.hello(__version__, platform.python_version(), _cloudpickle_version()))


def _cloudpickle_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cloudpickle")
    except PackageNotFoundError:
        return ""
