"""The health of the configured sources as rows for `digest sources`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from digest.config import Settings
from digest.models import SourceHealth
from digest.sources.fetch import redact
from digest.sources.health import kind
from digest.store import Store, store_exists


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def health_rows(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Return one row per DIGEST_SOURCES entry with what the store knows of it."""
    now = now or datetime.now(UTC)
    known: dict[str, SourceHealth] = {}
    # Before the first run there is no store: every source is "never read".
    if store_exists(settings.db):
        with Store(settings.db, readonly=True) as store:
            known = store.articles.source_health()
    rows = []
    for spec in settings.sources:
        health = known.get(spec) or SourceHealth(key=spec, kind=kind(spec))
        if health.last_attempt is None:
            state = "never read"
        elif health.failing_since is not None:
            days = (now - health.failing_since).days
            state = f"failing {days} d" if days else "failing"
        else:
            state = "ok"
        rows.append(
            {
                "source": redact(spec),
                "kind": health.kind,
                "state": state,
                "last_attempt": _iso(health.last_attempt),
                "last_success": _iso(health.last_success),
                "http_status": health.http_status,
                "items": health.item_count,
                "last_error": health.last_error,
                "last_warning": health.last_warning,
                "failing_since": _iso(health.failing_since),
            }
        )
    return rows


def _short_time(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


def health_table(rows: list[dict[str, Any]], shown: Callable[[str], str] = str) -> str:
    """Format rows as a plain-text table, the problem under each failing source."""
    header = ("SOURCE", "STATE", "LAST ATTEMPT", "LAST SUCCESS", "HTTP", "ITEMS")
    cells = [
        (
            shown(row["source"]),
            row["state"],
            _short_time(row["last_attempt"]),
            _short_time(row["last_success"]),
            str(row["http_status"] or "-"),
            str(row["items"]),
        )
        for row in rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row, cell in zip(rows, cells, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if row["last_error"]:
            # Each problem may start with a file's path: show it as the user wrote it.
            parts = (shown(part) for part in row["last_error"].split("; "))
            lines.append(f"  error: {'; '.join(parts)}")
        if row["last_warning"]:
            lines.append(f"  warning: {row['last_warning']}")
    if not rows:
        lines.append("(no sources configured: set DIGEST_SOURCES)")
    return "\n".join(lines)
