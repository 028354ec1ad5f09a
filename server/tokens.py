"""HMAC-signed, expiring join tokens: one per seat of a room.

A token is ``base64url(json payload) "." base64url(hmac-sha256)``. The payload names the room,
the seat and the expiry time, so the server keeps no token table and a token cannot be moved
to another room or seat.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

SECRET_ENV = "CARTOONCODEC_TOKEN_SECRET"


class TokenError(ValueError):
    """The token is malformed, forged, expired or for another room."""


@dataclass(frozen=True)
class JoinGrant:
    room: str
    seat: int
    expires_at: float


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def secret_from_env() -> bytes:
    """The shared secret from $CARTOONCODEC_TOKEN_SECRET, else a random one for this process."""
    configured = os.environ.get(SECRET_ENV)
    return configured.encode("utf-8") if configured else secrets.token_bytes(32)


class TokenSigner:
    def __init__(self, secret: bytes, ttl_s: float = 3600.0) -> None:
        if not secret:
            raise ValueError("token secret must not be empty")
        if ttl_s <= 0:
            raise ValueError(f"token ttl must be positive, got {ttl_s}")
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def issue(self, room: str, seat: int, now: float | None = None) -> str:
        expires_at = (time.time() if now is None else now) + self.ttl_s
        payload = json.dumps({"room": room, "seat": seat, "exp": expires_at}).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"

    def verify(self, token: str, room: str, now: float | None = None) -> JoinGrant:
        """Return the grant carried by ``token`` for ``room``; raise TokenError otherwise."""
        payload_text, dot, signature_text = token.partition(".")
        if not dot:
            raise TokenError("malformed token: expected payload.signature")
        try:
            payload = _b64decode(payload_text)
            signature = _b64decode(signature_text)
        except (binascii.Error, ValueError) as exc:
            raise TokenError("malformed token: not base64url") from exc
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise TokenError("invalid token signature")
        fields = json.loads(payload)
        grant = JoinGrant(room=fields["room"], seat=int(fields["seat"]), expires_at=fields["exp"])
        if grant.room != room:
            raise TokenError("token is for another room")
        if grant.expires_at < (time.time() if now is None else now):
            raise TokenError("token expired: create a new room")
        return grant
