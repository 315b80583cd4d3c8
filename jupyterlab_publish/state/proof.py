"""Proof that a server holds the admin token, without the token travelling.

The local target reads the token from the state directory, but server.json only *names* a server:
after a crash, another local user may have bound the recorded port. So the target sends a random
nonce to ``GET /api/prove`` and checks the answer, ``server_proof(token, nonce)``, before it sends
the token or anything else. The HMAC is domain-separated: the endpoint answers anyone, so it must
never compute a value the token is used for elsewhere (the bundle signing key is another HMAC of it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_CONTEXT = b"jupyterlab-publish server proof v1\x00"
NONCE_PATTERN = re.compile(r"[0-9a-f]{32,128}")


def new_nonce() -> str:
    return secrets.token_hex(32)


def server_proof(token: str, nonce: str) -> str:
    """HMAC-SHA256 of the nonce under the admin token, in hex."""
    return hmac.new(token.strip().encode("utf-8"), _CONTEXT + nonce.encode("ascii"), hashlib.sha256).hexdigest()


def proof_matches(token: str, nonce: str, proof: object) -> bool:
    return isinstance(proof, str) and hmac.compare_digest(proof.encode("ascii", "replace"),
                                                          server_proof(token, nonce).encode("ascii"))
