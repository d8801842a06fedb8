"""The subscriber list: CSV import with line-numbered rejections, updates, CLI commands."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import Store
from digest.subscribers import (
    SubscriberError,
    add_subscriber,
    export_csv,
    import_csv,
    normalise_email,
)

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)

GOOD_AND_BAD = """email,name,topics,timezone
ada@example.org,Ada Lovelace,"science, history",Europe/London
not-an-address,Nobody,,
grace@example.org,Grace Hopper,navy,America/New_York
bob@example..org,Bob,,
,Empty Email,,
carol@example.org,Carol,,Mars/Olympus
ADA@example.org,Ada again,,
"dave@example.org","Dave
Two Lines",,
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Yield a fresh store in tmp_path, closed after the test."""
    with Store(tmp_path / "digest.db") as opened:
        yield opened


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path, store: Store) -> None:
    """Import the good rows and name each bad one by its line and reason."""
    path = tmp_path / "list.csv"
    path.write_text(GOOD_AND_BAD)
    report = import_csv(store, path, NOW)
    assert (report.new, report.updated, report.unchanged) == (3, 0, 0)
    rejected = {r.line: r.reason for r in report.rejected}
    assert sorted(rejected) == [3, 5, 6, 7, 8]
    assert "@-sign" in rejected[3]
    assert "period" in rejected[5]
    assert "empty" in rejected[6]
    assert "time zone" in rejected[7]
    assert "same address as line 2" in rejected[8]
    ada = store.subscribers.by_email("ada@example.org")
    assert ada is not None
    assert (ada.name, ada.topics, ada.timezone) == (
        "Ada Lovelace",
        ("history", "science"),
        "Europe/London",
    )
    dave = store.subscribers.by_email("dave@example.org")
    assert dave is not None and dave.name == "Dave Two Lines"


def test_reimport_updates_and_never_duplicates(tmp_path: Path, store: Store) -> None:
    """Update a known address in place and leave the list's size alone."""
    path = tmp_path / "list.csv"
    path.write_text("email,name\nada@example.org,Ada\nbob@example.org,Bob\n")
    assert import_csv(store, path, NOW).new == 2
    path.write_text("email,name\nAda@Example.org,Ada Lovelace\nbob@example.org,Bob\n")
    report = import_csv(store, path, NOW + timedelta(hours=1))
    assert (report.new, report.updated, report.unchanged) == (0, 1, 1)
    subs = list(store.subscribers.iter())
    assert len(subs) == 2
    assert subs[0].name == "Ada Lovelace" and subs[0].updated > subs[0].created


def test_unsubscribed_stays_unsubscribed_unless_asked(tmp_path: Path, store: Store) -> None:
    """Keep an unsubscribed address out on re-import; --resubscribe brings it back."""
    path = tmp_path / "list.csv"
    path.write_text("email\nada@example.org\n")
    import_csv(store, path, NOW)
    ada = store.subscribers.by_email("ada@example.org")
    assert ada is not None
    assert store.subscribers.set_status(ada.id, "unsubscribed", NOW, "operator") is True
    assert store.subscribers.set_status(ada.id, "unsubscribed", NOW, "operator") is False
    assert import_csv(store, path, NOW).kept == 1
    assert store.subscribers.by_id(ada.id).status == "unsubscribed"  # type: ignore[union-attr]
    assert import_csv(store, path, NOW, resubscribe=True).updated == 1
    assert store.subscribers.by_id(ada.id).status == "active"  # type: ignore[union-attr]


