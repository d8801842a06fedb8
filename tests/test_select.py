"""Ranking, caps, sections and the rules that decide whether an edition is made."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest import pipeline
from digest import select as select_module
from digest.config import Settings, load_settings
from digest.dedup import article_signature, candidate_pairs
from digest.errors import ConfigError
from digest.highlights import choose_highlights
from digest.models import Article, Candidate
from digest.select import score, select

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
TOPICS = ("harbour", "theatre", "budget", "school", "railway", "museum", "election", "market")


def body(n: int) -> str:
    """Return a distinct two-sentence body, so that no two articles are duplicates."""
    topic = TOPICS[n % len(TOPICS)]
    return (
        f"Story {n} reports that the {topic} committee met on day {n} to decide on plan {n}. "
        f"Members voted {n} to {n + 3} after a long debate about the {topic} and its costs."
    )


def make(n: int, *, source: str = "Wire", hours: float = 0, tags: tuple[str, ...] = ()) -> Article:
    """Return article n from source, published hours before NOW."""
    return Article(
        id=f"a{n}",
        source=f"/{source}/{n}.txt",
        title=f"Story number {n} about the {TOPICS[n % len(TOPICS)]}",
        paragraphs=(body(n),),
        source_name=source,
        published=NOW - timedelta(hours=hours),
        tags=tags,
    )


def titles(settings: Settings, articles: list[Article]) -> list[str]:
    """Return the titles select puts in the edition, in reading order."""
    edition = select(settings, articles, "e", NOW).edition
    assert edition is not None
    return [i.article.title for i in edition.items]


def test_recency_decay_orders_newest_first(settings: Settings) -> None:
    """Rank a fresh story above an older one, halving per half-life."""
    fresh, old = make(1, hours=1), make(2, hours=30)
    assert titles(settings, [old, fresh]) == [fresh.title, old.title]
    day = replace(settings, recency_half_life=timedelta(hours=24))
    assert score(day, make(3, hours=24), NOW, NOW - timedelta(hours=24)) == pytest.approx(0.5)
    assert score(day, make(3), NOW, NOW + timedelta(hours=5)) == 1.0


def test_source_weight_outranks_recency_and_zero_excludes(settings: Settings) -> None:
    """Lift a weighted source above fresher news; a weight of 0 keeps a source out."""
    weighted = replace(settings, source_weights=(("Blog", 4.0), ("Spam", 0.0)))
    blog, wire, spam = make(1, source="Blog", hours=30), make(2, hours=1), make(3, source="Spam")
    assert titles(weighted, [wire, blog, spam]) == [blog.title, wire.title]


def test_max_per_source_leaves_the_rest_for_later(settings: Settings) -> None:
    """Take at most DIGEST_MAX_PER_SOURCE from one source in an edition."""
    capped = replace(settings, max_per_source=2)
    articles = [make(n, hours=n) for n in range(4)] + [make(9, source="Herald", hours=9)]
    assert titles(capped, articles) == [make(0).title, make(1).title, make(9).title]


def test_sections_by_tag_in_configured_order_with_a_cap(settings: Settings) -> None:
    """Group items by tag into the configured sections, capped, the rest in the default."""
    sectioned = replace(
        settings, sections=("Business", "Culture"), section_max=2, default_section="Other"
    )
    articles = [
        make(1, tags=("culture",), hours=1),
        make(2, tags=("Business",), hours=2),
        make(3, tags=("culture",), hours=3),
        make(4, tags=("culture",), hours=4),
        make(5, hours=5),
    ]
    edition = select(sectioned, articles, "e", NOW).edition
    assert edition is not None
    shape = [(s.title, [i.article.id for i in s.items]) for s in edition.sections]
    assert shape == [("Business", ["a2"]), ("Culture", ["a1", "a3"]), ("Other", ["a5"])]


def test_no_sections_make_one_untitled_section(settings: Settings) -> None:
    """Keep a single untitled section when DIGEST_SECTIONS is empty."""
    edition = select(settings, [make(1, tags=("culture",))], "e", NOW).edition
    assert edition is not None and [s.title for s in edition.sections] == [""]


def test_min_items_makes_no_edition_and_says_why(settings: Settings, seeds_dir: Path) -> None:
    """Make no edition with fewer new items than DIGEST_MIN_ITEMS, and keep them for later."""
    strict = replace(settings, min_items=20)
    result = pipeline.run_edition(strict, NOW)
    assert result.edition is None
    assert result.reason == "only 10 new items are ready, fewer than DIGEST_MIN_ITEMS=20"
    assert pipeline.run_edition(replace(settings, min_items=10), NOW).edition is not None


def test_max_age_drops_old_articles(settings: Settings) -> None:
    """Leave out an article older than DIGEST_MAX_AGE, however it ranks."""
    week = replace(settings, max_age=timedelta(days=7))
    assert titles(week, [make(1, hours=24 * 8), make(2, hours=2)]) == [make(2).title]
    assert select(week, [make(1, hours=24 * 8)], "e", NOW).edition is None


def test_capped_article_waits_until_max_age(settings: Settings, seeds_dir: Path) -> None:
    """Carry an article left out by a cap in the next edition, unless it got too old."""
    for path in seeds_dir.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    capped = replace(settings, max_items=6, max_age=timedelta(days=2))
    first = pipeline.run_edition(capped, NOW)
    assert first.edition is not None and len(first.edition.items) == 6
    second = pipeline.run_edition(capped, NOW + timedelta(days=1))
    assert second.edition is not None and len(second.edition.items) == 4
    # The same start on a second store; the next run comes after DIGEST_MAX_AGE.
    assert isinstance(settings.db, Path)
    late = replace(capped, db=settings.db.with_name("late.db"))
    assert pipeline.run_edition(late, NOW).edition is not None
    expired = pipeline.run_edition(late, NOW + timedelta(days=3))
    assert expired.edition is None and expired.reason == "nothing new since the last edition"


def test_edited_article_returns_showing_what_changed(settings: Settings, tmp_path: Path) -> None:
    """Make an edited article eligible again, without the highlights already shown."""
    folder = tmp_path / "desk"
    folder.mkdir()
    path = folder / "story.txt"
    sentences = [
        "The harbour authority approved a plan to deepen the main channel on Tuesday.",
        "Larger container ships will be able to dock at the eastern terminal next year.",
        "The work will cost about forty million euros over eighteen months.",
    ]
    path.write_text("Harbour channel deepened\n\n" + " ".join(sentences) + "\n")
    os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    desk = replace(settings, sources=(str(folder),), highlights=2)
    first = pipeline.run_edition(desk, NOW)
    assert first.edition is not None
    shown = {hl.text for hl in first.edition.items[0].highlights}
    update = "Fishing crews will be paid for the weeks their boats cannot leave the port."
    path.write_text("Harbour channel deepened\n\n" + " ".join([*sentences, update]) + "\n")
    os.utime(path, (NOW.timestamp() + 3600, NOW.timestamp() + 3600))
    second = pipeline.run_edition(desk, NOW + timedelta(hours=2))
    assert second.edition is not None
    again = {hl.text for hl in second.edition.items[0].highlights}
    assert update in again and not again & shown
    assert pipeline.run_edition(desk, NOW + timedelta(hours=3)).edition is None


def test_selection_keys_are_read_and_checked(tmp_path: Path) -> None:
    """Read the selection keys, and name the key of a bad value."""
    loaded = load_settings(
        None,
        {
            "DIGEST_RECENCY_HALF_LIFE": "12h",
            "DIGEST_SOURCE_WEIGHTS": "Example Wire=0.5, Blog=2",
            "DIGEST_MAX_PER_SOURCE": "3",
            "DIGEST_SECTIONS": "World, Business",
            "DIGEST_SECTION_MAX": "4",
            "DIGEST_DEFAULT_SECTION": "Elsewhere",
            "DIGEST_MIN_ITEMS": "2",
            "DIGEST_MAX_AGE": "3d",
        },
    )
    assert loaded.recency_half_life == timedelta(hours=12)
    assert loaded.source_weight("example wire") == 0.5 and loaded.source_weight("x") == 1.0
    assert (loaded.max_per_source, loaded.section_max, loaded.min_items) == (3, 4, 2)
    assert loaded.sections == ("World", "Business") and loaded.default_section == "Elsewhere"
    assert loaded.max_age == timedelta(days=3)
    with pytest.raises(ConfigError, match="DIGEST_SOURCE_WEIGHTS"):
        load_settings(None, {"DIGEST_SOURCE_WEIGHTS": "Blog"})
    with pytest.raises(ConfigError, match="DIGEST_MIN_ITEMS"):
        load_settings(None, {"DIGEST_MIN_ITEMS": "0"})


def test_only_what_the_edition_shows_is_read_whole(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read whole, and choose highlights for, the stories placed, not every candidate."""
    articles = {a.id: a for a in (make(n, hours=n / 2) for n in range(300))}
    candidates = [
        Candidate(a.id, a.source, a.source_name, a.title, a.published, article_signature(a))
        for a in articles.values()
    ]
    read: list[str] = []

    def load(ids: Sequence[str]) -> dict[str, Article]:
        read.extend(ids)
        return {i: articles[i] for i in ids}

    chosen: list[str] = []

    def counting(article: Article, k: int, shown: frozenset[str] = frozenset()) -> Any:
        chosen.append(article.id)
        return choose_highlights(article, k, shown)

    monkeypatch.setattr(select_module, "choose_highlights", counting)
    edition = select(settings, candidates, "e", NOW, load=load).edition
    assert edition is not None and len(edition.items) == settings.max_items == 10
    assert chosen == [item.article.id for item in edition.items]
    # One batch of stories read ahead while the edition filled up, and the texts of the
    # candidate pairs of near-duplicates (these bodies are alike), not all 300.
    pairs = candidate_pairs([c.signature or b"" for c in candidates])
    paired = {candidates[i].id for pair in pairs for i in pair}
    ahead = {c.id for c in candidates[: select_module.LOAD_AHEAD]}
    assert set(read) == ahead | paired and len(read) == len(set(read)) < 300
