"""A small, bounded HTTP/1.1 load generator for reliability tests (not a benchmark tool).

httpx spends far more time per request than the server under test, so a test that wants 100,000
requests in seconds speaks HTTP over raw asyncio streams: persistent connections, one request in
flight per connection, responses framed by Content-Length (what uvicorn sends for JSON answers).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Optional


async def _one_connection(host: str, port: int, request: bytes, count: int, statuses: collections.Counter,
                          errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise AssertionError(f"response without Content-Length: {head!r}")
            await reader.readexactly(length)
            statuses[status] += 1
    except (OSError, asyncio.IncompleteReadError, AssertionError, ValueError) as exc:
        errors.append(repr(exc))
    finally:
        writer.close()


async def hammer(url_host: str, port: int, path: str, body: bytes, *, total: int, connections: int,
                 key: Optional[str] = None) -> tuple:
    """Send ``total`` POSTs over ``connections`` keep-alive connections; return (statuses, errors)."""
    headers = [
        f"POST {path} HTTP/1.1", f"Host: {url_host}:{port}", "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if key:
        headers.append(f"Authorization: Bearer {key}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body
    statuses: collections.Counter = collections.Counter()
    errors: list = []
    share, extra = divmod(total, connections)
    await asyncio.gather(*(
        _one_connection(url_host, port, request, share + (1 if i < extra else 0), statuses, errors)
        for i in range(connections)
    ))
    return statuses, errors
