"""bench/run_all.py repeats every bench it finds and writes the report with spreads.

The benches here are stand-ins whose figures are the run's number (1, 2, 3, …), so the
medians and spreads are known; nothing is timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parent.parent / "bench" / "run_all.py"

COUNTING = '''"""Counts its own runs: {doc}"""

from pathlib import Path

from _figures import Figure

COUNT = Path(__file__).with_suffix(".count")


def measure(quick: bool = False) -> list[Figure]:
    n = int(COUNT.read_text()) + 1 if COUNT.exists() else 1
    COUNT.write_text(str(n))
    return [
        Figure("the run's number", float(n), target={target}),
        Figure("quick", 1.0 if quick else 0.0, unit=" flag"),
    ]
'''


def benches(folder: Path) -> Path:
    """Write two counting benches, a script without measure() and a helper module."""
    folder.mkdir()
    (folder / "alpha.py").write_text(COUNTING.format(doc="the first stand-in.", target=2.5))
    (folder / "beta.py").write_text(COUNTING.format(doc="the second stand-in.", target=0.5))
    (folder / "not_a_bench.py").write_text('"""No measure here."""\n')
    (folder / "_helper.py").write_text("def measure(quick: bool = False) -> list[object]: ...\n")
    return folder


def run_all(*args: str) -> subprocess.CompletedProcess[str]:
    """Run bench/run_all.py with args."""
    return subprocess.run(
        [sys.executable, str(RUN_ALL), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_bench_is_repeated_and_reported_with_its_spread(tmp_path: Path) -> None:
    folder = benches(tmp_path / "bench")
    out = tmp_path / "performance.md"
    done = run_all("--runs", "3", "--quick", "--benches", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (folder / "alpha.count").read_text() == "3"
    assert (folder / "beta.count").read_text() == "3"
    assert not (folder / "not_a_bench.count").exists()
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n")
    assert " cores " in text and "Python 3." in text and " UTC" in text
    assert "**Quick mode**" in text
    assert "## alpha\n\n`bench/alpha.py`: Counts its own runs: the first stand-in. 3 runs" in text
    assert "## not_a_bench" not in text and "_helper" not in text
    # Median 2 of the runs 1, 2, 3: under alpha's target 2.5, over beta's 0.5.
    assert "| the run's number | 2× | 1–3× | ≤ 2.5× | meets (2 of 3 runs meet it) |" in text
    assert "| the run's number | 2× | 1–3× | ≤ 0.5× | **MISSES** |" in text
    assert "| quick | 1 flag | 1–1 flag | none set |  |" in text


def test_a_budget_of_nothing_still_runs_each_bench_once(tmp_path: Path) -> None:
    folder = benches(tmp_path / "bench")
    out = tmp_path / "performance.md"
    done = run_all("--budget", "0", "--benches", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "`--budget 0`" not in text and "run_all.py --budget 0`" in text
    assert text.count("1 run of 5 wanted") == 2
    assert "as many as fitted the budget of 0 s" in text
    assert "| the run's number | 1× | 1–1× | ≤ 2.5× | meets |" in text
    assert "| quick | 0 flag |" in text


def test_a_failing_bench_is_named_in_the_report(tmp_path: Path) -> None:
    folder = benches(tmp_path / "bench")
    (folder / "broken.py").write_text(
        '"""Fails."""\n\n\ndef measure(quick: bool = False) -> list[object]:\n'
        '    raise RuntimeError("the sink never answered")\n'
    )
    out = tmp_path / "performance.md"
    done = run_all("--runs", "2", "--benches", str(folder), "--out", str(out))
    assert done.returncode == 1
    text = out.read_text(encoding="utf-8")
    assert "## broken" in text
    assert "**FAILED** on run 1: `RuntimeError: the sink never answered`" in text
    assert "## alpha" in text and "2 runs" in text
