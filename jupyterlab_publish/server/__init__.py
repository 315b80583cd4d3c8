"""The Jupyter server extension: a REST API for the Deployments panel, under Jupyter's own auth and
XSRF, speaking to each configured target through the Target interface (targets/base.py).

The browser names a target by its spec (and, for a remote server, *where* its token is: an
environment variable or a file); the secret itself is read here and never sent back. The API is
described in ``openapi.json`` beside this file and served at ``/jupyterlab-publish/openapi.json``.
"""

from __future__ import annotations

from .handlers import setup_handlers
from .service import Deployments

__all__ = ["Deployments", "setup_handlers"]


def _load_jupyter_server_extension(server_app) -> None:
    """Called by Jupyter server when the extension is enabled (jupyter-config/)."""
    setup_handlers(server_app.web_app, Deployments(server_app.root_dir))
    server_app.log.info("jupyterlab_publish: the Deployments API is at /jupyterlab-publish/")
