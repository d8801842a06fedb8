"""Editions built in code for the render and email-quality tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from digest.models import Article, Edition, Highlight, Item, Section

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)

_SENTENCES = (
    "The agreement sets out a timetable for talks on trade, transport and energy over "
    "the coming year, with a first review planned for the spring.",
    "Officials on both sides described the meeting as constructive and said working "
    "groups would meet again within a month to settle the remaining details.",
    "Analysts said the outcome depends on funding decisions still to be taken by the "
    "parliaments concerned, which may delay the first projects.",
)


def article(n: int, *, url: bool = True, image: bool = True, source: str = "") -> Article:
    """Return article number n with a title, highlights and, by default, a link and image."""
    return Article(
        id=f"a{n:03d}",
        source=f"https://news{n % 4}.example.org/feed.xml",
        title=f"Regional partners agree on a new framework for cooperation, part {n}",
        paragraphs=_SENTENCES,
        highlights=(
            Highlight(label="Timetable", text=_SENTENCES[0]),
            Highlight(text=_SENTENCES[1]),
            Highlight(text=_SENTENCES[2]),
        ),
        url=f"https://news{n % 4}.example.org/2026/11/28/story-{n}" if url else None,
        source_name=source or f"Example News {n % 4}",
        published=NOW,
        image=f"https://news{n % 4}.example.org/images/story-{n}.jpg" if image else None,
    )


def edition(items: int = 20, *, sections: bool = True, also_in: bool = True) -> Edition:
    """Return an edition of items items in two titled sections, some with other versions."""
    made = []
    for n in range(1, items + 1):
        others: tuple[Article, ...] = ()
        if also_in and n % 5 == 0:
            others = (article(100 + n, source="Other Wire"), article(200 + n, url=False))
        made.append(Item(article=article(n), highlights=article(n).highlights, also_in=others))
    half = (len(made) + 1) // 2
    parts = (
        (
            Section(title="World", items=tuple(made[:half])),
            Section(title="Business", items=tuple(made[half:])),
        )
        if sections
        else (Section(title="", items=tuple(made)),)
    )
    return Edition(
        id="2026-11-28",
        title="Daily Digest",
        date=date(2026, 11, 28),
        created=NOW,
        sections=parts,
    )
