"""The hand-written Ray Serve deployment the benchmark compares the published function with.

What a user would write by hand for ``add``: read the JSON array, call the function, answer JSON.
No key, no bundle, no validation beyond what json.loads does: the floor a published function is
measured against.
"""

from __future__ import annotations

import json

from ray import serve
from starlette.responses import Response


def add(a, b):
    return a + b


# The same max_ongoing_requests as a published deployment (ray_config.MAX_ONGOING_REQUESTS), so the
# two differ only in what the published one adds; with Serve's default of 5 both collapse under
# 16 and 64 connections (11 req/s at 64 here), which measures Serve's queueing, not the function.
@serve.deployment(name="Bare", max_ongoing_requests=64)
class Bare:
    async def __call__(self, request) -> Response:
        args = json.loads(await request.body())
        return Response(json.dumps(add(*args)).encode(), media_type="application/json")


def build(args: dict):
    return Bare.bind()
