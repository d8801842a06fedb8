"""The schedule: one edition per due date, catch-up, daylight saving, one scheduler."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.config import Settings
from digest.schedule import DailyScheduler, fire_times, make_trigger, serve
from digest.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
FIRE = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def add_article(folder: Path, name: str) -> None:
    """Drop a new article into the sources."""
    (folder / f"{name}.txt").write_text(f"Story {name}\n\nSomething happened in {name}. Details.\n")


def due_dates(settings: Settings) -> list[str]:
    """Return the due dates that have an edition, in order."""
    with Store(settings.db) as store:
        return sorted(str(r.due_date) for r in store.editions.recent(limit=1000) if r.due_date)


def test_two_fires_for_one_date_make_one_edition(settings: Settings) -> None:
    """Make one edition however often and by however many schedulers a date fires."""
    first = DailyScheduler(settings).tick(FIRE + timedelta(seconds=1))
    assert first.action == "made"
    again = DailyScheduler(settings).tick(FIRE + timedelta(minutes=5))
    assert again.action == "nothing"
    assert "already made" in again.detail
    same = DailyScheduler(settings)
    same.tick(FIRE + timedelta(minutes=6))
    assert same.tick(FIRE + timedelta(minutes=7)).action == "idle"
    assert due_dates(settings) == ["2026-11-28"]


def test_concurrent_fires_in_two_threads(settings: Settings) -> None:
    """Let two schedulers racing on one store make a single edition."""
    outcomes: list[str] = []

    def fire() -> None:
        outcomes.append(DailyScheduler(settings).tick(FIRE + timedelta(seconds=2)).action)

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["made", "nothing"]
    assert due_dates(settings) == ["2026-11-28"]


def test_downtime_inside_catch_up_window(settings: Settings) -> None:
    """Make a missed edition once when restarted within DIGEST_CATCHUP."""
    outcome = DailyScheduler(settings).tick(FIRE + timedelta(hours=5, minutes=59))
    assert outcome.action == "made"
    assert due_dates(settings) == ["2026-11-28"]


def test_downtime_outside_catch_up_window(
    settings: Settings, seeds_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Log a date missed beyond DIGEST_CATCHUP as skipped and never send it late."""
    with caplog.at_level(logging.WARNING):
        outcome = DailyScheduler(settings).tick(FIRE + timedelta(hours=6, minutes=1))
    assert outcome.action == "skipped"
    assert "skipped the edition due 2026-11-28" in caplog.text
    assert due_dates(settings) == []
    # The articles are not lost: the next day's edition carries them.
    add_article(seeds_dir, "next-day")
    nxt = DailyScheduler(settings).tick(FIRE + timedelta(days=1, minutes=1))
    assert nxt.action == "made" and nxt.result is not None and nxt.result.edition is not None
    assert len(nxt.result.edition.items) == 10  # capped at DIGEST_MAX_ITEMS; the rest wait
    assert due_dates(settings) == ["2026-11-29"]


