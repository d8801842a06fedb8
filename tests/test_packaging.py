"""The wheel carries the templates, so `pip install .` works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_and_runs_elsewhere(tmp_path: Path) -> None:
    """Build the wheel, install it apart from the checkout, and render the seeds with it."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("digest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("digest.html.j2", "digest.txt.j2", "digest.css"):
        assert f"digest/templates/{template}" in names
    for language in ("en", "de", "fr", "es"):
        assert f"digest/locale/{language}/LC_MESSAGES/digest.mo" in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "news.txt").write_text("A title\n\nA first sentence. A second one.\n")
    # Only the installed copy and the third-party packages: not the checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path[:0] = sys.argv[1].split(':'); "
            "import digest.cli, digest.render; "
            "assert digest.render.__file__.startswith(sys.argv[2]), digest.render.__file__; "
            "sys.argv = ['digest', 'run']; digest.cli.main()",
            env["PYTHONPATH"],
            str(target),
        ],
        cwd=work,
        env={**env, "DIGEST_SOURCES": "news.txt", "DIGEST_LANGUAGE": "de"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (edition,) = (work / "outbox").iterdir()
    page = (edition / "digest.html").read_text()
    # The German catalog came with the wheel: the greeting is German.
    assert "A first sentence." in page and "Hallo," in page
