"""Which articles make the edition: new ones, junk dropped, one item per story, ranked.

Order of the steps: too old and junk are dropped for good (with a logged reason);
near-duplicates are merged into the best-ranked version; then the caps (per source, per
section, DIGEST_MAX_ITEMS) leave the rest eligible for a later edition.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.config import Settings
from digest.dedup import article_text, duplicate_groups, merge_duplicates
from digest.highlights import choose_highlights, normalise
from digest.junk import article_junk_reason, is_link_only
from digest.models import Article, Edition, Item, Section, Skipped

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The edition made, or why none was; and what was left out with reasons."""

    edition: Edition | None
    reason: str = ""
    dropped: tuple[Skipped, ...] = ()


def article_time(article: Article, first_seen: datetime | None = None) -> datetime | None:
    """Return when an article appeared: its update, its publication, else first sight."""
    return article.updated or article.published or first_seen


def score(settings: Settings, article: Article, now: datetime, when: datetime | None) -> float:
    """Return the rank of an article: its source weight, halved per half-life of age."""
    weight = settings.source_weight(article.source_name)
    if when is None:
        return weight
    half_life = settings.recency_half_life.total_seconds()
    # A date in the future (a clock off, a scheduled post) counts as now, not as a bonus.
    age = max((now - when).total_seconds(), 0.0)
    return weight * 0.5 ** (age / half_life) if half_life > 0 else weight


def section_of(settings: Settings, article: Article) -> str:
    """Return the configured section an article belongs to, by tag or feed category."""
    if not settings.sections:
        return ""
    labels = {t.casefold() for t in article.tags} | {article.source_name.casefold()}
    return next((s for s in settings.sections if s.casefold() in labels), settings.default_section)


def junk(articles: Sequence[Article]) -> list[Skipped]:
    """Return the articles that are junk, each with why."""
    found = []
    for article in articles:
        reason = article_junk_reason(article)
        if reason:
            found.append(Skipped(article.source, f"'{article.title[:60]}': {reason}"))
    return found


def already_sent(candidates: Sequence[Article], sent: Sequence[Article]) -> dict[str, Article]:
    """Map the id of each candidate that re-tells a story already sent to that story.

    An edited article matches its own earlier version: that is an update, not a re-post.
    """
    if not sent or not candidates:
        return {}
    pool = [*sent, *candidates]
    repeats: dict[str, Article] = {}
    sent_ids = {a.id for a in sent}
    for group in duplicate_groups([article_text(a) for a in pool]):
        earlier = [pool[i] for i in group if i < len(sent)]
        if not earlier:
            continue
        for i in group:
            article = pool[i]
            if i >= len(sent) and article.id not in sent_ids:
                repeats[article.id] = earlier[0]
    return repeats


def select(
    settings: Settings,
    eligible: Sequence[Article | tuple[Article, datetime]],
    edition_id: str,
    now: datetime,
    shown: frozenset[str] = frozenset(),
    sent: Sequence[Article] = (),
) -> Selection:
    """Choose the edition's items from eligible articles (store order, newest first).

    eligible holds articles, or (article, first seen) pairs to age articles without a
    date. shown holds highlight texts of the previous edition, not to be repeated; sent
    the articles recent editions carried, whose re-posts are left out.
    """
    dropped: list[Skipped] = []
    ranked: list[tuple[float, int, Article]] = []
    for n, entry in enumerate(eligible):
        article, first_seen = entry if isinstance(entry, tuple) else (entry, None)
        when = article_time(article, first_seen)
        if when is not None and now - when > settings.max_age:
            logger.debug("'%s' is older than DIGEST_MAX_AGE: no longer eligible", article.title)
            continue
        reason = article_junk_reason(article)
        if reason:
            logger.info("%s: '%s' left out: %s", article.source, article.title, reason)
            dropped.append(Skipped(article.source, f"'{article.title[:60]}': {reason}"))
            continue
        weight = score(settings, article, now, when)
        if weight <= 0:
            continue
        ranked.append((weight, n, article))
    # Equal ranks (the same source weight and date) go by title, then store order, so
    # that an edition's order never depends on how its files happened to be read.
    ranked.sort(key=lambda entry: (-entry[0], entry[2].title.casefold(), entry[1]))
    repeats = already_sent([article for _, _, article in ranked], sent)
    for article_id, earlier in repeats.items():
        article = next(a for _, _, a in ranked if a.id == article_id)
        reason = f"the same story as '{earlier.title[:60]}', already sent"
        logger.info("%s: '%s' left out: %s", article.source, article.title, reason)
        dropped.append(Skipped(article.source, f"'{article.title[:60]}': {reason}"))
    stories = merge_duplicates([a for _, _, a in ranked if a.id not in repeats])

    per_source: Counter[str] = Counter()
    per_section: Counter[str] = Counter()
    chosen: dict[str, list[Item]] = {}
    waiting = 0
    for article, others in stories:
        section = section_of(settings, article)
        full = sum(per_section.values()) >= settings.max_items
        if (
            full
            or (
                settings.max_per_source
                and per_source[article.source_name] >= settings.max_per_source
            )
            or (settings.section_max and per_section[section] >= settings.section_max)
        ):
            waiting += 1
            continue
        per_source[article.source_name] += 1
        per_section[section] += 1
        # A link-only item's few words ("Comments") are no highlight: title and link.
        highlights = (
            () if is_link_only(article) else choose_highlights(article, settings.highlights, shown)
        )
        chosen.setdefault(section, []).append(Item(article, highlights, others))
    if waiting:
        logger.info(
            "%d stories wait for a later edition (caps on items, sources, sections)", waiting
        )

    count = sum(per_section.values())
    if count == 0:
        return Selection(None, "nothing new since the last edition", tuple(dropped))
    if count < settings.min_items:
        return Selection(
            None,
            f"only {count} new {'item is' if count == 1 else 'items are'} ready,"
            f" fewer than DIGEST_MIN_ITEMS={settings.min_items}",
            tuple(dropped),
        )
    order = [*settings.sections, settings.default_section] if settings.sections else [""]
    sections = tuple(Section(title=t, items=tuple(chosen[t])) for t in order if t in chosen)
    local = now.astimezone(settings.zone)
    edition = Edition(
        id=edition_id, title=settings.title, date=local.date(), created=now, sections=sections
    )
    return Selection(edition, "", tuple(dropped))


def shown_texts(texts: Sequence[str]) -> frozenset[str]:
    """Return highlight texts as choose_highlights compares them."""
    return frozenset(normalise(t) for t in texts)
