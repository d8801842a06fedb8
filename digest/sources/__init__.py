"""Source readers behind one registry: each turns a file into Articles.

A reader raises SourceError for a file it cannot read; `read_sources` reports that file
and goes on with the rest, so one broken source never stops a run.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from digest.errors import SourceError
from digest.models import Article, Skipped
from digest.sources import text

logger = logging.getLogger(__name__)


@dataclass
class SourceResult:
    """Articles a reader found in one source, and what it left out with reasons."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


Reader = Callable[[Path], SourceResult]


def _read_text(path: Path) -> SourceResult:
    articles, skipped = text.read_file(path)
    return SourceResult(articles, skipped)


# Keyed by file suffix; a folder yields every file whose suffix has a reader.
READERS: dict[str, Reader] = {".txt": _read_text}


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


def read_path(path: Path) -> SourceResult:
    """Read one file with the reader its suffix names."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{path}: no reader for '{path.suffix}' files")
    return reader(path)


def read_sources(specs: tuple[str, ...]) -> Iterator[SourceResult]:
    """Read every source; a broken one becomes a Skipped entry, never an exception."""
    for spec in specs:
        paths, problems = expand(spec)
        for problem in problems:
            logger.warning("%s: skipped: %s", problem.where, problem.reason)
            yield SourceResult(skipped=[problem])
        for path in paths:
            try:
                result = read_path(path)
            except SourceError as err:
                logger.warning("%s", err)
                yield SourceResult(skipped=[Skipped(str(path), _reason(err, path))])
                continue
            for item in result.skipped:
                logger.info("%s: left out: %s", item.where, item.reason)
            yield result


def _reason(err: SourceError, path: Path) -> str:
    """Strip the path prefix a reader put in front of its message."""
    message = str(err)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
