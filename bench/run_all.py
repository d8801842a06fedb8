"""Run every benchmark several times and write docs/performance.md.

Every `bench/NAME.py` with a `measure(quick)` function is run (found, not listed here),
each run in a fresh process so that one run's memory and caches do not carry into the
next. The benches take turns, one run each per round, so that a change in the machine's
load spreads over all of them rather than landing on one. Each figure is reported as the
median of its runs with the lowest and highest beside it, and its target.

    .venv/bin/python bench/run_all.py [--runs 5] [--budget SECONDS] [--quick] [--out FILE]

--runs is how many runs each bench gets (at least 1). With --budget, no run is started
that would, going by the bench's slowest run so far, end after the budget; every bench
still runs once, and the file says how many runs each figure rests on.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def discover(folder: Path) -> list[Path]:
    """Return the bench scripts in folder that offer measure(), in name order."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_") or path.resolve() == Path(__file__).resolve():
            continue
        # A cheap look before importing: only modules that define measure() are benches.
        if "\ndef measure(" in path.read_text(encoding="utf-8"):
            found.append(path)
    return found


def run_once(path: Path) -> list[Figure]:
    """Import the bench at path and return the figures of one measure() call.

    Runs in the child process (see one_run); quick is read from the environment.
    """
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    figures = module.measure(quick=os.environ.get("BENCH_QUICK") == "1")
    assert all(isinstance(f, Figure) for f in figures), f"{path.name}: not a list of Figure"
    return list(figures)


@dataclass
class Runs:
    """Everything one bench gave over its runs."""

    path: Path
    runs: list[list[Figure]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    def summary(self) -> str:
        """Return the first line of the bench's docstring."""
        doc = ast.get_docstring(ast.parse(self.path.read_text(encoding="utf-8"))) or ""
        return doc.split("\n", 1)[0].strip()


def one_run(path: Path, quick: bool) -> tuple[list[Figure], float, str]:
    """Run measure() of the bench at path once in a fresh process; return its figures,
    the wall seconds the run took and, if it failed, the end of its error output."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "BENCH_QUICK": "1" if quick else "0"}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--child-out", out.name],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            return [], took, tail
        rows = json.loads(Path(out.name).read_text(encoding="utf-8"))
    return [Figure(**row) for row in rows], took, ""


def repeat(
    paths: Sequence[Path], runs: int, budget: float | None, quick: bool, log: bool = True
) -> list[Runs]:
    """Run each bench up to runs times, taking turns, within budget seconds if given."""
    results = [Runs(path) for path in paths]
    started = time.monotonic()
    for round_number in range(max(runs, 1)):
        for result in results:
            if result.error:
                continue
            if round_number and budget is not None:
                left = budget - (time.monotonic() - started)
                if max(result.seconds) > left:
                    continue
            figures, took, error = one_run(result.path, quick)
            result.seconds.append(took)
            if error:
                result.error = error
            else:
                result.runs.append(figures)
            if log:
                state = f"failed: {error}" if error else f"{took:.0f} s"
                print(f"{result.name}: run {round_number + 1}, {state}", file=sys.stderr)
    return results


def number(value: float, unit: str) -> str:
    """Return a value as the table shows it."""
    return f"{value:.4g}{unit}"


def table(result: Runs) -> list[str]:
    """Return the Markdown table of one bench's figures over its runs."""
    lines = [
        "| figure | median | min–max | target | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = [f.name for f in result.runs[0]]
    for i, name in enumerate(names):
        same = [run[i] for run in result.runs if len(run) > i and run[i].name == name]
        values = [f.value for f in same]
        first = same[0]
        middle = Figure(name, statistics.median(values), first.unit, first.target, first.better)
        spread = f"{min(values):.4g}–{number(max(values), first.unit)}"
        if first.target is None:
            goal, verdict = "none set", ""
        else:
            sign = "≤" if first.better == "lower" else "≥"
            goal = f"{sign} {number(first.target, first.unit)}"
            met = sum(bool(f.meets()) for f in same)
            verdict = "meets" if middle.meets() else "**MISSES**"
            if 0 < met < len(same):
                verdict += f" ({met} of {len(same)} runs meet it)"
        lines.append(
            f"| {name} | {number(middle.value, first.unit)} | {spread} | {goal} | {verdict} |"
        )
    return lines


def report(
    results: Sequence[Runs], runs: int, budget: float | None, quick: bool, when: dt.datetime
) -> str:
    """Return docs/performance.md for these results."""
    command = "python bench/run_all.py" + (f" --runs {runs}" if runs != 5 else "")
    command += f" --budget {budget:g}" if budget is not None else ""
    command += " --quick" if quick else ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [
        "# Performance",
        "",
        f"Written by `{command}` on {when:%Y-%m-%d %H:%M} UTC, on {platform.system()} with "
        f"{os.cpu_count()} cores (load average {load} when it started) and Python "
        f"{platform.python_version()}.",
        "",
        "Each figure is the median of the runs of its bench, every run in a fresh process,",
        "with the lowest and highest value beside it. Ratios are against a baseline measured",
        "in the same run (the bench's docstring says which). The machine is shared, so",
        "expect the spread to be wide; a figure that misses its target says so here.",
    ]
    if quick:
        out += ["", "**Quick mode**: tiny inputs, to check that the benches run. These figures"]
        out += ["say nothing about speed."]
    for result in results:
        out += ["", f"## {result.name}", ""]
        count = f"{len(result.runs)} run{'s' * (len(result.runs) != 1)}"
        if len(result.runs) < runs:
            count += f" of {runs} wanted"
        detail = f"`bench/{result.path.name}`: {result.summary()} {count}"
        if result.seconds:
            detail += f" ({statistics.median(result.seconds):.0f} s each)"
        if budget is not None and len(result.runs) < runs and not result.error:
            detail += f"; as many as fitted the budget of {budget:g} s"
        out += [detail + "."]
        if result.error:
            out += ["", f"**FAILED** on run {len(result.seconds)}: `{result.error}`"]
        if result.runs:
            out += ["", *table(result)]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """Repeat every bench, write the report, and say where."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per bench (default 5)")
    parser.add_argument("--budget", type=float, help="seconds for all runs (each bench runs once)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: check they run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--benches", type=Path, default=BENCH, help="folder of bench scripts")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv[1:])
    if args.child is not None:
        figures = run_once(args.child)
        args.child_out.write_text(json.dumps([asdict(f) for f in figures]), encoding="utf-8")
        return 0
    paths = discover(args.benches)
    if not paths:
        print(f"{args.benches}: no bench script with a measure() function", file=sys.stderr)
        return 1
    when = dt.datetime.now(dt.UTC)
    results = repeat(paths, args.runs, args.budget, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, args.runs, args.budget, args.quick, when), "utf-8")
    print(f"wrote {args.out}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
