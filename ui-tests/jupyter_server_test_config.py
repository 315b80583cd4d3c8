"""JupyterLab server configuration for the Galata tests.

Galata's helper sets a fixed port, no token and a temporary root directory. The function server
the tests publish to keeps its state in a fresh directory of its own, so runs never see each
other's endpoints; the kernel inherits the variable and the Playwright teardown stops the server.
"""

import os
import tempfile

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 (c is the config object Jupyter provides)
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.allow_root = True  # CI machines run as root  # noqa: F821

state_dir = os.environ.setdefault(
    "JUPYTERLAB_PUBLISH_STATE_DIR", tempfile.mkdtemp(prefix="jupyterlab-publish-ui-")
)
with open(os.path.join(os.path.dirname(__file__), ".state-dir"), "w") as marker:
    marker.write(state_dir)
