"""Hostile input cannot hurt: each bad value or broken disk is one line, never a traceback.

Permissions matter to some of these tests, and root ignores file modes: as root they run
`python -m digest` as the user nobody, or, where nobody cannot start the interpreter, as
root without capabilities; either way a read-only file or folder binds it. Where neither
works they are skipped, except under CI=true, where they fail instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import os
import pwd
import random
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from smtpserver import Certificates, SmtpServer, make_certificates
from test_send import SENDABLE

from digest.cli import main
from digest.config import Settings
from digest.smtp import Connection, SmtpSetupError
from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def _clean_env() -> dict[str, str]:
    """Return the environment without any DIGEST_ or SMTP_ key of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}


def _one_error_line(result: Result, *needles: str) -> str:
    """Assert result failed with one `error:` line (and hints) holding needles; return it."""
    assert isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output
    return errors[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a folder holding a copy of seeds/ and a .env naming it."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    _copy_seeds(tmp_path)
    return tmp_path


def _copy_seeds(folder: Path) -> None:
    """Put a fresh copy of the seeds and a .env naming them into folder."""
    shutil.copytree(SEEDS, folder / "seeds")
    for path in (folder / "seeds").iterdir():
        os.utime(path)
    (folder / ".env").write_text("DIGEST_SOURCES=seeds/\n")


def _make_store(runner: CliRunner) -> None:
    """Make an edition and a subscriber in the store of the current folder."""
    made = runner.invoke(main, ["run"])
    assert made.exit_code == 0, made.output
    added = runner.invoke(main, ["subscribers", "add", "ada@example.org"])
    assert added.exit_code == 0, added.output


# A damaged store


def _overwrite_pages(db: Path, seed: int) -> None:
    """Overwrite every page but the schema's and alembic_version's with random bytes."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    noise = random.Random(seed)
    with db.open("r+b") as handle:
        for page in range(3, pages + 1):
            handle.seek((page - 1) * page_size)
            handle.write(noise.randbytes(page_size))


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["deliveries"],
        ["subscribers", "list"],
        ["subscribers", "export"],
        ["sources"],
        ["archive", "--out", "public"],
        ["run"],
        ["subscribers", "add", "grace@example.org"],
        ["send"],
    ],
)
def test_a_corrupted_store_is_one_line(workdir: Path, command: list[str]) -> None:
    """Name the store and say it is malformed, for readers and writers alike."""
    runner = CliRunner()
    _make_store(runner)
    _overwrite_pages(workdir / "digest.db", seed=1)
    env = SENDABLE if command == ["send"] else {}
    result = runner.invoke(main, command, env=env)
    line = _one_error_line(result, f"{workdir / 'digest.db'}: ")
    assert "malformed" in line or "not a database" in line
    assert "hint: the file is damaged or not a digest store" in result.output


def test_a_file_of_random_bytes_is_one_line(workdir: Path) -> None:
    """Refuse a store that is noise from its first byte."""
    (workdir / "digest.db").write_bytes(random.Random(2).randbytes(20_000))
    for command in (["status"], ["run"], ["subscribers", "list"]):
        _one_error_line(CliRunner().invoke(main, command), "digest.db: file is not a database")


# A full disk


def test_a_full_store_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Report SQLite's "database or disk is full", naming the store, when a write needs room."""
    runner = CliRunner()
    _make_store(runner)
    import digest.store.db as db_module

    real = db_module._sqlite_connect
    pages = sqlite3.connect(workdir / "digest.db").execute("PRAGMA page_count").fetchone()[0]

    def no_room(dbapi_connection: Any, record: Any) -> None:
        real(dbapi_connection, record)
        # The file may not grow: exactly what a full disk does to SQLite.
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    monkeypatch.setattr(db_module, "_sqlite_connect", no_room)
    rows = "".join(f"reader{i}@example.org,Reader {i} {'x' * 150}\n" for i in range(3000))
    (workdir / "many.csv").write_text("email,name\n" + rows)
    result = runner.invoke(main, ["subscribers", "import", "many.csv"])
    _one_error_line(result, "digest.db: database or disk is full")
    assert "free some space" in result.output


def _no_file_may_grow() -> None:
    # SIGXFSZ would kill the process: ignored, a write past the limit fails with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_no_room_for_the_store_or_its_lock_is_one_line(workdir: Path) -> None:
    """Name the store, or the scheduler's lock file, when the disk takes no more bytes."""
    _make_store(CliRunner())

    def digest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "digest", *args],
            cwd=workdir,
            env=_clean_env(),
            preexec_fn=_no_file_may_grow,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    added = digest("subscribers", "add", "grace@example.org")
    assert added.returncode == 1, added.stderr
    assert "Traceback" not in added.stderr
    assert added.stderr.startswith(f"error: {workdir / 'digest.db'}: "), added.stderr
    scheduler = digest("schedule")
    assert scheduler.returncode == 1, scheduler.stderr
    assert "Traceback" not in scheduler.stderr
    assert f"error: {workdir / 'digest.db.scheduler.lock'}: cannot write the lock file" in (
        scheduler.stderr
    )


