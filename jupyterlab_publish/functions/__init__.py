"""The local function server: a separate process that serves published functions.

Run it with ``jupyter publish serve`` or ``python -m jupyterlab_publish.functions serve`` (the flags
are in ``settings.py``), or call ``server.serve(host, port, state_dir, settings=ServingSettings(...))``.
It uses starlette, uvicorn, httpx and sqlite3, so the kernel side (``jupyterlab_publish.targets``)
never imports it. This ``__init__`` imports nothing, so a CLI's ``--help`` that reads
``settings.add_arguments`` stays cheap.
"""
