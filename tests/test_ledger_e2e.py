"""The delivery ledger end to end: real SMTP, real SQLite, real `digest` processes killed.

Each test drives the parts a production send is made of (an aiosmtpd server on 127.0.0.1,
the SQLite store, `python -m digest` subprocesses, the scheduler with its clock) through
a failure: a sender killed mid-send, a run killed while it reads or sends, a greylisted
address, a server that is down, a store held by a writer, a lease that runs out, a clock
that steps back. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from _sources import DATA
from aiosmtpd.smtp import SMTP, Envelope, Session
from feedserver import FeedServer
from smtpserver import Faults, Handler, Received, SmtpServer
from test_schedule_sending import pin_times, sending
from test_send import NOW, _clean_env, _env_file, add_edition, add_subscribers, smtp_settings

from digest import pipeline
from digest.config import Settings
from digest.mail import message_id
from digest.models import Progress, SendReport
from digest.schedule import DailyScheduler
from digest.send import deliver
from digest.store import Store

# The list of the big tests: long enough that a send lasts a few seconds.
TOTAL = 2000
# What a killed `digest send` of _env_file's settings may leave sent but unrecorded: a
# group of DIGEST_SEND_COMMIT_EVERY outcomes (20), what its other connection handed in
# while the group went in, and the message each of its two connections had under way.
IN_FLIGHT = 20 + 2 * 2 - 1
HOST = socket.gethostname()
# The domain of DIGEST_FROM, which names every Message-ID: test_send.SENDABLE's in the
# .env files of the commands run here, the default in smtp_settings.
DOMAIN = "news.digest-check.net"
SETTINGS_DOMAIN = "example.com"
_EDITION_OF = re.compile(r"<digest\.(.+)\.[0-9a-f]{24}@")
_SENT_IN_RUN = re.compile(r"\((\d+) sent in this run")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
# Random sentences of these never look alike to the near-duplicate finder.
_WORDS = re.findall(
    r"[a-z]+",
    """harbour council bridge market river school library station garden museum ferry tram
    budget election weather festival hospital factory orchard village tower canal theatre
    stadium airport railway forest mountain island coast valley lake workers farmers
    teachers doctors pupils drivers nurses engineers artists judges""",
)


# Helpers


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll condition until it holds; fail naming what after seconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class _Proc:
    """A `python -m digest` subprocess whose output goes to files in the test's folder."""

    def __init__(self, env_file: Path, folder: Path, name: str, *args: str) -> None:
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        self._out: IO[str] = self.out_path.open("w")
        self._err: IO[str] = self.err_path.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "digest", "--env-file", str(env_file), *args],
            env=_clean_env(),
            cwd=folder,
            stdout=self._out,
            stderr=self._err,
            text=True,
        )
        self.pid = self.popen.pid
        self.owner = f"{HOST}:{self.pid}"

    def running(self) -> bool:
        """Return whether the process has not ended yet."""
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.popen.kill()
        self.popen.wait(timeout=30)
        self._close()

    def wait(self, seconds: float) -> int:
        """Wait for the process to end by itself; return its exit code."""
        code = self.popen.wait(timeout=seconds)
        self._close()
        return code

    def stop(self) -> None:
        """End the process if it still runs (SIGTERM, then SIGKILL); used on the way out."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        self._out.close()
        self._err.close()

    @property
    def stdout(self) -> str:
        """Return what the process printed."""
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        """Return what the process logged."""
        return self.err_path.read_text()


def _digest(env_file: Path, folder: Path, *args: str, timeout: float = 120) -> str:
    """Run `digest ARGS` to its end, check it succeeded, and return its output."""
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--env-file", str(env_file), *args],
        env=_clean_env(),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"`digest {' '.join(args)}` failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def _sent_in_run(output: str) -> int:
    """Return how many messages a `digest send` or `digest run` says it sent itself."""
    return sum(int(n) for n in _SENT_IN_RUN.findall(output))


def _copies(handler: Handler) -> dict[str, Counter[str]]:
    """Return, per edition (read from each Message-ID), how many copies each address got."""
    found: dict[str, Counter[str]] = {}
    with handler.lock:
        received = list(handler.received)
    for got in received:
        found.setdefault(_edition_of(got.message_id), Counter())[got.recipient] += 1
    return found


def _edition_of(msg_id: str) -> str:
    """Return the edition a Message-ID of ours names."""
    match = _EDITION_OF.match(msg_id)
    assert match is not None, msg_id
    return match.group(1)


def _assert_once_but_in_flight(
    handler: Handler, edition_id: str, addresses: list[str], in_flight: int
) -> None:
    """Assert each address got edition_id once, but at most in_flight of them twice, and a
    second copy always under the first one's Message-ID."""
    copies = _copies(handler).get(edition_id, Counter())
    assert set(copies) == set(addresses)
    twice = [a for a, n in copies.items() if n > 1]
    assert max(copies.values()) <= 2 and len(twice) <= in_flight, twice
    with handler.lock:
        received = list(handler.received)
    expected = {a: message_id(edition_id, a, DOMAIN) for a in twice}
    for got in received:
        if got.recipient in expected and _edition_of(got.message_id) == edition_id:
            assert got.message_id == expected[got.recipient]


