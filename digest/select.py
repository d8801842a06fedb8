"""Which articles make the edition: new ones, junk dropped, one item per story, ranked.

Order of the steps: too old and junk are dropped for good (with a logged reason);
near-duplicates are merged into the best-ranked version; then the caps (per source, per
section, DIGEST_MAX_ITEMS) leave the rest eligible for a later edition.

From the store, the candidates come judged: `assess` ran once when each version was
stored, the query left junk and old articles out, and each candidate is a few columns
with its signature. Whole articles are read only for candidate pairs of near-duplicates
and for the stories the edition looks at before it is full.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.config import Settings
from digest.dedup import (
    Shingles,
    article_signature,
    article_text,
    group_signatures,
    merge_groups,
    shingle_array,
)
from digest.highlights import choose_highlights, known_sentences, normalise
from digest.junk import article_junk_reason, is_link_only
from digest.models import (
    Article,
    Assessment,
    Candidate,
    Carried,
    Edition,
    Highlight,
    Item,
    Section,
    Skipped,
    Update,
)

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


# Stories whose articles are read from the store at once while the edition fills up.
LOAD_AHEAD = 64

# Reads whole articles by id (the store's Articles.load).
Loader = Callable[[Sequence[str]], Mapping[str, Article]]
# Says, of the articles with these ids, what an earlier edition showed (Editions.carried).
CarriedLoader = Callable[[Sequence[str]], Mapping[str, Carried]]


def assess(article: Article) -> Assessment:
    """Return what ingest stores once of an article version: junk verdict, signature."""
    return Assessment(article_junk_reason(article), article_signature(article))


def score(
    settings: Settings, article: Article | Candidate, now: datetime, when: datetime | None
) -> float:
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


class _Pool:
    """The articles a selection works on: candidates, read whole only when needed."""

    def __init__(self, load: Loader | None) -> None:
        self.load = load
        self.whole: dict[str, Article] = {}

    def articles(self, ids: Sequence[str]) -> dict[str, Article]:
        """Return the whole articles with these ids."""
        missing = [i for i in ids if i not in self.whole]
        if missing and self.load is not None:
            self.whole.update(self.load(missing))
        return {i: self.whole[i] for i in ids}

    def groups(self, entries: Sequence[Candidate]) -> list[list[int]]:
        """Return the near-duplicate groups among entries, by index."""

        def shingles_of(indices: Sequence[int]) -> dict[int, Shingles]:
            found = self.articles([entries[i].id for i in indices])
            return {i: shingle_array(article_text(found[entries[i].id])) for i in indices}

        signatures = [self.signature(e) for e in entries]
        return group_signatures(signatures, shingles_of)

    def signature(self, entry: Candidate) -> bytes:
        """Return the entry's stored signature, or make it (a store older than them)."""
        if entry.signature is not None:
            return entry.signature
        return article_signature(self.articles([entry.id])[entry.id])


def already_sent(
    pool: _Pool, candidates: Sequence[Candidate], sent: Sequence[Candidate]
) -> dict[str, Candidate]:
    """Map the id of each candidate that re-tells a story already sent to that story.

    An edited article matches its own earlier version: that is an update, not a re-post.
    """
    if not sent or not candidates:
        return {}
    both = [*sent, *candidates]
    repeats: dict[str, Candidate] = {}
    sent_ids = {a.id for a in sent}
    for group in pool.groups(both):
        earlier = [both[i] for i in group if i < len(sent)]
        if not earlier:
            continue
        for i in group:
            entry = both[i]
            if i >= len(sent) and entry.id not in sent_ids:
                repeats[entry.id] = earlier[0]
    return repeats


def _candidate(article: Article, first_seen: datetime | None = None) -> Candidate:
    when = article_time(article, first_seen)
    return Candidate(article.id, article.source, article.source_name, article.title, when, None)