def test_resubscribe_undoes_only_an_operators_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-activate an address an operator removed and a bounced one with --resubscribe,
    never one that unsubscribed through its own link; record who ended each."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    path = tmp_path / "list.csv"
    path.write_text("email\nada@example.org\nbob@example.org\ncy@example.org\n")
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "import", str(path)]).exit_code == 0
    with Store(tmp_path / "digest.db") as store:
        ada, bob, cy = (
            store.subscribers.by_email(f"{n}@example.org") for n in ("ada", "bob", "cy")
        )
        assert ada is not None and bob is not None and cy is not None
        # Ada used her own link (what the web page's POST records); Cy bounced.
        store.subscribers.set_status(ada.id, "unsubscribed", NOW, ended_by="subscriber")
        store.subscribers.set_status(cy.id, "bounced", NOW, ended_by="bounce")
    assert runner.invoke(main, ["subscribers", "remove", "bob@example.org"]).exit_code == 0
    with Store(tmp_path / "digest.db") as store:
        ended = {s.email: s.ended_by for s in store.subscribers.iter()}
    assert ended == {"ada@example.org": "subscriber", "bob@example.org": "operator",
                     "cy@example.org": "bounce"}  # fmt: skip
    result = runner.invoke(main, ["subscribers", "import", "--resubscribe", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 updated" in result.output and "1 left unsubscribed or bounced" in result.output
    assert "1 address left unsubscribed: they unsubscribed themselves" in result.output
    with Store(tmp_path / "digest.db") as store:
        now = {s.email: (s.status, s.ended_by) for s in store.subscribers.iter()}
    assert now == {
        "ada@example.org": ("unsubscribed", "subscriber"),
        "bob@example.org": ("active", None),
        "cy@example.org": ("active", None),
    }
    again = runner.invoke(main, ["subscribers", "add", "ada@example.org", "--resubscribe"])
    assert "Not re-activated (they unsubscribed themselves" in again.output


def test_an_exported_list_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write `subscribers export FILE` with mode 0600: it holds every address."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_DB", str(tmp_path / "digest.db"))
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "add", "ada@example.org"]).exit_code == 0
    (tmp_path / "list.csv").write_text("old")
    (tmp_path / "list.csv").chmod(0o644)
    result = runner.invoke(main, ["subscribers", "export", "list.csv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "list.csv").stat().st_mode & 0o777 == 0o600
    assert "ada@example.org" in (tmp_path / "list.csv").read_text()


def test_header_row_must_name_email(tmp_path: Path, store: Store) -> None:
    """Refuse a file without an email column, saying what the header should be."""
    path = tmp_path / "list.csv"
    path.write_text("address,name\nada@example.org,Ada\n")
    with pytest.raises(SubscriberError, match="'email' column") as info:
        import_csv(store, path, NOW)
    assert "found 'address', 'name' (comma-separated)" in str(info.value)


MAILCHIMP = (
    '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","TIMEZONE"\n'
    '"ada@example.org","Ada","Lovelace","2","2026-01-02 10:00:00","Europe/London"\n'
    '"grace@example.org","Grace","","3","2026-01-03 11:00:00",""\n'
)


@pytest.mark.parametrize(
    "text",
    [
        MAILCHIMP,
        "E-mail;Name;Topics\nada@example.org;Ada Lovelace;\ngrace@example.org;Grace;\n",
        "email\tfirst_name\tlast_name\nada@example.org\tAda\tLovelace\ngrace@example.org\tGrace\t\n",
    ],
    ids=["mailchimp", "semicolons", "tabs"],
)
def test_common_exports_and_delimiters_are_understood(
    text: str, tmp_path: Path, store: Store
) -> None:
    """Import a Mailchimp export, a semicolon-separated and a tab-separated file."""
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    report = import_csv(store, path, NOW)
    assert (report.new, report.rejected) == (2, [])
    ada = store.subscribers.by_email("ada@example.org")
    assert ada is not None and ada.name == "Ada Lovelace"
    grace = store.subscribers.by_email("grace@example.org")
    assert grace is not None and grace.name == "Grace"


def test_a_semicolon_file_without_email_names_what_it_found(tmp_path: Path, store: Store) -> None:
    """Name the headers found and the delimiter read, not a misleading 'email' demand."""
    path = tmp_path / "list.csv"
    path.write_text("Adresse;Vorname\nada@example.org;Ada\n", encoding="utf-8")
    with pytest.raises(SubscriberError) as info:
        import_csv(store, path, NOW)
    assert "found 'Adresse', 'Vorname' (semicolon-separated)" in str(info.value)


@pytest.mark.parametrize(
    "bad", ["", "a", "a@", "@b.org", "a b@c.org", "a@b", "x\r\nBcc: v@e.org", "zoë@example.org"]
)
def test_addresses_are_checked_strictly(bad: str) -> None:
    """Refuse malformed addresses (and non-ASCII ones, which need SMTPUTF8)."""
    with pytest.raises(SubscriberError):
        normalise_email(bad)


def test_names_cannot_break_a_header(store: Store) -> None:
    """Fold line breaks in a name into spaces and refuse NUL."""
    with pytest.raises(SubscriberError, match="one line"):
        add_subscriber(store, "a@example.org", NOW, name="x\0y")
    assert store.subscribers.counts() == {}
    add_subscriber(store, "a@example.org", NOW, name="x\r\nBcc: v@example.org")
    sub = store.subscribers.by_email("a@example.org")
    assert sub is not None and sub.name == "x Bcc: v@example.org"


def test_export_round_trips(tmp_path: Path, store: Store) -> None:
    """Export a list that imports back to the same subscribers."""
    add_subscriber(store, "ada@example.org", NOW, name="Ada, Countess", topics="b,a")
    add_subscriber(store, "bob@example.org", NOW, timezone="Asia/Tokyo")
    buffer = io.StringIO()
    assert export_csv(store.subscribers.iter(), buffer) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["email"] for r in rows] == ["ada@example.org", "bob@example.org"]
    assert rows[0]["name"] == "Ada, Countess" and rows[0]["topics"] == "a,b"
    path = tmp_path / "out.csv"
    path.write_text(buffer.getvalue())
    with Store(tmp_path / "other.db") as again:
        assert import_csv(again, path, NOW).new == 2
        assert [s.topics for s in again.subscribers.iter()] == [("a", "b"), ()]


def test_cli_subscriber_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Import, add, list, remove and export through the digest command."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    (tmp_path / "list.csv").write_text(GOOD_AND_BAD)
    runner = CliRunner()
    result = runner.invoke(main, ["subscribers", "import", "list.csv"])
    assert result.exit_code == 0, result.output
    assert "Imported list.csv: 3 new, 0 updated, 0 unchanged" in result.output
    assert "5 rejected" in result.output
    assert "  line 3: not-an-address:" in result.output
    result = runner.invoke(main, ["subscribers", "add", "eve@example.org", "--name", "Eve"])
    assert result.output == "Added eve@example.org\n"
    result = runner.invoke(main, ["subscribers", "remove", "ada@example.org"])
    assert result.output == "Unsubscribed ada@example.org.\n"
    result = runner.invoke(main, ["subscribers", "add", "ada@example.org"])
    assert "Not re-activated" in result.output
    result = runner.invoke(main, ["subscribers", "list"])
    assert "unsubscribed ada@example.org" in result.output
    assert "4 subscribers: 3 active, 1 unsubscribed, 0 bounced." in result.output
    result = runner.invoke(main, ["subscribers", "export", "out.csv"])
    assert result.output == "Wrote 4 subscribers to out.csv\n"
    result = runner.invoke(main, ["subscribers", "remove", "nobody@example.org"])
    assert result.exit_code == 1 and "not on the list" in result.output
    result = runner.invoke(main, ["subscribers", "add", "bad@"])
    assert result.exit_code == 1 and "error:" in result.output


def test_topics_naming_no_section_are_warned_about_by_line(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A topic that is not a section picks nothing: the import says so and goes on."""
    path = tmp_path / "list.csv"
    path.write_text('email,topics\nada@example.org,Science\ngrace@example.org,"navy, more"\n')
    sections = ("Science", "Business", "More")
    report = import_csv(store, path, NOW, sections=sections)
    assert report.new == 2
    assert f"{path}:3: grace@example.org: topic 'navy' is not among the sections" in caplog.text
    assert "ada@example.org" not in caplog.text
    caplog.clear()
    import_csv(store, path, NOW)  # no sections configured: topics are not checked
    assert caplog.text == ""
