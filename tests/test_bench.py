"""The benchmarks still run: each at a tiny size, checking what it prints, not its speed.

A benchmark nobody runs breaks without anyone noticing; these runs keep them working.
The figures at these sizes mean nothing and are not checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(name: str, *args: str) -> str:
    """Run bench/name with args; return what it printed, failing on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_send_bench_runs() -> None:
    out = run_bench("send.py", "--quick")
    assert "digest send / bare smtplib" in out
    assert "CPU per subscriber outside smtplib" in out
    assert "one unsubscribe token during the send / in a loop:" in out
    assert "peak traced memory, 60 subscribers:" in out


def test_dedup_bench_runs() -> None:
    out = run_bench("dedup.py", "400")
    assert "MinHash + LSH / pairwise comparison (extrapolated from 100), 400 articles:" in out
    assert "LSH time growth" in out


def test_peer_bench_runs() -> None:
    out = run_bench("peer.py", "--quick")
    assert "10 feeds at 100 ms: digest wall:" in out
    assert "10 feeds at 100 ms: digest CPU:" in out


def test_ingest_bench_runs() -> None:
    out = run_bench("ingest.py", "--articles", "40", "--feeds", "3", "--items", "4")
    assert "feeds: whole ingest / feedparser.parse alone:" in out
    assert "unchanged second ingest / first, Markdown:" in out


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Return a corpus of two articles in the reference layout, with their summaries."""
    sentences = [
        "The city council approved a new budget for the harbour on Monday.",
        "It sets aside money for repairs to the old ferry pier.",
        "Critics said the plan came too late for the fishing fleet.",
        "The mayor said work would begin in the spring.",
        "A public meeting is planned for next month.",
    ]
    for topic in ("news",):
        for n in (1, 2):
            article = tmp_path / "article" / topic / f"00{n}.txt"
            summary = tmp_path / "summary" / topic / f"00{n}.txt"
            article.parent.mkdir(parents=True, exist_ok=True)
            summary.parent.mkdir(parents=True, exist_ok=True)
            body = "\n".join(sentences[:3]) + "\n\n" + "\n".join(sentences[3:])
            article.write_text(f"Harbour budget {n}\n\n{body}\n", encoding="utf-8")
            summary.write_text("\n".join(sentences[:2]) + "\n", encoding="utf-8")
    return tmp_path


def test_highlights_bench_runs(tiny_corpus: Path) -> None:
    out = run_bench("highlights.py", "--by-topic", "--folds", "2", str(tiny_corpus))
    assert "2 articles from" in out
    assert all(name in out for name in ("ours", "lead-3", "textrank", "summa"))
    assert "held out news:" in out and "fold 2:" in out


def test_workers_bench_runs(pg_server: str | None) -> None:
    if pg_server is None:
        pytest.skip("PostgreSQL is not installed and DIGEST_TEST_PG is not set")
    done = subprocess.run(
        [sys.executable, str(BENCH / "workers.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "DIGEST_BENCH_PG": pg_server},
    )
    assert done.returncode == 0, done.stderr
    assert "ratio 2 workers / 1:" in done.stdout
    assert "database transactions per message:" in done.stdout
    assert "ratio SQLite 2 processes / 1:" in done.stdout


def test_scale_bench_runs() -> None:
    out = run_bench("scale.py", "--quick")
    assert "40 new articles: CPU against feedparser alone:" in out
    assert "40 new articles: peak RSS:" in out
    assert "40 new over 200 stored: CPU against an empty store:" in out
    assert "40 new over 200 stored: peak RSS:" in out