def _write_articles(folder: Path, count: int, seed: int) -> None:
    """Write count distinct seed-format articles (a title line, a blank line, the text)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        title = " ".join(rng.sample(_WORDS, 5)).capitalize() + f" report {seed}-{n}"
        sentences = [
            " ".join(rng.sample(_WORDS, 12)).capitalize() + f" in week {n}." for _ in range(4)
        ]
        (folder / f"story_{seed}_{n:03d}.txt").write_text(f"{title}\n\n{' '.join(sentences)}\n")


def _get(url: str) -> tuple[int, str]:
    """Fetch url; return its status and body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _ListHandler(Handler):
    """A Handler for the big lists: it notes each message's recipient and Message-ID from
    the headers alone (no full parse, which would slow the server down more than the
    senders), and its one fault is the delay before each reply to DATA."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        found = _MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        msg_id = found.group(1).decode() if found else ""
        with self.lock:
            self.received.append(Received(envelope.rcpt_tos[0], msg_id, data))
        return "250 Message accepted"


class _SmtpServerOn(SmtpServer):
    """The test SMTP server on a port chosen beforehand (one a stopped server used)."""

    def __init__(self, handler: Handler, port: int) -> None:
        super().__init__(handler)
        self._wanted = port

    def __enter__(self) -> _SmtpServerOn:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(self._protocol, "127.0.0.1", self._wanted), self._loop
        )
        self._server = future.result(timeout=10)
        self.port = self._wanted
        return self


class _Clock:
    """A clock a test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _rows(settings: Settings, edition_id: str) -> dict[str, tuple[str, datetime | None]]:
    """Return each address's row of edition_id: its status and next attempt time."""
    with Store(settings.db, readonly=True) as store:
        return {d.email: (d.status, d.next_attempt_at) for d in store.ledger.rows(edition_id)}


# 1. Two senders on one store, one of them killed


def test_two_senders_share_a_send_and_one_killed_loses_nothing(tmp_path: Path) -> None:
    """Share one send between two `digest send`s, SIGKILL one; a third run finishes it."""
    handler = _ListHandler(Faults(delay=0.001))
    addresses = [f"r{n}@example.org" for n in range(TOTAL)]
    with SmtpServer(handler) as srv:
        env = _env_file(tmp_path, srv.port)
        with Store(tmp_path / "digest.db") as store:
            add_edition(store, "e1")
            store.subscribers.add_many(addresses, NOW)
        victim = _Proc(env, tmp_path, "victim", "send", "e1")
        survivor = _Proc(env, tmp_path, "survivor", "send", "e1")
        try:
            seen: set[str] = set()
            with Store(tmp_path / "digest.db", readonly=True) as store:

                def both_sending() -> bool:
                    assert victim.running(), "the send ended before it could be killed"
                    owners = {victim.owner, survivor.owner}
                    if not owners <= seen:
                        rows = store.ledger.rows("e1", ("sending",))
                        seen.update(str(d.claimed_by) for d in rows)
                    return owners <= seen and len(handler.received) >= 400

                _wait_until(both_sending, 60, "both senders to hold rows, 400 messages sent")
            victim.kill()
            at_kill = len(handler.received)
            assert survivor.wait(120) == 0, survivor.stderr
        finally:
            victim.stop()
            survivor.stop()
        with Store(tmp_path / "digest.db", readonly=True) as store:
            after_survivor = store.ledger.counts("e1")
        final = _digest(env, tmp_path, "send", "e1")
    assert at_kill < TOTAL
    # The survivor sent every row it could claim; only the dead one's claims were left.
    assert after_survivor.get("pending", 0) == 0
    assert f"Edition e1: {TOTAL} sent" in final
    with Store(tmp_path / "digest.db", readonly=True) as store:
        assert store.ledger.counts("e1") == {"sent": TOTAL}
        assert {d.message_id for d in store.ledger.rows("e1")} == {
            message_id("e1", a, DOMAIN) for a in addresses
        }
    # Everything the server accepted came from the survivor, the final run (both count
    # what they sent) or the killed process: each of the two senders did a share.
    survivor_sent, final_sent = _sent_in_run(survivor.stdout), _sent_in_run(final)
    victim_sent = len(handler.received) - survivor_sent - final_sent
    assert survivor_sent > 0 and victim_sent > 0, (survivor_sent, victim_sent, final_sent)
    # At most the killed one's messages in flight: its group of outcomes not yet committed.
    _assert_once_but_in_flight(handler, "e1", addresses, in_flight=IN_FLIGHT)


