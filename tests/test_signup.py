"""Sign-up over real HTTP: answers that tell nothing, limits, tokens, CSRF, origins."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from smtpserver import Faults, Handler, SmtpServer
from webserver import running

from digest.config import Settings
from digest.models import Consent
from digest.signup import embed_snippet
from digest.store import Store
from digest.tokens import (
    make_confirm_token,
    make_token,
    read_confirm_token,
    subscriber_from_token,
)
from digest.web import App

SECRET = "a-test-secret-that-is-long-enough-to-sign"
START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    url: str
    app: App
    clock: Clock
    smtp: SmtpServer

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def sent_to(self) -> list[str]:
        self.app.signup.notices.join()
        return [m.recipient for m in self.smtp.handler.received]


def call(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.request(method, parts.path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def form_session(url: str) -> tuple[str, str]:
    """GET a page with a form: return its CSRF cookie and token."""
    _, headers, page = call(url)
    cookie = headers["Set-Cookie"].split(";")[0]
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token, page
    return cookie, token.group(1)


def post_form(
    url: str, fields: dict[str, str], cookie: str = "", origin: str = ""
) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    return call(url, "POST", urlencode(fields).encode(), headers)


def sign_up(site: Site, address: str) -> tuple[int, str]:
    cookie, token = form_session(f"{site.url}/subscribe")
    site.clock.now += timedelta(seconds=5)
    status, _, page = post_form(
        f"{site.url}/subscribe", {"email": address, "csrf": token}, cookie, site.url
    )
    return status, page


@pytest.fixture
def site(settings: Settings) -> Iterator[Site]:
    with SmtpServer(Handler(Faults())) as smtp:
        signed = replace(
            settings,
            secret_key=SECRET,
            sections=("World", "Business"),
            delivery="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_timeout=5,
            signup_origins=("https://publisher.example",),
        )
        clock = Clock()
        app = App(signed, clock=clock)
        with running(app) as url:
            app.settings = replace(signed, base_url=url)
            yield Site(url, app, clock, smtp)
        app.signup.notices.join()


def _states(site: Site) -> None:
    """Put one address in each state: pending, active, unsubscribed (new stays new)."""
    with Store(site.settings.db) as store:
        store.signups.request("pending@example.org", "", (), "", Consent(), START)
        store.subscribers.upsert("active@example.org", "", (), "", START)
        store.subscribers.upsert("gone@example.org", "", (), "", START)
        gone = store.subscribers.by_email("gone@example.org")
        assert gone is not None
        store.subscribers.set_status(gone.id, "unsubscribed", START, ended_by="subscriber")
        # Their notices went long ago: the hourly limit is not what is compared here.
        for notice in store.signups.due_notices():
            store.signups.claim_notice(notice, START - timedelta(days=1))


ADDRESSES = ("new@example.org", "pending@example.org", "active@example.org", "gone@example.org")


def test_every_address_gets_the_same_answer(site: Site) -> None:
    """Answer a new, pending, active and unsubscribed address byte for byte alike."""
    _states(site)
    answers = set()
    for address in ADDRESSES:
        status, page = sign_up(site, address)
        answers.add((status, page))
    assert len(answers) == 1
    ((status, page),) = answers
    assert status == 200 and 'id="sent"' in page
    assert not any(a in page for a in ADDRESSES)
    json_answers = set()
    for address in ADDRESSES:
        status, headers, body = call(
            f"{site.url}/subscribe",
            "POST",
            json.dumps({"email": address}).encode(),
            {"Content-Type": "application/json"},
        )
        json_answers.add((status, body, headers.get("Content-Length")))
    assert len(json_answers) == 1 and next(iter(json_answers))[0] == 202
    # Each got one email (the active one a note that it is subscribed already); the
    # second round, within the hour, sent none.
    assert sorted(site.sent_to()) == sorted(ADDRESSES)
    with Store(site.settings.db) as store:
        statuses = {a: store.subscribers.by_email(a).status for a in ADDRESSES}  # type: ignore[union-attr]
    assert statuses == {
        "new@example.org": "pending",
        "pending@example.org": "pending",
        "active@example.org": "active",
        "gone@example.org": "unsubscribed",
    }
    known = next(m for m in site.smtp.handler.received if m.recipient == "active@example.org")
    assert "subscribed" in str(known.parsed()["Subject"])


def test_one_confirmation_an_hour_per_address(site: Site) -> None:
    sign_up(site, "ada@example.org")
    sign_up(site, "ada@example.org")
    assert site.sent_to() == ["ada@example.org"]
    site.clock.now += timedelta(hours=1, minutes=1)
    sign_up(site, "ada@example.org")
    assert site.sent_to() == ["ada@example.org", "ada@example.org"]


def test_sign_ups_from_one_ip_are_limited(site: Site) -> None:
    site.app.settings = replace(site.settings, signup_rate=3)
    for n in range(3):
        assert sign_up(site, f"reader{n}@example.org")[0] == 200
    status, page = sign_up(site, "reader9@example.org")
    assert status == 429 and "Too many sign-ups" in page
    # The limit is in the database: a new application (another process) sees it too.
    other = App(site.settings, clock=site.clock)
    with running(other) as url:
        other.settings = replace(site.settings, base_url=url)
        cookie, token = form_session(f"{url}/subscribe")
        site.clock.now += timedelta(seconds=5)
        status, _, _ = post_form(
            f"{url}/subscribe", {"email": "r@example.org", "csrf": token}, cookie
        )
    assert status == 429
    site.clock.now += timedelta(minutes=21)  # a third of an hour: one sign-up more
    assert sign_up(site, "reader8@example.org")[0] == 200
    assert sign_up(site, "reader7@example.org")[0] == 429


def test_bots_are_answered_but_ignored(site: Site) -> None:
    """A filled honeypot or a form sent too fast gets the usual answer and no email."""
    cookie, token = form_session(f"{site.url}/subscribe")
    fields = {"email": "bot@example.org", "csrf": token}
    status, _, page = post_form(f"{site.url}/subscribe", fields, cookie)  # at once
    assert status == 200 and 'id="sent"' in page
    site.clock.now += timedelta(seconds=5)
    status, _, page = post_form(f"{site.url}/subscribe", {**fields, "website": "x"}, cookie)
    assert status == 200 and 'id="sent"' in page
    assert site.sent_to() == []
    with Store(site.settings.db) as store:
        assert store.subscribers.by_email("bot@example.org") is None


def test_a_post_without_its_csrf_token_is_refused(site: Site) -> None:
    cookie, token = form_session(f"{site.url}/subscribe")
    site.clock.now += timedelta(seconds=5)
    url = f"{site.url}/subscribe"
    assert post_form(url, {"email": "a@example.org"}, cookie)[0] == 403
    assert post_form(url, {"email": "a@example.org", "csrf": token})[0] == 403
    other_cookie, _ = form_session(url)
    assert post_form(url, {"email": "a@example.org", "csrf": token}, other_cookie)[0] == 403
    # The preference page too.
    with Store(site.settings.db) as store:
        store.subscribers.upsert("ada@example.org", "", (), "", START)
        ada = store.subscribers.by_email("ada@example.org")
    assert ada is not None
    prefs = (
        f"{site.url}/preferences/{make_token(SECRET, site.settings.list_id, ada.id, 'preferences')}"
    )
    status, _, _ = post_form(prefs, {"action": "unsubscribe"}, cookie)
    assert status == 403
    with Store(site.settings.db) as store:
        assert store.subscribers.by_id(ada.id).status == "active"  # type: ignore[union-attr]
    cookie, token = form_session(prefs)
    status, _, page = post_form(prefs, {"action": "unsubscribe", "csrf": token}, cookie)
    assert status == 200 and "unsubscribed" in page
    assert site.sent_to() == []


def test_foreign_origins_are_refused_and_allowed_ones_get_cors(site: Site) -> None:
    body = json.dumps({"email": "ada@example.org", "topics": ["World"]}).encode()
    json_type = {"Content-Type": "application/json"}
    status, headers, _ = call(
        f"{site.url}/subscribe", "POST", body, {**json_type, "Origin": "https://evil.example"}
    )
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, _, _ = post_form(
        f"{site.url}/subscribe", {"email": "ada@example.org"}, origin="https://evil.example"
    )
    assert status == 403
    status, headers, _ = call(
        f"{site.url}/subscribe", "OPTIONS", None, {"Origin": "https://evil.example"}
    )
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    allowed = "https://publisher.example"
    status, headers, _ = call(f"{site.url}/subscribe", "OPTIONS", None, {"Origin": allowed})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == allowed
    status, headers, answer = call(
        f"{site.url}/subscribe", "POST", body, {**json_type, "Origin": allowed}
    )
    assert status == 202 and headers["Access-Control-Allow-Origin"] == allowed
    assert json.loads(answer)["status"] == "accepted"
    bad = json.dumps({"email": "ada@example.org", "timezone": "Mars/Olympus"}).encode()
    status, _, answer = call(f"{site.url}/subscribe", "POST", bad, json_type)
    assert status == 400 and "time zone" in json.loads(answer)["error"]
    assert site.sent_to() == ["ada@example.org"]
    with Store(site.settings.db) as store:
        ada = store.subscribers.by_email("ada@example.org")
    assert ada is not None and ada.status == "pending" and ada.topics == ("world",)


def test_bad_tokens_on_the_preference_and_confirm_pages(site: Site) -> None:
    site.app.settings = replace(site.settings, confirm_ttl=timedelta(hours=1))
    sign_up(site, "ada@example.org")
    site.sent_to()
    with Store(site.settings.db) as store:
        store.subscribers.upsert("grace@example.org", "", (), "", START)
        grace = store.subscribers.by_email("grace@example.org")
        ada = store.subscribers.by_email("ada@example.org")
    assert grace is not None and ada is not None
    list_id = site.settings.list_id
    good = make_token(SECRET, list_id, grace.id, "preferences")
    assert call(f"{site.url}/preferences/{good}")[0] == 200
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    unsubscribe_purpose = make_token(SECRET, list_id, grace.id)
    confirm_token = make_confirm_token(SECRET, list_id, grace.id, START)
    for token, expected in (
        (tampered, 404),
        (unsubscribe_purpose, 404),
        (confirm_token, 400),
        ("short", 400),
        # A pending address has no preference page yet.
        (make_token(SECRET, list_id, ada.id, "preferences"), 404),
    ):
        status, _, page = call(f"{site.url}/preferences/{token}")
        assert status == expected, token
        assert "grace@example.org" not in page
    # A preferences token does not unsubscribe, nor the reverse.
    assert subscriber_from_token(SECRET, list_id, good) is None
    assert subscriber_from_token(SECRET, list_id, unsubscribe_purpose, "preferences") is None
    # The confirmation link from the email works until DIGEST_CONFIRM_TTL has passed.
    text = site.smtp.handler.received[0].parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"http://\S+/confirm/[A-Za-z0-9_-]+", text)
    assert link
    token = link.group(0).rsplit("/", 1)[1]
    assert read_confirm_token(SECRET, list_id, token) is not None
    assert call(link.group(0))[0] == 200
    forged = make_confirm_token("another-secret", list_id, ada.id, START)
    assert call(f"{site.url}/confirm/{forged}")[0] == 404
    cookie, csrf = form_session(link.group(0))
    site.clock.now += site.settings.confirm_ttl + timedelta(minutes=1)
    status, _, page = call(link.group(0))
    assert status == 410 and "expired" in page
    assert post_form(link.group(0), {"csrf": csrf}, cookie)[0] == 410
    with Store(site.settings.db) as store:
        assert store.subscribers.by_id(ada.id).status == "pending"  # type: ignore[union-attr]


def test_unconfirmed_sign_ups_are_deleted_after_the_ttl(site: Site) -> None:
    sign_up(site, "ada@example.org")
    site.clock.now += site.settings.confirm_ttl + timedelta(hours=1)
    sign_up(site, "grace@example.org")  # each sign-up sweeps the expired ones
    with Store(site.settings.db) as store:
        assert store.subscribers.by_email("ada@example.org") is None
        assert store.subscribers.by_email("grace@example.org") is not None


def test_the_embedded_form_posts_from_another_port(site: Site, tmp_path: Path) -> None:
    """Serve `digest form`'s snippet from a page on another port, and submit it there."""
    from browser import chromium
    from feedserver import serving

    with serving() as other:
        site.app.settings = replace(site.settings, signup_origins=(other.url,))
        snippet = embed_snippet(site.settings)
        join = other.add(
            "/join.html",
            f"<!DOCTYPE html><html><body>{snippet}</body></html>",
            content_type="text/html; charset=utf-8",
        )
        with chromium() as browser:
            page = browser.new_page()
            page.goto(join)
            page.fill("input[name=email]", "embed@example.org")
            page.check("input[name=topics][value=Business]")
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url == f"{site.url}/subscribe"
            assert page.locator("#sent").is_visible()
            page.close()
    assert site.sent_to() == ["embed@example.org"]
    with Store(site.settings.db) as store:
        found = store.subscribers.by_email("embed@example.org")
    assert found is not None and found.status == "pending" and found.topics == ("business",)
    assert found.timezone  # filled in by the snippet's script
