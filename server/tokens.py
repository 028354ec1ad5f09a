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
import math
import os
import secrets
import time
from dataclasses import dataclass

SECRET_ENV = "CARTOONCODEC_TOKEN_SECRET"
SEATS = 2  # seats per room: a call is between two people


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
        if not 0 <= seat < SEATS:
            raise ValueError(f"seat {seat} is not one of a room's {SEATS} seats")
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
        grant = _grant_of(payload)
        if grant.room != room:
            raise TokenError("token is for another room")
        if grant.expires_at < (time.time() if now is None else now):
            raise TokenError("token expired: create a new room")
        return grant


def _grant_of(payload: bytes) -> JoinGrant:
    """The signed payload's fields, each of its type and range (a leaked secret must not let
    a token name seat -1, which would alias seat 1, or a seat the room does not have)."""
    try:
        fields = json.loads(payload)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise TokenError("malformed token: payload is not JSON") from exc
    if not isinstance(fields, dict) or set(fields) != {"room", "seat", "exp"}:
        raise TokenError("malformed token: payload needs exactly room, seat and exp")
    room, seat, expires_at = fields["room"], fields["seat"], fields["exp"]
    if not isinstance(room, str):
        raise TokenError("malformed token: room is not a string")
    if type(seat) is not int or not 0 <= seat < SEATS:
        raise TokenError(f"malformed token: seat {seat!r} is not one of 0..{SEATS - 1}")
    if type(expires_at) not in (int, float) or not math.isfinite(expires_at):
        raise TokenError("malformed token: exp is not a finite number")
    return JoinGrant(room=room, seat=seat, expires_at=float(expires_at))
