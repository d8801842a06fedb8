"""Preview, archive and one-click unsubscribe over HTTP: a small WSGI application."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from digest import archive, pipeline, sources
from digest.config import Settings
from digest.models import RenderedEdition
from digest.render import (
    UNSUBSCRIBE_PLACEHOLDER,
    packaged_templates,
    render_page,
    template_path,
    without_greeting_placeholder,
)
from digest.store import Store
from digest.tokens import subscriber_from_token, well_formed

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
# Forms here are one field; anything bigger is not a form of ours.
MAX_BODY = 4096
WIDTHS = ((375, "Phone"), (800, "Desktop"))
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src http: https: data:;"
        " script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Cache-Control", "no-store"),
]


@dataclass(frozen=True)
class Response:
    """What a handler answers."""

    status: str
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _html(status: str, text: str) -> Response:
    return Response(status, text.encode("utf-8"))


class App:
    """The WSGI application behind `digest serve`."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self._preview_lock = threading.Lock()
        self._preview: tuple[str, RenderedEdition | None] | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        try:
            response = self.route(environ)
        except Exception:
            logger.exception("error answering %s", environ.get("PATH_INFO"))
            response = _html(
                "500 Internal Server Error",
                self._message("Something went wrong", "The error is in the server's log."),
            )
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *SECURITY_HEADERS,
            *response.headers,
        ]
        start_response(response.status, headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]

    def route(self, environ: Environ) -> Response:
        """Pick the handler for the request's path and method."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        if method not in ("GET", "HEAD", "POST"):
            return _html("405 Method Not Allowed", self._message("Not allowed", method))
        if path.startswith("/unsubscribe/"):
            return self.unsubscribe(environ, method, path.removeprefix("/unsubscribe/"))
        if method == "POST":
            return _html("405 Method Not Allowed", self._message("Not allowed", "POST"))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/health":
            return self.health()
        if path in ("/", "/archive"):
            return Response("302 Found", b"", headers=(("Location", "/archive/"),))
        if path == "/archive/":
            return self.archive_index()
        if path == "/archive/feed.xml":
            return Response(
                "200 OK",
                archive.feed_xml(self.settings).encode("utf-8"),
                "application/atom+xml; charset=utf-8",
            )
        if path.startswith("/archive/"):
            return self.archive_page(path.removeprefix("/archive/").strip("/"))
        if path == "/preview":
            return self.preview_page(query)
        if path == "/preview/email.html":
            return self.preview_email()
        if path == "/preview/text.txt":
            rendered = self.preview()[1]
            text = self._public(rendered.text) if rendered else ""
            return Response("200 OK", text.encode("utf-8"), "text/plain; charset=utf-8")
        if path == "/preview/version":
            return Response("200 OK", self.version().encode(), "text/plain; charset=utf-8")
        if path == "/static/reload.js":
            script = (packaged_templates() / "web" / "reload.js").read_bytes()
            return Response("200 OK", script, "text/javascript; charset=utf-8")
        return _html("404 Not Found", self._message("Not found", "There is no page here."))

    # Pages

    def _message(self, title: str, message: str, version: str = "") -> str:
        return render_page(
            self.settings,
            "empty.html.j2",
            {
                "language": self.settings.language,
                "page_title": title,
                "message": message,
                "version": version,
            },
        )

    def health(self) -> Response:
        """Answer a load balancer: the store opens and answers a query."""
        made = bool(self._latest_edition())
        body = json.dumps({"status": "ok", "editions": made}).encode()
        return Response("200 OK", body, "application/json")

    def archive_index(self) -> Response:
        """List every past edition, newest first."""
        return _html("200 OK", archive.index_html(self.settings))

    def archive_page(self, edition_id: str) -> Response:
        """Show one past edition."""
        html = archive.edition_html(self.settings, edition_id)
        if html is None:
            return _html("404 Not Found", self._message("Not found", "There is no such edition."))
        return _html("200 OK", html)

    # Preview

    def version(self) -> str:
        """Return a fingerprint of what the next edition is made from."""
        h = hashlib.sha256()
        files: list[Path] = []
        for folder in template_path(self.settings):
            files.extend(p for p in folder.rglob("*") if p.is_file())
        for spec in self.settings.sources:
            if "://" not in spec:
                files.extend(sources.expand(spec)[0])
        for path in sorted(set(files)):
            try:
                stat = path.stat()
            except OSError:
                continue
            h.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
        h.update(self._latest_edition().encode())
        return h.hexdigest()[:16]

    def _latest_edition(self) -> str:
        """Return the newest edition's id, or "" when none was made."""
        # Before the first run there is no store, and a page must not create one.
        if not self.settings.db.exists():
            return ""
        with Store(self.settings.db, readonly=True) as store:
            return ",".join(r.id for r in store.editions.recent(limit=1))

    def preview(self) -> tuple[str, RenderedEdition | None]:
        """Return the next edition as it would be sent now, rendered once per change."""
        version = self.version()
        with self._preview_lock:
            if self._preview is None or self._preview[0] != version:
                _, rendered = pipeline.next_edition(self.settings, self.clock())
                self._preview = (version, rendered)
            return self._preview

    def preview_page(self, query: dict[str, list[str]]) -> Response:
        """Show the next edition in a frame of the chosen width, with its text part."""
        version, rendered = self.preview()
        if rendered is None:
            return _html(
                "200 OK",
                self._message(
                    "Preview",
                    "Nothing new since the last edition: the next one would be empty.",
                    version,
                ),
            )
        try:
            width = int(query.get("width", ["800"])[0])
        except ValueError:
            width = 800
        if width not in {w for w, _ in WIDTHS}:
            width = 800
        return _html(
            "200 OK",
            render_page(
                self.settings,
                "preview.html.j2",
                {
                    "language": self.settings.language,
                    "subject": rendered.subject,
                    "text": self._public(rendered.text),
                    "width": width,
                    "widths": WIDTHS,
                    "version": version,
                },
            ),
        )

    def preview_email(self) -> Response:
        """Return the next edition's HTML as a reader would get it."""
        rendered = self.preview()[1]
        if rendered is None:
            return _html("404 Not Found", self._message("Preview", "Nothing new to show."))
        return _html("200 OK", self._public(rendered.html))

    def _public(self, text: str) -> str:
        """Put the general unsubscribe page and greeting where a reader's own would go."""
        text = without_greeting_placeholder(text)
        return text.replace(UNSUBSCRIBE_PLACEHOLDER, f"{self.settings.base_url}/unsubscribe/")

    # Unsubscribe

    def unsubscribe(self, environ: Environ, method: str, token: str) -> Response:
        """Confirm on GET; unsubscribe on POST (RFC 8058 one-click or the button).

        GET never changes anything, because mail scanners and link previews fetch every
        URL in a message. POST needs no cookie and no login, as RFC 8058 asks, and
        answers 200 itself rather than redirecting. Nothing on these pages names the
        subscriber: the token is the only key, and a bad one changes nothing.
        """
        if not token and method != "POST":
            # Where the preview and the archive point, in place of a reader's own link.
            return self._unsubscribe_page(
                "200 OK", "error", "Each subscriber's email carries their own unsubscribe link."
            )
        # Malformed (400) is told apart from well-formed but not ours (404).
        if not well_formed(token):
            return self._unsubscribe_page("400 Bad Request", "error", "This link is malformed.")
        subscriber_id = subscriber_from_token(
            self.settings.secret_key, self.settings.list_id, token
        )
        if subscriber_id is None:
            return self._unsubscribe_page("404 Not Found", "error", "This link is not valid.")
        # A confirmation page only reads; only the POST that unsubscribes writes.
        if method != "POST" and not self.settings.db.exists():
            return self._unsubscribe_page("404 Not Found", "error", "This link is not valid.")
        with Store(self.settings.db, readonly=method != "POST") as store:
            subscriber = store.subscribers.by_id(subscriber_id)
            if subscriber is None:
                return self._unsubscribe_page("404 Not Found", "error", "This link is not valid.")
            if method != "POST":
                state = "done" if subscriber.status == "unsubscribed" else "confirm"
                return self._unsubscribe_page("200 OK", state)
            body = read_body(environ)
            if body is None:
                return self._unsubscribe_page("413 Content Too Large", "error", "Too much data.")
            form = parse_qs(body.decode("utf-8", "replace"))
            if form.get("List-Unsubscribe") == ["One-Click"]:
                how = "one-click"
            elif form.get("confirm") == ["unsubscribe"]:
                how = "the confirmation page"
            else:
                return self._unsubscribe_page("400 Bad Request", "error", "Unknown request.")
            if store.subscribers.set_status(subscriber_id, "unsubscribed", self.clock()):
                logger.warning("subscriber %d unsubscribed through %s", subscriber_id, how)
        return self._unsubscribe_page("200 OK", "done")

    def _unsubscribe_page(self, status: str, state: str, message: str = "") -> Response:
        page = render_page(
            self.settings,
            "unsubscribe.html.j2",
            {
                "language": self.settings.language,
                "page_title": "Unsubscribe",
                "list_title": self.settings.title,
                "state": state,
                "message": message,
            },
        )
        return _html(status, page)


def read_body(environ: Environ) -> bytes | None:
    """Return the request body, or None when it is larger than MAX_BODY."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > MAX_BODY:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length else b""


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the application with waitress until interrupted."""
    from waitress import serve as waitress_serve

    logger.warning("serving on http://%s:%d (links use %s)", host, port, settings.base_url)
    waitress_serve(
        App(settings),
        host=host,
        port=port,
        threads=4,
        max_request_body_size=MAX_BODY,
        ident="digest",
    )
