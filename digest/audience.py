"""Which sections each subscriber gets, and one message template per distinct set.

A subscriber's topics name sections (DIGEST_SECTIONS, or the default section). Someone
without topics gets the whole edition; someone with topics gets the sections they name,
and nothing when the edition has none of them. An edition without titled sections has
nothing to choose from, so everyone gets it whole. Each distinct set of sections is
rendered and inlined once, the first time a subscriber needs it, and kept in the store so
that a resumed send sends the same.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from digest.config import Settings
from digest.mail import MessageTemplate, RenderedContent
from digest.render import render_edition
from digest.store import Store

logger = logging.getLogger(__name__)

# The whole edition: what subscribers without topics get.
WHOLE: tuple[str, ...] | None = None


def sections_for(titles: Sequence[str], topics: Sequence[str]) -> tuple[str, ...] | None:
    """Return the section titles topics pick from titles, in edition order.

    None means the whole edition (no topics, no titled sections, or topics naming every
    section); an empty tuple means none of the topics is in this edition.
    """
    if not topics or not any(titles):
        return WHOLE
    wanted = {" ".join(t.split()).casefold() for t in topics}
    picked = tuple(t for t in titles if " ".join(t.split()).casefold() in wanted)
    return WHOLE if len(picked) == len(titles) else picked


class Templates:
    """The message templates of one edition, one per section set, built on first use."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        edition_id: str,
        whole: MessageTemplate,
        make: Callable[[RenderedContent], MessageTemplate],
    ) -> None:
        self.settings = settings
        self.edition_id = edition_id
        self._make = make
        self._edition = store.editions.model(edition_id)
        # An edition made by an older version was not kept whole: it can only go whole.
        self.titles = tuple(s.title for s in self._edition.sections) if self._edition else ()
        self._built: dict[tuple[str, ...] | None, MessageTemplate] = {WHOLE: whole}
        self._lock = threading.Lock()

    def sections(self, topics: Sequence[str]) -> tuple[str, ...] | None:
        """Return the sections of this edition that topics pick; see sections_for."""
        return sections_for(self.titles, topics)

    def get(self, store: Store, sections: tuple[str, ...] | None) -> MessageTemplate:
        """Return the template for sections (None: the whole edition)."""
        found = self._built.get(sections)
        if found is not None:
            return found
        with self._lock:
            found = self._built.get(sections)
            if found is None:
                found = self._make(self._content(store, sections))
                self._built[sections] = found
            return found

    def _content(self, store: Store, sections: tuple[str, ...] | None) -> RenderedContent:
        if sections is None or self._edition is None:
            raise ValueError("the whole edition's template is built by the caller")
        kept = store.editions.variant(self.edition_id, sections)
        if kept is not None:
            return kept
        chosen = tuple(s for s in self._edition.sections if s.title in sections)
        rendered = render_edition(self.settings, replace(self._edition, sections=chosen))
        store.editions.save_variant(self.edition_id, sections, rendered, datetime.now(UTC))
        logger.info(
            "edition %s: rendered the sections %s for the subscribers who chose them",
            self.edition_id,
            ", ".join(sections),
        )
        return rendered
