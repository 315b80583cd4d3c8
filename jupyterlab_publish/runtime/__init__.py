"""The service that runs inside a bundle's environment.

``service.py`` is copied verbatim into every bundle and must run on its own there, so this package
holds no other code it depends on; see that module for the HTTP contract.
"""
