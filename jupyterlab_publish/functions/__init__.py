"""The local function server: a separate process that serves published functions.

Run it with ``jupyter publish serve`` (or ``python -m jupyterlab_publish.functions serve``; the flags
are in ``settings.py``) or call ``serve(host, port, state_dir, settings=ServingSettings(...))``. It uses
starlette, uvicorn, httpx and sqlite3, so the kernel side (``jupyterlab_publish.targets``) never imports it.
"""


def serve(host: str = "127.0.0.1", port: int = 0, state_dir=None, **options) -> int:
    # Imported on call so `import jupyterlab_publish.functions` stays cheap for a CLI's --help.
    from .server import serve as _serve

    return _serve(host, port, state_dir, **options)


__all__ = ["serve"]
