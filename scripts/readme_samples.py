"""Produce the sample outputs shown in README.md and docs/ by running the commands.

Each sample block in a Markdown file is a fenced block right after a marker line
`<!-- sample: NAME -->`. This script runs the commands behind every sample on a copy
of the bundled `seeds/`, in a throw-away folder, with the clock fixed at NOW (every
`datetime.now` in digest answers NOW; file times play no part in what is shown), and
writes what they print into the blocks:

    .venv/bin/python scripts/readme_samples.py           # rewrite the blocks
    .venv/bin/python scripts/readme_samples.py --check   # exit 1 if a block is stale

A few parts of an output differ between runs by nature (the seconds a send took and
its rate); the check ignores them, and the rewrite shows this run's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
# The real SMTP server with faults is shared with the tests.
sys.path.insert(0, str(ROOT / "tests"))

from smtpserver import Faults, Handler, SmtpServer  # noqa: E402

import digest  # noqa: E402
from digest.cli import main  # noqa: E402

NOW = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)
FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
MARKER = re.compile(r"^<!-- sample: (?P<name>[\w-]+) -->\n(?P<fence>```\w*)\n", re.MULTILINE)
# What differs from one run to the next: how long a send took and its rate.
VOLATILE = [re.compile(r"\d+(\.\d+)? s, \d+(\.\d+)?/s\)")]
# Where the settings file of the configuration sample is said to live.
SHOWN_HOME = "/srv/digest"
SUBSCRIBERS_CSV = """\
email,name,topics,timezone
ada@example.org,Ada Lovelace,"science,history",Europe/London
grace@example.org,Grace Hopper,navy,America/New_York
old@example.net,,,
not-an-address,,,
carol@example.org,Carol,,Mars/Olympus
"""

# A Markdown note, and one whose front matter is broken: a source with one bad file.
FESTIVAL = """\
---
title: Harbour festival announced
date: 2026-11-26T18:00:00+01:00
url: https://news.example.org/festival
tags: [town, festival]
---
The harbour festival returns in June, with boats and music.

• Dates: The festival runs for three days.
"""
BROKEN = "---\ntitle: Council meeting\ntags: [budget, roads\n---\nThe council meets on Monday.\n"


class _Frozen(datetime):
    """datetime whose now() is NOW: the clock every command in a sample reads."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        moment = cls.fromtimestamp(NOW.timestamp(), tz or UTC)
        return moment if tz is not None else moment.replace(tzinfo=None)


