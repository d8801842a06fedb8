"""The digest command end to end: in-process with CliRunner and as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import main


@pytest.fixture
def workdir(tmp_path: Path, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a folder holding a copy of seeds/ and a .env naming it."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text("DIGEST_SOURCES=seeds/\nDIGEST_TITLE=Morning Brief\n")
    return tmp_path


def test_run_then_nothing_new(workdir: Path) -> None:
    """Write an edition, then say there is nothing new and write nothing."""
    runner = CliRunner()
    first = runner.invoke(main, ["run"])
    assert first.exit_code == 0, first.output
    assert "Edition " in first.output and "10 items" in first.output
    assert "skipped seeds/000_ec33f330e18fa9fe.txt:30" in first.output
    (folder,) = (workdir / "outbox").iterdir()
    for name in ("digest.html", "digest.txt", "digest.eml"):
        assert f"wrote outbox/{folder.name}/{name}" in first.output
        assert (folder / name).stat().st_size > 0
    assert "Morning Brief" in (folder / "digest.html").read_text()

    second = runner.invoke(main, ["run"])
    assert second.exit_code == 0, second.output
    assert "Nothing to send: nothing new since the last edition" in second.output
    assert len(list((workdir / "outbox").iterdir())) == 1


def test_preview_and_ingest(workdir: Path) -> None:
    """Preview without recording, and list what ingest skipped."""
    runner = CliRunner()
    result = runner.invoke(main, ["preview", "--out", "pv"])
    assert result.exit_code == 0, result.output
    assert "Preview of 10 items: pv/digest.html" in result.output
    result = runner.invoke(main, ["ingest"])
    assert result.exit_code == 0, result.output
    # The preview recorded nothing: ingest finds every article new.
    assert "Read 10 articles: 10 new, 0 updated, 0 unchanged, 1 skipped." in result.output
    assert "placeholder" in result.output
    assert "Edition " in runner.invoke(main, ["run"]).output


def test_bad_config_is_a_message_not_a_traceback(workdir: Path) -> None:
    """Report a bad value with key, value and file, exit 2, and no traceback."""
    (workdir / "bad.env").write_text("DIGEST_MAX_ITEMS=ten\n")
    result = CliRunner().invoke(main, ["--env-file", "bad.env", "run"])
    assert result.exit_code == 2
    assert "DIGEST_MAX_ITEMS='ten'" in result.output
    assert "bad.env" in result.output
    assert "Traceback" not in result.output


def test_bad_sources_warn_and_the_run_goes_on(workdir: Path) -> None:
    """Warn about a missing folder and broken files, and still make the edition."""
    (workdir / "seeds" / "broken.txt").write_bytes(b"\xff\xfe\x00\x01")
    (workdir / ".env").write_text("DIGEST_SOURCES=seeds/, nowhere/\n")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert "skipped nowhere: no such file or folder" in result.output
    assert "skipped seeds/broken.txt: binary file, not text" in result.output
    assert "10 items" in result.output


def test_every_command_has_help_ending_with_an_example() -> None:
    """Give every command help text that ends with an example."""
    commands: dict[str, click.Command] = {"digest": main}
    assert isinstance(main, click.Group)
    for name, command in main.commands.items():
        commands[name] = command
        if isinstance(command, click.Group):
            commands.update({f"{name} {n}": c for n, c in command.commands.items()})
    for name, command in commands.items():
        assert command.help, name
        lines = [line.strip() for line in command.help.strip().splitlines() if line.strip()]
        assert lines[-2] == "Example:", name
        assert lines[-1].startswith("digest"), name


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_module_and_console_script_as_subprocesses(workdir: Path) -> None:
    """Run `python -m digest` and the `digest` script as a user would."""
    result = _run([sys.executable, "-m", "digest", "run"], workdir)
    assert result.returncode == 0, result.stderr
    assert "10 items" in result.stdout
    script = Path(sys.executable).parent / "digest"
    result = _run([str(script), "run"], workdir)
    assert result.returncode == 0, result.stderr
    assert "Nothing to send" in result.stdout
    result = _run([str(script), "--version"], workdir)
    assert result.stdout.startswith("digest, version")


def test_user_error_traceback_only_with_verbose(workdir: Path) -> None:
    """Show a traceback for a user error only when -v is given."""
    (workdir / "bad.env").write_text("DIGEST_TIMEZONE=Nowhere/Land\n")
    quiet = _run([sys.executable, "-m", "digest", "--env-file", "bad.env", "run"], workdir)
    assert quiet.returncode == 2
    assert "DIGEST_TIMEZONE='Nowhere/Land'" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = _run([sys.executable, "-m", "digest", "-v", "--env-file", "bad.env", "run"], workdir)
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr


def test_readers_on_a_fresh_machine_create_no_store(workdir: Path) -> None:
    """Show "nothing yet" where that makes sense, refuse elsewhere, and never make a store."""
    runner = CliRunner()
    status = runner.invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert "No edition made yet: there is no store at digest.db." in status.output
    assert "Pending deliveries: none" in status.output
    archive = runner.invoke(main, ["archive", "--out", "public"])
    assert archive.exit_code == 0, archive.output
    assert (workdir / "public" / "index.html").is_file()
    for command in (["deliveries"], ["subscribers", "list"], ["subscribers", "export"]):
        result = runner.invoke(main, command)
        assert result.exit_code == 1, (command, result.output)
        assert "no store here yet" in result.output, command
    assert not (workdir / "digest.db").exists()


def test_status_reads_a_store_a_run_made(workdir: Path) -> None:
    """List the edition a run made."""
    runner = CliRunner()
    assert runner.invoke(main, ["run"]).exit_code == 0
    status = runner.invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert "Last editions:" in status.output and "10 items" in status.output
    assert "not sent" in status.output
    # The store's size, and when the run pruned it (nothing old enough to forget yet).
    assert "Store: 10 articles (0 not in an edition), 5 source files, 1 edition" in status.output
    assert re.search(
        r"Last pruned: .* UTC \(0 articles, 0 source files removed; DIGEST_RETENTION is 90 days\)",
        status.output,
    )


def test_status_columns_line_up_and_counts_agree_in_number(workdir: Path) -> None:
    """Align the status columns whatever the ids' lengths; say "1 item", not "1 items"."""
    from test_send import NOW, add_edition

    from digest.store import Store

    with Store(workdir / "digest.db") as store:
        add_edition(store, "2026-11-28")
        add_edition(store, "2026-11-28-2", NOW.replace(hour=8))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("  2026-11-28")]
    assert len(rows) == 2
    assert all("   1 item  made" in row for row in rows), rows
    assert len({row.index(" made ") for row in rows}) == 1
    assert "1 items" not in result.output


def test_status_on_a_mistyped_store_creates_nothing(workdir: Path) -> None:
    """Say there is no store at a mistyped DIGEST_DB, creating no folder and no file."""
    wrong = workdir / "data-typo" / "sub" / "digest.db"
    result = CliRunner().invoke(main, ["status"], env={"DIGEST_DB": str(wrong)})
    assert result.exit_code == 0, result.output
    assert f"No edition made yet: there is no store at {wrong.relative_to(workdir)}." in (
        result.output
    )
    assert not (workdir / "data-typo").exists()


def test_an_ingest_where_every_source_fails_exits_1(workdir: Path) -> None:
    """Print the summary and exit 1 when every source failed."""
    env = {"DIGEST_SOURCES": "missing-folder/,http://127.0.0.1:9/feed.xml"}
    result = CliRunner().invoke(main, ["ingest"], env=env)
    assert result.exit_code == 1, result.output
    assert "Read 0 articles: 0 new, 0 updated, 0 unchanged, 2 skipped." in result.output
    assert "every source failed" in result.output
    one_works = CliRunner().invoke(main, ["ingest"], env={"DIGEST_SOURCES": "seeds/,missing/"})
    assert one_works.exit_code == 0, one_works.output
