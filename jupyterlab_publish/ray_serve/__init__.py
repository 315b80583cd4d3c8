"""What runs inside a Ray cluster for the ``ray`` target: the Serve application of one function.

Imported only by Ray (the config's ``import_path`` names ``replica:build``), never by the kernel
or the Jupyter server, so it may import ``ray`` and ``starlette`` at module level. The cluster
needs ``jupyterlab-publish`` installed (docs/ray-target.md, "What the cluster needs").
"""
