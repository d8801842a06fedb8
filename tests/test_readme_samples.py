"""The outputs the README and docs/ show are what the commands print now.

scripts/readme_samples.py runs the commands on a copy of seeds/ with the clock fixed;
`.venv/bin/python scripts/readme_samples.py` rewrites the blocks after a change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import readme_samples


@pytest.fixture(scope="module")
def samples() -> dict[str, str]:
    """Return every sample, produced once for this module."""
    return readme_samples.produce()


def test_every_sample_block_matches_what_the_commands_print(samples: dict[str, str]) -> None:
    problems = readme_samples.stale(samples)
    assert problems == [], "run `.venv/bin/python scripts/readme_samples.py`:\n" + "\n".join(
        problems
    )
    shown = "".join(path.read_text(encoding="utf-8") for path in readme_samples.FILES).count(
        "<!-- sample: "
    )
    assert shown >= len(samples), "a sample is produced but shown nowhere"


def test_a_block_that_no_longer_matches_is_named(samples: dict[str, str], tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    good = samples["run"]
    page.write_text(
        f"Intro.\n\n<!-- sample: run -->\n```text\n{good}```\n\n"
        "<!-- sample: run-again -->\n```text\nRead 9 articles.\n```\n"
        "<!-- sample: nothing-like-it -->\n```text\n?\n```\n",
        encoding="utf-8",
    )
    problems = readme_samples.stale(samples, (page,))
    assert all(p.startswith(f"{page}:") for p in problems)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "sample 'run-again': differs from what the commands print now",
        "sample 'nothing-like-it': no such sample",
    ]
    assert readme_samples.rewrite(samples, (page,)) == [page]
    again = readme_samples.stale(samples, (page,))
    assert [p.split(": ", 1)[1] for p in again] == ["sample 'nothing-like-it': no such sample"]
    assert samples["run-again"] in page.read_text(encoding="utf-8")


def test_the_time_a_send_took_is_not_compared() -> None:
    line = "0 pending (2 sent in this run, {} s, {}/s)."
    assert readme_samples.comparable(line.format("1.1", "2.8")) == readme_samples.comparable(
        line.format("0.2", "14.3")
    )


def test_the_order_follows_titles_not_file_times(samples: dict[str, str]) -> None:
    text = samples["text-part"]
    assert text.index("Ad sales boost Time Warner profit") < text.index("Harvard Professors")
