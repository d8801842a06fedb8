"""Subscribers' topics pick sections: one rendering per distinct set, sent over real SMTP."""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _editions import edition
from smtpserver import Faults, Handler, SmtpServer
from sqlalchemy import null, select
from test_send import NOW, send, smtp_settings

from digest.audience import sections_for
from digest.render import render_edition
from digest.store import Store
from digest.store.codecs import edition_from_dict, edition_to_dict
from digest.store.schema import edition_content, edition_variants


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer(Handler(Faults())) as running:
        yield running


@pytest.mark.parametrize(
    ("titles", "topics", "expected"),
    [
        (("World", "Business"), (), None),
        (("World", "Business"), ("world",), ("World",)),
        (("World", "Business"), ("  BUSINESS ",), ("Business",)),
        (("World", "Business"), ("business", "world"), None),
        (("World", "Business"), ("sport",), ()),
        (("World", "Business"), ("sport", "world"), ("World",)),
        (("Local News", "More"), ("local  news",), ("Local News",)),
        # No titled sections: nothing to choose from, so the whole edition.
        (("",), ("sport",), None),
    ],
)
def test_topics_pick_sections(
    titles: tuple[str, ...], topics: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    assert sections_for(titles, topics) == expected


def test_an_edition_is_kept_whole() -> None:
    made = edition(10)
    # Through JSON text, as the edition column keeps it.
    assert edition_from_dict(json.loads(json.dumps(edition_to_dict(made)))) == made


def _bodies(message: email.message.EmailMessage) -> str:
    parts = []
    for part in message.iter_parts():
        assert isinstance(part, email.message.EmailMessage)
        parts.append(part.get_content())
    return "\n".join(parts)


def test_each_subscriber_gets_the_sections_of_their_topics(
    tmp_path: Path, server: SmtpServer
) -> None:
    settings = smtp_settings(tmp_path, server.port)
    made = edition(6)  # World: parts 1-3, Business: parts 4-6
    with Store(settings.db) as store:
        store.articles.save((a for it in made.items for a in (it.article, *it.also_in)), [], NOW)
        rendered = render_edition(settings, made)
        store.editions.record(made, rendered.subject, None, rendered)
        for address, topics in [
            ("all@example.org", ()),
            ("world@example.org", ("world",)),
            ("both@example.org", ("business", "world")),
            ("sport@example.org", ("sport",)),
            ("world2@example.org", ("world",)),
        ]:
            store.subscribers.upsert(address, "", topics, "", NOW)
    report = send(settings, "2026-11-28")
    assert report.counts == {"sent": 4, "skipped": 1}
    got = {m.recipient: m.parsed() for m in server.handler.received}
    assert set(got) == {
        "all@example.org",
        "world@example.org",
        "both@example.org",
        "world2@example.org",
    }
    for address in ("all@example.org", "both@example.org"):
        body = _bodies(got[address])
        assert all(f"part {n}" in body for n in range(1, 7))
        assert "World" in body and "Business" in body
    for address in ("world@example.org", "world2@example.org"):
        body = _bodies(got[address])
        assert "part 1" in body and "part 3" in body
        assert "part 4" not in body and "part 6" not in body
        assert "Business" not in body
    with Store(settings.db) as store:
        rows = {d.email: d for d in store.ledger.rows("2026-11-28")}
        with store.db.read() as conn:
            variants = conn.execute(select(edition_variants.c.sections)).all()
    assert rows["sport@example.org"].status == "skipped"
    assert "none of their topics (sport)" in rows["sport@example.org"].last_error
    # Rendered once for the two subscribers who chose World alone.
    assert [v[0] for v in variants] == ['["World"]']


def test_an_edition_not_kept_whole_goes_whole_to_everyone(
    tmp_path: Path, server: SmtpServer
) -> None:
    settings = smtp_settings(tmp_path, server.port)
    made = edition(4)
    with Store(settings.db) as store:
        store.articles.save((a for it in made.items for a in (it.article, *it.also_in)), [], NOW)
        rendered = render_edition(settings, made)
        store.editions.record(made, rendered.subject, None, rendered)
        # As an older version stored it.
        with store.db.write() as conn:
            conn.execute(edition_content.update().values(edition=null()))
        store.subscribers.upsert("world@example.org", "", ("world",), "", NOW)
    assert send(settings, "2026-11-28").counts == {"sent": 1}
    body = _bodies(server.handler.received[0].parsed())
    assert "part 4" in body
