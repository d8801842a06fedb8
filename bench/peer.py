"""digest against rss2email on rss2email's own ground: RSS feeds over HTTP, mail over SMTP.

50 RSS feeds of 20 items each are served, each from a loopback address of its own
(127.0.0.1 to 127.0.0.50, as 50 feeds come from 50 sites; digest asks one host one
request at a time), every answer held back 100 ms as a distant server's would be.
`rss2email` 3.14 and `digest run` each read all of them once, from scratch, and deliver
to one reader through the same local SMTP sink (aiosmtpd): rss2email a message per item,
digest one edition. Each is run as a whole process, start-up
included; wall time is measured around it and CPU time (user + system) with
resource.getrusage of the finished children. The figures are digest's over rss2email's
(targets: wall ≤ 0.5, CPU ≤ 1.2).

rss2email is no dependency of digest: the bench installs it from the package registry into
a virtual environment of its own under the cache folder ($XDG_CACHE_HOME or ~/.cache,
digest-bench/), once. `quick` serves 10 feeds and skips rss2email when that environment
is not there yet, comparing digest's wall time with the feeds' delays added up instead
(the least a reader fetching one feed after another waits), and says so in the name.

    .venv/bin/python bench/peer.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure

RSS2EMAIL = "rss2email==3.14"
FEEDS, QUICK_FEEDS = 50, 10
ITEMS = 20
DELAY = 0.1  # seconds each feed's answer is held back
READER = "reader@example.org"
WORDS = [
    "harbour",
    "council",
    "market",
    "bridge",
    "library",
    "ferry",
    "festival",
    "weather",
    "school",
    "road",
    "budget",
    "museum",
    "garden",
    "station",
    "river",
    "concert",
    "hospital",
    "election",
    "football",
    "theatre",
    "mayor",
    "plan",
    "repair",
    "pier",
    "fleet",
    "spring",
    "meeting",
    "month",
    "tram",
    "tunnel",
    "park",
    "farm",
    "bakery",
    "storm",
    "flood",
    "court",
    "teacher",
    "nurse",
    "bus",
    "cyclist",
    "harvest",
    "orchestra",
    "painter",
    "novel",
    "stadium",
    "vote",
    "tax",
]


@dataclass(frozen=True)
class Run:
    """One process's run: its wall and CPU seconds, and what it printed."""

    wall: float
    cpu: float
    output: str


def feed_xml(n: int, items: int, now: datetime) -> bytes:
    """Return RSS 2.0 feed n: items distinct entries of a few paragraphs each."""
    rng = random.Random(n)
    entries = []
    for i in range(items):
        paragraphs = []
        for _ in range(3):
            sentences = []
            for _ in range(4):
                words = rng.choices(WORDS, k=rng.randint(9, 16))
                sentences.append(" ".join(words).capitalize() + ".")
            paragraphs.append(f"<p>{' '.join(sentences)}</p>")
        title = " ".join(rng.choices(WORDS, k=6)).capitalize()
        published = format_datetime(now - timedelta(minutes=17 * i + n), usegmt=True)
        entries.append(
            f"<item><title>{title}</title>"
            f"<link>https://feed{n}.example.org/{i}</link>"
            f"<guid>https://feed{n}.example.org/{i}</guid>"
            f"<pubDate>{published}</pubDate>"
            f"<description><![CDATA[{''.join(paragraphs)}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>https://feed{n}.example.org/</link>"
        f"<description>Feed {n}</description>{''.join(entries)}</channel></rss>"
    ).encode()


@contextmanager
def feed_server(feeds: int, now: datetime) -> Iterator[list[str]]:
    """Serve each feed from a loopback address of its own, each answer DELAY late; yield
    their URLs."""
    bodies = {f"/feed{n}.xml": feed_xml(n, ITEMS, now) for n in range(feeds)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(DELAY)
            body = bodies.get(self.path)
            status = "200 OK" if body is not None else "404 Not Found"
            body = body or b""
            # Header and body in one write, as a production server sends them.
            self.wfile.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    servers = [ThreadingHTTPServer((f"127.0.0.{n + 1}", 0), Handler) for n in range(feeds)]
    threads = []
    for httpd in servers:
        httpd.daemon_threads = True
        threads.append(threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True))
        threads[-1].start()
    try:
        yield [
            f"http://127.0.0.{n + 1}:{httpd.server_address[1]}/feed{n}.xml"
            for n, httpd in enumerate(servers)
        ]
    finally:
        for httpd, thread in zip(servers, threads, strict=True):
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)


class Sink:
    """Counts the messages delivered to it, per recipient."""

    def __init__(self) -> None:
        self.messages = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages += len(envelope.rcpt_tos)
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    """Run an aiosmtpd server on 127.0.0.1, a free port, that accepts and counts mail."""
    from aiosmtpd.smtp import SMTP

    sink = Sink()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    future = asyncio.run_coroutine_threadsafe(
        loop.create_server(lambda: SMTP(sink, hostname="sink", loop=loop), "127.0.0.1", 0),
        loop,
    )
    server = future.result(timeout=10)
    try:
        yield sink, server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run command to its end; return its wall time and its CPU time as a whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, done.stdout + done.stderr)