def test_empty_day_makes_no_edition(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Make no edition, and say why, when nothing is new."""
    assert DailyScheduler(settings).tick(FIRE).action == "made"
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        outcome = DailyScheduler(settings).tick(FIRE + timedelta(days=1))
    assert outcome.action == "nothing"
    assert "nothing new" in outcome.detail
    assert [r.message for r in caplog.records if "no edition" in r.message]
    assert due_dates(settings) == ["2026-11-28"]


@pytest.mark.parametrize("expr", ["30 2 * * *", "0 7 * * *"])
@pytest.mark.parametrize("start", [datetime(2026, 3, 26), datetime(2026, 10, 22)])
def test_daylight_saving_in_berlin(
    settings: Settings, seeds_dir: Path, expr: str, start: datetime
) -> None:
    """Make exactly one edition on each day across a clock change: none doubled or missed."""
    berlin = replace(settings, timezone="Europe/Berlin", schedule=expr)
    begin = start.replace(tzinfo=BERLIN)
    fires = fire_times(make_trigger(berlin), begin, begin + timedelta(days=6))
    days = sorted({f.astimezone(BERLIN).date() for f in fires})
    assert len(days) == 6
    for n, fire in enumerate(fires):
        add_article(seeds_dir, f"day{n}")
        # A fresh scheduler each time, as after a restart: only the store prevents doubles.
        DailyScheduler(berlin).tick(fire + timedelta(seconds=1))
        DailyScheduler(berlin).tick(fire + timedelta(minutes=30))
    assert due_dates(berlin) == [str(d) for d in days]


def test_fall_back_fires_twice_at_half_past_two() -> None:
    """Show the repeated hour really fires twice, which the store must absorb."""
    berlin = Settings(timezone="Europe/Berlin", schedule="30 2 * * *")
    begin = datetime(2026, 10, 25, tzinfo=BERLIN)
    fires = fire_times(make_trigger(berlin), begin, begin + timedelta(days=1))
    assert [f.astimezone(BERLIN).date().isoformat() for f in fires] == ["2026-10-25"] * 2


def test_serve_catches_up_on_start_and_stops(settings: Settings) -> None:
    """Catch up at start, keep the lock while running, release it when stopped."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, stop, clock=lambda: FIRE + timedelta(hours=1))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 20
    while not due_dates(settings) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert due_dates(settings) == ["2026-11-28"]
    from digest.schedule import scheduler_status

    holder = scheduler_status(settings)
    assert holder is not None and holder["pid"] == os.getpid()
    stop.set()
    thread.join(20)
    assert not thread.is_alive() and errors == []
    assert scheduler_status(settings) is None


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    env.update(
        {
            "DIGEST_SOURCES": ",".join(settings.sources),
            "DIGEST_DB": str(settings.db),
            "DIGEST_OUTBOX": str(settings.outbox),
        }
    )
    return env


def test_second_scheduler_refuses_and_sigterm_exits_cleanly(
    settings: Settings, tmp_path: Path
) -> None:
    """Refuse a second scheduler on the same store, naming the first; exit 0 on SIGTERM."""
    env = _env(settings)
    first = subprocess.Popen(
        [sys.executable, "-m", "digest", "schedule"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert isinstance(settings.db, Path)
        lock = settings.db.with_name(settings.db.name + ".scheduler.lock")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "digest", "schedule"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"a scheduler is already running on this store (process {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "Scheduler stopped." in out


def test_trigger_moves_forward_through_the_repeated_hour() -> None:
    """Never return a fire time at or before the previous one, or before now."""
    berlin = Settings(timezone="Europe/Berlin", schedule="30 2 * * *")
    trigger = make_trigger(berlin)
    second = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN).replace(fold=1)
    for delta in (timedelta(microseconds=1), timedelta(minutes=1), timedelta(minutes=59)):
        now = second.astimezone(UTC) + delta  # in UTC: wall-time arithmetic loses the fold
        nxt = trigger.get_next_fire_time(second, now)
        assert nxt == datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)
        assert trigger.get_next_fire_time(None, now) == nxt


def test_the_scheduler_sends_a_sign_up_email_put_back_after_a_refusal(settings: Settings) -> None:
    """A confirmation the relay refused for now (451) is put back; the scheduler's next
    pass sends it, without waiting for another sign-up to wake the web process."""
    from smtpserver import Faults, Handler, SmtpServer

    from digest.models import Consent
    from digest.notices import send_notices
    from digest.schedule import send_waiting_notices

    address = "ada@example.org"
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    handler = Handler(Faults(rcpt={address: ["451 4.3.0 try again later"]}))
    with SmtpServer(handler) as smtp:
        s = replace(
            settings,
            delivery="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_timeout=5,
            smtp_max_attempts=1,
            secret_key="k" * 32,
        )
        with Store(s.db) as store:
            store.signups.request(address, "Ada", (), "", Consent(source="form"), now)
            assert send_notices(s, store, now) == 0
        assert handler.received == []
        assert send_waiting_notices(s, lambda: now) == 1
        assert [r.recipient for r in handler.received] == [address]
        assert send_waiting_notices(s, lambda: now) == 0
