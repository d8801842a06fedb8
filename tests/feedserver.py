"""A real HTTP server on 127.0.0.1 (port 0) serving feeds, with fault injection.

Each route answers with a body and headers, honours If-None-Match / If-Modified-Since
with a 304 when it has validators, and can be told to delay, redirect, stream forever
or gzip. Every request is logged with its headers so that tests can check what the
client sent.
"""

from __future__ import annotations

import contextlib
import gzip
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    """How one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0
    location: str | None = None
    gzip: bool = False
    # Send this many bytes of filler without a Content-Length (an endless-looking body).
    stream_bytes: int = 0
    # Send the body a few bytes at a time, this many seconds apart.
    drip: float = 0.0
    # Answer only once this is set (or after 60 s): a server that has not answered yet,
    # so a test can tell the client gave up by itself without timing it.
    hold: threading.Event | None = None
    # Set when a client hung up before the whole body had been sent, with how much had.
    cut_off: threading.Event = field(default_factory=threading.Event)
    sent: int = 0


@dataclass
class Request:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    status: int


class FeedServer:
    """Routes and request log shared with the handler threads."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.url = ""

    def add(self, path: str, body: bytes | str = b"", **options: object) -> str:
        """Serve body at path with the given Route options; return its full URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **options)  # type: ignore[arg-type]
        return self.url + path

    def hits(self, path: str) -> list[Request]:
        """Return the requests made for path, oldest first."""
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

        def handle(self) -> None:
            # A client may hang up on a kept-alive connection, leaving a body unread.
            with contextlib.suppress(ConnectionResetError):
                super().handle()

        def _log(self, status: int) -> None:
            with server.lock:
                server.requests.append(
                    Request(self.path, {k.lower(): v for k, v in self.headers.items()}, status)
                )

        def do_GET(self) -> None:
            route = server.routes.get(self.path)
            if route is None:
                self._log(404)
                self._send(404, b"<html><body>Not Found</body></html>", "text/html")
                return
            if route.delay:
                time.sleep(route.delay)
            if route.hold is not None:
                route.hold.wait(60)
            if route.location is not None:
                self._log(route.status)
                self.send_response(route.status)
                self.send_header("Location", route.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            if (route.etag and inm == route.etag) or (
                route.last_modified and not route.etag and ims == route.last_modified
            ):
                self._log(304)
                self.send_response(304)
                self._validators(route)
                self.end_headers()
                return
            self._log(route.status)
            if route.stream_bytes:
                self._stream(route)
                return
            body = gzip.compress(route.body) if route.gzip else route.body
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body)))
            if route.gzip:
                self.send_header("Content-Encoding", "gzip")
            self._validators(route)
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                if route.drip:
                    for i in range(0, len(body), 4):
                        self.wfile.write(body[i : i + 4])
                        self.wfile.flush()
                        route.sent = i + 4
                        time.sleep(route.drip)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                route.cut_off.set()  # the client gave up, as it was meant to

        def _validators(self, route: Route) -> None:
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)

        def _stream(self, route: Route) -> None:
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b"<!-- filler -->" * 4096
            sent = 0
            try:
                while sent < route.stream_bytes:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serving(tls: tuple[str, str] | None = None) -> Iterator[FeedServer]:
    """Run a FeedServer in a thread on 127.0.0.1, port 0; stop it afterwards.

    With tls (a certificate and key file) it speaks HTTPS.
    """
    state = FeedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class HeaderDrip:
    """A server on 127.0.0.1 that answers by sending its header one byte at a time.

    It sends at most `total` bytes, `interval` seconds apart, and counts them in `sent`;
    `hung_up` is set as soon as the client closes the connection (watched between bytes),
    so a test can tell that the client gave up early without timing anything itself.
    """

    def __init__(self, interval: float = 0.5, total: int = 120) -> None:
        self.interval = interval
        self.total = total
        self.sent = 0
        self.hung_up = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/feed.xml"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        with client:
            client.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            payload = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * self.total
            for byte in payload[: self.total]:
                if self._stop.is_set():
                    return
                try:
                    client.sendall(bytes([byte]))
                    self.sent += 1
                    # Wait out the interval, but notice at once when the client hangs up.
                    readable, _, _ = select.select([client], [], [], self.interval)
                    if readable and not client.recv(1):
                        self.hung_up.set()
                        return
                except OSError:
                    self.hung_up.set()
                    return

    def __enter__(self) -> HeaderDrip:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


class FakeDNS:
    """A stand-in for socket.getaddrinfo: made-up names, slow names and a log of look-ups.

    answers maps a name to the address each successive look-up returns (the last one
    repeats), which also lets a test play a rebinding server; a name in slow blocks until
    release() is called. Every other name, and every IP literal, goes to the real resolver.
    """

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.answers: dict[str, list[str]] = {}
        self.slow: set[str] = set()
        self.calls: list[str] = []
        self._released = threading.Event()

    def __call__(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name in self.slow or name in self.answers:
            self.calls.append(name)
        if name in self.slow:
            self._released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "the test let the look-up go")
        if name in self.answers:
            seen = self.calls.count(name)
            options = self.answers[name]
            address = options[min(seen, len(options)) - 1]
            return self.real(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return self.real(host, port, family, type, proto, flags)

    def looked_up(self, name: str) -> int:
        """Return how many times name was looked up."""
        return self.calls.count(name)

    def release(self) -> None:
        """Let every blocked look-up fail."""
        self._released.set()