# 2. `digest run` killed while it reads, then while it sends


def test_killed_runs_resume_and_every_edition_reaches_everyone(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """SIGKILL `digest run` during ingest and during its send; the next run sends it all."""
    _write_articles(tmp_path / "src", 30, seed=7)
    rss = (DATA / "rss2.xml").read_bytes()
    # Dripped four bytes at a time: the fetch, and so the ingest, lasts about 4 s.
    slow = feed_server.add("/slow.xml", rss, drip=4.0 / (len(rss) / 4))
    handler = _ListHandler(Faults(delay=0.001))
    addresses = [f"r{n}@example.org" for n in range(TOTAL)]
    db = tmp_path / "digest.db"
    with SmtpServer(handler) as srv:
        env = _env_file(tmp_path, srv.port)
        with env.open("a") as out:
            out.write(
                f"DIGEST_SOURCES={tmp_path / 'src'},{slow}\nDIGEST_DELIVERY=smtp\n"
                "DIGEST_MAX_ITEMS=10\nDIGEST_FETCH_INTERVAL=0\nDIGEST_FETCH_TIMEOUT=30\n"
            )
        with Store(db) as store:
            store.subscribers.add_many(addresses, NOW)

        # (a) Killed while the feed is still coming in: nothing is made, nothing sent.
        reading = _Proc(env, tmp_path, "reading", "run")
        try:
            _wait_until(
                lambda: bool(feed_server.hits("/slow.xml")) or not reading.running(),
                60,
                "the run to fetch the feed",
            )
            assert reading.running(), reading.stderr
            reading.kill()
        finally:
            reading.stop()
        with Store(db, readonly=True) as store:
            assert store.editions.recent(limit=5) == []
        assert handler.received == []
        feed_server.routes["/slow.xml"].drip = 0.0

        # (b) Killed in the middle of its send.
        sending_run = _Proc(env, tmp_path, "sending", "run")
        try:
            _wait_until(
                lambda: len(handler.received) >= 300 or not sending_run.running(),
                90,
                "the run to send 300 messages",
            )
            assert sending_run.running(), sending_run.stderr
            sending_run.kill()
        finally:
            sending_run.stop()
        with Store(db, readonly=True) as store:
            (first,) = store.editions.recent(limit=5)
            partial = store.ledger.counts(first.id)
        # All recorded but the messages in flight.
        assert 300 - IN_FLIGHT <= partial.get("sent", 0) < TOTAL

        # The rerun finishes the first edition, makes the second from the rest, sends it.
        output = _digest(env, tmp_path, "run", timeout=180)
    with Store(db, readonly=True) as store:
        made = store.editions.recent(limit=5)
        counts = {record.id: store.ledger.counts(record.id) for record in made}
    assert [record.id for record in made][-1] == first.id
    assert len(made) == 2, output
    (second,) = [record for record in made if record.id != first.id]
    assert f"Edition {second.id}: 10 items" in output
    assert counts == {first.id: {"sent": TOTAL}, second.id: {"sent": TOTAL}}
    _assert_once_but_in_flight(handler, first.id, addresses, in_flight=IN_FLIGHT)
    assert _copies(handler)[second.id] == Counter(dict.fromkeys(addresses, 1))


# 3. A greylisted address across ticks, with a new edition in between


def test_a_451_across_ticks_and_a_new_edition_reaches_the_address_once_each(
    settings: Settings, seeds_dir: Path
) -> None:
    """Defer a greylisted address over ticks and a day; it gets both editions, each once."""
    day1 = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    pin_times(seeds_dir, day1 - timedelta(hours=19))
    addresses = [f"r{n}@example.org" for n in range(5)]
    grey = "r2@example.org"
    with Store(settings.db) as store:
        for address in addresses:
            store.subscribers.upsert(address, "", (), "", day1 - timedelta(days=1))
    handler = Handler(Faults(rcpt={grey: ["451 4.7.1 greylisted, try later"] * 2}))
    with SmtpServer(handler) as srv:
        cfg = sending(settings, srv.port)
        clock = _Clock(day1)
        daily = DailyScheduler(cfg, clock)

        made = daily.tick()
        assert made.action == "made", made.detail
        assert made.result is not None and made.result.edition is not None
        first = made.result.edition.id
        status, retry_at = _rows(cfg, first)[grey]
        assert status == "pending" and retry_at is not None
        assert day1 + timedelta(minutes=3) < retry_at <= day1 + timedelta(minutes=5)

        clock.at = day1 + timedelta(minutes=1)
        quiet = daily.tick()
        assert (quiet.action, quiet.drained) == ("idle", ())
        assert _rows(cfg, first)[grey] == ("pending", retry_at)
        assert handler.attempts[grey] == 1

        (seeds_dir / "zz_day2.txt").write_text(
            "Tram line opens on the coast\n\nThe new line carries its first riders today."
            " The council said timetables follow next week.\n"
        )
        pin_times(seeds_dir, day2 - timedelta(hours=1))
        clock.at = day2
        next_day = daily.tick()
        assert next_day.action == "made", next_day.detail
        assert next_day.result is not None and next_day.result.edition is not None
        second = next_day.result.edition.id
        # The oldest edition goes first: its retry met the second 451; the new one went.
        assert _copies(handler).get(second, Counter())[grey] == 1
        assert _rows(cfg, first)[grey][0] == "pending"

        for _ in range(30):
            if _copies(handler)[first][grey]:
                break
            clock.at += timedelta(minutes=5)
            daily.tick()
        copies = _copies(handler)
    assert copies[first] == Counter(dict.fromkeys(addresses, 1))
    assert copies[second] == Counter(dict.fromkeys(addresses, 1))
    assert clock.at < day2 + timedelta(hours=1)
    with Store(cfg.db, readonly=True) as store:
        assert store.ledger.counts(first) == {"sent": 5}
        assert store.ledger.counts(second) == {"sent": 5}


# 4. The SMTP server down at the scheduled hour, back half an hour later


def test_server_down_at_seven_up_at_half_past_everyone_sent_once(
    settings: Settings, seeds_dir: Path
) -> None:
    """Make the edition while the server is down, keep its rows, send them when it is up."""
    day1 = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    pin_times(seeds_dir, day1 - timedelta(hours=19))
    addresses = [f"r{n}@example.org" for n in range(6)]
    with Store(settings.db) as store:
        for address in addresses:
            store.subscribers.upsert(address, "", (), "", day1 - timedelta(days=1))
    with SmtpServer() as gone:
        port = gone.port
    cfg = sending(settings, port, smtp_max_attempts=2)
    clock = _Clock(day1)
    daily = DailyScheduler(cfg, clock)
    down = daily.tick()
    assert down.action == "failed" and "cannot reach" in down.detail, down.detail
    with Store(cfg.db, readonly=True) as store:
        made = store.editions.for_due_date(day1.date())
        assert made is not None
        assert store.ledger.counts(made.id) == {"pending": len(addresses)}

    handler = Handler()
    with _SmtpServerOn(handler, port):
        clock.at = day1 + timedelta(minutes=30)
        up = daily.tick()
    assert up.action == "idle", up.detail
    assert [(r.edition_id, r.counts) for r in up.drained] == [(made.id, {"sent": len(addresses)})]
    assert handler.recipients() == Counter(dict.fromkeys(addresses, 1))


# 5. The web face answers while a send holds the store

EDITION = "2026-11-28"


def test_health_answers_while_a_send_and_a_writer_hold_the_store(tmp_path: Path) -> None:
    """Answer /health and serve /archive/ during a send and while a write lock is held.

    The server waits up to 30 s for a lock it needs and each request here gives up after
    10 s, so an answer shows that it did not wait for the lock; how fast it answers is a
    matter for bench/, not for a test.
    """
    handler = Handler(Faults(delay=0.05))
    db = tmp_path / "digest.db"
    with SmtpServer(handler) as srv:
        env = _env_file(tmp_path, srv.port)
        with Store(db) as store:
            add_edition(store, EDITION)
            addresses = add_subscribers(store, 200)
        # The archive shows each edition's page from the database, no outbox needed.
        port = _free_port()
        web = _Proc(env, tmp_path, "serve", "serve", "--port", str(port))
        sender: _Proc | None = None
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until(lambda: _answers(f"{base}/health"), 60, "`digest serve` to answer")
            assert _get(f"{base}/archive/")[0] == 200  # warmed up: its imports are paid

            sender = _Proc(env, tmp_path, "send", "send", EDITION)
            _wait_until(lambda: len(handler.received) >= 5, 60, "the send to start")
            for _ in range(10):
                status, body = _get(f"{base}/health")
                assert status == 200 and '"status": "ok"' in body
            status, index = _get(f"{base}/archive/")
            assert status == 200 and f'href="{EDITION}/"' in index
            status, shown = _get(f"{base}/archive/{EDITION}/")
            # The page is built from the edition the store kept: its subject and items.
            assert status == 200 and f"Daily Digest {EDITION}" in shown and "Point." in shown
            assert sender.running(), "the send ended before the web face was asked"

            # Another writer holds the store's write lock; readers do not wait for it.
            held = sqlite3.connect(db, isolation_level=None, timeout=30)
            try:
                held.execute("BEGIN IMMEDIATE")
                with Store(db, readonly=True) as store:
                    sent_at_hold = store.ledger.counts(EDITION).get("sent", 0)
                report = _digest(env, tmp_path, "status", timeout=25)
                assert EDITION in report and "Pending deliveries" in report
                status, body = _get(f"{base}/health")
                assert status == 200 and '"status": "ok"' in body
                with Store(db, readonly=True) as store:
                    # The lock was real: the sender could record nothing meanwhile.
                    assert store.ledger.counts(EDITION).get("sent", 0) == sent_at_hold
                assert sender.running()
            finally:
                held.rollback()
                held.close()
            assert sender.wait(120) == 0, sender.stderr
        finally:
            web.stop()
            if sender is not None:
                sender.stop()
    assert handler.recipients() == Counter(dict.fromkeys(addresses, 1))
    with Store(db, readonly=True) as store:
        assert store.ledger.counts(EDITION) == {"sent": len(addresses)}


# 6. A lease that runs out, and a dead sender of this host


def test_expired_lease_and_dead_local_sender_are_taken_over(tmp_path: Path) -> None:
    """Leave another host's live claim alone, take it once its lease ends; free a dead pid's."""
    handler = Handler()
    with SmtpServer(handler) as srv:
        settings = smtp_settings(tmp_path, srv.port)
        with Store(settings.db) as store:
            add_edition(store, "e1")
            addresses = add_subscribers(store, 20)
            store.ledger.add("e1", NOW)
            other = store.ledger.claim(
                "e1", NOW, lease=timedelta(seconds=1), limit=10, owner="otherhost:1"
            )
            assert other is not None
            held = [row.email for row in other.rows]
            assert held == addresses[:10]

            early = deliver(settings, store, "e1", clock=lambda: NOW + timedelta(milliseconds=500))
            assert early.counts == {"sent": 10, "sending": 10}
            assert early.resumed_in_flight == 0
            assert set(handler.recipients()) == set(addresses[10:])
            claimed = {d.email: d.claimed_by for d in store.ledger.rows("e1", ("sending",))}
            assert claimed == dict.fromkeys(held, "otherhost:1")

            late = deliver(settings, store, "e1", clock=lambda: NOW + timedelta(seconds=30))
            assert late.counts == {"sent": 20} and late.resumed_in_flight == 10
            rows = {d.email: d for d in store.ledger.rows("e1")}

            # A sender of this host whose process is gone: no need to wait for its lease.
            gone = subprocess.Popen(["true"])
            gone.wait()
            add_edition(store, "e2", NOW + timedelta(hours=1))
            store.ledger.add("e2", NOW + timedelta(hours=1))
            dead = store.ledger.claim(
                "e2",
                NOW + timedelta(hours=1),
                lease=timedelta(hours=1),
                limit=10,
                owner=f"{HOST}:{gone.pid}",
            )
            assert dead is not None
            freed = deliver(
                settings, store, "e2", clock=lambda: NOW + timedelta(hours=1, seconds=1)
            )
            assert freed.counts == {"sent": 20} and freed.resumed_in_flight == 10
    copies = _copies(handler)
    assert copies == {
        "e1": Counter(dict.fromkeys(addresses, 1)),
        "e2": Counter(dict.fromkeys(addresses, 1)),
    }
    received = {(m.recipient, m.message_id) for m in handler.received}
    # The rows taken over went under the Message-ID any send of theirs uses.
    for address in held:
        assert (address, message_id("e1", address, SETTINGS_DOMAIN)) in received
        assert rows[address].status == "sent"
        assert rows[address].message_id == message_id("e1", address, SETTINGS_DOMAIN)


# 7. A clock that steps back


def test_a_clock_stepping_back_sends_nobody_twice_and_keeps_deferred_rows(
    tmp_path: Path,
) -> None:
    """Send half an hour ahead, the rest an hour earlier; deferred rows still go, once."""
    early_grey, late_grey = "r3@example.org", "r30@example.org"
    handler = Handler(
        Faults(rcpt={early_grey: ["451 4.7.1 try later"], late_grey: ["451 4.7.1 try later"]})
    )
    ahead = NOW + timedelta(hours=1)
    with SmtpServer(handler) as srv:
        settings = smtp_settings(tmp_path, srv.port)
        with Store(settings.db) as store:
            add_edition(store, "e1")
            addresses = add_subscribers(store, 40)
        stop = threading.Event()

        def half(p: Progress) -> None:
            if p.sent >= 20:
                stop.set()

        def send(at: datetime, **kwargs: object) -> SendReport:
            with Store(settings.db) as store:
                return deliver(settings, store, "e1", clock=lambda: at, **kwargs)  # type: ignore[arg-type]

        first = send(ahead, stop=stop, progress=half)
        assert first.stopped and 20 <= first.counts["sent"] < 40
        status, early_retry = _rows(settings, "e1")[early_grey]
        assert status == "pending" and early_retry is not None
        assert ahead + timedelta(minutes=3) < early_retry <= ahead + timedelta(minutes=5)

        # An hour earlier: the rest goes; the row deferred "later" is not due yet.
        back = send(NOW)
        assert back.counts == {"sent": 38, "pending": 2}
        assert _rows(settings, "e1")[early_grey] == ("pending", early_retry)
        status, late_retry = _rows(settings, "e1")[late_grey]
        assert status == "pending" and late_retry is not None
        assert NOW + timedelta(minutes=3) < late_retry <= NOW + timedelta(minutes=5)
        assert set(handler.recipients().values()) == {1}

        assert send(NOW + timedelta(minutes=10)).counts == {"sent": 39, "pending": 1}
        assert send(NOW + timedelta(minutes=30)).sent_now == 0
        assert send(ahead + timedelta(minutes=5)).counts == {"sent": 40}
        copies = handler.recipients()
    assert copies == Counter(dict.fromkeys(addresses, 1))
    assert handler.attempts[early_grey] == handler.attempts[late_grey] == 2


# 8. Killed right after recording an edition: its rows were recorded with it


def _killed_at(name: str) -> str:
    """Return a script that runs `digest` and SIGKILLs itself when pipeline calls name."""
    return (
        "import os, signal\n"
        "import digest.pipeline\n"
        f"digest.pipeline.{name} = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from digest.cli import main\n"
        "main()\n"
    )


# `digest run`, SIGKILLed by itself the moment its edition is recorded, before any send.
_KILLED_BEFORE_SENDING = _killed_at("drain")


def _run_killed(
    tmp_path: Path, port: int, addresses: list[str], script: str, seed: int
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Write 15 articles and a smtp .env, add addresses, and run `digest run` through
    script, which kills itself; return the .env and what the process did."""
    _write_articles(tmp_path / "src", 15, seed=seed)
    env = _env_file(tmp_path, port)
    with env.open("a") as out:
        out.write(f"DIGEST_SOURCES={tmp_path / 'src'}\nDIGEST_DELIVERY=smtp\n")
    with Store(tmp_path / "digest.db") as store:
        store.subscribers.add_many(addresses, NOW)
    killed = subprocess.run(
        [sys.executable, "-c", script, "--env-file", str(env), "run"],
        env=_clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return env, killed


def test_run_killed_while_rendering_makes_and_sends_the_edition_next_time(
    tmp_path: Path,
) -> None:
    """SIGKILL `digest run` while it renders; nothing is recorded, the next run makes the
    edition and sends it to everyone once."""
    handler = Handler()
    addresses = [f"r{n}@example.org" for n in range(5)]
    db = tmp_path / "digest.db"
    with SmtpServer(handler) as srv:
        env, killed = _run_killed(
            tmp_path, srv.port, addresses, _killed_at("render_edition"), seed=12
        )
        assert killed.returncode == -signal.SIGKILL, killed
        with Store(db, readonly=True) as store:
            assert store.editions.recent(limit=5) == []
        _digest(env, tmp_path, "run")
        with Store(db, readonly=True) as store:
            (made,) = store.editions.recent(limit=5)
            assert store.ledger.counts(made.id) == {"sent": len(addresses)}
    assert _copies(handler).get(made.id) == Counter(dict.fromkeys(addresses, 1))


def test_run_killed_after_recording_its_edition_still_sends_it(tmp_path: Path) -> None:
    """SIGKILL `digest run` once its edition is recorded; the rows are there, the next
    run sends them."""
    handler = Handler()
    addresses = [f"r{n}@example.org" for n in range(5)]
    db = tmp_path / "digest.db"
    with SmtpServer(handler) as srv:
        env, killed = _run_killed(tmp_path, srv.port, addresses, _KILLED_BEFORE_SENDING, seed=11)
        with Store(db, readonly=True) as store:
            made = store.editions.recent(limit=5)
            rows = {record.id: store.ledger.counts(record.id) for record in made}
        assert killed.returncode == -signal.SIGKILL and len(made) == 1, killed
        # Recorded with its rows, in one transaction: never an edition nobody is due.
        assert rows[made[0].id] == {"pending": len(addresses)}
        first = made[0].id
        _digest(env, tmp_path, "run")
    with Store(db, readonly=True) as store:
        assert store.ledger.counts(first) == {"sent": len(addresses)}
    assert _copies(handler).get(first) == Counter(dict.fromkeys(addresses, 1))


class _Crash(BaseException):
    """The process dying at this point: nothing after it runs."""


def test_scheduler_restarted_after_a_crash_before_sending_sends_the_edition(
    settings: Settings, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash a tick after it recorded its edition; a restarted scheduler sends it."""
    day1 = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    pin_times(seeds_dir, day1 - timedelta(hours=19))
    addresses = [f"r{n}@example.org" for n in range(3)]
    with Store(settings.db) as store:
        for address in addresses:
            store.subscribers.upsert(address, "", (), "", day1 - timedelta(days=1))
    handler = Handler()
    with SmtpServer(handler) as srv:
        cfg = sending(settings, srv.port)

        def crash(*args: object, **kwargs: object) -> int:
            raise _Crash

        monkeypatch.setattr(pipeline, "drain", crash)
        with pytest.raises(_Crash):
            DailyScheduler(cfg, _Clock(day1)).tick()
        monkeypatch.undo()
        with Store(cfg.db, readonly=True) as store:
            made = store.editions.for_due_date(day1.date())
            assert made is not None
            assert store.ledger.counts(made.id) == {"pending": len(addresses)}
        restarted = DailyScheduler(cfg, _Clock(day1 + timedelta(minutes=1)))
        results = [restarted.tick() for _ in range(2)]
    assert handler.recipients() == Counter(dict.fromkeys(addresses, 1)), results
    with Store(cfg.db, readonly=True) as store:
        assert store.ledger.counts(made.id) == {"sent": len(addresses)}
