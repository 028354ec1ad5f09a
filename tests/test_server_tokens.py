from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from server.tokens import SEATS, SECRET_ENV, TokenError, TokenSigner, secret_from_env


def test_issue_then_verify_returns_the_seat() -> None:
    signer = TokenSigner(b"secret", ttl_s=60)
    token = signer.issue("room1", 1, now=1000.0)
    grant = signer.verify(token, "room1", now=1059.0)
    assert (grant.room, grant.seat, grant.expires_at) == ("room1", 1, 1060.0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace(".", ""), "expected payload.signature"),
        (
            lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
            "invalid token signature",
        ),
        (lambda t: "!!!." + t.split(".")[1], "not base64url"),
    ],
)
def test_tampered_tokens_are_refused(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner(b"secret")
    with pytest.raises(TokenError, match=message):
        signer.verify(mutate(signer.issue("room1", 0)), "room1")


def test_token_of_another_secret_is_refused() -> None:
    token = TokenSigner(b"other").issue("room1", 0)
    with pytest.raises(TokenError, match="invalid token signature"):
        TokenSigner(b"secret").verify(token, "room1")


def test_expired_token_is_refused() -> None:
    signer = TokenSigner(b"secret", ttl_s=10)
    token = signer.issue("room1", 0, now=0.0)
    with pytest.raises(TokenError, match="token expired"):
        signer.verify(token, "room1", now=10.5)


def test_token_for_another_room_is_refused() -> None:
    signer = TokenSigner(b"secret")
    with pytest.raises(TokenError, match="another room"):
        signer.verify(signer.issue("room1", 0), "room2")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        TokenSigner(b"")
    with pytest.raises(ValueError, match="ttl must be positive"):
        TokenSigner(b"s", ttl_s=0)


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "shared")
    assert secret_from_env() == b"shared"
    monkeypatch.delenv(SECRET_ENV)
    assert secret_from_env() != secret_from_env()  # random per call without the variable


def forge(secret: bytes, payload: bytes) -> str:
    """What someone holding the secret could sign: any payload at all."""
    signature = hmac.new(secret, payload, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(b).rstrip(b"=").decode() for b in (payload, signature))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"room": "room1", "seat": -1, "exp": 2e9}, "seat -1 is not one of 0..1"),
        ({"room": "room1", "seat": 5, "exp": 2e9}, "seat 5 is not one of 0..1"),
        ({"room": "room1", "seat": True, "exp": 2e9}, "seat True is not one of"),
        ({"room": "room1", "seat": "0", "exp": 2e9}, "seat '0' is not one of"),
        ({"room": ["room1"], "seat": 0, "exp": 2e9}, "room is not a string"),
        ({"room": "room1", "seat": 0, "exp": "never"}, "exp is not a finite number"),
        ({"room": "room1", "seat": 0, "exp": float("nan")}, "exp is not a finite number"),
        ({"room": "room1", "seat": 0}, "needs exactly room, seat and exp"),
        ([1, 2], "needs exactly room, seat and exp"),
    ],
)
def test_signed_payloads_out_of_range_are_refused(fields: object, message: str) -> None:
    token = forge(b"secret", json.dumps(fields).encode())
    with pytest.raises(TokenError, match=message):
        TokenSigner(b"secret").verify(token, "room1", now=0.0)


def test_signed_payload_that_is_not_json_is_refused() -> None:
    with pytest.raises(TokenError, match="payload is not JSON"):
        TokenSigner(b"secret").verify(forge(b"secret", b"\xff{"), "room1")


def test_only_a_rooms_seats_are_issued() -> None:
    with pytest.raises(ValueError, match=f"seat {SEATS} is not one of a room's {SEATS} seats"):
        TokenSigner(b"secret").issue("room1", SEATS)
