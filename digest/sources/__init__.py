"""Source readers behind one registry: each turns a file or a feed URL into Articles.

A reader raises SourceError for a source it cannot read; `read_sources` reports that
source and goes on with the rest, so one broken source never stops a run.

Feed URLs are fetched by a few threads at once (FetchOptions.concurrency), all through
one connection pool; their answers are parsed, and every result handed out, in the
order of DIGEST_SOURCES, so what a run stores and reports never depends on which
server answered first.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from digest.errors import SourceError
from digest.models import FileRecord, Skipped, SourceHealth
from digest.sources import feed, jsonfeed, markdown, text
from digest.sources.base import MAX_FILE_BYTES, Document, SourceResult, read_capped
from digest.sources.connection import Pool
from digest.sources.fetch import FetchError, FetchOptions, Response, fetch, redact

__all__ = [
    "READERS",
    "Document",
    "SourceMemory",
    "SourceResult",
    "expand",
    "is_url",
    "read_path",
    "read_sources",
]

logger = logging.getLogger(__name__)

Reader = Callable[[Document], SourceResult]

# A file modified within this long of its last check may have changed without its mtime
# showing it (coarse file-system clocks), so it is hashed again instead of trusted.
_RACY_NS = 2_000_000_000
# How many feed fetches, per fetch thread, may be started before the reader takes them.
_AHEAD = 4


def _read_text(doc: Document) -> SourceResult:
    path = doc.path or Path(doc.where)
    articles, skipped = text.read_text(path, text.decode(path, doc.data))
    return SourceResult(articles, skipped, where=doc.where)


# Keyed by file suffix; a folder yields every file whose suffix has a reader.
READERS: dict[str, Reader] = {
    ".txt": _read_text,
    ".md": markdown.read,
    ".markdown": markdown.read,
    ".json": jsonfeed.read,
    ".xml": feed.read,
    ".rss": feed.read,
    ".atom": feed.read,
    ".rdf": feed.read,
}


@dataclass
class SourceMemory:
    """What the store remembers of the sources: file fingerprints and per-source health."""

    files: dict[str, FileRecord] = field(default_factory=dict)
    health: dict[str, SourceHealth] = field(default_factory=dict)


def is_url(spec: str) -> bool:
    """Return whether a DIGEST_SOURCES entry is a URL rather than a path."""
    return "://" in spec


def expand(spec: str) -> tuple[list[Path], list[Skipped]]:
    """Return the files a DIGEST_SOURCES entry names (a file, a folder or a glob)."""
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        files = [p for p in matches if p.is_file() and p.suffix.lower() in READERS]
        if not files:
            return [], [Skipped(spec, "the pattern matches no readable file")]
        return files, []
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in READERS and not p.name.startswith(".")
        )
        return files, []
    if path.is_file():
        if path.suffix.lower() not in READERS:
            known = ", ".join(sorted(READERS))
            return [], [Skipped(str(path), f"no reader for '{path.suffix}' files (known: {known})")]
        return [path], []
    return [], [Skipped(spec, "no such file or folder")]


def _document(path: Path, data: bytes, mtime_ns: int, where: str = "") -> Document:
    return Document(
        where=where or str(path.resolve()),
        data=data,
        mtime=datetime.fromtimestamp(mtime_ns / 1e9, UTC),
        path=path,
    )


def read_path(path: Path, max_bytes: int = MAX_FILE_BYTES) -> SourceResult:
    """Read one file with the reader its suffix names, if it holds at most max_bytes."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{path}: no reader for '{path.suffix}' files")
    try:
        stat = path.stat()
        data = read_capped(path, max_bytes, stat.st_size)
        mtime_ns = stat.st_mtime_ns
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror or err}") from err
    return reader(_document(path, data, mtime_ns))


def read_sources(
    specs: Iterable[str],
    memory: SourceMemory | None = None,
    options: FetchOptions | None = None,
    now: datetime | None = None,
    interval: timedelta = timedelta(0),
    max_file_bytes: int = MAX_FILE_BYTES,
) -> Iterator[SourceResult]:
    """Read every source; a broken one becomes a Skipped entry, never an exception.

    With memory (what the store recorded last time) unchanged files are not parsed
    again, feed URLs are fetched with conditional GET and not before interval has passed.
    A local file larger than max_file_bytes is skipped unread. Results come in the order
    of specs; feeds further down are being fetched meanwhile.
    """
    memory = memory or SourceMemory()
    now = now or datetime.now(UTC)
    options = options or FetchOptions()
    specs = list(specs)
    urls = [spec for spec in specs if is_url(spec)]
    if not urls:
        yield from _read_all(specs, memory, max_file_bytes, None)
        return
    workers = max(1, min(options.concurrency, len(urls)))
    with Pool() as pool, ThreadPoolExecutor(workers, thread_name_prefix="fetch") as threads:
        fetch_one = partial(
            _fetch_url, memory=memory, options=options, now=now, interval=interval, pool=pool
        )
        # Answers are parsed in order, so fetched ones wait in memory behind a slow feed:
        # four times the threads lets the others go on meanwhile, and bounds that memory.
        ahead = _Ahead(urls, workers * _AHEAD, lambda url: threads.submit(fetch_one, url))
        try:
            yield from _read_all(specs, memory, max_file_bytes, ahead)
        finally:
            ahead.cancel()


def _read_all(
    specs: list[str], memory: SourceMemory, max_file_bytes: int, ahead: _Ahead | None
) -> Iterator[SourceResult]:
    for spec in specs:
        if is_url(spec):
            assert ahead is not None  # made whenever specs hold a URL
            future = ahead.next()
            yield _guarded(spec, redact(spec), partial(_finish_url, spec, future))
            continue
        paths, problems = expand(spec)
        for problem in problems:
            logger.warning("%s: skipped: %s", problem.where, problem.reason)
            yield SourceResult(
                skipped=[problem], spec=spec, where=problem.where, error=problem.reason
            )
        for path in paths:
            yield _guarded(spec, str(path), partial(_read_file, path, memory, max_file_bytes))


