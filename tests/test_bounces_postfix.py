"""A real Postfix accepts a message, bounces it after the fact, and the bounce is recorded.

The message carries a per-message return path (VERP) and quotes no Message-ID of ours,
so only the signed token maps the report to its ledger row.
"""

from __future__ import annotations

import smtplib
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mailservers import postfix, postfix_installed
from test_bounces_record import SECRET, _store

from digest.bounces.mailbox import fetch_reports
from digest.bounces.verp import return_path
from digest.config import Settings

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _wait_for_mail(maildir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (maildir / "new").is_dir() and any((maildir / "new").iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError("Postfix sent no bounce within 30 s")


def test_a_postfix_bounce_maps_by_its_return_path(settings: Settings, tmp_path: Path) -> None:
    if not postfix_installed():
        pytest.skip("Postfix is not installed (scripts/system-deps.sh installs it)")
    settings = replace(settings, bounce_address="bounces@bounce.test", secret_key=SECRET)
    store, (eid,) = _store(tmp_path / "bounces.db")
    with store, postfix() as server:
        sender = return_path(settings, eid, 2)
        assert sender is not None and sender.startswith(f"bounces+{eid}-2-")
        message = (
            b"From: Digest <digest@bounce.test>\r\nTo: gone@localhost.test\r\n"
            b"Message-ID: <unrelated@bounce.test>\r\nSubject: test\r\n\r\nThe digest.\r\n"
        )
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.sendmail(sender, ["gone@localhost.test"], message)
        _wait_for_mail(server.maildir)
        settings = replace(settings, bounce_mailbox=str(server.maildir))
        result = fetch_reports(settings, store, NOW)
        (done,) = result.reports
        assert done.report.kind == "hard" and done.report.status == "5.1.1"
        assert (done.edition_id, done.subscriber_id, done.action) == (eid, 2, "bounced")
        b = store.subscribers.by_email("b@example.org")
        assert b is not None and b.status == "bounced"
        assert not any((server.maildir / "new").iterdir())
