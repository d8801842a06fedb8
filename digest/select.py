"""Which articles make the edition: those not in an earlier one, newest first, capped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from digest.config import Settings
from digest.highlights import choose_highlights
from digest.models import Article, Edition, Item, Section

logger = logging.getLogger(__name__)


def select_edition(
    settings: Settings, eligible: Sequence[Article], edition_id: str, now: datetime
) -> Edition | None:
    """Build the edition from eligible articles (newest first), or None if there are none.

    Articles beyond DIGEST_MAX_ITEMS are left out of this edition only: they stay
    eligible for the next one.
    """
    if not eligible:
        return None
    chosen = list(eligible[: settings.max_items])
    if len(eligible) > len(chosen):
        logger.info(
            "%d articles wait for a later edition (DIGEST_MAX_ITEMS=%d)",
            len(eligible) - len(chosen),
            settings.max_items,
        )
    items = tuple(
        Item(article=a, highlights=choose_highlights(a, settings.highlights)) for a in chosen
    )
    local = now.astimezone(settings.zone)
    return Edition(
        id=edition_id,
        title=settings.title,
        date=local.date(),
        created=now,
        sections=(Section(title="", items=items),),
    )