# What fetching a feed URL gives: its answer, or a result that needs no parsing.
_Fetched = Response | SourceResult


class _Ahead:
    """Feed fetches started ahead of the reader, at most limit of them not yet taken."""

    def __init__(
        self, urls: list[str], limit: int, start: Callable[[str], Future[_Fetched]]
    ) -> None:
        self._waiting = deque(urls)
        self._started: deque[Future[_Fetched]] = deque()
        self._limit = limit
        self._start = start
        self._top_up()

    def _top_up(self) -> None:
        while self._waiting and len(self._started) < self._limit:
            self._started.append(self._start(self._waiting.popleft()))

    def next(self) -> Future[_Fetched]:
        """Return the fetch of the next URL in order, and start another one."""
        future = self._started.popleft()
        self._top_up()
        return future

    def cancel(self) -> None:
        """Drop the fetches not started yet (the reader stopped early)."""
        self._waiting.clear()
        for future in self._started:
            future.cancel()


def _guarded(spec: str, where: str, read: Callable[[], SourceResult]) -> SourceResult:
    """Run one source's read; turn any failure into a result naming source and reason."""
    try:
        result = read()
    except SourceError as err:
        reason = _reason(err, where)
        logger.warning("%s: %s", where, reason)
        result = SourceResult(skipped=[Skipped(where, reason)], where=where, error=reason)
        if isinstance(err, FetchError):
            result.http_status = err.status
    except Exception as err:
        # A reader bug or a library failing on odd input must not stop the other sources.
        logger.exception("%s: unexpected failure while reading", where)
        reason = f"unexpected failure: {type(err).__name__}: {err}"
        result = SourceResult(skipped=[Skipped(where, reason)], where=where, error=reason)
    result.spec = spec
    for item in result.skipped if result.ok else ():
        logger.info("%s: left out: %s", item.where, item.reason)
    return result


def _read_file(path: Path, memory: SourceMemory, max_bytes: int = MAX_FILE_BYTES) -> SourceResult:
    """Read one local file, or reuse what it gave last time when it is unchanged."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{path}: no reader for '{path.suffix}' files")
    key = str(path.resolve())
    try:
        stat = path.stat()
        known = memory.files.get(key)
        if (
            known is not None
            and known.size == stat.st_size
            and known.mtime_ns == stat.st_mtime_ns
            and stat.st_mtime_ns < known.checked_ns - _RACY_NS
        ):
            return SourceResult(skipped=list(known.skipped), where=key, unchanged=known.articles)
        data = read_capped(path, max_bytes, stat.st_size)
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror or err}") from err
    digest = hashlib.sha256(data).hexdigest()
    checked = time.time_ns()
    if known is not None and known.sha256 == digest:
        record = replace(known, size=stat.st_size, mtime_ns=stat.st_mtime_ns, checked_ns=checked)
        return SourceResult(
            skipped=list(known.skipped), where=key, unchanged=known.articles, record=record
        )
    result = reader(_document(path, data, stat.st_mtime_ns, key))
    result.record = FileRecord(
        path=key,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=digest,
        checked_ns=checked,
        articles=len(result.articles),
        skipped=tuple(result.skipped),
    )
    return result


def _fetch_url(
    url: str,
    *,
    memory: SourceMemory,
    options: FetchOptions,
    now: datetime,
    interval: timedelta,
    pool: Pool,
) -> _Fetched:
    """Fetch a feed URL (in a fetch thread), unless it was tried within interval."""
    # Messages, logs and stored articles name the feed without any credential in its URL.
    shown = redact(url)
    if not url.lower().startswith(("http://", "https://")):
        raise SourceError(f"{shown}: only http:// and https:// URLs can be read")
    known = memory.health.get(url)
    if known and known.last_attempt and interval and now - known.last_attempt < interval:
        logger.info("%s: fetched %s ago; not due yet", shown, now - known.last_attempt)
        return SourceResult(where=shown, not_due=True, unchanged=known.item_count)
    etag = known.etag if known else None
    modified = known.last_modified if known else None
    response = fetch(url, options, etag, modified, pool=pool)
    if response.not_modified:
        logger.info("%s: not modified since the last fetch", shown)
        return SourceResult(
            where=shown,
            unchanged=known.item_count if known else 0,
            http_status=304,
            etag=response.etag or etag,
            last_modified=response.last_modified or modified,
        )
    return response


def _finish_url(url: str, fetching: Future[_Fetched]) -> SourceResult:
    """Read the feed a fetch thread brought back (in the reader's thread, in order)."""
    fetched = fetching.result()
    if isinstance(fetched, SourceResult):
        return fetched
    response = fetched
    shown = redact(url)
    doc = Document(
        where=shown, data=response.data, base_url=response.url, content_type=response.content_type
    )
    json_type = "json" in response.content_type.lower()
    reader = jsonfeed.read if json_type or jsonfeed.looks_like(response.data) else feed.read
    try:
        result = reader(doc)
    except SourceError as err:
        # Keep the status: "HTTP 200 but an HTML page" is worth seeing in the health table.
        raise FetchError(_reason(err, shown), status=response.status) from None
    result.http_status = response.status
    result.etag = response.etag
    result.last_modified = response.last_modified
    return result


def _reason(err: SourceError, where: str | Path) -> str:
    """Strip the path prefix a reader put in front of its message."""
    message = str(err)
    for prefix in (f"{where}: ", f"{Path(str(where)).resolve()}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