@contextlib.contextmanager
def frozen_clock() -> Iterator[None]:
    """Make every digest module that reads datetime.now read NOW instead.

    Only those modules: elsewhere a datetime made by the real class must still pass
    isinstance checks against the module's datetime.
    """
    # Every module first: a command may import one only when it runs.
    for info in pkgutil.walk_packages(digest.__path__, "digest."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
    patched = []
    for name, module in list(sys.modules.items()):
        ours = name == "digest" or name.startswith("digest.")
        source = getattr(module, "__file__", None) or ""
        if (
            ours
            and getattr(module, "datetime", None) is datetime
            and "datetime.now(" in Path(source).read_text(encoding="utf-8")
        ):
            patched.append(module)
            module.datetime = _Frozen  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.datetime = datetime  # type: ignore[attr-defined]


@dataclass
class Workspace:
    """A throw-away folder holding a copy of seeds/, where the commands run."""

    root: Path
    runner: CliRunner

    def digest(self, *args: str) -> str:
        """Run `digest args` here; return what it printed (stdout and stderr)."""
        with frozen_clock():
            result = self.runner.invoke(main, list(args), catch_exceptions=False)
        return result.output

    def shown(self, *args: str) -> str:
        """Return `$ digest args` and what it printed, as a terminal shows it."""
        return f"$ digest {' '.join(args)}\n{self.digest(*args)}"


@contextlib.contextmanager
def workspace() -> Iterator[Workspace]:
    """Make the folder, go into it with a clean environment, and clean up afterwards."""
    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        shutil.copytree(ROOT / "seeds", root / "seeds")
        for key in list(os.environ):
            if key.startswith(("DIGEST_", "SMTP_")):
                del os.environ[key]
        os.environ["COLUMNS"] = "100"
        os.chdir(root)
        try:
            yield Workspace(root, CliRunner())
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


def text_part_start(text: str, items: int = 2) -> str:
    """Return the text part up to its first items items, then an ellipsis."""
    lines = text.splitlines()
    # Each item is its title (one line or more, after a blank line), then its byline.
    bylines = [i for i, line in enumerate(lines) if line == "seeds"]
    if len(bylines) <= items:
        return text
    cut = max(i for i in range(bylines[items]) if not lines[i].strip()) + 1
    return "\n".join([*lines[:cut], "…"]) + "\n"


def produce() -> dict[str, str]:
    """Run every sample's commands; return each sample's text by name."""
    samples: dict[str, str] = {"performance": performance()}
    with workspace() as ws:
        samples["run"] = ws.digest("run")
        samples["run-again"] = ws.digest("run")
        text = (ws.root / "outbox" / NOW.strftime("%Y-%m-%d") / "digest.txt").read_text("utf-8")
        samples["text-part"] = text_part_start(text)
        samples["highlights"] = ws.shown("highlights", "seeds/bbc_business_004.txt") + ws.shown(
            "highlights", "--json", "seeds/bbc_business_004.txt"
        )
        samples["subscribers-csv"] = SUBSCRIBERS_CSV
        (ws.root / "subscribers.csv").write_text(SUBSCRIBERS_CSV, encoding="utf-8")
        samples["subscribers"] = ws.shown("subscribers", "import", "subscribers.csv") + ws.shown(
            "subscribers", "list"
        )
        faults = Faults(rcpt={"old@example.net": ["550 5.1.1 no such user"]})
        with SmtpServer(Handler(faults)) as server:
            (ws.root / ".env").write_text(
                "DIGEST_SECRET_KEY=a-long-random-secret-for-the-samples\n"
                # The preflight before a send wants public names, not example ones.
                "DIGEST_BASE_URL=https://news.harbourtown.org\n"
                "DIGEST_FROM=digest@harbourtown.org\n"
                f"SMTP_HOST=127.0.0.1\nSMTP_PORT={server.port}\nSMTP_SECURITY=none\n",
                encoding="utf-8",
            )
            samples["send"] = ws.shown("send") + ws.shown("deliveries")
        samples["status"] = ws.digest("status")
        samples["archive"] = ws.shown("archive", "--out", "site")
        bad = ws.root / "bad"
        bad.mkdir()
        (bad / ".env").write_text("DIGEST_MAX_ITEMS=ten\n", encoding="utf-8")
        os.chdir(bad)
        samples["config-error"] = ws.digest("run").replace(str(bad), SHOWN_HOME)
    with workspace() as ws:
        notes = ws.root / "notes"
        notes.mkdir()
        (notes / "festival.md").write_text(FESTIVAL, encoding="utf-8")
        (notes / "broken.md").write_text(BROKEN, encoding="utf-8")
        (ws.root / ".env").write_text("DIGEST_SOURCES=seeds,notes/*.md\n", encoding="utf-8")
        ws.digest("ingest")
        samples["sources"] = ws.shown("sources")
    with workspace() as ws:
        # The tests' DKIM key, so that the record shown stays the same from run to run.
        shutil.copy(ROOT / "tests" / "data" / "dkim-test.pem", ws.root / "dkim.pem")
        (ws.root / ".env").write_text(
            "DIGEST_FROM=Harbour Town News <digest@harbourtown.org>\n"
            "SMTP_HOST=smtp.harbourtown.org\n"
            "DIGEST_DKIM_KEY=dkim.pem\nDIGEST_DKIM_SELECTOR=digest2026\n",
            encoding="utf-8",
        )
        samples["records"] = ws.shown("check", "--records")
    return samples


def performance(path: Path = ROOT / "docs" / "performance.md") -> str:
    """Return the ratios and targeted figures of the last bench/run_all.py report."""
    if not path.is_file():
        return "(no docs/performance.md yet: run bench/run_all.py)\n"
    lines: list[str] = []
    runs = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.search(r"(\d+) runs?\b", line)
        if line.startswith("`bench/") and found:
            runs = found.group(1)
        cells = [c.strip() for c in line.strip("|").split("|")] if line.startswith("| ") else []
        if len(cells) != 5 or cells[0] in ("figure", "---"):
            continue
        name, median, spread, target, verdict = cells
        if target == "none set" and not median.endswith("×"):
            continue
        goal = "" if target == "none set" else f"; target {target}: {verdict.replace('**', '')}"
        lines.append(f"{name}: {median} ({spread} in {runs} runs){goal}")
    return "\n".join(lines) + "\n"


def blocks(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield each sample block's name and the span of its content in text."""
    for match in MARKER.finditer(text):
        start = match.end()
        end = text.index("\n```\n", start - 1) + 1
        yield match.group("name"), start, end


def comparable(text: str) -> str:
    """Return text with the parts that differ between runs blanked out."""
    for pattern in VOLATILE:
        text = pattern.sub("…", text)
    return text


def stale(samples: dict[str, str], files: tuple[Path, ...] = FILES) -> list[str]:
    """Return one line per block that does not match its sample, or names no sample."""
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for name, start, end in blocks(text):
            line = text.count("\n", 0, start) + 1
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{shown}:{line}: sample {name!r}"
            if name not in samples:
                problems.append(f"{where}: no such sample")
            elif comparable(text[start:end]) != comparable(samples[name]):
                problems.append(f"{where}: differs from what the commands print now")
    return problems


def rewrite(samples: dict[str, str], files: tuple[Path, ...] = FILES) -> list[Path]:
    """Write every sample into its blocks; return the files that changed."""
    changed = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        out, last = [], 0
        for name, start, end in blocks(text):
            out += [text[last:start], samples.get(name, text[start:end])]
            last = end
        new = "".join([*out, text[last:]])
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main_(argv: list[str], produce_samples: Callable[[], dict[str, str]] = produce) -> int:
    """Rewrite the sample blocks, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args(argv[1:])
    samples = produce_samples()
    if args.check:
        problems = stale(samples)
        for problem in problems:
            sys.stderr.write(problem + "\n")
        return 1 if problems else 0
    for path in rewrite(samples):
        sys.stdout.write(f"rewrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main_(sys.argv))
