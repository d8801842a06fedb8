"""The per-message return path (VERP): bounces+<token>@domain from DIGEST_BOUNCE_ADDRESS.

The token is signed (digest/tokens.py) and names the edition and the subscriber, so a
report that quotes nothing of the message still maps to one ledger row.
"""

from __future__ import annotations

from digest.config import Settings
from digest.tokens import make_return_token


def return_path(settings: Settings, edition_id: str, subscriber_id: int) -> str | None:
    """Return the envelope sender for one message, or None to use DIGEST_FROM's address."""
    if not settings.bounce_address or not settings.secret_key:
        return None
    local, _, domain = settings.bounce_address.rpartition("@")
    token = make_return_token(settings.secret_key, edition_id, subscriber_id)
    return f"{local}+{token}@{domain}"