def rss2email_home() -> Path:
    """Return the folder of the bench's own rss2email environment."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "digest-bench" / RSS2EMAIL.replace("==", "-")


def rss2email(install: bool) -> Path | None:
    """Return the r2e command of the bench's environment, installing it first if asked."""
    home = rss2email_home()
    r2e = home / "bin" / "r2e"
    if r2e.exists():
        return r2e
    if not install:
        return None
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
    pip = [str(home / "bin" / "pip"), "install", "--quiet", RSS2EMAIL]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not r2e.exists():
        raise RuntimeError(f"could not install {RSS2EMAIL} into {home}: {done.stderr[-2000:]}")
    return r2e


def plain_env() -> dict[str, str]:
    """Return the environment without any DIGEST_/SMTP_ setting of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}


def run_rss2email(r2e: Path, work: Path, urls: list[str], smtp_port: int) -> Run:
    """Send every item of every feed with rss2email, from a fresh configuration."""
    folder = work / "rss2email"
    folder.mkdir()
    feeds = "".join(f"\n[feed.f{n}]\nurl = {url}\n" for n, url in enumerate(urls))
    config = folder / "rss2email.cfg"
    config.write_text(
        "[DEFAULT]\n"
        f"to = {READER}\n"
        "from = bench@example.org\n"
        "email-protocol = smtp\n"
        "smtp-server = 127.0.0.1\n"
        f"smtp-port = {smtp_port}\n"
        "smtp-auth = False\n"
        "smtp-ssl = False\n" + feeds
    )
    command = [str(r2e), "-c", str(config), "-d", str(folder / "rss2email.json"), "run"]
    return timed(command, folder, plain_env())


def run_digest(work: Path, urls: list[str], smtp_port: int) -> Run:
    """Make and send one edition of every feed with `digest run`, from an empty store."""
    folder = work / "digest"
    folder.mkdir()
    env_file = folder / "digest.env"
    env_file.write_text(
        f"DIGEST_SOURCES={','.join(urls)}\n"
        f"DIGEST_DB={folder / 'digest.db'}\n"
        f"DIGEST_OUTBOX={folder / 'outbox'}\n"
        "DIGEST_DELIVERY=smtp\n"
        # What the preflight before a real send asks for: an https base URL, a sender on
        # a real-looking domain, a secret that looks random.
        "DIGEST_BASE_URL=https://news.digest-bench.net\n"
        "DIGEST_FROM=Digest <digest@news.digest-bench.net>\n"
        "DIGEST_SECRET_KEY=Hq8vT2nWx5LkZr9Pm3YcB7dFs4JgA6uE\n"
        "SMTP_HOST=127.0.0.1\n"
        f"SMTP_PORT={smtp_port}\n"
        "SMTP_SECURITY=none\n"
    )
    # The store and its one reader are set up beforehand, in this process: not compared.
    from digest.config import load_settings
    from digest.store import Store
    from digest.subscribers import add_subscriber

    with Store(load_settings(env_file, plain_env()).db) as store:
        add_subscriber(store, READER, datetime.now(UTC))
    command = [sys.executable, "-m", "digest", "--env-file", str(env_file), "run"]
    return timed(command, folder, plain_env())


def measure(quick: bool = False) -> list[Figure]:
    """Run rss2email and digest over the same feeds once; return the figures."""
    feeds = QUICK_FEEDS if quick else FEEDS
    r2e = rss2email(install=not quick)
    now = datetime.now(UTC).replace(microsecond=0)
    scene = f"{feeds} feeds at {DELAY * 1000:g} ms"
    with (
        tempfile.TemporaryDirectory(prefix="digest-peer-") as tmp,
        feed_server(feeds, now) as urls,
        smtp_sink() as (sink, port),
    ):
        work = Path(tmp)
        mine = run_digest(work, urls, port)
        if sink.messages != 1:
            raise RuntimeError(f"digest delivered {sink.messages} messages, not 1:\n{mine.output}")
        figures = [
            Figure(f"{scene}: digest wall", mine.wall, unit=" s"),
            Figure(f"{scene}: digest CPU", mine.cpu, unit=" s"),
        ]
        if r2e is None:
            serial = feeds * DELAY
            name = f"{scene}: digest wall against the serial wait (rss2email not installed)"
            return [*figures, Figure(name, mine.wall / serial, target=0.5)]
        theirs = run_rss2email(r2e, work, urls, port)
        sent = sink.messages - 1
        if sent != feeds * ITEMS:
            raise RuntimeError(f"rss2email delivered {sent} messages, not {feeds * ITEMS}")
    return [
        *figures,
        Figure(f"{scene}: rss2email wall", theirs.wall, unit=" s"),
        Figure(f"{scene}: rss2email CPU", theirs.cpu, unit=" s"),
        Figure(f"{scene}: wall, digest against rss2email", mine.wall / theirs.wall, target=0.5),
        Figure(f"{scene}: CPU, digest against rss2email", mine.cpu / theirs.cpu, target=1.2),
    ]


def main() -> None:
    """Print the figures of one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 feeds; rss2email if installed")
    args = parser.parse_args()
    for figure in measure(quick=args.quick):
        print(figure.line())


if __name__ == "__main__":
    main()
