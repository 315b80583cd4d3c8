"""A function's pages as a client of a real ``jupyter publish serve`` sees them (findings 6 and 10).

The server proxies GET /functions/NAME/openapi.json and /docs to the worker; the worker names the URL
the client used and sends the docs page's Content-Security-Policy; a keyed function's sample is shown
only with its key. Clients reach the server by 127.0.0.1 and by localhost: each sees its own name.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX process control")

from function_server import HTTP_TIMEOUT, Server, make_bundle  # noqa: E402

SECRET = "sample-3f9a1c"
ECHO = """
def echo(text: str) -> str:
    '''Answer what it was given.'''
    return text
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("pages") / "state"
    started = Server(state).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def keyed(server, tmp_path_factory):
    return server.target().push(make_bundle(tmp_path_factory.mktemp("b"), ECHO, "echo", "echo", sample=[SECRET]))


def get(url: str, key: str | None = None) -> tuple:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_pages_name_the_servers_public_url_and_keep_their_csp(server, keyed, name):
    port = server.url.rsplit(":", 1)[1]
    base = f"http://{name}:{port}"
    status, _, body = get(f"{base}/functions/echo/openapi.json")
    document = json.loads(body)
    assert status == 200 and document["servers"] == [{"url": base}]
    assert set(document["paths"]) == {"/functions/echo", "/functions/echo/docs"}  # not the worker's own routes
    status, headers, page = get(f"{base}/functions/echo/docs")
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    curl = re.search(r'<pre id="curl">(.*?)</pre>', page.decode(), re.S).group(1)
    assert curl.startswith(f"curl -X POST {base}/functions/echo ")
    worker_ports = set(re.findall(r"127\.0\.0\.1:(\d+)", page.decode())) - {port}
    assert not worker_ports, f"the page shows a worker's private address: {worker_ports}"


def test_a_keyed_functions_sample_is_shown_only_with_its_key(server, keyed):
    for path in ("", "/openapi.json", "/docs"):
        status, _, body = get(f"{server.url}/functions/echo{path}")
        assert status in (200, 401) and SECRET.encode() not in body, path
        status, _, body = get(f"{server.url}/functions/echo{path}", key=keyed.key)
        assert status == 200 and SECRET.encode() in body, path
