"""Recording delivery reports against the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.bounces.record import BouncePolicy, edition_of_message_id, record_reports
from digest.bounces.report import DeliveryReport
from digest.mail import message_id
from digest.store import Store, schema
from digest.store.schema import deliveries
from digest.tokens import make_return_token, read_return_token

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SECRET = "s3cret"
POLICY = BouncePolicy(threshold=3, window=timedelta(days=14), secret=SECRET)


def _store(target: str | Path, editions: int = 1) -> tuple[Store, list[str]]:
    store = Store(target)
    for email in ("a@example.org", "b@example.org"):
        store.subscribers.upsert(email, "", (), "", NOW)
    ids = []
    with store.db.write() as conn:
        for n in range(editions):
            eid = f"2026-11-{n + 1:02d}"
            conn.execute(
                schema.editions.insert(),
                {
                    "id": eid,
                    "edition_date": date(2026, 11, n + 1),
                    "title": "t",
                    "subject": "s",
                    "created": NOW,
                    "item_count": 1,
                },
            )
            ids.append(eid)
    for eid in ids:
        store.ledger.add(eid, NOW)
        with store.db.write() as conn:
            for sub in store.subscribers.iter():
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.edition_id == eid, deliveries.c.subscriber_id == sub.id)
                    .values(status="sent", message_id=message_id(eid, sub.email, "example.com"))
                )
    return store, ids


def _mid(eid: str, email: str = "a@example.org") -> str:
    return message_id(eid, email, "example.com").strip("<>")


def test_a_hard_bounce_ends_the_address_at_once_and_is_recorded_once(
    db_target: str | Path,
) -> None:
    store, (eid,) = _store(db_target)
    with store:
        report = DeliveryReport(
            "hard", "maildir", "r1", "a@example.org", _mid(eid), None, "5.1.1", "no such user"
        )
        (done,) = record_reports(store, [report], NOW, policy=POLICY)
        assert (done.new, done.action, done.edition_id) == (True, "bounced", eid)
        sub = store.subscribers.by_email("a@example.org")
        assert sub is not None and (sub.status, sub.ended_by) == ("bounced", "bounce")
        assert store.ledger.counts(eid) == {"bounced": 1, "sent": 1}
        (again,) = record_reports(store, [report], NOW + timedelta(hours=1), policy=POLICY)
        assert not again.new and again.action == "bounced"
        assert store.bounces.counts() == {"hard": 1}
        assert [v.action for v in store.bounces.recent()] == ["bounced"]


def test_soft_bounces_count_once_per_edition_and_decay(db_target: str | Path) -> None:
    store, eids = _store(db_target, editions=4)
    with store:

        def soft(ref: str, eid: str, at: datetime) -> str:
            report = DeliveryReport("soft", "imap", ref, None, _mid(eid), None, "4.2.2", "full")
            return record_reports(store, [report], at, policy=POLICY)[0].action

        assert soft("1", eids[0], NOW) == "scored 1/3"
        assert soft("1b", eids[0], NOW) == "scored 1/3"  # the same message again
        assert soft("2", eids[1], NOW + timedelta(days=1)) == "scored 2/3"
        # Fourteen days on, the first has left the window.
        assert soft("3", eids[2], NOW + timedelta(days=14)) == "scored 2/3"
        assert soft("4", eids[3], NOW + timedelta(days=14, hours=1)) == "bounced (score 3/3)"
        sub = store.subscribers.by_email("a@example.org")
        assert sub is not None and sub.status == "bounced"


def test_policy_never_counts_and_a_complaint_unsubscribes_as_the_reader(
    db_target: str | Path,
) -> None:
    store, (eid,) = _store(db_target)
    with store:
        token = make_return_token(SECRET, eid, 2)
        reports = [
            DeliveryReport("policy", "imap", "p", "a@example.org", _mid(eid), None, "5.7.1", "x"),
            DeliveryReport("complaint", "imap", "c", None, None, token),
            DeliveryReport("hard", "imap", "u", "z@example.org", "other@elsewhere", None, "5.1.1"),
            DeliveryReport("hard", "imap", "f", None, None, token[:-1] + "a", "5.1.1"),
        ]
        done = record_reports(store, reports, NOW, policy=POLICY)
        assert done[0].action.startswith("sender problem")
        assert done[1].action == "unsubscribed" and done[1].subscriber_id == 2
        assert [d.action for d in done[2:]] == ["unmatched", "unmatched"]
        a = store.subscribers.by_email("a@example.org")
        b = store.subscribers.by_email("b@example.org")
        assert a is not None and a.status == "active"
        assert b is not None and (b.status, b.ended_by) == ("unsubscribed", "subscriber")


def test_a_failed_batch_records_nothing(db_target: str | Path) -> None:
    store, (eid,) = _store(db_target)
    with store:
        good = DeliveryReport("hard", "imap", "g", None, _mid(eid), None, "5.1.1")
        bad = DeliveryReport("hard", "imap", "b" * 10, None, _mid(eid), None, "5.1.1")
        object.__setattr__(bad, "kind", None)  # a NULL kind: the insert fails
        with pytest.raises(Exception):  # noqa: B017
            record_reports(store, [good, bad], NOW, policy=POLICY)
        assert store.bounces.counts() == {}
        sub = store.subscribers.by_email("a@example.org")
        assert sub is not None and sub.status == "active"


def test_return_tokens_are_short_signed_and_case_blind() -> None:
    token = make_return_token(SECRET, "2026-12-02-2", 123456)
    assert len(f"bounces+{token}") <= 64
    assert read_return_token(SECRET, token.upper()) == ("2026-12-02-2", 123456)
    assert read_return_token("other", token) is None
    assert read_return_token(SECRET, token.replace("123456", "123457")) is None
    assert edition_of_message_id(_mid("2026-12-02-2")) == "2026-12-02-2"
    assert edition_of_message_id("abc@gmail.com") is None


def test_rates_warn_past_one_percent_bounced_or_a_tenth_of_a_percent_complaints() -> None:
    from digest.bounces.rates import Rates

    assert Rates(1000, 10, 1, {}).warnings() == []
    (bounced,) = Rates(1000, 11, 1, {}).warnings()
    assert "1.1% of the messages failed permanently" in bounced
    (complained,) = Rates(1000, 0, 2, {}).warnings()
    assert "marked it as spam" in complained
