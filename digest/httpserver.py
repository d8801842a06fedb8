"""The HTTP server `digest serve` runs: waitress, bounded against slow and hostile clients."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, create_server

logger = logging.getLogger(__name__)

# Forms here are one field; anything bigger is not a form of ours.
MAX_BODY = 4096
# Where email providers post delivery reports, and the larger cap their batches need
# (SendGrid posts up to a thousand events at once). Only paths under WEBHOOK_PREFIX get
# it, and only on a server that serves a webhook (see make_server).
WEBHOOK_PREFIX = "/webhooks/"
WEBHOOK_MAX_BODY = 1024 * 1024
# A request line and headers; nginx's default for large headers is 4 x 8 KiB.
MAX_HEADER = 32 * 1024

# Slow clients. waitress reads and parses requests in its main loop, without a thread;
# a worker thread is only taken once a request is complete. What a slow client can hold
# is therefore a connection, never a thread: allow many, and close those that dawdle.
THREADS = 8
# Open connections; each costs a file descriptor (see connection_limit()).
CONNECTION_LIMIT = 1000
# Descriptors kept for everything else: the store, templates, feeds, logs, temp files.
FD_RESERVE = 100
# Seconds from a request's first byte to its last before the connection is closed:
# waitress has no such deadline, and a client sending a header line a second would hold
# its connection for ever (each line counts as activity for channel_timeout).
REQUEST_DEADLINE = 10.0
# Seconds an idle keep-alive connection stays open, checked every CLEANUP_INTERVAL.
CHANNEL_TIMEOUT = 30
CLEANUP_INTERVAL = 5


@dataclass(frozen=True)
class Response:
    """What a handler answers: the pages, the sign-up forms and the webhooks alike."""

    status: str
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class DeadlineChannel(HTTPChannel):  # type: ignore[misc]
    """A waitress channel that closes a connection whose request is not in after a while.

    The clock starts when the connection opens, and for each later request at its first
    byte; it stops when the request is handed to a worker thread. Blank lines between
    requests do not stop it, so a client dripping line breaks is closed as well. An idle
    keep-alive connection (after a request, no byte of the next yet) is left to
    waitress's channel_timeout.
    """

    request_deadline: float = REQUEST_DEADLINE
    _started: float | None = None
    # Declared for the type checker; waitress sets them.
    will_close: bool
    requests: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A new connection owes its first request within the deadline too, as in nginx.
        self._started = time.monotonic()

    def received(self, data: bytes) -> bool:
        """Note when a request starts; then parse as waitress does (main loop)."""
        if data and self._started is None:
            self._started = time.monotonic()
        return bool(super().received(data))

    def service(self) -> None:
        """Stop the clock: the request is complete (worker thread)."""
        self._started = None
        super().service()

    def readable(self) -> bool:
        """Close the connection once its request is overdue.

        waitress asks every channel this on each pass of its main loop, at least once per
        asyncore_loop_timeout (1 s), which makes it a cheap place for the check.
        """
        started = self._started
        if (
            started is not None
            and not self.requests
            and not self.will_close
            and time.monotonic() - started > self.request_deadline
        ):
            self._started = None
            self.will_close = True
            _cut_off.add(self.request_deadline)
        return bool(super().readable())


class _CutOffLog:
    """Log closed slow connections at most once a minute (main loop only)."""

    def __init__(self) -> None:
        self.count = 0
        self.next = 0.0

    def add(self, deadline: float) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.next:
            logger.warning(
                "closed %d connection(s) that sent no complete request within %g s",
                self.count,
                deadline,
            )
            self.count = 0
            self.next = now + 60


_cut_off = _CutOffLog()


class _WebhookParser(HTTPRequestParser):  # type: ignore[misc]
    """A request parser that allows the webhook cap for paths under WEBHOOK_PREFIX.

    waitress checks the body size against the parser's own adjustments once the header
    is parsed (the declared Content-Length) and again as a chunked body arrives, so
    swapping them when the path is known applies the larger cap to those paths alone.
    """

    webhook_adj: Any = None
    path: str

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.webhook_adj is not None and self.path.startswith(WEBHOOK_PREFIX):
            self.adj = self.webhook_adj


def connection_limit(wanted: int = CONNECTION_LIMIT) -> int:
    """Return how many connections to allow: wanted, less if file descriptors are short."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(10, min(wanted, soft - FD_RESERVE))


def raise_fd_limit(wanted: int = CONNECTION_LIMIT + FD_RESERVE) -> None:
    """Raise this process's soft file descriptor limit towards wanted, within the hard one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            logger.info("cannot raise the open file limit from %d to %d", soft, target)


def make_server(
    app: Any,
    host: str,
    port: int,
    *,
    threads: int = THREADS,
    request_deadline: float = REQUEST_DEADLINE,
    webhook_body: int = 0,
) -> Any:
    """Build the waitress server `digest serve` runs (not started; call .run()).

    Settings, against slow or hostile clients:
    - connection_limit: 1000 (fewer when file descriptors are short). Parsing needs no
      thread, so open connections are cheap; waitress's 100 was filled by 100 sockets.
    - asyncore_use_poll: select() cannot watch descriptors above 1023.
    - request deadline (DeadlineChannel): a request must be complete 10 s after its
      first byte (the first request: after the connection opens), however slowly it
      keeps arriving.
    - channel_timeout 30 s, checked every 5 s: idle keep-alive connections close.
    - max_request_header_size 32 KiB and the 4 KiB body cap bound a connection's memory.
    - webhook_body (0: none): the body cap for paths under WEBHOOK_PREFIX, given only
      when a webhook is configured, so that a server without one keeps 4 KiB everywhere.
      waitress holds up to inbuf_overflow (512 KiB) of a body in memory, the rest in a
      temporary file.
    """
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        connection_limit=connection_limit(),
        channel_timeout=CHANNEL_TIMEOUT,
        cleanup_interval=CLEANUP_INTERVAL,
        max_request_header_size=MAX_HEADER,
        max_request_body_size=MAX_BODY,
        asyncore_use_poll=True,
        ident="digest",
    )
    channel = DeadlineChannel
    if request_deadline != DeadlineChannel.request_deadline:
        deadline = request_deadline

        class Channel(DeadlineChannel):
            request_deadline = deadline

        channel = Channel
    if webhook_body > 0:
        larger = copy.copy(server.adj)
        # waitress refuses a body of max_request_body_size bytes or more: one more makes
        # webhook_body itself the largest accepted, as read_body counts it.
        larger.max_request_body_size = webhook_body + 1

        class Parser(_WebhookParser):
            webhook_adj = larger

        class WebhookChannel(channel):  # type: ignore[valid-type,misc]
            parser_class = Parser

        channel = WebhookChannel
    # One listening server, or several in one map when the host has several addresses.
    listeners = (
        [server]
        if isinstance(server, BaseWSGIServer)
        else [d for d in server.map.values() if isinstance(d, BaseWSGIServer)]
    )
    for listener in listeners:
        listener.channel_class = channel
    return server


def read_body(environ: Mapping[str, Any], limit: int = MAX_BODY) -> bytes | None:
    """Return the request body, or None when it is larger than limit (or unreadable)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > limit or length < 0:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length else b""
