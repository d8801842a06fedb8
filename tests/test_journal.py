"""The send journal: what a dead run left is read back, recorded once, and resent once."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from smtpserver import Faults, Handler, SmtpServer
from test_send import NOW, add_edition, add_subscribers, send, smtp_settings

from digest.errors import DeliveryError
from digest.journal import Journal, journal_dir, read_journals
from digest.store import Outcome, Store


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer(Handler(Faults())) as running:
        yield running


def test_start_without_end_is_in_flight_and_an_end_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    journal = Journal(folder, "one")
    journal.sending("e1", 1)
    journal.finished(Outcome("e1", 1, "sent", NOW, "<m1@x>", tries=1))
    journal.sending("e1", 2)
    journal.sending("e2", 7)
    journal.finished(Outcome("e2", 7, "failed", NOW, "<m7@x>", "550 no", 1, True, True))
    journal.close(remove=False)
    found, files = read_journals(folder)
    assert files == [folder / "one.log"]
    assert found["e1"].in_flight == {2}
    # A plain success is kept short and dated when the journal was last written.
    written = datetime.fromtimestamp((folder / "one.log").stat().st_mtime, UTC)
    assert found["e1"].finished == [Outcome("e1", 1, "sent", written, "<m1@x>", tries=1)]
    assert found["e2"].in_flight == set()
    assert found["e2"].finished == [
        Outcome("e2", 7, "failed", NOW, "<m7@x>", "550 no", 1, True, True)
    ]


def test_cleared_journal_holds_nothing_and_close_removes_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "one")
    journal.sending("e1", 1)
    journal.clear()
    assert read_journals(tmp_path)[0] == {}
    journal.close(remove=True)
    assert not (tmp_path / "one.log").exists()


def test_cut_off_line_is_named_and_the_rest_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path, "one")
    journal.sending("e1", 1)
    journal.close(remove=False)
    with (tmp_path / "one.log").open("a") as log:
        log.write('D\te1\t1\t["sent", "2026-11-')
    with caplog.at_level(logging.WARNING):
        found, _ = read_journals(tmp_path)
    assert found["e1"].in_flight == {1}
    assert f"{tmp_path / 'one.log'}, line 2: unreadable record skipped" in caplog.text


def test_recording_an_outcome_twice_counts_it_once(tmp_path: Path) -> None:
    """A journal replayed after its outcomes reached the store changes nothing."""
    with Store(tmp_path / "digest.db") as store:
        add_edition(store, "e1")
        add_subscribers(store, 2)
        store.add_deliveries("e1", NOW)
        later = NOW + timedelta(minutes=1)
        sent = Outcome("e1", 1, "sent", later, "<m1@x>", tries=2)
        failed = Outcome("e1", 2, "failed", later, "<m2@x>", "554 no", tries=1, hard=True)
        for _ in range(2):
            store.record_outcomes([sent, failed])
        rows = {d.subscriber_id: d for d in store.deliveries("e1")}
        assert (rows[1].status, rows[1].attempts) == ("sent", 2)
        assert (rows[2].status, rows[2].attempts) == ("failed", 1)
        assert (
            store.db.execute("SELECT hard_failures FROM subscribers WHERE id = 2").fetchone()[0]
            == 1
        )


def test_next_send_carries_a_dead_runs_journal_into_the_ledger(
    tmp_path: Path, server: SmtpServer
) -> None:
    """What a dead run recorded as sent is not sent again; what it had in flight is, once,
    with a note; everyone else is sent; the journal is gone afterwards."""
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 4)
        store.add_deliveries("e1", NOW)
    dead = Journal(journal_dir(settings.db), "e1-999-0")
    dead.sending("e1", 1)
    dead.finished(Outcome("e1", 1, "sent", NOW + timedelta(seconds=1), "<m1@x>", tries=1))
    dead.sending("e1", 2)
    dead.close(remove=False)
    report = send(settings)
    assert report.resumed_in_flight == 1
    assert report.counts == {"sent": 4}
    assert server.handler.recipients() == {a: 1 for a in addresses[1:]}
    with Store(settings.db) as store:
        rows = {d.subscriber_id: d for d in store.deliveries("e1")}
    assert rows[1].message_id == "<m1@x>"
    assert rows[2].attempts == 2
    assert list(journal_dir(settings.db).iterdir()) == []


def test_an_end_goes_on_file_with_the_next_start(tmp_path: Path) -> None:
    """Killed after a message ended but before the next began, the message reads as in
    flight: at most one message per thread goes twice, never one is lost."""
    journal = Journal(tmp_path, "one")
    journal.sending("e1", 1)
    journal.finished(Outcome("e1", 1, "sent", NOW, "<m1@x>", tries=1))
    assert read_journals(tmp_path)[0]["e1"].in_flight == {1}
    journal.sending("e1", 2)
    found = read_journals(tmp_path)[0]["e1"]
    assert found.in_flight == {2}
    assert [done.subscriber_id for done in found.finished] == [1]
    journal.close(remove=True)


def test_a_journal_the_store_could_not_take_is_kept_and_read_next_time(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the store refuses the outcomes (a full disk), the journal stays, and the next
    send records them instead of sending those messages again."""
    settings = smtp_settings(tmp_path, server.port, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 3)

    def refuse(self: Store, outcomes: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "record_outcomes", refuse)
        with pytest.raises(DeliveryError, match="disk is full"):
            send(settings)
    assert len(list(journal_dir(settings.db).iterdir())) == 1
    assert server.handler.recipients() == {a: 1 for a in addresses}
    report = send(settings)
    assert report.counts == {"sent": 3} and report.sent_now == 0
    assert server.handler.recipients() == {a: 1 for a in addresses}
    assert list(journal_dir(settings.db).iterdir()) == []
