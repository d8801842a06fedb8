"""The sign-up's store side on SQLite and PostgreSQL: states, links, limits, clean-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main
from digest.models import Consent
from digest.store import Store
from digest.tokens import make_confirm_token, read_confirm_token

NOW = datetime(2026, 12, 2, 9, 0, 0, 123456, tzinfo=UTC)
TTL = timedelta(days=3)
FORM = Consent(source="form", signup_at=NOW, signup_ip="192.0.2.7", signup_agent="Firefox")


def test_a_sign_up_is_pending_until_its_newest_link_confirms_it(db_target: str | Path) -> None:
    with Store(db_target) as store:
        s = store.signups
        assert s.request("ada@example.org", "Ada", ("world",), "Europe/London", FORM, NOW) == "new"
        (notice,) = s.due_notices()
        assert notice.kind == "confirm" and notice.confirm_requested == NOW.replace(microsecond=0)
        assert s.claim_notice(notice, NOW) and not s.claim_notice(notice, NOW)
        issued = notice.confirm_requested
        assert issued is not None
        # Within the hour a second sign-up sends nothing and keeps the link.
        later = NOW + timedelta(minutes=30)
        assert s.request("ada@example.org", "Ada", (), "", FORM, later) == "pending"
        assert s.due_notices() == []
        sub = store.subscribers.by_email("ada@example.org")
        assert sub is not None and sub.status == "pending"
        assert s.current_confirmation(sub.id, issued, later, TTL) is not None
        assert not s.confirm(sub.id, issued, "x", "y", NOW + TTL, TTL)  # expired
        assert s.confirm(sub.id, issued, "192.0.2.8", "Chrome", later, TTL, welcome=True)
        assert not s.confirm(sub.id, issued, "192.0.2.8", "Chrome", later, TTL)  # used once
        sub = store.subscribers.by_id(sub.id)
        assert sub is not None and sub.status == "active" and sub.consent is not None
        assert sub.consent.source == "form" and sub.consent.signup_ip == "192.0.2.7"
        assert sub.consent.confirm_ip == "192.0.2.8" and sub.consent.confirmed_at == later
        assert [n.kind for n in s.due_notices()] == ["welcome"]
        # An active address signed up again is told so, at most hourly, and not changed.
        s.claim_notice(s.due_notices()[0], later)
        assert s.request("ada@example.org", "X", (), "", FORM, NOW + timedelta(hours=2)) == "active"
        assert [n.kind for n in s.due_notices()] == ["known"]
        assert store.subscribers.by_id(sub.id).name == "Ada"  # type: ignore[union-attr]


def test_confirm_tokens_name_their_second() -> None:
    token = make_confirm_token("secret", "list", 42, NOW)
    assert len(token) == 40
    assert read_confirm_token("secret", "list", token) == (42, NOW.replace(microsecond=0))
    assert read_confirm_token("secret", "other.list", token) is None
    assert read_confirm_token("other", "list", token) is None


def test_pending_sign_ups_expire(db_target: str | Path) -> None:
    with Store(db_target) as store:
        store.signups.request("old@example.org", "", (), "", FORM, NOW)
        store.signups.request("new@example.org", "", (), "", FORM, NOW + TTL)
        store.subscribers.upsert("kept@example.org", "", (), "", NOW)
        assert store.signups.expire(NOW + TTL + timedelta(seconds=1), TTL) == 1
        assert store.subscribers.by_email("old@example.org") is None
        assert store.subscribers.by_email("new@example.org") is not None
        assert store.subscribers.by_email("kept@example.org") is not None


def test_sign_up_buckets_refill_by_the_hour(db_target: str | Path) -> None:
    with Store(db_target) as store:
        taken = [store.signups.take("ip1", 2, NOW) for _ in range(3)]
        assert taken == [True, True, False]
        assert store.signups.take("ip2", 2, NOW)
        assert not store.signups.take("ip1", 2, NOW + timedelta(minutes=29))
        assert store.signups.take("ip1", 2, NOW + timedelta(minutes=31))


def test_a_pause_holds_editions_back(db_target: str | Path) -> None:
    from digest.store.ledger import Audience, insert_rows

    with Store(db_target) as store:
        store.subscribers.upsert("ada@example.org", "", (), "", NOW)
        store.subscribers.upsert("grace@example.org", "", (), "", NOW)
        ada = store.subscribers.by_email("ada@example.org")
        assert ada is not None
        store.signups.pause(ada.id, NOW + timedelta(weeks=2), NOW)
        with store.db.write() as conn:
            # Rows need an edition: count what would be inserted through a fake one.
            from digest.store.schema import editions

            conn.execute(
                editions.insert().values(
                    id="e1",
                    edition_date=NOW.date(),
                    title="t",
                    subject="s",
                    created=NOW,
                    item_count=1,
                )
            )
            insert_rows(store.db, conn, "e1", Audience(now=NOW))
        with store.db.read() as conn:
            from sqlalchemy import select

            from digest.store.schema import deliveries

            got = conn.execute(select(deliveries.c.email)).scalars().all()
        assert got == ["grace@example.org"]


def test_cli_pending_confirm_show_and_form(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DIGEST_SECRET_KEY=a-secret-long-enough\nDIGEST_SECTIONS=World,Business\n"
        "DIGEST_SIGNUP_ORIGINS=https://publisher.example\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["subscribers", "add", "ada@example.org", "--confirm"])
    assert result.exit_code == 0, result.output
    assert result.output == "Pending ada@example.org: confirmation email sent to the address.\n"
    assert len(list((tmp_path / "outbox" / "notices").glob("*-confirm.eml"))) == 1
    result = runner.invoke(main, ["subscribers", "add", "grace@example.org", "--consent-by", "Sam"])
    assert result.output == "Added grace@example.org\n"
    result = runner.invoke(main, ["subscribers", "list", "--status", "pending"])
    assert result.output.splitlines()[0].split() == ["pending", "ada@example.org"]
    assert "1 pending" in result.output
    result = runner.invoke(main, ["subscribers", "show", "grace@example.org"])
    assert result.exit_code == 0, result.output
    assert "Consent:       an operator" in result.output
    assert "added by Sam" in result.output
    result = runner.invoke(main, ["subscribers", "export"])
    assert "consent_source" in result.output.splitlines()[0]
    assert ",operator,added by Sam" in result.output
    result = runner.invoke(main, ["form"])
    assert result.exit_code == 0
    assert 'action="http://127.0.0.1:8080/subscribe"' in result.output
    assert 'value="World"' in result.output and 'name="website"' in result.output
