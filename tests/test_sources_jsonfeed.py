"""JSON Feed 1.0 and 1.1: fields, wrong types, and feeds served without a suffix."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _sources import DATA, ingest, source_settings
from feedserver import FeedServer

from digest.errors import SourceError
from digest.sources import read_path, read_sources
from digest.sources.base import Document
from digest.sources.jsonfeed import read


def test_version_1_1_fields() -> None:
    """Read title, link, dates in UTC, authors, tags, summary, sanitised HTML and image."""
    result = read_path(DATA / "feed.json")
    bridge, numbered, untitled = result.articles
    assert bridge.title == "Bridge repainted"
    assert bridge.url == "https://json.example.org/posts/bridge"
    assert bridge.published == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert bridge.updated == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert bridge.author == "Pat Painter"
    assert bridge.tags == ("town", "bridge")
    assert bridge.summary == "The bridge is blue."
    assert bridge.paragraphs == ("The old bridge is blue again.", "Paint")
    assert "<script" not in bridge.html and "evil" not in bridge.html
    assert 'href="https://json.example.org/posts/paint"' in bridge.html
    assert bridge.image == "https://json.example.org/img/bridge.jpg"
    assert bridge.source_name == "JSON Town"
    assert numbered.paragraphs == ("First paragraph.", "Second paragraph.")
    assert numbered.author == "Feed Author"  # the feed's author when the item has none
    assert numbered.image == "https://json.example.org/img/seven.jpg"
    assert untitled.title == "An item with neither title nor date."
    assert untitled.published is None


def test_bad_items_are_skipped_with_reasons() -> None:
    """Leave out an item with a wrong type, naming its position and the key."""
    result = read_path(DATA / "feed.json")
    reasons = [(s.where.rsplit(": ", 1)[1], s.reason) for s in result.skipped]
    assert reasons == [
        ("item 4", "'title' must be a string, not int"),
        ("item 5", "an item is an object, not a string"),
    ]


def test_version_1_0_author() -> None:
    """Take the 1.0 'author' object when there is no 'authors' list."""
    (article,) = read_path(DATA / "feed10.json").articles
    assert article.author == "Solo Author"
    assert article.title == "Version one item"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("wrong-type.json", "'items' must be a list, not a string"),
        ("not-jsonfeed.json", "not a JSON Feed: 'version' is '1.2.3'"),
    ],
)
def test_wrong_feeds(name: str, reason: str) -> None:
    """Reject a feed whose items are not a list, or JSON that is no JSON Feed."""
    with pytest.raises(SourceError) as caught:
        read_path(DATA / name)
    assert str(caught.value).endswith(f"{name}: {reason}")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1",\n "items": [,]}', "line 2 column"),
        (b"[1, 2]", "a JSON Feed is an object, not a list"),
        (b'{"version": 1.1, "items": []}', "not a JSON Feed"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
)
def test_not_json_feed(data: bytes, reason: str) -> None:
    """Report broken JSON with line and column, and JSON of the wrong shape."""
    with pytest.raises(SourceError, match=reason):
        read(Document(where="/feeds/x.json", data=data))


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"title": "No id"}, "no 'id'"),
        ({"id": "1", "title": "T", "date_published": "yesterday"}, "not an RFC 3339 date"),
        ({"id": "1", "title": "T", "tags": "a,b"}, "'tags' must be a list of strings"),
        ({"id": "1", "content_html": ["x"]}, "'content_html' must be a string"),
        ({"id": "1"}, "no title and no text"),
    ],
)
def test_item_problems(item: dict[str, object], reason: str) -> None:
    """Skip an item with a missing id, a bad date or a field of the wrong type."""
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "F", "items": [item]}
    result = read(Document(where="/f.json", data=json.dumps(feed).encode()))
    assert result.articles == []
    assert reason in result.skipped[0].reason


def test_served_feed_is_recognised_by_content(tmp_path: Path, feed_server: FeedServer) -> None:
    """Read a JSON Feed from a URL without a suffix, as JSON by its content type or body."""
    body = (DATA / "feed.json").read_bytes()
    typed = feed_server.add("/feed", body, content_type="application/feed+json")
    untyped = feed_server.add("/other", body, content_type="application/octet-stream")
    for url in (typed, untyped):
        (result,) = read_sources((url,))
        assert result.ok, result.error
        assert [a.title for a in result.articles][:1] == ["Bridge repainted"]
    settings = source_settings(tmp_path, typed)
    assert ingest(settings).new == 3


@pytest.mark.parametrize(
    ("title", "where", "name"),
    [
        ("Harbourtown Daily", "https://www.harbourtown.example/feed.json", "Harbourtown Daily"),
        ("", "https://www.harbourtown.example/feed.json", "harbourtown.example"),
        ("  ", "https://news.example.org/feed.json", "news.example.org"),
        ("", "/feeds/local.json", "/feeds/local.json"),
    ],
)
def test_a_feed_is_named_by_its_title_else_its_host(title: str, where: str, name: str) -> None:
    """Name the articles after the feed's title, or its host when it has none."""
    item = {"id": "1", "title": "Bridge repainted", "content_text": "Fresh paint."}
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": [item]}
    (article,) = read(Document(where=where, data=json.dumps(feed).encode())).articles
    assert article.source_name == name
