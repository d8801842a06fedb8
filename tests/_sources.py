"""Helpers shared by the source tests: settings for a list of sources, sample files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from digest import pipeline
from digest.config import Settings, load_settings
from digest.models import IngestReport
from digest.store import Store

DATA = Path(__file__).resolve().parent / "data" / "sources"
NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def source_settings(tmp_path: Path, *sources: str | Path, **extra: str) -> Settings:
    """Return settings reading sources into a store in tmp_path, fetching at every run."""
    env = {
        "DIGEST_SOURCES": ",".join(str(s) for s in sources),
        "DIGEST_DB": str(tmp_path / "digest.db"),
        "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        "DIGEST_FETCH_INTERVAL": "0",
        "DIGEST_FETCH_TIMEOUT": "5",
    }
    env.update(extra)
    return load_settings(None, env)


def ingest(settings: Settings, now: datetime = NOW) -> IngestReport:
    """Run one ingest pass against the settings' store."""
    with Store(settings.db) as store:
        return pipeline.ingest(settings, store, now)
