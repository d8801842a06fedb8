"""A real waitress server on 127.0.0.1, port 0, for the web tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from digest.web import MAX_BODY


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve app in a thread; yield its base URL; stop it afterwards."""
    server = create_server(app, host="127.0.0.1", port=0, threads=2, max_request_body_size=MAX_BODY)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Finish the requests in progress before closing the sockets they answer on.
        server.task_dispatcher.shutdown()
        # Closed from inside the server's own loop: closing them from here races with its
        # select() on the same sockets. An empty map then ends the loop.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)
