"""Secrets and signatures.

A secret is ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format). The HMAC key
is the 32 decoded bytes, for both signatures we send:

* ``X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` (the spec's header);
* ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` (Standard
  Webhooks), which also covers the delivery id and the attempt time, so replays can be refused.

During a rotation both headers carry one signature per valid secret, newest first, separated
by spaces; a receiver accepts the request if any of them matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SECRET_PATTERN = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def is_valid_secret(value: object) -> bool:
    if not isinstance(value, str) or not SECRET_PATTERN.match(value):
        return False
    try:
        return len(base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)) == SECRET_BYTES
    except binascii.Error:
        return False


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: its base64 part, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def signature_headers(
    secrets_newest_first: Sequence[str], delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The signing headers for one attempt. ``body`` is exactly the bytes that will be sent."""
    if not secrets_newest_first:
        raise ValueError("at least one secret is needed to sign")
    signed_content = f"{delivery_id}.{timestamp}.".encode() + body
    plain, standard = [], []
    for secret in secrets_newest_first:
        key = secret_key(secret)
        plain.append("sha256=" + _hmac(key, body).hex())
        standard.append("v1," + base64.b64encode(_hmac(key, signed_content)).decode("ascii"))
    return {
        "X-Signature": " ".join(plain),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(standard),
    }
