"""What every reader of delivery reports hands to the recorder: one DeliveryReport each.

A mailbox reader (DSNs, flufl.bounce, ARF) and each provider's webhook turn what they
receive into these; the recorder maps each to one ledger row and scores the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# hard: the address does not exist (5.1.x, 5.0.0 with a "no such user" text…);
# soft: a temporary cause the relay gave up on (mailbox full, 4.x.x);
# policy: the receiver refused the sender, not the address (5.7.x): never the reader's fault;
# complaint: the reader marked the message as spam (ARF, a provider's complaint event).
Kind = Literal["hard", "soft", "policy", "complaint"]

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class DeliveryReport:
    """One report about one recipient of one message of ours."""

    kind: Kind
    # Where it came from: "imap", "pop3", "maildir", "ses", "postmark", "mailgun", "sendgrid".
    source: str
    # The source's own id for this report (a Message-ID, an event id): with source it
    # names the report, so a retried webhook or a re-read message is recorded once.
    reference: str
    # The recipient the report names, as reported (may be None when only a token is known).
    address: str | None = None
    # The Message-ID of our message that the report quotes, without angle brackets.
    message_id: str | None = None
    # The token from the per-message return path (bounces+TOKEN@domain), when there was one.
    verp_token: str | None = None
    # The enhanced status code ("5.1.1"), or "" when the report gives none.
    status: str = ""
    # The receiving server's words, one line, at most 500 characters.
    diagnostic: str = ""

    def __post_init__(self) -> None:
        if self.status and not _STATUS.match(self.status):
            raise ValueError(f"not an enhanced status code: {self.status!r}")
        one_line = " ".join(self.diagnostic.split())[:500]
        object.__setattr__(self, "diagnostic", one_line)


def kind_of(status: str, diagnostic: str = "", *, permanent: bool | None = None) -> Kind:
    """Classify a bounce by its enhanced status code, as Mailman does.

    5.7.x is policy whatever else it says; 5.1.x and the other 5.x.x are hard; 4.x.x is
    soft. With no code, permanent (when the source says) decides between hard and soft.
    """
    if status.startswith("5.7."):
        return "policy"
    if status.startswith("5."):
        return "hard"
    if status.startswith("4."):
        return "soft"
    return "hard" if permanent else "soft"
