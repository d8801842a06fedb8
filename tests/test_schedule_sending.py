"""The schedule with a real SMTP server: local delivery time, SIGTERM mid-send, resume."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from smtpserver import Faults, Handler, SmtpServer
from test_schedule import _env as scheduler_env
from test_send import SENDABLE

from digest.config import Settings
from digest.schedule import DailyScheduler
from digest.store import Store

SECRET = "a-test-secret-that-is-long-enough-to-sign"
# Each reader's zone ("" for none: DIGEST_TIMEZONE, here UTC), and the UTC time at which
# 07:00 on 28 November comes there.
READERS = {
    "tokyo@example.org": ("Asia/Tokyo", datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),
    "berlin@example.org": ("Europe/Berlin", datetime(2026, 11, 28, 6, 0, tzinfo=UTC)),
    "london@example.org": ("", datetime(2026, 11, 28, 7, 0, tzinfo=UTC)),
    "newyork@example.org": ("America/New_York", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
}


def pin_times(folder: Path, when: datetime) -> None:
    """Date every source file at when, so that the wall clock of the run cannot matter."""
    for path in folder.iterdir():
        os.utime(path, (when.timestamp(), when.timestamp()))


def sending(settings: Settings, port: int, **changes: object) -> Settings:
    """Return settings that send every edition to the SMTP server on port."""
    base = replace(
        settings,
        delivery="smtp",
        secret_key=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_timeout=5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_local_time_sends_each_zone_at_its_own_hour(settings: Settings, seeds_dir: Path) -> None:
    """Send one shared edition to four zones, each at 07:00 on its own clock, once."""
    pin_times(seeds_dir, datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    with Store(settings.db) as store:
        for address, (zone, _) in READERS.items():
            store.subscribers.upsert(address, "", (), zone, datetime(2026, 11, 27, tzinfo=UTC))
    first_seen: dict[str, datetime] = {}
    with SmtpServer(Handler(Faults())) as smtp:
        local = sending(settings, smtp.port, local_time=True, schedule="0 7 * * *")
        daily = DailyScheduler(local)
        now = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
        while now <= datetime(2026, 11, 28, 14, 0, tzinfo=UTC):
            daily.tick(now)
            for got in smtp.handler.received:
                first_seen.setdefault(got.recipient, now)
            now += timedelta(minutes=30)
        copies = smtp.handler.recipients()
        subjects = {got.parsed()["Subject"] for got in smtp.handler.received}
    assert first_seen == {address: when for address, (_, when) in READERS.items()}
    assert copies == {address: 1 for address in READERS}
    assert len(subjects) == 1
    with Store(settings.db) as store:
        editions = store.editions.recent(limit=10)
    assert [(r.id, str(r.due_date)) for r in editions] == [("2026-11-28", "2026-11-28")]


def test_local_time_does_not_send_a_zone_late(
    settings: Settings, seeds_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Leave out a zone whose hour passed longer ago than DIGEST_CATCHUP, and say so."""
    pin_times(seeds_dir, datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    with Store(settings.db) as store:
        for address in ("tokyo@example.org", "newyork@example.org"):
            zone = READERS[address][0]
            store.subscribers.upsert(address, "", (), zone, datetime(2026, 11, 27, tzinfo=UTC))
    caplog.set_level(logging.WARNING, logger="digest.schedule")
    with SmtpServer(Handler(Faults())) as smtp:
        local = sending(settings, smtp.port, local_time=True, catchup=timedelta(hours=2))
        # Started at 13:00 UTC: New York's 07:00 was an hour ago, Tokyo's fifteen.
        DailyScheduler(local).tick(datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
        copies = smtp.handler.recipients()
    assert copies == {"newyork@example.org": 1}
    assert "zone Asia/Tokyo: the edition due 2026-11-28" in caplog.text


def _env(settings: Settings, port: int) -> dict[str, str]:
    env = scheduler_env(settings)
    env.update(
        {
            # Every minute: the date's fire is always just past, so a start catches up.
            "DIGEST_SCHEDULE": "* * * * *",
            "DIGEST_DELIVERY": "smtp",
            **SENDABLE,
            "DIGEST_SECRET_KEY": SECRET,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_CONNECTIONS": "1",
            "SMTP_TIMEOUT": "10",
        }
    )
    return env


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "-v", "schedule"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_sigterm_mid_send_finishes_the_message_and_the_restart_resumes(
    settings: Settings, tmp_path: Path
) -> None:
    """Stop cleanly in the middle of a send, then send each remaining address exactly once."""
    addresses = [f"r{n:02d}@example.org" for n in range(24)]
    with Store(settings.db) as store:
        for address in addresses:
            store.subscribers.upsert(address, "", (), "", datetime.now(UTC))
    # Each message takes a while, so that the signal lands mid-send.
    with SmtpServer(Handler(Faults(delay=0.15))) as smtp:
        env = _env(settings, smtp.port)
        first = _start(env, tmp_path)
        try:
            _wait_for(lambda: len(smtp.handler.received) >= 3, 60)
        finally:
            first.send_signal(signal.SIGTERM)
            _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        sent_before = len(smtp.handler.received)
        with Store(settings.db) as store:
            (edition,) = store.editions.recent(limit=5)
            counts = store.ledger.counts(edition.id)
        # The message in flight was finished and recorded: nothing is left `sending`.
        assert counts.get("sent") == sent_before
        assert counts.get("pending", 0) == len(addresses) - sent_before > 0
        assert "sending" not in counts

        second = _start(env, tmp_path)
        try:
            _wait_for(lambda: len(smtp.handler.received) >= len(addresses), 60)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        copies = smtp.handler.recipients()
    assert copies == Counter(dict.fromkeys(addresses, 1))
    with Store(settings.db) as store:
        assert len(store.editions.recent(limit=5)) == 1
        assert store.ledger.counts(edition.id) == {"sent": len(addresses)}
    assert f"run for {edition.due_date}: edition {edition.id} (made earlier)" in err
