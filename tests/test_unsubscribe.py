"""One-click unsubscribe over real HTTP and in a real browser, from a real message's link."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from browser import ARTIFACTS, chromium
from smtpserver import Faults, Handler, SmtpServer
from webserver import request, running

from digest import pipeline
from digest.config import Settings
from digest.httpserver import MAX_BODY
from digest.store import Store
from digest.tokens import make_token
from digest.web import App

SECRET = "a-test-secret-that-is-long-enough-to-sign"
ONE_CLICK = b"List-Unsubscribe=One-Click"
READERS = ("ada@example.org", "grace@example.org")


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[str, Settings]]:
    """Serve the app on a real port; return its URL and settings whose links point at it."""
    signed = replace(settings, secret_key=SECRET)
    with running(App(signed)) as url:
        yield url, replace(signed, base_url=url)


def add_readers(settings: Settings) -> dict[str, int]:
    """Subscribe READERS; return their ids by address."""
    with Store(settings.db) as store:
        for address in READERS:
            store.subscribers.upsert(address, "", (), "", datetime.now(UTC))
        found = {a: store.subscribers.by_email(a) for a in READERS}
    return {a: s.id for a, s in found.items() if s is not None}


def status_of(settings: Settings, subscriber_id: int) -> str:
    """Return a subscriber's status as the store has it."""
    with Store(settings.db) as store:
        sub = store.subscribers.by_id(subscriber_id)
    assert sub is not None
    return sub.status


def link_for(url: str, settings: Settings, subscriber_id: int) -> str:
    """Return a subscriber's unsubscribe link on the test site."""
    return f"{url}/unsubscribe/{make_token(SECRET, settings.list_id, subscriber_id)}"


def test_one_click_from_a_delivered_message(site: tuple[str, Settings]) -> None:
    """Follow the List-Unsubscribe link of a message sent over SMTP, as a mail client does."""
    url, settings = site
    ids = add_readers(settings)
    with SmtpServer(Handler(Faults())) as smtp:
        sending = replace(
            settings,
            delivery="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_timeout=5,
        )
        result = pipeline.run_edition(sending)
        assert result.edition is not None
        received = {r.recipient: r.parsed() for r in smtp.handler.received}
    assert set(received) == set(READERS)
    message = received["ada@example.org"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].split(",")[0].strip(" <>")
    assert link.startswith(f"{url}/unsubscribe/")

    # A link scanner's GET changes nothing and shows no address.
    status, _, page = request(link)
    assert status == 200 and 'id="unsubscribe"' in page
    assert "ada@example.org" not in page and "grace@example.org" not in page
    assert status_of(settings, ids["ada@example.org"]) == "active"

    status, headers, page = request(link, "POST", ONE_CLICK)
    assert status == 200 and "Location" not in headers
    assert "You are unsubscribed" in page
    assert status_of(settings, ids["ada@example.org"]) == "unsubscribed"
    assert status_of(settings, ids["grace@example.org"]) == "active"

    # Idempotent: a second one-click (clients retry) answers the same and changes nothing.
    status, _, page = request(link, "POST", ONE_CLICK)
    assert status == 200 and "You are unsubscribed" in page
    status, _, page = request(link)
    assert status == 200 and 'id="unsubscribe"' not in page


def test_bad_tokens_change_nothing(site: tuple[str, Settings]) -> None:
    """Answer 400 or 404 to malformed, tampered and foreign tokens, and unsubscribe nobody."""
    url, settings = site
    ids = add_readers(settings)
    good = make_token(SECRET, settings.list_id, ids["ada@example.org"])
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    foreign = make_token(SECRET, "another.list.example.net", ids["ada@example.org"])
    forged = make_token("a-guessed-secret", settings.list_id, ids["ada@example.org"])
    unknown = make_token(SECRET, settings.list_id, 999_999)
    cases = {
        "short": 400,
        good + "x": 400,
        good[:-1] + "%2F": 400,
        "..%2F..%2Fetc%2Fpasswd": 400,
        tampered: 404,
        foreign: 404,
        forged: 404,
        unknown: 404,
    }
    status, _, page = request(f"{url}/unsubscribe/")
    assert status == 200 and "their own unsubscribe link" in page
    assert request(f"{url}/unsubscribe/", "POST", ONE_CLICK)[0] == 400
    for token, expected in cases.items():
        for method, body in (("GET", None), ("POST", ONE_CLICK)):
            status, _, page = request(f"{url}/unsubscribe/{token}", method, body)
            assert status == expected, (token, method, status)
            assert "You are unsubscribed" not in page
    assert {status_of(settings, i) for i in ids.values()} == {"active"}


