"""Senders on several processes sharing one database, against a relay 5 ms away.

An SMTP sink in its own process answers every command after 5 ms, as a relay one round
trip away would. 1, 2 and 4 `digest send --worker` processes with 4 connections each
send one edition to the same list on PostgreSQL; it prints messages per second for
each and the ratio against one worker (target: 4 workers ≥ 3.2×), the same for SQLite
with 1 and 2 processes on this machine, and the database transactions per message
that the senders made on PostgreSQL (claims, renewals, outcomes), the cost that a
shared database server pays per message (target ≤ 0.1).

The workers are started first and left idle, then the edition's rows are added: the
notice wakes them, and the time runs from there to the last row recorded, so that
start-up is not counted. PostgreSQL is DIGEST_BENCH_PG if set, else a throw-away
cluster started with scripts/pg-cluster.sh.

On a shared machine messages per second are noisy; the senders' own CPU (user and
system, read from /proc over the same span) per message is steadier. It is printed for
each size, and against a bare SMTP client in its own process pushing one ready message
of the same size through the same sink over as many connections, the floor that any
sender pays for MAIL, RCPT, DATA and the bytes themselves.

    .venv/bin/python bench/workers.py [--subscribers 3000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _editions import edition  # noqa: E402
from _figures import Figure  # noqa: E402

from digest.config import Settings  # noqa: E402
from digest.render import render_edition  # noqa: E402
from digest.store import Store  # noqa: E402

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
REPLY_DELAY = 0.005
CONNECTIONS = 4


class _SinkSession(asyncio.Protocol):
    """One SMTP dialogue of the sink: each reply goes REPLY_DELAY after its command."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.in_data = False
        # How far the buffer was searched for the end of a message without finding it.
        self.searched = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def _reply(self, line: bytes, close: bool = False) -> None:
        def send() -> None:
            if not self.transport.is_closing():
                self.transport.write(line)
                if close:
                    self.transport.close()

        asyncio.get_running_loop().call_later(REPLY_DELAY, send)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.in_data:
                # The message is looked at only for its end: the sink stands for a relay
                # elsewhere, and its CPU must not be what is measured.
                end = self.buffer.find(b"\r\n.\r\n", max(self.searched - 4, 0))
                if end == -1:
                    self.searched = len(self.buffer)
                    return
                del self.buffer[: end + 5]
                self.in_data, self.searched = False, 0
                self._reply(b"250 OK queued\r\n")
                continue
            newline = self.buffer.find(b"\n")
            if newline == -1:
                return
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: newline + 1]
            if verb in (b"EHLO", b"HELO"):
                self._reply(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self._reply(b"354 go on\r\n")
            elif verb == b"QUIT":
                self._reply(b"221 bye\r\n", close=True)
            else:
                self._reply(b"250 OK\r\n")


def run_sink() -> None:
    """Serve a minimal SMTP dialogue on 127.0.0.1, every reply 5 ms late; print the port.

    A protocol with timers rather than a coroutine per connection: the sink shares the
    machine with the senders, and what it spends is taken from them."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_SinkSession, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


@contextmanager
def sink() -> Iterator[int]:
    """Run the sink in a process of its own; yield its port."""
    proc = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def postgres() -> Iterator[str]:
    """Yield the URL of a server to make the bench's databases on."""
    given = os.environ.get("DIGEST_BENCH_PG", "").strip()
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-pg-")) / "cluster"
    script = ROOT / "scripts" / "pg-cluster.sh"
    url = subprocess.run(
        ["bash", str(script), "start", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], check=False, timeout=60)
        shutil.rmtree(folder.parent, ignore_errors=True)


def _admin(url: str) -> object:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(plain, autocommit=True)


def fresh_pg(url: str, name: str) -> str:
    """Create an empty database name on the server; return its URL."""
    from sqlalchemy.engine import make_url

    conn = _admin(url)
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def transactions(url: str) -> int:
    """Return the transactions committed or rolled back in url's database so far."""
    import psycopg

    from digest.store.db import server_url

    plain = server_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Own:
    """Transactions the bench's own steps cost: adding the rows, one read of the counts."""

    add: float
    poll: float


def own_transactions(url: str) -> Own:
    """Measure, on url's database before the send, what the bench's own steps cost:
    opening the store as send_with does, and one read of the counts. Each call of
    transactions() is a transaction too, and is left out."""
    start = transactions(url)
    with Store(url) as store:
        edition_id = store.editions.recent()[0].id
        opened = transactions(url)
        for _ in range(20):
            store.ledger.counts(edition_id)
    end = transactions(url)
    # Opening the store, less the reading of the counter between: plus the one write
    # transaction that adds the rows, the same number.
    return Own(add=opened - start, poll=(end - opened - 1) / 20)


def prepare(db: str | Path, subscribers: int) -> None:
    """Record one 20-item edition and the subscribers, without ledger rows yet."""
    settings = Settings(db=db)
    made = edition(20)
    rendered = render_edition(settings, made)
    with Store(db) as store:
        store.articles.save(
            (a for item in made.items for a in (item.article, *item.also_in)), [], NOW
        )
        store.editions.record(made, rendered.subject, None, rendered)
        store.subscribers.add_many((f"reader{n}@example.org" for n in range(subscribers)), NOW)


def _env(db: str | Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    env.update(
        {
            "DIGEST_DB": str(db),
            # A worker runs digest send's checks before it starts: settings that pass them.
            "DIGEST_BASE_URL": "https://news.digest-bench.net",
            "DIGEST_FROM": "Digest <digest@news.digest-bench.net>",
            "DIGEST_SECRET_KEY": "a-secret-only-for-the-bench-0123456789",
            "DIGEST_WORKER_POLL": "1s",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_CONNECTIONS": str(CONNECTIONS),
        }
    )
    return env


def run_floor(port: int, count: int) -> None:
    """Push count copies of one ready message through the sink over CONNECTIONS plain
    smtplib connections, as MAIL, RCPT, DATA; print the CPU milliseconds per message."""
    import smtplib
    import threading

    from digest.mail import MessageTemplate, list_id_header
    from digest.smtpdata import data_bytes
    from digest.tokens import make_token, preferences_url, unsubscribe_url

    settings = Settings(db=":memory:", secret_key="bench-secret")
    rendered = render_edition(settings, edition(20))
    template = MessageTemplate(
        rendered,
        edition_id=rendered.edition.id,
        sender=settings.sender,
        list_id=list_id_header(settings.title, settings.list_id, settings.sender),
        base_url=settings.base_url,
        now=NOW,
    )
    token = make_token(settings.secret_key, settings.list_id, 1)
    message = template.personalise(
        "reader1@example.org",
        "",
        unsubscribe_url(settings.base_url, token),
        preferences_url(settings.base_url, token),
    )
    # Made ready once: the floor pays only for the dialogue and the bytes.
    data = data_bytes(message)

    def push(n: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
        smtp.ehlo()
        for i in range(n):
            smtp.mail("digest@example.com")
            smtp.rcpt(f"reader{i}@example.org")
            smtp.docmd("data")
            smtp.send(data)
            smtp.getreply()
        smtp.quit()

    threads = [
        threading.Thread(target=push, args=(count // CONNECTIONS,)) for _ in range(CONNECTIONS)
    ]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = count // CONNECTIONS * CONNECTIONS
    print(1000 * (time.process_time() - cpu) / sent, flush=True)


def floor_cpu(port: int, count: int) -> float:
    """Run the bare client in a process of its own; return its CPU ms per message."""
    done = subprocess.run(
        [sys.executable, __file__, "--floor", str(port), str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip())


def cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time process pid has used so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sent:
    """One send by the workers: its rate, the workers' CPU per message, the bench's polls."""

    rate: float
    cpu_ms: float
    polls: int


def send_with(db: str | Path, port: int, processes: int, subscribers: int) -> Sent:
    """Send the edition with processes workers; return the rate, their CPU per message,
    and how many times the bench read the counts meanwhile."""
    command = [sys.executable, "-m", "digest", "send", "--worker"]
    # What a worker says on stderr, read only when it stops early (a file: a pipe nobody
    # reads could fill up and block it).
    with contextlib.ExitStack() as stack:
        errors = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in range(processes)]
        procs = [
            subprocess.Popen(
                command,
                env=_env(db, port),
                stdout=subprocess.PIPE,
                stderr=errors[n],
                text=True,
            )
            for n in range(processes)
        ]

        def stopped() -> None:
            for proc, err in zip(procs, errors, strict=True):
                if proc.poll() is not None:
                    err.seek(0)
                    raise RuntimeError(f"a worker exited with {proc.returncode}: {err.read()}")

        try:
            for proc in procs:
                assert proc.stdout is not None
                if not proc.stdout.readline():  # "Worker started": imported and about to wait
                    proc.wait(timeout=60)
                    stopped()
            time.sleep(1.5)  # its first, empty pass done: it waits for a notice
            edition_id = "2026-11-28"
            with Store(db) as store:
                edition_id = store.editions.recent()[0].id
                cpu = sum(cpu_seconds(proc.pid) for proc in procs)
                started = time.perf_counter()
                store.ledger.add(edition_id, NOW)
                deadline = time.monotonic() + 600
                polls = 1
                while store.ledger.counts(edition_id).get("sent", 0) < subscribers:
                    assert time.monotonic() < deadline, "the workers did not finish"
                    stopped()
                    time.sleep(0.1)
                    polls += 1
                rate = subscribers / (time.perf_counter() - started)
                cpu = sum(cpu_seconds(proc.pid) for proc in procs) - cpu
                return Sent(rate, 1000 * cpu / subscribers, polls)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.communicate(timeout=60)


def measure(quick: bool = False, subscribers: int = 3000) -> list[Figure]:
    """Run the senders at each size on PostgreSQL and SQLite; return the figures."""
    count = 120 if quick else subscribers
    figures: list[Figure] = []
    with sink() as port, postgres() as server, tempfile.TemporaryDirectory() as tmp:
        rates: dict[int, float] = {}
        cpu: dict[int, float] = {}
        per_message = 0.0
        # Quick: enough to show the bench works, fewer processes to start.
        sizes = (1, 2) if quick else (1, 2, 4)
        for n in sizes:
            url = fresh_pg(server, f"digest_bench_{n}")
            prepare(url, count)
            own = own_transactions(url)
            before = transactions(url)
            sent = send_with(url, port, n, count)
            rates[n], cpu[n], polls = sent.rate, sent.cpu_ms, sent.polls
            if n == 1:
                # Less what the bench itself ran: adding the rows, reading the counts.
                spent = transactions(url) - before - own.add - polls * own.poll
                per_message = max(spent, 0) / count
            figures.append(Figure(f"PostgreSQL, {n} worker(s) x {CONNECTIONS}", rates[n], " msg/s"))
        for n in sizes[1:]:
            target = 3.2 if n == 4 else None
            figures.append(
                Figure(f"ratio {n} workers / 1", rates[n] / rates[1], "×", target, "higher")
            )
        figures.append(Figure("database transactions per message", per_message, "", 0.1))
        floor = floor_cpu(port, count)
        figures.append(Figure("bare SMTP client: CPU per message", floor, " ms"))
        for n in sizes:
            figures.append(Figure(f"{n} worker(s): senders' CPU per message", cpu[n], " ms"))
        figures.append(Figure("1 worker's CPU per message / bare client's", cpu[1] / floor, "×"))
        lite: dict[int, float] = {}
        for n in (1, 2):
            path = Path(tmp) / f"bench{n}.db"
            prepare(path, count)
            lite[n] = send_with(path, port, n, count).rate
            figures.append(Figure(f"SQLite, {n} process(es) x {CONNECTIONS}", lite[n], " msg/s"))
        figures.append(Figure("ratio SQLite 2 processes / 1", lite[2] / lite[1], "×"))
    return figures


def main() -> None:
    """Print each figure of one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    if args.floor:
        run_floor(*args.floor)
        return
    for figure in measure(args.quick, args.subscribers):
        print(figure.line())


if __name__ == "__main__":
    main()
