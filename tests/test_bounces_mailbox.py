"""Reading the bounce mailbox: a Maildir, and a real Dovecot over IMAPS and POP3S."""

from __future__ import annotations

import imaplib
import mailbox
import ssl
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mailservers import Dovecot, dovecot, dovecot_installed

from digest.bounces import mailbox as bounce_mailbox
from digest.bounces.mailbox import DONE_FOLDER, MailboxError, fetch_reports
from digest.config import Settings
from digest.store import Store

DATA = Path(__file__).resolve().parent / "data" / "bounces"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CORPUS = sorted(p for p in DATA.glob("*.eml"))
REPORTS = len(CORPUS) - 1  # the auto-reply holds none


@pytest.fixture(scope="module")
def mail_server() -> object:
    if not dovecot_installed():
        pytest.skip("Dovecot is not installed (scripts/system-deps.sh installs it)")
    with dovecot() as server:
        yield server


def _maildir(tmp_path: Path) -> Path:
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for path in CORPUS:
        box.add(path.read_bytes())
    return tmp_path / "bounces"


def test_a_maildir_is_read_recorded_and_put_away(settings: Settings, tmp_path: Path) -> None:
    path = _maildir(tmp_path)
    settings = replace(settings, bounce_mailbox=str(path))
    with Store(settings.db) as store:
        result = fetch_reports(settings, store, NOW)
        assert result.messages == len(CORPUS)
        assert len(result.reports) == REPORTS and all(r.new for r in result.reports)
        assert sum(store.bounces.counts().values()) == REPORTS
    box = mailbox.Maildir(path, create=False)
    assert len(box) == 0 and len(box.get_folder(DONE_FOLDER)) == len(CORPUS)


def test_a_crash_after_the_commit_loses_none_and_records_none_twice(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _maildir(tmp_path)
    settings = replace(settings, bounce_mailbox=str(path))
    real_done = bounce_mailbox.MaildirReader.done
    calls = []

    def crash(self: bounce_mailbox.MaildirReader, key: str) -> None:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies between commit and move
        real_done(self, key)

    monkeypatch.setattr(bounce_mailbox.MaildirReader, "done", crash)
    with Store(settings.db) as store:
        with pytest.raises(KeyboardInterrupt):
            fetch_reports(settings, store, NOW)
        monkeypatch.setattr(bounce_mailbox.MaildirReader, "done", real_done)
        again = fetch_reports(settings, store, NOW)
        assert again.messages == len(CORPUS) - 2
        assert sum(store.bounces.counts().values()) == REPORTS
        assert any(not r.new for r in again.reports)  # the third was recorded before
    assert len(mailbox.Maildir(path, create=False)) == 0


def test_a_crash_before_the_commit_leaves_the_message(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _maildir(tmp_path)
    settings = replace(settings, bounce_mailbox=str(path))

    def fail(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with Store(settings.db) as store:
        monkeypatch.setattr(store.bounces, "record", fail)
        with pytest.raises(KeyboardInterrupt):
            fetch_reports(settings, store, NOW)
    assert len(mailbox.Maildir(path, create=False)) == len(CORPUS)


def test_a_folder_that_is_no_maildir_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    settings = replace(settings, bounce_mailbox=str(tmp_path))
    with Store(settings.db) as store, pytest.raises(MailboxError, match="not a Maildir"):
        fetch_reports(settings, store, NOW)


def _fill(server: Dovecot) -> None:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=ctx, timeout=10)
    conn.login(server.user, server.password)
    for path in CORPUS:
        conn.append("INBOX", None, None, path.read_bytes())
    conn.logout()


def _count(server: Dovecot, folder: str) -> int:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=ctx, timeout=10)
    conn.login(server.user, server.password)
    kind, data = conn.select(f'"{folder}"')
    conn.logout()
    return int(data[0] or 0) if kind == "OK" else -1


def test_imaps_reads_dovecot_and_moves_what_it_recorded(
    settings: Settings, mail_server: Dovecot
) -> None:
    _fill(mail_server)
    settings = replace(
        settings,
        bounce_mailbox=f"imaps://{mail_server.user}@127.0.0.1:{mail_server.imaps_port}/INBOX",
        bounce_password=mail_server.password,
        bounce_ca_file=mail_server.ca_file,
        bounce_timeout=10,
    )
    with Store(settings.db) as store:
        result = fetch_reports(settings, store, NOW)
        assert result.messages == len(CORPUS)
        assert sum(store.bounces.counts().values()) == REPORTS
        # Read again (as after a crash before the move): nothing is recorded twice.
        _fill(mail_server)
        again = fetch_reports(settings, store, NOW)
        assert not any(r.new for r in again.reports)
        assert sum(store.bounces.counts().values()) == REPORTS
    assert _count(mail_server, "INBOX") == 0
    assert _count(mail_server, DONE_FOLDER) == 2 * len(CORPUS)


def test_imaps_refuses_a_certificate_it_cannot_verify(
    settings: Settings, mail_server: Dovecot
) -> None:
    settings = replace(
        settings,
        bounce_mailbox=f"imaps://{mail_server.user}@127.0.0.1:{mail_server.imaps_port}/INBOX",
        bounce_password=mail_server.password,
        bounce_timeout=10,
    )
    with Store(settings.db) as store, pytest.raises(MailboxError, match="CERTIFICATE_VERIFY"):
        fetch_reports(settings, store, NOW)


def test_pop3s_reads_dovecot_and_deletes_what_it_recorded(
    settings: Settings, mail_server: Dovecot
) -> None:
    _fill(mail_server)
    settings = replace(
        settings,
        bounce_mailbox=f"pop3s://{mail_server.user}@127.0.0.1:{mail_server.pop3s_port}",
        bounce_password=mail_server.password,
        bounce_ca_file=mail_server.ca_file,
        bounce_timeout=10,
    )
    with Store(settings.db) as store:
        result = fetch_reports(settings, store, NOW)
        assert result.messages == len(CORPUS)
        assert sum(store.bounces.counts().values()) == REPORTS
    assert _count(mail_server, "INBOX") == 0


def test_the_scheduler_job_and_the_cli_read_the_mailbox(settings: Settings, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from digest.cli import main
    from digest.schedule import fetch_bounces

    path = _maildir(tmp_path)
    settings = replace(settings, bounce_mailbox=str(path))
    assert fetch_bounces(settings, lambda: NOW) == REPORTS
    assert fetch_bounces(replace(settings, bounce_mailbox=str(tmp_path / "none")), lambda: NOW) == 0
    env = {"DIGEST_DB": str(settings.db), "DIGEST_BOUNCE_MAILBOX": str(path)}
    runner = CliRunner()
    fetched = runner.invoke(main, ["bounces", "fetch"], env=env)
    assert fetched.exit_code == 0, fetched.output
    assert "Read 0 messages" in fetched.output
    listed = runner.invoke(main, ["bounces"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "nobody.here@gmail.com 5.1.1  unmatched" in listed.output
    assert "complaint" in listed.output
