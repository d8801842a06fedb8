"""A real HTTP server on 127.0.0.1 (port 0) serving feeds, with fault injection.

Each route answers with a body and headers, honours If-None-Match / If-Modified-Since
with a 304 when it has validators, and can be told to delay, redirect, stream forever
or gzip. Every request is logged with its headers so that tests can check what the
client sent.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
                        time.sleep(route.drip)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it was meant to

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
