"""CI=true turns every skip into a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

SKIPPING = """
import pytest

def test_needs_a_tool() -> None:
    pytest.skip("the tool is missing")
"""


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped")])
def test_a_skip_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    """Fail a skipped test when CI is set; leave it skipped otherwise."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
    pytester.makepyfile(SKIPPING)
    result = pytester.runpytest_subprocess("-p", "strict_ci")
    result.assert_outcomes(**{outcome: 1})
    if ci:
        result.stdout.fnmatch_lines(["*skipped under CI=true*the tool is missing*"])
