"""Signed links: an HMAC over a purpose, the list and the subscriber id, never the address.

Three purposes share the scheme: unsubscribe (the one-click link), preferences (the
page that manages a subscription) and confirm (the double opt-in link). The purpose is
part of the MAC, so a token made for one is refused as any other. Unsubscribe tokens
made before purposes existed stay valid: their MAC always began with "unsubscribe".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Literal

Purpose = Literal["unsubscribe", "preferences", "confirm"]

# 8 bytes of subscriber id and 16 of MAC: 32 URL-safe characters, always the same length,
# so that a per-edition message template can take any subscriber's URL in the same place.
_ID_BYTES = 8
_MAC_BYTES = 16
TOKEN_LENGTH = 32
_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
# A confirm token also carries when it was issued (whole seconds since the epoch), so
# that it expires and names the one sign-up it confirms: 30 bytes, 40 characters.
_TIME_BYTES = 6
CONFIRM_LENGTH = 40
_CONFIRM_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{CONFIRM_LENGTH}}}")


def _mac(
    secret: str, list_id: str, subscriber_id: int, purpose: Purpose = "unsubscribe", extra: str = ""
) -> bytes:
    message = f"{purpose}\0{list_id}\0{subscriber_id}{extra}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_MAC_BYTES]


def _check_args(secret: str, subscriber_id: int) -> None:
    if not secret:
        raise ValueError("an empty secret would let anyone forge subscriber links")
    if not 0 <= subscriber_id < 2 ** (8 * _ID_BYTES - 1):
        raise ValueError(f"subscriber id out of range: {subscriber_id}")


def make_token(
    secret: str, list_id: str, subscriber_id: int, purpose: Purpose = "unsubscribe"
) -> str:
    """Return the URL-safe token for purpose (unsubscribe or preferences) of subscriber_id."""
    if purpose == "confirm":
        raise ValueError("confirm tokens carry their time: use make_confirm_token")
    _check_args(secret, subscriber_id)
    raw = subscriber_id.to_bytes(_ID_BYTES, "big") + _mac(secret, list_id, subscriber_id, purpose)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def well_formed(token: str) -> bool:
    """Return whether token has the shape of one of ours (URL-safe base64, one length)."""
    return _SHAPE.fullmatch(token) is not None


def _decode(token: str, length: int) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError):
        return None
    # Re-encoding catches non-canonical spellings that would decode to the same bytes.
    if len(raw) != length or base64.urlsafe_b64encode(raw).decode() != token:
        return None
    if int.from_bytes(raw[:_ID_BYTES], "big") >= 2 ** (8 * _ID_BYTES - 1):
        return None
    return raw


def subscriber_from_token(
    secret: str, list_id: str, token: str, purpose: Purpose = "unsubscribe"
) -> int | None:
    """Return the subscriber id a token names, or None if it is malformed, forged, foreign
    or made for another purpose."""
    if not secret or not well_formed(token) or purpose == "confirm":
        return None
    raw = _decode(token, _ID_BYTES + _MAC_BYTES)
    if raw is None:
        return None
    subscriber_id = int.from_bytes(raw[:_ID_BYTES], "big")
    if not hmac.compare_digest(raw[_ID_BYTES:], _mac(secret, list_id, subscriber_id, purpose)):
        return None
    return subscriber_id


def make_confirm_token(secret: str, list_id: str, subscriber_id: int, issued: datetime) -> str:
    """Return the confirmation token of subscriber_id's sign-up issued at `issued`."""
    _check_args(secret, subscriber_id)
    seconds = int(issued.timestamp())
    mac = _mac(secret, list_id, subscriber_id, "confirm", f"\0{seconds}")
    raw = subscriber_id.to_bytes(_ID_BYTES, "big") + seconds.to_bytes(_TIME_BYTES, "big") + mac
    return base64.urlsafe_b64encode(raw).decode("ascii")


def confirm_well_formed(token: str) -> bool:
    """Return whether token has the shape of a confirmation token."""
    return _CONFIRM_SHAPE.fullmatch(token) is not None


def read_confirm_token(secret: str, list_id: str, token: str) -> tuple[int, datetime] | None:
    """Return the subscriber id and issue time a confirmation token names, or None if it is
    malformed, forged or foreign (whether it has expired is the caller's to judge)."""
    if not secret or not confirm_well_formed(token):
        return None
    raw = _decode(token, _ID_BYTES + _TIME_BYTES + _MAC_BYTES)
    if raw is None:
        return None
    subscriber_id = int.from_bytes(raw[:_ID_BYTES], "big")
    seconds = int.from_bytes(raw[_ID_BYTES : _ID_BYTES + _TIME_BYTES], "big")
    expected = _mac(secret, list_id, subscriber_id, "confirm", f"\0{seconds}")
    if not hmac.compare_digest(raw[_ID_BYTES + _TIME_BYTES :], expected):
        return None
    try:
        return subscriber_id, datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def unsubscribe_url(base_url: str, token: str) -> str:
    """Return the one-click unsubscribe page for token under base_url."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def preferences_url(base_url: str, token: str) -> str:
    """Return the preference page for token under base_url."""
    return f"{base_url.rstrip('/')}/preferences/{token}"


def confirm_url(base_url: str, token: str) -> str:
    """Return the confirmation page for token under base_url."""
    return f"{base_url.rstrip('/')}/confirm/{token}"


# The return-path token (VERP): bounces+<edition>-<subscriber>-<mac>@domain. Lower case
# only, since some servers fold the local part's case, and short: 80 bits of MAC.
_RETURN_MAC_BYTES = 10
_RETURN_SHAPE = re.compile(r"([0-9a-z][0-9a-z-]{0,23})-([0-9]{1,18})-([a-z2-7]{16})")


def _return_mac(secret: str, edition_id: str, subscriber_id: int) -> str:
    message = f"return-path\0{edition_id}\0{subscriber_id}".encode()
    raw = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_RETURN_MAC_BYTES]
    return base64.b32encode(raw).decode("ascii").lower()


def make_return_token(secret: str, edition_id: str, subscriber_id: int) -> str:
    """Return the signed token naming edition_id and subscriber_id in a return path."""
    if not secret:
        raise ValueError("an empty secret would let anyone forge a bounce")
    edition = edition_id.lower()
    token = f"{edition}-{subscriber_id}-{_return_mac(secret, edition, subscriber_id)}"
    if _RETURN_SHAPE.fullmatch(token) is None:
        raise ValueError(f"edition id or subscriber id unfit for a return path: {edition_id!r}")
    return token


def read_return_token(secret: str, token: str) -> tuple[str, int] | None:
    """Return the (edition id, subscriber id) a return-path token names, or None if forged."""
    found = _RETURN_SHAPE.fullmatch(token.lower()) if secret else None
    if found is None:
        return None
    edition, subscriber_id = found.group(1), int(found.group(2))
    if not hmac.compare_digest(found.group(3), _return_mac(secret, edition, subscriber_id)):
        return None
    return edition, subscriber_id
