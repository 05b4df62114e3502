"""Webhook authentication: GitHub's HMAC-SHA256 signatures and bearer tokens.

GitHub signs each delivery's raw body with the webhook secret and sends
``X-Hub-Signature-256: sha256=<hex>``; both checks here compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def github_signature(secret: str | bytes, body: bytes | bytearray) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_github_signature(
    secret: str | bytes, body: bytes | bytearray, header: str | None
) -> bool:
    """True when ``header`` is the valid signature of ``body`` (constant-time compare)."""
    if not header:
        return False
    expected = github_signature(secret, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "surrogateescape"))


def verify_bearer(token: str, header: str | None) -> bool:
    """True when ``header`` is ``Bearer <token>`` (constant-time compare)."""
    if not header:
        return False
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "surrogateescape"))