def test_odd_posts_change_nothing(site: tuple[str, Settings]) -> None:
    """Refuse an unknown form and an oversized body; only the two known forms unsubscribe."""
    url, settings = site
    ids = add_readers(settings)
    link = link_for(url, settings, ids["ada@example.org"])
    assert request(link, "POST", b"List-Unsubscribe=Maybe")[0] == 400
    assert request(link, "POST", b"")[0] == 400
    assert request(link, "POST", b"x=" + b"y" * MAX_BODY)[0] == 413
    assert status_of(settings, ids["ada@example.org"]) == "active"
    assert request(link, "POST", b"confirm=unsubscribe")[0] == 200
    assert status_of(settings, ids["ada@example.org"]) == "unsubscribed"


def test_one_click_posted_as_multipart_form_data(site: tuple[str, Settings]) -> None:
    """Unsubscribe on a one-click POST as multipart/form-data, the form RFC 8058 prefers."""
    import http.client
    from urllib.parse import urlsplit

    url, settings = site
    ids = add_readers(settings)
    link = urlsplit(link_for(url, settings, ids["ada@example.org"]))
    boundary = "----digestBoundary7MA4YWxkTrZu0gW"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    conn = http.client.HTTPConnection(link.netloc, timeout=30)
    try:
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        conn.request("POST", link.path, body=body, headers=headers)
        response = conn.getresponse()
        status, page = response.status, response.read().decode()
    finally:
        conn.close()
    assert status == 200 and "You are unsubscribed" in page
    assert status_of(settings, ids["ada@example.org"]) == "unsubscribed"
    assert status_of(settings, ids["grace@example.org"]) == "active"
    with Store(settings.db) as store:
        ada = store.subscribers.by_id(ids["ada@example.org"])
    # Recorded as the subscriber's own: `--resubscribe` cannot undo it.
    assert ada is not None and ada.ended_by == "subscriber"


def test_without_a_secret_no_link_works(settings: Settings) -> None:
    """With DIGEST_SECRET_KEY unset, every token is refused rather than trusted."""
    ids = add_readers(settings)
    with running(App(settings)) as url:
        token = make_token(SECRET, settings.list_id, ids["ada@example.org"])
        assert request(f"{url}/unsubscribe/{token}", "POST", ONE_CLICK)[0] == 404
    assert status_of(settings, ids["ada@example.org"]) == "active"


def test_button_in_a_real_browser(site: tuple[str, Settings]) -> None:
    """Click the confirmation button in headless Chromium and find the reader unsubscribed."""
    url, settings = site
    ids = add_readers(settings)
    link = link_for(url, settings, ids["grace@example.org"])
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 700})
        page.goto(link)
        button = page.locator("#unsubscribe")
        assert button.is_visible()
        assert status_of(settings, ids["grace@example.org"]) == "active"
        page.screenshot(path=str(ARTIFACTS / "unsubscribe-confirm.png"))
        with page.expect_navigation():
            button.click()
        assert page.locator("#done").is_visible()
        assert page.url == link  # answered in place, no redirect
        page.screenshot(path=str(ARTIFACTS / "unsubscribe-done.png"))
        page.close()
    assert status_of(settings, ids["grace@example.org"]) == "unsubscribed"
    assert status_of(settings, ids["ada@example.org"]) == "active"
