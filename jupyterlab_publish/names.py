"""The one rule for endpoint names (mirrored by ENDPOINT_NAME in src/publish/model.ts).

Names become URL path segments, directory names and process titles on every target, so they keep
to a DNS-label shape: a bundle is never built for a name a target would refuse.
"""

from __future__ import annotations

import re

from .errors import PublishError

ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def check_endpoint_name(name: object) -> str:
    """Return ``name`` if it is a valid endpoint name, else raise ``invalid_name``."""
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise PublishError(
            "invalid_name",
            f"{name!r} is not a valid endpoint name.",
            "Use 1–63 lowercase letters, digits and dashes, starting with a letter (e.g. 'predict-price').",
        )
    return name
