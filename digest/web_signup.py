"""The sign-up pages: /subscribe (page, embedded form, JSON), /confirm/<token>,
/preferences/<token>.

Forms of the site's own pages carry a CSRF token bound to a cookie (double submit): a
page elsewhere can neither read the token nor set the cookie. The embedded form and the
JSON sign-up come from other sites: they are taken only from the origins in
DIGEST_SIGNUP_ORIGINS (the Origin header, which browsers send with every cross-site
POST), and CORS is answered for those alone. A GET never writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from digest import pages, signup
from digest.config import Settings
from digest.httpserver import Response, read_body
from digest.i18n import N_
from digest.models import Subscriber
from digest.notices import NoticeRunner
from digest.render import packaged_templates
from digest.signup import SignupForm, SignupLimited, Visitor
from digest.store import Store, store_exists
from digest.subscribers import SubscriberError
from digest.tokens import make_token, preferences_url, well_formed
from digest.webparts import parse_form

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
COOKIE = "digest_csrf"
# A page's form stays usable this long.
CSRF_LIFETIME = timedelta(days=1)
THANKS = (
    "Thank you. Check your inbox: if this address can receive it, a confirmation link is"
    " on its way."
)


def _json(status: str, data: dict[str, str], headers: tuple[tuple[str, str], ...]) -> Response:
    return Response(status, json.dumps(data).encode(), "application/json", headers)


def origin_of(url: str) -> str:
    """Return the origin (scheme://host[:port]) of a URL, as browsers send it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SignupPages:
    """The handlers; App.route sends /subscribe, /confirm/ and /preferences/ here."""

    def __init__(self, settings: Callable[[], Settings], clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self.clock = clock
        self.notices = NoticeRunner(settings, clock)

    @property
    def settings(self) -> Settings:
        """The application's settings (a test may point its base URL at the real port)."""
        return self._settings()

    def route(self, environ: Environ, method: str, path: str) -> Response:
        """Answer one request under the sign-up paths."""
        if path == "/static/signup.js":
            script = (packaged_templates() / "web" / "signup.js").read_bytes()
            return Response("200 OK", script, "text/javascript; charset=utf-8")
        if method not in ("GET", "HEAD", "POST", "OPTIONS"):
            return self._not_allowed(method)
        if not self.settings.secret_key:
            return self._message(
                "503 Service Unavailable",
                N_("Sign-up is not set up"),
                N_("This server has no DIGEST_SECRET_KEY, which signs every link it sends."),
            )
        if path == "/subscribe":
            if method == "OPTIONS":
                return self.preflight(environ)
            if method == "POST":
                return self.subscribe_post(environ)
            return self.subscribe_page(environ)
        if method == "OPTIONS":
            return self._not_allowed(method)
        if path.startswith("/confirm/"):
            return self.confirm(environ, method, path.removeprefix("/confirm/"))
        return self.preferences(environ, method, path.removeprefix("/preferences/"))

    # CSRF: a cookie and a token signed over it

    def _cookie(self, environ: Environ) -> str:
        try:
            jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return ""
        found = jar.get(COOKIE)
        value = found.value if found else ""
        return value if 16 <= len(value) <= 64 and value.isalnum() else ""

    def _session(self, environ: Environ) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Return the visitor's CSRF cookie and the header that sets it when it is new."""
        cookie = self._cookie(environ)
        if cookie:
            return cookie, ()
        cookie = secrets.token_hex(16)
        secure = "; Secure" if self.settings.base_url.startswith("https:") else ""
        header = f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict{secure}"
        return cookie, (("Set-Cookie", header),)

    def _csrf_mac(self, cookie: str, issued: int, where: str) -> str:
        message = f"csrf\0{cookie}\0{issued}\0{where}".encode()
        key = self.settings.secret_key.encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]

    def _csrf_token(self, cookie: str, where: str) -> str:
        issued = int(self.clock().timestamp())
        return f"{issued}.{self._csrf_mac(cookie, issued, where)}"

    def _csrf_age(self, environ: Environ, form: dict[str, list[str]], where: str) -> float | None:
        """Return the age in seconds of the form's CSRF token, or None when it is not good."""
        cookie = self._cookie(environ)
        issued_text, _, mac = (form.get("csrf") or [""])[0].partition(".")
        if not cookie or not issued_text.isdigit() or len(issued_text) > 12:
            return None
        issued = int(issued_text)
        if not hmac.compare_digest(mac, self._csrf_mac(cookie, issued, where)):
            return None
        age = self.clock().timestamp() - issued
        return age if -60 <= age <= CSRF_LIFETIME.total_seconds() else None

    # Sign-up

    def _origin(self, environ: Environ) -> str:
        """Return the request's Origin; "null" (what a page with Referrer-Policy
        no-referrer sends, ours included) counts as none, and so needs the CSRF token."""
        origin = str(environ.get("HTTP_ORIGIN", "")).strip().lower()
        return "" if origin == "null" else origin

    def _own(self, environ: Environ, origin: str) -> bool:
        host = str(environ.get("HTTP_HOST", "")).lower()
        return origin == origin_of(self.settings.base_url) or (
            bool(host) and urlsplit(origin).netloc == host
        )

    def _allowed(self, origin: str) -> bool:
        return origin in self.settings.signup_origins

    def _cors(self, origin: str) -> tuple[tuple[str, str], ...]:
        if not origin or not self._allowed(origin):
            return (("Vary", "Origin"),)
        return (("Access-Control-Allow-Origin", origin), ("Vary", "Origin"))

    def preflight(self, environ: Environ) -> Response:
        """Answer a CORS preflight for the JSON sign-up: yes for the allowed origins only."""
        origin = self._origin(environ)
        if not self._allowed(origin):
            return Response("403 Forbidden", b"", "text/plain", (("Vary", "Origin"),))
        return Response(
            "204 No Content",
            b"",
            "text/plain",
            (
                *self._cors(origin),
                ("Access-Control-Allow-Methods", "POST"),
                ("Access-Control-Allow-Headers", "Content-Type"),
                ("Access-Control-Max-Age", "600"),
            ),
        )

    def subscribe_page(
        self,
        environ: Environ,
        status: str = "200 OK",
        state: str = "form",
        error: str = "",
        form: SignupForm | None = None,
        problem: str = "",
    ) -> Response:
        """Show the sign-up form (or, after a POST, the answer every address gets).

        problem is a constant text marked with N_(); error one about what was typed."""
        cookie, headers = self._session(environ)
        page = pages.render(
            self.settings,
            "subscribe.html.j2",
            {
                "state": state,
                "error": error,
                "problem": problem,
                "form": form or SignupForm(""),
                "topics": signup.topic_choices(self.settings),
                "csrf": self._csrf_token(cookie, "/subscribe"),
            },
        )
        return Response(status, page.encode(), headers=headers if state == "form" else ())

    def subscribe_post(self, environ: Environ) -> Response:
        """Take a sign-up from our page, an allowed site's form, or a script's JSON."""
        origin = self._origin(environ)
        own = not origin or self._own(environ, origin)
        if origin and not own and not self._allowed(origin):
            logger.info("sign-up refused from the origin %s", origin[:100])
            return _json("403 Forbidden", {"error": "this origin may not sign up"}, ())
        body = read_body(environ)
        content_type = str(environ.get("CONTENT_TYPE", ""))
        is_json = content_type.split(";")[0].strip().lower() == "application/json"
        cors = self._cors(origin)
        if body is None:
            return _json("413 Content Too Large", {"error": "too much data"}, cors)
        if is_json:
            return self._subscribe_json(environ, body, cors)
        fields = parse_form(content_type, body)
        form = SignupForm(
            email=_field(fields, "email"),
            name=_field(fields, "name"),
            topics=tuple(t for t in fields.get("topics", []) if t),
            timezone=_field(fields, "timezone"),
        )
        if own:
            age = self._csrf_age(environ, fields, "/subscribe")
            if age is None:
                return self.subscribe_page(
                    environ,
                    "403 Forbidden",
                    problem=N_("This form has expired. Please send it again."),
                    form=form,
                )
            if age < self.settings.signup_min_seconds:
                return self._thanks(environ, "filled in too fast")
        if _field(fields, "website"):
            return self._thanks(environ, "the hidden field was filled in")
        try:
            self._sign_up(environ, form)
        except SubscriberError as err:
            return self.subscribe_page(environ, "400 Bad Request", error=str(err), form=form)
        except SignupLimited:
            return self._message(
                "429 Too Many Requests",
                N_("Too many sign-ups"),
                N_("Too many sign-ups came from your network in the last hour. Try again later."),
            )
        return self._thanks(environ, "")

    def _thanks(self, environ: Environ, ignored: str) -> Response:
        if ignored:
            logger.info("sign-up ignored: %s", ignored)
        return self.subscribe_page(environ, state="sent")

    def _subscribe_json(
        self, environ: Environ, body: bytes, cors: tuple[tuple[str, str], ...]
    ) -> Response:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            return _json("400 Bad Request", {"error": "send a JSON object with an email"}, cors)
        topics = data.get("topics", [])
        if isinstance(topics, str):
            topics = [t.strip() for t in topics.split(",")]
        texts = [data.get(k, "") for k in ("name", "timezone")]
        if not isinstance(topics, list) or not all(isinstance(v, str) for v in (*topics, *texts)):
            return _json("400 Bad Request", {"error": "name, topics and timezone are text"}, cors)
        form = SignupForm(data["email"], texts[0], tuple(t for t in topics if t), texts[1])
        try:
            self._sign_up(environ, form)
        except SubscriberError as err:
            return _json("400 Bad Request", {"error": str(err)}, cors)
        except SignupLimited:
            return _json("429 Too Many Requests", {"error": "too many sign-ups"}, cors)
        return _json("202 Accepted", {"status": "accepted", "message": THANKS}, cors)

    def _sign_up(self, environ: Environ, form: SignupForm) -> None:
        with Store(self.settings.db) as store:
            signup.sign_up(self.settings, store, form, _visitor(environ), self.clock())
        self.notices.wake()

    # Confirmation

    def confirm(self, environ: Environ, method: str, token: str) -> Response:
        """GET shows a confirm button (scanners follow links); POST confirms."""
        settings = self.settings
        if method != "POST" and not store_exists(settings.db):
            return self._confirm_page(environ, "404 Not Found", "bad")
        with Store(settings.db, readonly=method != "POST") as store:
            if method != "POST":
                state, _ = signup.confirmation(settings, store, token, self.clock())
                return self._confirm_page(environ, _STATUS[state], state)
            form = parse_form(environ.get("CONTENT_TYPE", ""), read_body(environ) or b"")
            if self._csrf_age(environ, form, "/confirm/") is None:
                return self._confirm_page(environ, "403 Forbidden", "csrf")
            state, found = signup.confirm(settings, store, token, _visitor(environ), self.clock())
        if settings.welcome and state == "done":
            self.notices.wake()
        return self._confirm_page(environ, _STATUS[state], state, found)

    def _confirm_page(
        self, environ: Environ, status: str, state: str, found: Subscriber | None = None
    ) -> Response:
        cookie, headers = self._session(environ)
        s = self.settings
        manage = ""
        if found is not None and state == "done":
            manage = preferences_url(
                s.base_url, make_token(s.secret_key, s.list_id, found.id, "preferences")
            )
        page = pages.render(
            s,
            "confirm.html.j2",
            {
                "state": state,
                "csrf": self._csrf_token(cookie, "/confirm/"),
                "preferences": manage,
            },
        )
        return Response(status, page.encode(), headers=headers)

    # Preferences

    def preferences(self, environ: Environ, method: str, token: str) -> Response:
        """Show a reader's own settings behind their token; POST changes them."""
        settings = self.settings
        if not well_formed(token):
            return self._message(
                "400 Bad Request", N_("Preferences"), N_("This link is malformed.")
            )
        if not store_exists(settings.db):
            return self._message("404 Not Found", N_("Preferences"), N_("This link is not valid."))
        with Store(settings.db, readonly=method != "POST") as store:
            reader = signup.reader(settings, store, token)
            if reader is None or reader.status == "pending":
                return self._message(
                    "404 Not Found", N_("Preferences"), N_("This link is not valid.")
                )
            if method != "POST":
                return self._preferences_page(environ, "200 OK", reader)
            body = read_body(environ)
            if body is None:
                return self._message(
                    "413 Content Too Large", N_("Preferences"), N_("Too much data.")
                )
            form = parse_form(environ.get("CONTENT_TYPE", ""), body)
            if self._csrf_age(environ, form, "/preferences/") is None:
                return self._preferences_page(
                    environ,
                    "403 Forbidden",
                    reader,
                    problem=N_("This form has expired: try again."),
                )
            return self._change(environ, store, reader, form)

    def _change(
        self, environ: Environ, store: Store, reader: Subscriber, form: dict[str, list[str]]
    ) -> Response:
        now = self.clock()
        action = _field(form, "action")
        notice = ""
        try:
            if action == "save" and reader.status == "active":
                signup.save_preferences(
                    self.settings,
                    store,
                    reader,
                    SignupForm(
                        reader.email,
                        _field(form, "name"),
                        tuple(t for t in form.get("topics", []) if t),
                        _field(form, "timezone"),
                    ),
                    now,
                )
                notice = "saved"
            elif action == "pause" and reader.status == "active":
                weeks = _field(form, "weeks")
                until = signup.pause(store, reader, int(weeks) if weeks.isdigit() else -1, now)
                notice = "paused" if until else "resumed"
            elif action == "unsubscribe":
                store.subscribers.set_status(reader.id, "unsubscribed", now, ended_by="subscriber")
                logger.warning("subscriber %d unsubscribed through their preferences", reader.id)
                notice = "unsubscribed"
            elif action == "resubscribe" and reader.status in ("unsubscribed", "bounced"):
                store.signups.reopen(reader.id, now)
                self.notices.wake()
                notice = "resubscribe"
            else:
                return self._preferences_page(
                    environ, "400 Bad Request", reader, problem=N_("Unknown request.")
                )
        except SubscriberError as err:
            return self._preferences_page(environ, "400 Bad Request", reader, error=str(err))
        fresh = store.subscribers.by_id(reader.id) or reader
        return self._preferences_page(environ, "200 OK", fresh, notice=notice)

    def _preferences_page(
        self,
        environ: Environ,
        status: str,
        reader: Subscriber,
        notice: str = "",
        error: str = "",
        problem: str = "",
    ) -> Response:
        """Show a reader's settings; notice names what was just done (the page words it),
        problem is a constant text marked with N_(), error one about what was typed."""
        cookie, headers = self._session(environ)
        s = self.settings
        paused = reader.paused_until
        page = pages.render(
            s,
            "preferences.html.j2",
            {
                "reader": replace(reader, topics=tuple(t.lower() for t in reader.topics)),
                "paused_until": paused if paused and paused > self.clock() else None,
                "topics": signup.topic_choices(s),
                "csrf": self._csrf_token(cookie, "/preferences/"),
                "notice": notice,
                "error": error,
                "problem": problem,
            },
        )
        return Response(status, page.encode(), headers=headers)

    def _message(self, status: str, title: str, message: str, detail: str = "") -> Response:
        """Answer a page of one message: title and message are constants marked with N_(),
        detail anything else, shown as it is."""
        page = pages.render(
            self.settings,
            "empty.html.j2",
            {"page_title": title, "message": message, "version": "", "detail": detail},
        )

        return Response(status, page.encode())

    def _not_allowed(self, method: str) -> Response:
        return self._message(
            "405 Method Not Allowed",
            N_("Not allowed"),
            N_("This page does not take requests made with the method"),
            method,
        )


_STATUS = {
    "open": "200 OK",
    "done": "200 OK",
    "expired": "410 Gone",
    "bad": "404 Not Found",
    "csrf": "403 Forbidden",
}


def _field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _visitor(environ: Environ) -> Visitor:
    return Visitor(str(environ.get("REMOTE_ADDR", "")), str(environ.get("HTTP_USER_AGENT", "")))
