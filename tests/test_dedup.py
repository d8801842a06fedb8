"""One item per story: near-duplicates found with MinHash and LSH, merged with links."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest import dedup, pipeline
from digest.config import Settings
from digest.dedup import article_signature, duplicate_groups, jaccard, merge_duplicates, shingles
from digest.models import Article

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
STORY = (
    "The harbour authority approved a plan on Tuesday to deepen the main shipping channel, "
    "allowing larger container ships to dock at the eastern terminal from next year. "
    "The work will cost about 40 million euros and take eighteen months, officials said, "
    "and local fishing crews will be paid for the weeks their boats cannot leave port."
)
OTHER = (
    "A local theatre company will stage a new adaptation of a classic novel this winter, "
    "with a cast of young actors from the city's drama school and music written for the "
    "production by a composer who grew up in the old town."
)


def write(folder: Path, name: str, title: str, body: str, when: datetime) -> Path:
    """Write a seed-format article whose file time is when (which does not date it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_shingles_and_jaccard() -> None:
    """Measure overlap on word shingles, case and punctuation aside."""
    a = shingles("The ship docked at noon today.")
    assert a == shingles("the SHIP docked, at noon today")
    assert jaccard(a, a) == 1.0 and jaccard(a, shingles("Nothing in common here at all")) == 0.0
    assert jaccard(set(), a) == 0.0


def test_groups_find_reposts_and_keep_distinct_stories() -> None:
    """Group a re-post with a new title and a light edit; leave other stories alone."""
    repost = "Channel plan approved\n" + STORY.replace("Tuesday", "Tuesday evening")
    groups = duplicate_groups(["Harbour\n" + STORY, OTHER, repost, "", "x"])
    assert groups == [[0, 2]]


def test_many_random_articles_have_no_false_merges() -> None:
    """Merge nothing among 2,000 unrelated texts, and find each planted copy."""
    rng = random.Random(7)
    vocab = [f"w{n}" for n in range(5000)]
    texts = [" ".join(rng.choices(vocab, k=60)) for _ in range(2000)]
    texts += [texts[n] + " updated" for n in range(0, 2000, 400)]
    groups = duplicate_groups(texts)
    assert sorted(groups) == [[n, 2000 + i] for i, n in enumerate(range(0, 2000, 400))]


def test_merge_keeps_the_first_version_and_links_the_others() -> None:
    """Keep the best-ranked version and list the others, in order."""
    first = Article(id="a", source="/wire", title="Harbour", paragraphs=(STORY,))
    second = Article(id="b", source="/herald", title="Channel", paragraphs=(STORY,))
    third = Article(id="c", source="/culture", title="Theatre", paragraphs=(OTHER,))
    assert merge_duplicates([first, third, second]) == [(first, (second,)), (third, ())]


def test_two_sources_one_item_also_in(settings: Settings, tmp_path: Path) -> None:
    """Show one story from two sources as one item with 'Also in', and use both up."""
    root = tmp_path / "feeds"
    configured = replace(settings, sources=(str(root),))
    # The herald's version is seen two hours before the wire's, so it ranks lower.
    write(
        root / "herald",
        "channel.txt",
        "Bigger ships for the eastern terminal",
        STORY.replace("officials said", "a spokesman said"),
        NOW - timedelta(hours=2),
    )
    pipeline.ingest_only(configured, NOW - timedelta(hours=2))
    write(root / "wire", "harbour.txt", "Harbour channel to be deepened", STORY, NOW)
    write(root / "culture", "theatre.txt", "New stage adaptation", OTHER, NOW)
    result = pipeline.run_edition(configured, NOW)
    assert result.edition is not None and result.rendered is not None
    items = result.edition.items
    assert len(items) == 2
    (merged,) = [i for i in items if i.also_in]
    assert merged.article.source_name == "wire"
    assert [a.source_name for a in merged.also_in] == ["herald"]
    assert "Also in: herald" in result.rendered.text
    assert "Also in:" in result.rendered.html
    again = pipeline.run_edition(configured, NOW + timedelta(hours=1))
    assert again.edition is None


def test_a_repost_of_a_sent_story_is_left_out(settings: Settings, tmp_path: Path) -> None:
    """Leave out a later re-post of a story an edition already carried, but not an update."""
    root = tmp_path / "feeds"
    original = write(root / "wire", "harbour.txt", "Harbour channel to be deepened", STORY, NOW)
    configured = replace(settings, sources=(str(root),))
    assert pipeline.run_edition(configured, NOW).edition is not None
    later = NOW + timedelta(hours=5)
    write(root / "herald", "channel.txt", "Bigger ships for the eastern terminal", STORY, later)
    assert pipeline.run_edition(configured, later).edition is None
    update = "A second dredger will join the work in the summer to keep the schedule."
    write(
        root / "wire", original.name, "Harbour channel to be deepened", STORY + " " + update, later
    )
    result = pipeline.run_edition(configured, later + timedelta(hours=1))
    assert result.edition is not None
    assert [i.article.source_name for i in result.edition.items] == ["wire"]


def test_a_run_imports_no_scipy() -> None:
    """Start a run without scipy, which the earlier MinHash library's LSH module imported."""
    code = (
        "import sys, digest.pipeline;"
        " print(sorted(m for m in ('scipy', 'datasketch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_signatures_are_compact_and_stable() -> None:
    """Make 256 bytes a story, the same in every process, and none for a text without words."""
    signature = article_signature(
        Article(id="a", source="/s", title="Harbour", paragraphs=(STORY,))
    )
    assert len(signature) == 256 and signature == dedup.signature("Harbour\n" + STORY)
    text = "Harbour\n" + STORY
    code = f"from digest.dedup import signature; print(signature({text!r}).hex())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == signature.hex()
    assert dedup.signature("...") == b""
