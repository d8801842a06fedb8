"""Per-source health: each DIGEST_SOURCES entry's last attempt, success, status and error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from digest.models import SourceHealth
from digest.sources.base import SourceResult
from digest.sources.fetch import redact

# How many problems one source's last_error lists before it says "and N more".
_SHOWN_ERRORS = 3


def kind(spec: str) -> str:
    """Return what sort of entry spec is: url, glob, folder or file."""
    if "://" in spec:
        return "url"
    if any(ch in spec for ch in "*?["):
        return "glob"
    return "folder" if Path(spec).is_dir() else "file"


@dataclass
class _Tally:
    attempted: bool = False
    read: int = 0
    items: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: int | None = None
    etag: str | None = None
    last_modified: str | None = None


class HealthTracker:
    """Fold one run's source results into a SourceHealth per DIGEST_SOURCES entry."""

    def __init__(
        self, specs: Iterable[str], previous: dict[str, SourceHealth], now: datetime
    ) -> None:
        self.previous = previous
        self.now = now
        self.tallies = {spec: _Tally() for spec in specs}

    def add(self, result: SourceResult) -> None:
        """Count one result against the entry it came from."""
        tally = self.tallies.setdefault(result.spec, _Tally())
        if result.not_due:
            return
        tally.attempted = True
        if result.http_status is not None:
            tally.status = result.http_status
        if result.ok:
            tally.read += 1
            tally.items += len(result.articles) + result.unchanged
            tally.etag = result.etag or tally.etag
            tally.last_modified = result.last_modified or tally.last_modified
        else:
            several = result.where and result.where not in (result.spec, redact(result.spec))
            prefix = f"{result.where}: " if several else ""
            tally.errors.append(f"{prefix}{result.error}")
        tally.warnings.extend(result.warnings)

    def records(self) -> list[SourceHealth]:
        """Return the new health of every entry this run attempted."""
        out = []
        for spec, tally in self.tallies.items():
            previous = self.previous.get(spec)
            if not tally.attempted and previous is not None and previous.last_attempt:
                continue  # not due (DIGEST_FETCH_INTERVAL): nothing new to say
            failed = bool(tally.errors) and tally.read == 0
            error = None
            if tally.errors:
                error = "; ".join(tally.errors[:_SHOWN_ERRORS])
                if len(tally.errors) > _SHOWN_ERRORS:
                    error += f" (and {len(tally.errors) - _SHOWN_ERRORS} more)"
            keep = previous if failed and previous is not None else None
            out.append(
                SourceHealth(
                    key=spec,
                    kind=kind(spec),
                    last_attempt=self.now,
                    last_success=(previous.last_success if previous else None)
                    if failed
                    else self.now,
                    http_status=tally.status,
                    item_count=keep.item_count if keep else tally.items,
                    last_error=error,
                    last_warning="; ".join(tally.warnings[:_SHOWN_ERRORS]) or None,
                    failing_since=((previous.failing_since if previous else None) or self.now)
                    if failed
                    else None,
                    # Validators change only with a successful read: after a failed parse
                    # the next fetch must get the whole feed again, not a 304.
                    etag=keep.etag if keep else tally.etag,
                    last_modified=keep.last_modified if keep else tally.last_modified,
                )
            )
        return out


def failing_for(
    records: Iterable[SourceHealth], now: datetime, days: int
) -> tuple[SourceHealth, ...]:
    """Return the sources that have failed without a success for at least days."""
    limit = timedelta(days=days)
    return tuple(
        r for r in records if r.failing_since is not None and now - r.failing_since >= limit
    )
