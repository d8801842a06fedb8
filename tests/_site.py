"""Every page of the site, served by the real web server from stores made for the purpose.

Two servers: one whose store holds the seed edition, a subscriber and a pending sign-up
(the archive, an edition page and the reader's pages), and one whose store is empty, so
that its preview shows the seed edition as the next one. The clock is fixed, so that the
pages and tokens are the same on every run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from conftest import SEEDS
from webserver import running

from digest import pipeline
from digest.config import Settings, load_settings
from digest.models import Consent
from digest.store import Store
from digest.tokens import make_confirm_token, make_token
from digest.web import App

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
SECRET = "a-test-secret-that-is-long-enough-to-sign"
EDITION = NOW.date().isoformat()
# The pages axe and the layout checks visit, by name: every page a reader can reach.
PAGES = (
    "archive",
    "edition",
    "subscribe",
    "confirm",
    "preferences",
    "unsubscribe",
    "preview",
    "email",
)


def _settings(folder: Path, sources: Path) -> Settings:
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(sources),
            "DIGEST_DB": str(folder / "digest.db"),
            "DIGEST_OUTBOX": str(folder / "outbox"),
            "DIGEST_SECRET_KEY": SECRET,
            "DIGEST_SECTIONS": "World,Business",
        },
    )


def _seeds(folder: Path) -> Path:
    """Copy the bundled seeds into folder, dated NOW."""
    target = folder / "seeds"
    shutil.copytree(SEEDS, target)
    for path in target.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    return target


@contextmanager
def site_pages(folder: Path) -> Iterator[dict[str, str]]:
    """Serve every page; yield the URL of each by its name in PAGES."""
    seeds = _seeds(folder)
    published = _settings(folder / "published", seeds)
    fresh = _settings(folder / "fresh", seeds)
    result = pipeline.run_edition(published, NOW)
    assert result.edition is not None and result.edition.id == EDITION
    with Store(published.db) as store:
        store.subscribers.upsert("grace@example.org", "Grace Hopper", (), "", NOW)
        store.signups.request("ada@example.org", "Ada", (), "", Consent(), NOW)
        grace = store.subscribers.by_email("grace@example.org")
        ada = store.subscribers.by_email("ada@example.org")
    assert grace is not None and ada is not None
    list_id = published.list_id
    with ExitStack() as stack:
        apps = {}
        urls = {}
        for name, settings in (("published", published), ("fresh", fresh)):
            app = App(settings, clock=lambda: NOW)
            urls[name] = stack.enter_context(running(app))
            # Links in the pages point at the server that serves them.
            app.settings = replace(settings, base_url=urls[name])
            apps[name] = app
        site, preview = urls["published"], urls["fresh"]
        manage = make_token(SECRET, list_id, grace.id, "preferences")
        yield {
            "archive": f"{site}/archive/",
            "edition": f"{site}/archive/{EDITION}/",
            "subscribe": f"{site}/subscribe",
            "confirm": f"{site}/confirm/{make_confirm_token(SECRET, list_id, ada.id, NOW)}",
            "preferences": f"{site}/preferences/{manage}",
            "unsubscribe": f"{site}/unsubscribe/{make_token(SECRET, list_id, grace.id)}",
            "preview": f"{preview}/preview",
            "email": f"{preview}/preview/email.html",
        }
        for app in apps.values():
            app.signup.notices.join()
