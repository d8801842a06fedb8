"""A reader's whole journey in headless Chromium: subscribe, confirm from the email,
choose topics, get only those sections, unsubscribe and subscribe again."""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser import ARTIFACTS, chromium
from smtpserver import Faults, Handler, SmtpServer
from webserver import running

from digest import pipeline
from digest.config import Settings
from digest.store import Store
from digest.web import App

SECRET = "a-test-secret-that-is-long-enough-to-sign"
READER = "ada@example.org"
STORY = """---
title: {title}
date: {date}
url: https://example.org/{slug}
tags: [{tag}]
---
{body}
"""


def write_stories(folder: Path) -> None:
    """Two World stories and two Business stories, dated now."""
    folder.mkdir()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    stories = [
        ("Harbour reopens after the storm", "world"),
        ("Ferry links restored across the strait", "world"),
        ("Bakery chain reports record profits", "business"),
        ("Shipping costs fall for a third month", "business"),
    ]
    for n, (title, tag) in enumerate(stories):
        # Words of each story's own, so that no two look like one story twice.
        words = [f"{w}{n}{k}" for k, w in enumerate(title.lower().split() * 6)]
        body = "\n\n".join(
            f"{title}. " + " ".join(words[p::3]).capitalize() + "." for p in range(3)
        )
        (folder / f"{n}.md").write_text(
            STORY.format(title=title, date=now, slug=n, tag=tag, body=body), encoding="utf-8"
        )


class Clock:
    """The application's clock: now, plus however far a test moves it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(Handler(Faults())) as server:
        yield server


def text_of(message: email.message.EmailMessage) -> str:
    """Return the plain-text part of a message."""
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, email.message.EmailMessage)
    return str(part.get_content())


def link(text: str, path: str) -> str:
    """Return the first URL under path in text."""
    found = re.search(rf"https?://\S+/{path}/[A-Za-z0-9_-]+", text)
    assert found, text
    return found.group(0)


def test_subscribe_confirm_choose_topics_leave_and_come_back(
    settings: Settings, tmp_path: Path, smtp: SmtpServer
) -> None:
    stories = tmp_path / "stories"
    write_stories(stories)
    sending = replace(
        settings,
        sources=(str(stories),),
        secret_key=SECRET,
        sections=("World", "Business"),
        delivery="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_timeout=5,
        signup_min_seconds=0,
    )
    clock = Clock()
    app = App(sending, clock=clock)
    ARTIFACTS.mkdir(exist_ok=True)
    with running(app) as url, chromium() as browser:
        sending = replace(sending, base_url=url)
        app.settings = sending
        page = browser.new_page(
            viewport={"width": 375, "height": 800}, timezone_id="Pacific/Auckland"
        )
        page.goto(f"{url}/archive/")
        page.click("#subscribe-link")
        assert page.url == f"{url}/subscribe"
        # The browser's own time zone, filled in by the page's script once it has run.
        page.wait_for_function("document.getElementById('timezone').value !== ''", timeout=10_000)
        assert page.input_value("#timezone") == "Pacific/Auckland"
        page.fill("#email", READER)
        page.fill("#name", "Ada Lovelace")
        page.fill("#timezone", "Europe/London")
        page.screenshot(path=str(ARTIFACTS / "signup-form.png"))
        with page.expect_navigation():
            page.click("#subscribe")
        assert page.locator("#sent").is_visible(), page.content()
        app.signup.notices.join()
        with Store(sending.db) as store:
            pending = store.subscribers.by_email(READER)
        assert pending is not None and pending.status == "pending"
        assert [m.recipient for m in smtp.handler.received] == [READER]
        confirmation = smtp.handler.received[0].parsed()
        assert "Confirm" in str(confirmation["Subject"])
        confirm_link = link(text_of(confirmation), "confirm")

        # Following the link shows a button; only pressing it confirms.
        page.goto(confirm_link)
        with Store(sending.db) as store:
            assert store.subscribers.by_email(READER).status == "pending"  # type: ignore[union-attr]
        with page.expect_navigation():
            page.click("#confirm")
        assert page.locator("#confirmed").is_visible()
        page.click("#manage")
        assert "/preferences/" in page.url
        assert READER in page.content()
        page.check("input[name=topics][value=World]")
        with page.expect_navigation():
            page.click("#save")
        assert page.locator("#notice").is_visible()
        page.screenshot(path=str(ARTIFACTS / "signup-preferences.png"))
        with Store(sending.db) as store:
            reader = store.subscribers.by_email(READER)
        assert reader is not None and reader.status == "active"
        assert reader.topics == ("world",) and reader.timezone == "Europe/London"
        assert reader.consent is not None and reader.consent.source == "form"
        assert reader.consent.signup_ip == "127.0.0.1"
        assert reader.consent.confirm_ip == "127.0.0.1"
        assert "HeadlessChrome" in reader.consent.confirm_agent

        # The next edition carries only the section chosen.
        result = pipeline.run_edition(sending)
        assert result.edition is not None
        titles = [s.title for s in result.edition.sections]
        assert titles == ["World", "Business"]
        edition_mail = smtp.handler.received[-1]
        assert edition_mail.recipient == READER
        body = text_of(edition_mail.parsed())
        assert "Harbour reopens" in body and "Ferry links" in body
        assert "Bakery chain" not in body and "BUSINESS" not in body
        manage = link(body, "preferences")

        # Unsubscribe from the preference page the edition links.
        page.goto(manage)
        with page.expect_navigation():
            page.click("#unsubscribe")
        with Store(sending.db) as store:
            left = store.subscribers.by_email(READER)
        assert left is not None and left.status == "unsubscribed"
        assert left.ended_by == "subscriber"

        # Later, the reader comes back: a fresh opt-in, confirmed by email.
        clock.offset = timedelta(hours=2)
        sent_before = len(smtp.handler.received)
        page.goto(manage)
        with page.expect_navigation():
            page.click("#resubscribe")
        assert page.locator("#notice").is_visible()
        app.signup.notices.join()
        again = smtp.handler.received[sent_before:]
        assert [m.recipient for m in again] == [READER]
        second_link = link(text_of(again[0].parsed()), "confirm")
        assert second_link != confirm_link
        page.goto(second_link)
        with page.expect_navigation():
            page.click("#confirm")
        assert page.locator("#confirmed").is_visible()
        page.close()
    with Store(sending.db) as store:
        back = store.subscribers.by_email(READER)
    assert back is not None and back.status == "active" and back.ended_by is None