def select(
    settings: Settings,
    eligible: Sequence[Article | tuple[Article, datetime] | Candidate],
    edition_id: str,
    now: datetime,
    shown: frozenset[str] = frozenset(),
    sent: Sequence[Article | Candidate] = (),
    load: Loader | None = None,
    carried: CarriedLoader | None = None,
) -> Selection:
    """Choose the edition's items from eligible articles (store order, newest first).

    eligible holds the store's candidates (judged at ingest, read whole through load
    only when needed), or whole articles, or (article, first seen) pairs to age
    articles without a date, which are judged here. shown holds highlight texts of the
    previous edition, not to be repeated; sent the articles recent editions carried,
    whose re-posts are left out. carried tells which candidates an earlier edition
    carried in an earlier version: those become updated items (see _updated).
    """
    pool = _Pool(load)
    dropped: list[Skipped] = []
    ranked: list[tuple[float, int, Candidate]] = []
    for n, entry in enumerate(eligible):
        if isinstance(entry, Candidate):
            candidate = entry
        else:
            article, first_seen = entry if isinstance(entry, tuple) else (entry, None)
            candidate = _candidate(article, first_seen)
            pool.whole[article.id] = article
        when = candidate.appeared
        if when is not None and now - when > settings.max_age:
            logger.debug("'%s' is older than DIGEST_MAX_AGE: no longer eligible", candidate.title)
            continue
        if not isinstance(entry, Candidate):
            reason = article_junk_reason(pool.whole[candidate.id])
            if reason:
                logger.info("%s: '%s' left out: %s", candidate.source, candidate.title, reason)
                dropped.append(Skipped(candidate.source, f"'{candidate.title[:60]}': {reason}"))
                continue
        weight = score(settings, candidate, now, when)
        if weight <= 0:
            continue
        ranked.append((weight, n, candidate))
    # Equal ranks (the same source weight and date) go by title, then store order, so
    # that an edition's order never depends on how its files happened to be read.
    ranked.sort(key=lambda entry: (-entry[0], entry[2].title.casefold(), entry[1]))
    in_order = [candidate for _, _, candidate in ranked]
    earlier: list[Candidate] = []
    for entry in sent:
        if isinstance(entry, Article):
            pool.whole.setdefault(entry.id, entry)
            earlier.append(_candidate(entry))
        else:
            earlier.append(entry)
    repeats = already_sent(pool, in_order, earlier)
    for candidate in in_order:
        if candidate.id in repeats:
            reason = f"the same story as '{repeats[candidate.id].title[:60]}', already sent"
            logger.info("%s: '%s' left out: %s", candidate.source, candidate.title, reason)
            dropped.append(Skipped(candidate.source, f"'{candidate.title[:60]}': {reason}"))
    kept = [c for c in in_order if c.id not in repeats]
    stories = merge_groups([c.title for c in kept], pool.groups(kept))

    per_source: Counter[str] = Counter()
    per_section: Counter[str] = Counter()
    chosen: dict[str, list[Item]] = {}
    waiting = 0
    for start in range(0, len(stories), LOAD_AHEAD):
        if sum(per_section.values()) >= settings.max_items:
            # Full: the rest wait, and are never read whole.
            waiting += len(stories) - start
            break
        window = stories[start : start + LOAD_AHEAD]
        whole = pool.articles([kept[i].id for head, rest in window for i in (head, *rest)])
        # A candidate is a version no edition carried: one that is known here went out
        # before, in another version.
        before = carried([kept[head].id for head, _ in window]) if carried is not None else {}
        for head, rest in window:
            article = whole[kept[head].id]
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
            link_only = is_link_only(article)
            was = before.get(article.id)
            update: Update | None = None
            if was is None:
                # A link-only item's few words ("Comments") are no highlight: title and link.
                highlights = (
                    () if link_only else choose_highlights(article, settings.highlights, shown)
                )
            else:
                found = _updated(settings, article, link_only, was, shown)
                if found is None:
                    reason = f"edited since edition {was.edition_id}, but adds nothing new"
                    logger.info("%s: '%s' left out: %s", article.source, article.title, reason)
                    dropped.append(Skipped(article.source, f"'{article.title[:60]}': {reason}"))
                    continue
                highlights, update = found
            per_source[article.source_name] += 1
            per_section[section] += 1
            others = tuple(whole[kept[i].id] for i in rest)
            chosen.setdefault(section, []).append(
                Item(article, highlights, others, link_only=link_only, update=update)
            )
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


def _updated(
    settings: Settings,
    article: Article,
    link_only: bool,
    earlier: Carried,
    shown: frozenset[str],
) -> tuple[tuple[Highlight, ...], Update] | None:
    """Return an edited article's highlights and what changed, or None if nothing did.

    Its highlights are only sentences the version readers saw did not have (added or
    changed since), and none an edition showed: what is new. An edit that brings neither
    one nor a new title (a counter in a link-only item, a new image) is no news: it is
    left out.
    """
    highlights: tuple[Highlight, ...] = ()
    if not link_only:
        old = shown | shown_texts(earlier.shown)
        if earlier.sentences is not None:
            old |= known_sentences(article, earlier.sentences)
        highlights = choose_highlights(article, settings.highlights, old)
    title = earlier.title if earlier.title and earlier.title != article.title else None
    if not highlights and title is None:
        return None
    return highlights, Update(earlier.edition_id, earlier.edition_date, title)


def shown_texts(texts: Sequence[str]) -> frozenset[str]:
    """Return highlight texts as choose_highlights compares them."""
    return frozenset(normalise(t) for t in texts)
