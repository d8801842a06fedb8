"""Quick commands import no heavy library: checked on `python -X importtime` output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each costs tens to hundreds of milliseconds to import; scipy (through datasketch)
# alone half a second. Only the commands that select or render need them.
HEAVY = {"scipy", "numpy", "datasketch", "premailer", "lxml"}


def imported(args: list[str], cwd: Path) -> set[str]:
    """Return the top-level packages `digest ARGS` imports, from -X importtime."""
    env = {**os.environ, "DIGEST_DB": str(cwd / "digest.db")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "digest", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "digest" in names
    return names


@pytest.mark.parametrize("args", [["--help"], ["status"]])
def test_quick_commands_import_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    """Import none of scipy, numpy, datasketch, premailer or lxml for --help and status."""
    assert imported(args, tmp_path) & HEAVY == set()
