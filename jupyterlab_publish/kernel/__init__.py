"""Kernel side of jupyterlab-publish. The front end runs ``register()`` silently, then opens a comm.

Importing it loads only the standard library; ``register()`` adds ``comm``. What the requests need
is imported when the comm opens (the handlers, ``api``) or when a request first needs it:
``packaging`` to read a requirement (analysis, ``check_requirements``, publish) and ``cloudpickle``
to publish. ``python -X importtime -c "import jupyterlab_publish.kernel"`` shows neither.
"""

from __future__ import annotations

import builtins
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .._version import __version__
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
    from comm import get_comm_manager  # imported to register: `import jupyterlab_publish.kernel` stays light

    get_comm_manager().register_target(protocol.COMM_TARGET, _on_open)
    _registered = True


def _on_open(comm: Any, open_msg: dict[str, Any]) -> None:
    # The handlers (and api behind them) load when the front end connects, not at import.
    from .channel import Channel

    channel = Channel(comm, user_namespace)
    comm.on_msg(channel.handle_message)
    comm.send(protocol.hello(__version__, platform.python_version(), _cloudpickle_version()))


def _cloudpickle_version() -> str:
    try:
        return version("cloudpickle")
    except PackageNotFoundError:
        return ""
