"""Bundle signatures: an HMAC-SHA256 over the exact bytes of ``manifest.json``.

The manifest already holds the sha256 of every other file, so signing it covers the whole bundle:
a receiver checks the signature, then each file against the manifest, and only then unpickles.
HMAC (standard library) rather than Ed25519 because this runs in the user's kernel, which may not
have ``cryptography``; the price is a shared secret, which every target here already has:

- a function server's key is derived from its admin token (``key_from_token``), so whoever may
  publish to it can sign for it, and the server derives the same key from its own token;
- the directory target signs with a per-user key kept in the Jupyter data directory
  (``user_key``), so ``read_bundle(path, key=user_key())`` proves a bundle there is one we wrote.

``signature.json`` is ``{"algorithm": "hmac-sha256", "key_id": ..., "value": ...}``; ``key_id`` (the
first 16 hex digits of the key's sha256) names the key without revealing it, so a bundle signed for
another server is reported as such rather than as tampered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.state.paths import user_key_path

from .format import MANIFEST, SIGNATURE

ALGORITHM = "hmac-sha256"
# Versioned so a future derivation can coexist with this one; never change these bytes.
_TOKEN_CONTEXT = b"jupyterlab-publish bundle signing v1"
_MAX_SIGNATURE_BYTES = 4096


def key_from_token(token: str) -> bytes:
    """The signing key of the function server whose admin token is ``token``."""
    if not token:
        raise PublishError(
            "target_error", "no admin token to sign the bundle with",
            "set JUPYTERLAB_PUBLISH_TOKEN to the function server's admin token, or pass token=...",
        )
    return hmac.new(token.strip().encode("utf-8"), _TOKEN_CONTEXT, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def sign_manifest(manifest_bytes: bytes, key: bytes) -> bytes:
    """The contents of ``signature.json`` for these exact manifest bytes."""
    value = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    document = {"algorithm": ALGORITHM, "key_id": key_id(key), "value": value}
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


def verify_signature(manifest_bytes: bytes, signature_bytes, key: bytes) -> None:
    """Raise ``invalid_bundle`` unless ``signature_bytes`` is a valid signature of the manifest by ``key``.

    ``details["reason"]`` says which check failed: ``unsigned``, ``malformed_signature``,
    ``foreign_key`` or ``bad_signature``.
    """
    if signature_bytes is None:
        raise _refused(
            "unsigned", f"the bundle has no {SIGNATURE}: it is not signed",
            "Publish it through a target that signs (publish(fn, target=URL, token=...) or the local "
            "target), or pack it with pack_bundle(bundle, out, signing_key=...).",
        )
    try:
        if len(signature_bytes) > _MAX_SIGNATURE_BYTES:
            raise ValueError("too large")
        document = json.loads(signature_bytes.decode("utf-8"))
        algorithm, signer, value = document["algorithm"], document["key_id"], document["value"]
        if not all(isinstance(item, str) for item in (algorithm, signer, value)):
            raise ValueError("fields must be strings")
    except (ValueError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise _refused("malformed_signature", f"{SIGNATURE} cannot be read as a signature ({exc})",
                       "Publish the function again from its notebook.") from None
    if algorithm != ALGORITHM:
        raise _refused("malformed_signature",
                       f"{SIGNATURE} uses the algorithm {algorithm!r}; only {ALGORITHM} is accepted",
                       "Publish the function again with this version of jupyterlab-publish.")
    expected_id = key_id(key)
    if not hmac.compare_digest(signer, expected_id):
        raise _refused(
            "foreign_key",
            f"the bundle was signed with another key (key id {signer}); this receiver's key id is {expected_id}",
            "Publish with this function server's own admin token (JUPYTERLAB_PUBLISH_TOKEN or token=...): "
            "a bundle signed for one server is not accepted by another.",
        )
    expected = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(value.lower(), expected):
        raise _refused(
            "bad_signature",
            f"the signature does not match {MANIFEST}: the manifest was changed after the bundle was signed",
            "The bundle was modified on its way here. Publish the function again from its notebook.",
        )


def user_key(path=None) -> bytes:
    """This user's signing key for bundles written to directories, created (mode 0600) on first use."""
    path = Path(path) if path is not None else user_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: if two kernels create it at once, one writes the key and the other reads it.
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_user_key(path)
    text = secrets.token_hex(32) + "\n"
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return bytes.fromhex(text.strip())


def _read_user_key(path: Path) -> bytes:
    if os.name != "nt" and path.stat().st_mode & 0o077:
        raise PublishError(
            "target_error", f"the signing key {path} can be read by other users",
            f"restrict it to its owner (chmod 600 {path}), or delete it to have a new one made",
        )
    text = ""
    for _ in range(50):  # its creator may be between creating and writing it: wait briefly
        text = path.read_text("utf-8").strip()
        if text:
            break
        time.sleep(0.02)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise PublishError("target_error", f"the signing key {path} is empty or damaged",
                           "delete it to have a new one made (bundles signed with it will no longer verify)")
    return key


def _refused(reason: str, message: str, hint: str) -> PublishError:
    return PublishError("invalid_bundle", message, hint, {"reason": reason})
