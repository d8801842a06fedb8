"""`digest send --worker` processes sharing one PostgreSQL database, against a real
SMTP server: killed, paused past their lease, and the database restarted under them.

Every worker is a real `python -m digest send --worker` process with four connections
and a three-second lease, so that a takeover is seconds away; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pgserver
import pytest
from smtpserver import Faults, Handler, SmtpServer
from test_send import SENDABLE

from digest.models import Article, Edition, Highlight, Item, RenderedEdition, Section
from digest.render import UNSUBSCRIBE_PLACEHOLDER
from digest.store import Store

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
SECRET = "a-secret-only-for-tests-0123456789"
LEASE_S = 3
CONNECTIONS = 4
# What one worker may have sent but not yet recorded: a group of DIGEST_SEND_COMMIT_EVERY
# outcomes (20), what its other connections handed in while the group went in, and the
# message each connection had under way.
IN_FLIGHT = 20 + 2 * CONNECTIONS - 1


def _prepare(url: str, total: int) -> set[str]:
    """Record an edition with rows for total subscribers; return their addresses."""
    article = Article(id="a1", source="s", title="Title", highlights=(Highlight("Point."),))
    edition = Edition(
        "e1", "Daily Digest", date(2026, 11, 28), NOW, (Section("", (Item(article, ()),)),)
    )
    html = f'<html><body><p>News</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></body>'
    text = f"News\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n"
    addresses = {f"r{n}@example.org" for n in range(total)}
    with Store(url) as store:
        store.articles.save_one(article, NOW)
        store.editions.record(
            edition, "Digest", None, RenderedEdition(edition, "Digest", "", html, text)
        )
        store.subscribers.add_many(sorted(addresses), NOW)
        store.ledger.add("e1", NOW)
    return addresses


def _env(url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    env.update(
        {
            **SENDABLE,
            "DIGEST_DB": url,
            "DIGEST_SECRET_KEY": SECRET,
            "DIGEST_SEND_LEASE": f"{LEASE_S}s",
            "DIGEST_WORKER_POLL": "1s",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_TIMEOUT": "10",
            "SMTP_CONNECTIONS": str(CONNECTIONS),
        }
    )
    return env


@contextmanager
def workers(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen[str]]]:
    """Run count workers; SIGTERM (and at worst kill) whatever is left at the end."""
    command = [sys.executable, "-m", "digest", "send", "--worker"]
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _wait(done: Callable[[], bool], procs: list[subprocess.Popen[str]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the workers made no progress in time"
        for proc in procs:
            if proc.poll() not in (None, -signal.SIGKILL):
                _, err = proc.communicate()
                raise AssertionError(f"a worker exited with {proc.returncode}: {err}")
        time.sleep(0.02)


def _stop_all(procs: list[subprocess.Popen[str]]) -> list[str]:
    """SIGTERM the live workers; return what each wrote to stderr."""
    errs = []
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, err
        errs.append(err)
    return errs


def _settled(url: str, total: int) -> Callable[[], bool]:
    def done() -> bool:
        with Store(url, readonly=True) as store:
            return store.ledger.counts("e1").get("sent", 0) == total

    return done


def _check_copies(handler: Handler, addresses: set[str], duplicates_at_most: int) -> int:
    copies = handler.recipients()
    assert set(copies) == addresses
    twice = [a for a, n in copies.items() if n > 1]
    assert len(twice) <= duplicates_at_most, twice
    for address in twice:
        # A message sent again goes with the same Message-ID: a receiver drops the copy.
        assert len({m.message_id for m in handler.received if m.recipient == address}) == 1
    return len(twice)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(Handler(Faults())) as server:
        yield server


def test_three_workers_send_5000_each_exactly_once(pg_url: str, smtp: SmtpServer) -> None:
    """Three workers on one database share one edition: every address once, no more."""
    addresses = _prepare(pg_url, 5000)
    with workers(_env(pg_url, smtp.port), 3) as procs:
        _wait(_settled(pg_url, 5000), procs, 240)
        _stop_all(procs)
    assert _check_copies(smtp.handler, addresses, 0) == 0


def test_a_killed_worker_is_taken_over(pg_url: str, smtp: SmtpServer) -> None:
    """SIGKILL one of three workers mid-send: the others take its rows over, everyone is
    reached, and only its messages in flight may go twice."""
    addresses = _prepare(pg_url, 1000)
    with workers(_env(pg_url, smtp.port), 3) as procs:
        _wait(lambda: len(smtp.handler.received) >= 250, procs, 120)
        procs[0].send_signal(signal.SIGKILL)
        _wait(_settled(pg_url, 1000), procs, 120)
        _stop_all(procs)
    _check_copies(smtp.handler, addresses, IN_FLIGHT)


def test_a_worker_paused_past_its_lease_sends_nothing_it_lost(
    pg_url: str, smtp: SmtpServer
) -> None:
    """SIGSTOP one worker for three leases, then SIGCONT it: the other took its rows;
    on waking it finds its lease expired and sends none of them, so that only what it
    had in flight when stopped may arrive twice."""
    addresses = _prepare(pg_url, 1000)
    # Slow enough that each worker holds batches in the middle of being sent.
    smtp.handler.faults.delay = 0.003
    with workers(_env(pg_url, smtp.port), 2) as procs:
        _wait(lambda: len(smtp.handler.received) >= 200, procs, 120)
        procs[0].send_signal(signal.SIGSTOP)
        # Past its lease: its rows lapse and the other worker takes them over (and may
        # finish the whole list meanwhile; the stopped one must still send none of it).
        time.sleep(3 * LEASE_S)
        procs[0].send_signal(signal.SIGCONT)
        _wait(_settled(pg_url, 1000), procs, 120)
        errs = _stop_all(procs)
    _check_copies(smtp.handler, addresses, IN_FLIGHT)
    # It left the batches it had lost: by its own count of the lease before a message,
    # by withdrawing the message it was sending (after 354, before the final dot), or
    # fenced off when it came to record a message it had in flight.
    assert "taken over" in errs[0]


def test_workers_ride_out_a_database_restart(pg_url: str, smtp: SmtpServer) -> None:
    """Restart PostgreSQL in the middle of a send: the workers reconnect, record what
    went out meanwhile, and finish."""
    addresses = _prepare(pg_url, 1000)
    smtp.handler.faults.delay = 0.002
    with workers(_env(pg_url, smtp.port), 2) as procs:
        _wait(lambda: len(smtp.handler.received) >= 300, procs, 120)
        if not pgserver.restart():
            pytest.skip("the PostgreSQL server was not started by the tests (no folder given)")
        _wait(_settled(pg_url, 1000), procs, 180)
        _stop_all(procs)
    # The outcomes the restart cut off wait and go in once the server is back: at most
    # one worker's group may go twice (the restart outlasting a lease), not both.
    _check_copies(smtp.handler, addresses, IN_FLIGHT)
