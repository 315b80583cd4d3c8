"""The service that runs inside a bundle's environment.

``service.py`` and its sibling ``service_*.py`` modules (``service.RUNTIME_FILES``) are copied
verbatim into every bundle and must run on their own there, so this package holds no other code
they depend on; see ``service.py`` for the entry point, and docs/bundle-format.md ("Runtime
contracts") for what a server may rely on.
"""
