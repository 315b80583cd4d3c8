"""The physical limit: the functions on a bare Starlette endpoint, called inline on the event loop.

    uvicorn bare_app:app --http httptools --loop uvloop --workers N

No validation, auth, metrics or worker process behind it: what the function server adds to this
is its overhead.
"""

import json

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from functions import SERVED


def endpoint(fn):
    async def call(request):
        payload = json.loads(await request.body())
        result = fn(**payload) if isinstance(payload, dict) else fn(*payload)
        return Response(json.dumps(result), media_type="application/json")

    return call


app = Starlette(routes=[Route(f"/{name}", endpoint(fn), methods=["POST"]) for name, (fn, _) in SERVED.items()])