def test_export_to_a_full_disk_is_one_line(workdir: Path) -> None:
    """Name the file when the subscriber list does not fit (/dev/full is always full)."""
    runner = CliRunner()
    _make_store(runner)
    result = runner.invoke(main, ["subscribers", "export", "/dev/full"])
    _one_error_line(result, "/dev/full: cannot write the subscriber list: No space left")


@pytest.mark.parametrize("command", ["archive", "export"])
def test_writing_under_a_file_is_one_line(workdir: Path, command: str) -> None:
    """Name the path when --out or the export file cannot be made (its folder is a file)."""
    runner = CliRunner()
    _make_store(runner)
    (workdir / "plain").write_text("a file, not a folder\n")
    if command == "archive":
        result = runner.invoke(main, ["archive", "--out", "plain/public"])
        _one_error_line(result, "plain/public: cannot write the archive")
    else:
        result = runner.invoke(main, ["subscribers", "export", "plain/list.csv"])
        _one_error_line(result, "plain/list.csv: cannot write the subscriber list")


# A read-only store, read by a user the file modes bind


_PR_CAPBSET_DROP = 24


def _drop_capabilities() -> None:
    """Empty the bounding set, so that the program the child runs has no capability."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@functools.cache
def _bound_by_file_modes() -> dict[str, Any]:
    """Return subprocess.run arguments under which file modes bind the child.

    Not root: nothing to do. Root: run as nobody if nobody can start this interpreter;
    where it cannot (a pyenv under /root), stay root without any capability, which file
    modes bind as they bind any other owner of the files.
    """
    if os.geteuid() != 0:
        return {}
    probe = [sys.executable, "-c", "import digest.cli"]
    choices: list[dict[str, Any]] = [{"preexec_fn": _drop_capabilities}]
    with contextlib.suppress(KeyError):
        nobody = pwd.getpwnam("nobody")
        choices.insert(0, {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []})
    for way in choices:
        try:
            done = subprocess.run(probe, cwd="/", capture_output=True, check=False, **way)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return way
    message = "running as root, and neither nobody nor a root without capabilities can run digest"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Yield a folder the other user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="digest-hostile-"))
    folder.chmod(0o755)
    monkeypatch.chdir(folder)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    yield folder
    os.chdir(ROOT)
    for path in (folder, *folder.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
    shutil.rmtree(folder)


def _readable_by_all(folder: Path) -> None:
    """Let every user read folder's files and enter its folders (the outbox is 0600)."""
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _run_bound(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m digest args` in cwd as a user that file modes bind."""
    env = {**_clean_env(), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "digest", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **_bound_by_file_modes(),
    )


def _fails_in_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], result.stderr


@pytest.mark.parametrize("folder_mode", [0o555, 0o777], ids=["read-only folder", "open folder"])
def test_readers_work_on_a_read_only_store(shared: Path, folder_mode: int) -> None:
    """Status, deliveries, the list, its export, sources and archive read a 0444 store."""
    store = shared / "store"
    store.mkdir()
    os.chdir(store)
    _copy_seeds(store)
    _make_store(CliRunner())
    out = shared / "public"
    out.mkdir()
    out.chmod(0o777)
    _readable_by_all(store)
    (store / "digest.db").chmod(0o444)
    store.chmod(folder_mode)
    before = sorted(p.name for p in store.iterdir())

    status = _run_bound(store, "status")
    assert status.returncode == 0, status.stderr
    assert "10 items" in status.stdout and "Scheduler: not running" in status.stdout
    deliveries = _run_bound(store, "deliveries")
    assert deliveries.returncode == 0, deliveries.stderr
    listed = _run_bound(store, "subscribers", "list")
    assert listed.returncode == 0, listed.stderr
    assert "ada@example.org" in listed.stdout
    exported = _run_bound(store, "subscribers", "export")
    assert exported.returncode == 0, exported.stderr
    assert "ada@example.org" in exported.stdout
    sources = _run_bound(store, "sources")
    assert sources.returncode == 0, sources.stderr
    archive = _run_bound(store, "archive", "--out", str(out))
    assert archive.returncode == 0, archive.stderr
    assert (out / "index.html").is_file() and (out / "feed.xml").is_file()
    if folder_mode == 0o555:
        assert sorted(p.name for p in store.iterdir()) == before

    # Writers cannot, and say so in one line naming what they could not write.
    _fails_in_one_line(_run_bound(store, "run"), "digest.db: ")
    _fails_in_one_line(_run_bound(store, "subscribers", "add", "grace@example.org"), "digest.db: ")
    if folder_mode == 0o555:
        _fails_in_one_line(
            _run_bound(store, "schedule"),
            "digest.db.scheduler.lock: cannot open the lock file: Permission denied",
        )
        _fails_in_one_line(
            _run_bound(store, "subscribers", "export", "list.csv"),
            "list.csv: cannot write the subscriber list: Permission denied",
        )
        _fails_in_one_line(
            _run_bound(store, "archive", "--out", "public"),
            "public: cannot write the archive",
        )


def test_a_read_only_run_lock_is_one_line(shared: Path) -> None:
    """Name the run lock when the store is writable but its lock file is not."""
    os.chdir(shared)
    _copy_seeds(shared)
    _make_store(CliRunner())
    _readable_by_all(shared)
    shared.chmod(0o777)
    (shared / "outbox").chmod(0o777)
    (shared / "digest.db").chmod(0o666)
    (shared / "digest.db.run.lock").chmod(0o444)
    _fails_in_one_line(
        _run_bound(shared, "run"),
        "digest.db.run.lock: cannot open the lock file: Permission denied",
    )


# Settings accepted once and misbehaving later: refused when they are read


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("DIGEST_FETCH_TIMEOUT", "nan", "must be a finite number, at least 0.1"),
        ("DIGEST_FETCH_TIMEOUT", "inf", "must be a finite number, at least 0.1"),
        ("DIGEST_FETCH_TIMEOUT", "1e400", "must be a finite number, at least 0.1"),
        ("SMTP_TIMEOUT", "nan", "must be a finite number, at least 0.1"),
        ("SMTP_TIMEOUT", "inf", "must be a finite number, at least 0.1"),
        ("SMTP_TIMEOUT", "1e400", "must be a finite number, at least 0.1"),
        ("SMTP_TIMEOUT", "1e300", "must be at least 0.1 and at most 3600"),
        ("DIGEST_MAX_AGE", "99999999999d", "must be at most 3650d"),
        ("SMTP_RETRY_FOR", "9" * 400, "must be at most 3650d"),
        ("SMTP_RATE", "9" * 400, "at most 2147483647"),
        ("DIGEST_FETCH_MAX_BYTES", "9" * 40, "at most 2147483647"),
        ("DIGEST_SOURCE_WEIGHTS", "Wire=nan", "'Wire=nan' is not name=weight"),
        ("DIGEST_SOURCE_WEIGHTS", "Wire=inf", "'Wire=inf' is not name=weight"),
        ("DIGEST_BASE_URL", 'https://news.example.org/"><script>', "without quotes"),
        ("DIGEST_BASE_URL", "https://news.example.org/a'b", "without quotes"),
        ("DIGEST_BASE_URL", "https://news.example.org/a b", "without quotes, spaces"),
        ("DIGEST_BASE_URL", "https://news.example.org/\x7f", "control characters"),
        ("DIGEST_BASE_URL", "javascript:alert(1)", "must be an http(s) URL"),
        ("DIGEST_BASE_URL", "ftp://news.example.org", "must be an http(s) URL"),
        ("DIGEST_BASE_URL", "https://", "must be an http(s) URL"),
        ("DIGEST_BASE_URL", "https://news.example.org/?a=1", "must not have a query"),
        ("DIGEST_LOGO_URL", 'https://cdn.example.org/logo.png" onload="x', "without quotes"),
        ("DIGEST_FROM", "a@example.org, b@example.org", "names 2 addresses"),
        ("DIGEST_FROM", "Digest digest@example.org", "must be one address"),
        ("DIGEST_FROM", "Digest <digest@exämple.org>", "xn-- form"),
        ("DIGEST_LIST_ID", "bad id!", "must be a domain-like name"),
        ("DIGEST_LIST_ID", "news.exämple.org", "must be a domain-like name"),
        ("DIGEST_TEMPLATES_DIR", "no-such-folder", "no such folder"),
        ("DIGEST_TEMPLATES_DIR", "seeds/000_ec33f330e18fa9fe.txt", "is not a folder"),
    ],
)
def test_a_hostile_setting_is_refused_in_one_line(
    workdir: Path, key: str, value: str, why: str
) -> None:
    """Refuse the value as the settings are read, naming the key, where it was set and why."""
    with (workdir / ".env").open("a") as handle:
        # Quoted as the file is read: single quotes keep every character as it is.
        handle.write(f"{key}='{value}'\n" if "'" not in value else f'{key}="{value}"\n')
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2, result.output
    _one_error_line(result, f"{workdir / '.env'}: {key}=", why)


def test_the_default_and_usual_values_still_load(workdir: Path) -> None:
    """Accept what config.example.env and a typical deployment set."""
    (workdir / ".env").write_text(
        "DIGEST_SOURCES=seeds/\n"
        "DIGEST_BASE_URL=https://news.example.org/digest/\n"
        "DIGEST_FROM=Morning Brief <brief@xn--exmple-cua.org>\n"
        "DIGEST_LIST_ID=brief.news_2026.example.org\n"
        "DIGEST_TEMPLATES_DIR=seeds\n"
        "DIGEST_MAX_AGE=3650d\n"
        "SMTP_TIMEOUT=0.5\n"
        "DIGEST_SOURCE_WEIGHTS=Wire=0,Blog=2.5\n"
    )
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output


def test_serve_without_a_secret_key_refuses_to_start(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refuse `digest serve` without DIGEST_SECRET_KEY: every unsubscribe link would 404."""
    started: list[tuple[str, int]] = []

    def fake_serve(settings: Settings, host: str, port: int, *listening: object) -> None:
        started.append((host, port))

    monkeypatch.setattr("digest.web.serve", fake_serve)
    result = CliRunner().invoke(main, ["serve", "--port", "8765"])
    assert result.exit_code == 2, result.output
    _one_error_line(result, "DIGEST_SECRET_KEY")
    assert started == []
    ok = CliRunner().invoke(main, ["serve", "--port", "8765"], env={"DIGEST_SECRET_KEY": "k" * 32})
    assert ok.exit_code == 0, ok.output
    assert started == [("127.0.0.1", 8765)]


# A password smtplib cannot send


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Return a CA and a server certificate made for this module."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize(
    ("username", "password", "key"),
    [
        ("digest", "correct-hörse-bättery-stäple", "SMTP_PASSWORD"),
        ("dïgest", "plain-ascii-password", "SMTP_USERNAME"),
    ],
)
def test_a_non_ascii_login_names_the_key_and_shows_none_of_it(
    certs: Certificates, username: str, password: str, key: str
) -> None:
    """Say which setting the login cannot carry; never quote a character or its position."""
    with SmtpServer(tls=certs.server_context(), auth=("digest", "whatever")) as srv:
        settings = Settings(
            smtp_host="127.0.0.1",
            smtp_port=srv.port,
            smtp_security="starttls",
            smtp_timeout=5,
            smtp_ca_file=certs.ca_file,
        )
        settings = dataclasses.replace(settings, smtp_username=username, smtp_password=password)
        connection = Connection(settings)
        with pytest.raises(SmtpSetupError) as info:
            connection.send_once("d@example.com", "r@example.org", b"Subject: hi\r\n\r\nx\r\n")
        connection.close()
    message = str(info.value)
    assert f"{key} contains characters the server's login cannot carry" in message
    shown = "".join(traceback.format_exception(info.value))
    for text in (message, shown):
        assert "position" not in text
        for secret_char in (c for c in password if not c.isascii()):
            assert secret_char not in text
            assert ascii(secret_char).strip("'") not in text
        assert password not in text


# Internationalised addresses


def test_an_idn_domain_is_stored_in_its_ascii_form(workdir: Path) -> None:
    """Store user@exämple.org as user@xn--exmple-cua.org from add and import alike."""
    runner = CliRunner()
    added = runner.invoke(main, ["subscribers", "add", "ada@exämple.org"])
    assert added.exit_code == 0, added.output
    assert "Added ada@xn--exmple-cua.org" in added.output
    (workdir / "list.csv").write_text(
        "email,name\nada@xn--exmple-cua.org,Ada\ngrace@BÜCHER.example,Grace\n", encoding="utf-8"
    )
    imported = runner.invoke(main, ["subscribers", "import", "list.csv"])
    assert imported.exit_code == 0, imported.output
    assert "1 new, 1 updated" in imported.output
    with Store(workdir / "digest.db", readonly=True) as store:
        emails = sorted(s.email for s in store.subscribers.iter())
    assert emails == ["ada@xn--exmple-cua.org", "grace@xn--bcher-kva.example"]
    removed = runner.invoke(main, ["subscribers", "remove", "grace@bücher.example"])
    assert removed.exit_code == 0, removed.output
    assert "Unsubscribed grace@xn--bcher-kva.example." in removed.output


def test_a_non_ascii_local_part_is_refused_naming_address_and_row(workdir: Path) -> None:
    """Refuse zoë@example.org: it needs SMTPUTF8, which digest does not send."""
    runner = CliRunner()
    added = runner.invoke(main, ["subscribers", "add", "zoë@example.org"])
    _one_error_line(added, "zoë@example.org: the part before the @ must be ASCII", "SMTPUTF8")
    (workdir / "list.csv").write_text(
        "email,name\nada@example.org,Ada\nzoë@example.org,Zoë\n", encoding="utf-8"
    )
    imported = runner.invoke(main, ["subscribers", "import", "list.csv"])
    assert imported.exit_code == 0, imported.output
    assert "1 new" in imported.output and "1 rejected" in imported.output
    assert (
        "  line 3: zoë@example.org: the part before the @ must be ASCII: digest does not send"
        " SMTPUTF8 mail" in imported.output
    )
