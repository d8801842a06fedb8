"""Parsing delivery reports in the formats real servers send (tests/data/bounces/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.bounces.parse import parse_report

DATA = Path(__file__).resolve().parent / "data" / "bounces"

# file: (kind, address, status, quoted Message-ID's edition, VERP token)
EXPECTED = {
    "gmail-dsn.eml": ("hard", "nobody.here@gmail.com", "5.1.1", "2026-11-01", "2026-11-01-7"),
    "exchange-dsn.eml": ("hard", "gone@contoso.com", "5.1.10", "2026-11-02", None),
    "exim-classic.eml": ("hard", "olduser@example.net", "", "2026-11-03", "2026-11-03-12"),
    "yahoo-classic.eml": ("hard", "closed.account@yahoo.com", "", "2026-11-04", None),
    "yahoo-arf.eml": ("complaint", "reader@yahoo.com", "", "2026-11-05", None),
    "policy-dsn.eml": ("policy", "someone@bigcorp.example", "5.7.1", "2026-11-06", None),
    "mailbox-full-dsn.eml": ("soft", "full2@example.org", "4.2.2", "2026-11-07", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_gives_one_report_naming_our_message(name: str) -> None:
    kind, address, status, edition, token = EXPECTED[name]
    (report,) = parse_report((DATA / name).read_bytes(), "maildir")
    assert (report.kind, report.address, report.status) == (kind, address, status)
    assert report.message_id is not None and f"digest.{edition}." in report.message_id
    assert (report.verp_token or "").startswith(token or "") and bool(report.verp_token) == bool(
        token
    )
    assert report.reference and "\n" not in report.diagnostic


def test_the_same_message_gives_the_same_references() -> None:
    raw = (DATA / "gmail-dsn.eml").read_bytes()
    assert parse_report(raw, "imap") == parse_report(raw, "imap")


def test_an_auto_reply_is_no_report() -> None:
    assert parse_report((DATA / "autoreply.eml").read_bytes(), "maildir") == []


def test_every_failed_report_is_also_seen_by_flufl() -> None:
    """The corpus is checked through flufl.bounce: each bounce is one it recognises."""
    from email import message_from_bytes

    from flufl.bounce import scan_message

    for name, (kind, address, *_rest) in EXPECTED.items():
        if kind in ("complaint", "soft"):
            continue
        found = scan_message(message_from_bytes((DATA / name).read_bytes()))
        assert address.encode() in found, name
