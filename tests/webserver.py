"""A real waitress server on 127.0.0.1, port 0, for the web tests.

It is the server `digest serve` runs (digest.httpserver.make_server), with its limits and its
request deadline, so that the tests see what a deployment sees.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from waitress import wasyncore

from digest.httpserver import REQUEST_DEADLINE, THREADS, make_server


@contextmanager
def running(
    app: Any, *, threads: int = THREADS, request_deadline: float = REQUEST_DEADLINE
) -> Iterator[str]:
    """Serve app in a thread; yield its base URL; stop it afterwards.

    An App with a webhook gets the webhook body cap, as `digest serve` gives it.
    """
    webhooks = getattr(app, "webhooks", None)
    server = make_server(
        app,
        "127.0.0.1",
        0,
        threads=threads,
        request_deadline=request_deadline,
        webhook_body=webhooks.body_cap if webhooks is not None else 0,
    )
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Finish the requests in progress before closing the sockets they answer on.
        server.task_dispatcher.shutdown()
        # Closed from inside the server's own loop: closing them from here races with its
        # poll() on the same sockets. An empty map then ends the loop.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)


def request(
    url: str, method: str = "GET", body: bytes | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], str]:
    """Make one request on a new connection, following no redirect; return status,
    headers and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    try:
        conn.request(method, parts.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()
