"""Preview, archive and one-click unsubscribe over HTTP: a small WSGI application."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from digest import archive, pages, pipeline, sources
from digest.bounces.webhooks import ReportSink, Webhooks, store_sink
from digest.check import is_loopback
from digest.config import Settings
from digest.errors import ConfigError
from digest.httpserver import WEBHOOK_PREFIX, Response, make_server, raise_fd_limit, read_body

# N_ marks a page message for the catalogs; the page's template translates it. Constant
# strings only: the template's _() trusts its message as markup.
from digest.i18n import N_
from digest.models import RenderedEdition
from digest.render import (
    packaged_templates,
    public_links,
    template_path,
    without_greeting_placeholder,
)
from digest.store import Store, store_exists
from digest.tokens import subscriber_from_token, well_formed
from digest.web_signup import SignupPages
from digest.webparts import FeedWatch, parse_form

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
# The preview reads every source: one build at a time; one more request may wait for
# it briefly, and any others are told to come back.
PREVIEW_WAIT = 3.0
PREVIEW_RETRY_AFTER = 5
WIDTHS = ((375, N_("Phone")), (800, N_("Desktop")))
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
SIGNUP_PATHS = ("/subscribe", "/static/signup.js")


def _html(status: str, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, text.encode("utf-8"), headers=headers)


class PreviewBusy(Exception):
    """Another preview is being built and the wait for it is over."""


def preview_enabled(settings: Settings) -> bool:
    """Return whether /preview is served: DIGEST_PREVIEW, or for auto a loopback host."""
    if settings.preview != "auto":
        return settings.preview == "on"
    return is_loopback(settings.host)


class App:
    """The WSGI application behind `digest serve`."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
        *,
        report_sink: ReportSink | None = None,
        sns_host: re.Pattern[str] | None = None,
    ) -> None:
        """report_sink takes the webhooks' delivery reports (default: the recorder);
        sns_host replaces the sns.<region>.amazonaws.com rule, for tests only."""
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.webhooks = Webhooks(
            settings,
            report_sink or store_sink(settings, self.clock),
            self.clock,
            sns_host=sns_host,
        )
        self.preview_on = preview_enabled(settings)
        self.signup = SignupPages(lambda: self.settings, lambda: self.clock())
        # Held while a preview is built; the waiter slot bounds who queues behind it.
        self._preview_lock = threading.Lock()
        self._preview_waiter = threading.Lock()
        self._preview: tuple[str, RenderedEdition | None] | None = None
        # The URL feeds' state, for the fingerprint: local files have their times.
        self.feeds = FeedWatch(
            [spec for spec in settings.sources if sources.is_url(spec)],
            pipeline.fetch_options(settings),
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        try:
            response = self.route(environ)
        except PreviewBusy:
            response = _html(
                "503 Service Unavailable",
                self._message(
                    N_("Preview busy"),
                    N_(
                        "Another preview is being built from the sources."
                        " Try again in a few seconds."
                    ),
                ),
                (("Retry-After", str(PREVIEW_RETRY_AFTER)),),
            )
        except Exception:
            logger.exception("error answering %s", environ.get("PATH_INFO"))
            response = _html(
                "500 Internal Server Error",
                self._message(N_("Something went wrong"), N_("The error is in the server's log.")),
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
        if path in SIGNUP_PATHS or path.startswith(("/confirm/", "/preferences/")):
            return self.signup.route(environ, method, path)
        if method not in ("GET", "HEAD", "POST"):
            return _html("405 Method Not Allowed", self._not_allowed(method))
        if path.startswith(WEBHOOK_PREFIX):
            return self.webhooks.answer(path.removeprefix(WEBHOOK_PREFIX), method, environ)
        if path.startswith("/unsubscribe/"):
            return self.unsubscribe(environ, method, path.removeprefix("/unsubscribe/"))
        if method == "POST":
            return _html("405 Method Not Allowed", self._not_allowed("POST"))
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
            edition_id = path.removeprefix("/archive/")
            if archive.EDITION_ID.fullmatch(edition_id):
                # The page's links are relative to its folder: /archive/<id>/.
                return Response("301 Moved Permanently", b"", headers=(("Location", f"{path}/"),))
            return self.archive_page(edition_id.strip("/"))
        if (path == "/preview" or path.startswith("/preview/")) and not self.preview_on:
            return self.preview_off()
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
        return _html("404 Not Found", self._message(N_("Not found"), N_("There is no page here.")))

    # Pages

    def _message(self, title: str, message: str, version: str = "", detail: str = "") -> str:
        """Render a page of one message: title and message are constants marked with N_()
        (the page translates them), detail anything else, shown as it is."""
        return pages.render(
            self.settings,
            "empty.html.j2",
            {"page_title": title, "message": message, "version": version, "detail": detail},
        )

    def _not_allowed(self, method: str) -> str:
        return self._message(
            N_("Not allowed"),
            N_("This page does not take requests made with the method"),
            detail=method,
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
            return _html(
                "404 Not Found", self._message(N_("Not found"), N_("There is no such edition."))
            )
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
        h.update(self.feeds.fingerprint().encode())
        return h.hexdigest()[:16]

    def _latest_edition(self) -> str:
        """Return the newest edition's id, or "" when none was made."""
        # Before the first run there is no store, and a page must not create one.
        if not store_exists(self.settings.db):
            return ""
        with Store(self.settings.db, readonly=True) as store:
            return ",".join(r.id for r in store.editions.recent(limit=1))

    def preview_off(self) -> Response:
        """Answer 404 for the preview on a public server, saying how to turn it on."""
        return _html(
            "404 Not Found",
            self._message(
                N_("Preview off"),
                N_(
                    "The live preview is off on this server. To turn it on, set"
                    " DIGEST_PREVIEW=on, or leave DIGEST_PREVIEW=auto and serve on a loopback"
                    " address such as DIGEST_HOST=127.0.0.1."
                ),
            ),
        )

    def preview(self) -> tuple[str, RenderedEdition | None]:
        """Return the next edition as it would be sent now, rendered once per change.

        A build reads every source and can take as long as the slowest feed, so only one
        runs at a time and only one more request waits for it, for at most PREVIEW_WAIT
        seconds; anything else raises PreviewBusy (a 503) rather than taking a thread
        that unsubscribe and /health need.
        """
        version = self.version()
        cached = self._preview
        if cached is not None and cached[0] == version:
            return cached
        if not self._preview_lock.acquire(blocking=False):
            if not self._preview_waiter.acquire(blocking=False):
                raise PreviewBusy
            try:
                if not self._preview_lock.acquire(timeout=PREVIEW_WAIT):
                    raise PreviewBusy
            finally:
                self._preview_waiter.release()
        try:
            # The build waited for may already be the one wanted.
            if self._preview is None or self._preview[0] != version:
                _, rendered = pipeline.next_edition(self.settings, self.clock())
                self._preview = (version, rendered)
            return self._preview
        finally:
            self._preview_lock.release()

    def preview_page(self, query: dict[str, list[str]]) -> Response:
        """Show the next edition in a frame of the chosen width, with its text part."""
        version, rendered = self.preview()
        if rendered is None:
            return _html(
                "200 OK",
                self._message(
                    N_("Preview"),
                    N_("Nothing new since the last edition: the next one would be empty."),
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
            pages.render(
                self.settings,
                "preview.html.j2",
                {
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
            return _html("404 Not Found", self._message(N_("Preview"), N_("Nothing new to show.")))
        return _html("200 OK", self._public(rendered.html))

    def _public(self, text: str) -> str:
        """Put the general unsubscribe page and greeting where a reader's own would go."""
        text = without_greeting_placeholder(text, self.settings.language)
        return public_links(text, self.settings.base_url)

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
                "200 OK", "error", N_("Each subscriber's email carries their own unsubscribe link.")
            )
        # Malformed (400) is told apart from well-formed but not ours (404).
        if not well_formed(token):
            return self._unsubscribe_page("400 Bad Request", "error", N_("This link is malformed."))
        subscriber_id = subscriber_from_token(
            self.settings.secret_key, self.settings.list_id, token
        )
        if subscriber_id is None:
            return self._unsubscribe_page("404 Not Found", "error", N_("This link is not valid."))
        # A confirmation page only reads; only the POST that unsubscribes writes.
        if method != "POST" and not store_exists(self.settings.db):
            return self._unsubscribe_page("404 Not Found", "error", N_("This link is not valid."))
        with Store(self.settings.db, readonly=method != "POST") as store:
            subscriber = store.subscribers.by_id(subscriber_id)
            if subscriber is None:
                return self._unsubscribe_page(
                    "404 Not Found", "error", N_("This link is not valid.")
                )
            if method != "POST":
                state = "done" if subscriber.status == "unsubscribed" else "confirm"
                return self._unsubscribe_page("200 OK", state)
            body = read_body(environ)
            if body is None:
                return self._unsubscribe_page(
                    "413 Content Too Large", "error", N_("Too much data.")
                )
            form = parse_form(environ.get("CONTENT_TYPE", ""), body)
            if form.get("List-Unsubscribe") == ["One-Click"]:
                how = "one-click"
            elif form.get("confirm") == ["unsubscribe"]:
                how = "the confirmation page"
            else:
                return self._unsubscribe_page("400 Bad Request", "error", N_("Unknown request."))
            if store.subscribers.set_status(
                subscriber_id, "unsubscribed", self.clock(), ended_by="subscriber"
            ):
                logger.warning("subscriber %d unsubscribed through %s", subscriber_id, how)
        return self._unsubscribe_page("200 OK", "done")

    def _unsubscribe_page(self, status: str, state: str, message: str = "") -> Response:
        page = pages.render(
            self.settings, "unsubscribe.html.j2", {"state": state, "message": message}
        )
        return _html(status, page)


def listen(settings: Settings, host: str, port: int) -> tuple[App, Any]:
    """Bind host:port for the application; the server is not started yet (call .run()).

    A port out of range, an address in use or one this host does not have is a
    ConfigError naming it, before anything says it is serving.
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port}: must be 1 to 65535 (--port or DIGEST_PORT)")
    # The address actually listened on decides DIGEST_PREVIEW=auto, --host included.
    settings = replace(settings, host=host, port=port)
    raise_fd_limit()
    app = App(settings)
    try:
        server = make_server(app, host, port, webhook_body=app.webhooks.body_cap)
    except OSError as err:
        why = "already in use" if err.errno == errno.EADDRINUSE else err.strerror or str(err)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {why} (choose another --port or DIGEST_PORT,"
            " or stop what listens there)"
        ) from err
    except ValueError as err:  # waitress: a host it cannot resolve
        raise ConfigError(f"cannot listen on {host}:{port}: {err}") from err
    return app, server


def serve(
    settings: Settings, host: str, port: int, listening: Callable[[], None] | None = None
) -> None:
    """Serve the application with waitress until interrupted; call listening once bound."""
    app, server = listen(settings, host, port)
    settings = app.settings
    if listening is not None:
        listening()
    logger.warning(
        "serving on http://%s:%d (links use %s); preview %s",
        host,
        port,
        settings.base_url,
        "on" if app.preview_on else f"off (DIGEST_PREVIEW={settings.preview})",
    )
    server.run()
