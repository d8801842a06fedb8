"""Sending an edition through the ledger, against a real SMTP server, each test on a real
SQLite store and then on a real PostgreSQL one (conftest's db_target)."""

from __future__ import annotations

import dataclasses
import email.message
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from _editions import edition
from lxml import html as lxml_html
from smtpserver import Faults, Handler, SmtpServer

from digest.config import Settings
from digest.errors import ConfigError, DeliveryError
from digest.models import (
    Article,
    Edition,
    Highlight,
    Item,
    Progress,
    RenderedEdition,
    Section,
    SendReport,
)
from digest.render import GREETING_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, render_edition
from digest.send import deliver
from digest.sender import BATCH
from digest.store import Store
from digest.store.claims import BOUNCE_AFTER
from digest.tokens import subscriber_from_token

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
SECRET = "a-secret-only-for-tests-Qx7bV2mZ9kR4tL8w"
# What `digest send` and `digest run` check before a real send (digest/check.py): an
# https:// base URL on a public host and a sender on a real domain, besides the secret.
SENDABLE = {
    "DIGEST_BASE_URL": "https://news.digest-check.net",
    "DIGEST_FROM": "Digest <digest@news.digest-check.net>",
    "DIGEST_SECRET_KEY": SECRET,
}
SENDABLE_ENV = "".join(f"{k}={v}\n" for k, v in SENDABLE.items())


def add_edition(store: Store, edition_id: str, created: datetime = NOW, extra: str = "") -> None:
    """Record a small edition (longer by extra) with its content, the unsubscribe
    placeholder in both parts."""
    article = Article(id="a1", source="s", title="Title", highlights=(Highlight("Point."),))
    store.articles.save_one(article, created)
    edition = Edition(
        edition_id,
        "Daily Digest",
        date(2026, 11, 28),
        created,
        (Section("", (Item(article, article.highlights),)),),
    )
    html = (
        "<html><body><p>Título and a long paragraph " + "x" * 200 + extra + "</p>"
        f'<p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></p></body></html>'
    )
    text = f"Título\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n"
    rendered = RenderedEdition(edition, f"Daily Digest {edition_id}", "pre", html, text)
    store.editions.record(edition, rendered.subject, None, rendered)


def add_subscribers(store: Store, count: int) -> list[str]:
    """Add count active subscribers r0@example.org … and return their addresses."""
    addresses = [f"r{n}@example.org" for n in range(count)]
    for n, address in enumerate(addresses):
        store.subscribers.upsert(address, f"Reader {n}", (), "", NOW)
    return addresses


# The store of each running test, by its tmp_path: what db_target gave it.
_STORES: dict[Path, str | Path] = {}


@pytest.fixture(autouse=True)
def _store_of_the_test(tmp_path: Path, db_target: str | Path) -> Iterator[None]:
    """Run each test once on SQLite and once on PostgreSQL."""
    _STORES[tmp_path] = db_target
    yield
    del _STORES[tmp_path]


def store_at(tmp_path: Path) -> str | Path:
    """Return where the running test's store is (a SQLite file or a database URL)."""
    return _STORES.get(tmp_path, tmp_path / "digest.db")


def smtp_settings(tmp_path: Path, port: int, **changes: object) -> Settings:
    """Return settings sending to 127.0.0.1:port in plain text, with the test's store."""
    base = Settings(
        db=store_at(tmp_path),
        outbox=tmp_path / "outbox",
        secret_key=SECRET,
        base_url="https://news.example.org",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_timeout=5,
        smtp_connections=2,
        smtp_max_attempts=4,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    """Run an SMTP server whose faults each test sets."""
    with SmtpServer(Handler(Faults())) as running:
        yield running


def send(settings: Settings, edition_id: str = "e1", **kwargs: object) -> SendReport:
    """Deliver edition_id with short back-offs."""
    with Store(settings.db) as store:
        return deliver(settings, store, edition_id, retry_delay=0.01, **kwargs)  # type: ignore[arg-type]


def test_every_subscriber_gets_one_personal_copy(tmp_path: Path, server: SmtpServer) -> None:
    """Deliver once to each active subscriber with their own headers and unsubscribe link."""
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 5)
        gone = store.subscribers.by_email("r4@example.org")
        assert gone is not None
        store.subscribers.set_status(gone.id, "unsubscribed", NOW)
    report = send(settings)
    assert report.counts == {"sent": 4} and report.complete
    assert server.handler.recipients() == {a: 1 for a in addresses[:4]}
    ids = set()
    with Store(settings.db) as store:
        for got in server.handler.received:
            msg = got.parsed()
            assert msg.defects == []
            sub = store.subscribers.by_email(got.recipient)
            assert sub is not None
            assert msg["To"] == f"{sub.name} <{sub.email}>"
            assert msg["List-Id"] == '"Daily Digest" <digest.example.com>'
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            # No DIGEST_UNSUBSCRIBE_MAILTO: the one-click URL only.
            web = msg["List-Unsubscribe"].strip(" <>")
            assert web.startswith("https://news.example.org/unsubscribe/")
            token = web.rsplit("/", 1)[1]
            assert subscriber_from_token(SECRET, settings.list_id, token) == sub.id
            assert sub.email not in msg["List-Unsubscribe"]
            for part in msg.iter_parts():
                assert isinstance(part, email.message.EmailMessage)
                body = part.get_content()
                assert web in body and "unsubscribe.invalid" not in body and "Título" in body
            ids.add(msg["Message-ID"])
        rows = {d.email: d for d in store.ledger.rows("e1")}
    assert len(ids) == 4
    assert {rows[a].message_id for a in addresses[:4]} == ids
    assert "r4@example.org" not in rows


def _greetings(msg: email.message.EmailMessage) -> tuple[str, str]:
    """Return the greeting as the text part and as the HTML part of msg show it."""
    text, html = (p.get_content() for p in msg.iter_parts())
    (line,) = [line for line in text.splitlines() if line.startswith("Hello")]
    (cell,) = lxml_html.document_fromstring(html).xpath("//td[@class='greeting']")
    return line.strip(), " ".join(cell.text_content().split())


def test_each_subscriber_is_greeted_by_their_own_name(tmp_path: Path, server: SmtpServer) -> None:
    """Deliver a rendered edition; each message greets its own subscriber in both parts."""
    settings = smtp_settings(tmp_path, server.port)
    names = {
        "ada@example.org": ("Ada Lovelace", "Hello Ada,"),
        "zoe@example.org": ("Zoë", "Hello Zoë,"),
        "lei@example.org": ("李雷", "Hello 李雷,"),
        "tag@example.org": ('<b>x</b> & "q"', "Hello <b>x</b>,"),
        "anon@example.org": ("", "Hello,"),
        "long@example.org": ("x" * 200, "Hello,"),
    }
    made = edition(3)
    rendered = render_edition(settings, made)
    assert rendered.html.count(GREETING_PLACEHOLDER) == 1
    with Store(settings.db) as store:
        for item in made.items:
            store.articles.save_one(item.article, NOW)
        store.editions.record(made, rendered.subject, None, rendered)
        for address, (name, _) in names.items():
            store.subscribers.upsert(address, name, (), "", NOW)
    assert send(settings, made.id).counts == {"sent": len(names)}
    assert server.handler.recipients() == {a: 1 for a in names}
    for got in server.handler.received:
        msg = got.parsed()
        assert msg.defects == []
        name, expected = names[got.recipient]
        assert msg["To"].addresses[0].addr_spec == got.recipient
        assert msg["To"].addresses[0].display_name == name
        assert _greetings(msg) == (expected, expected)
        web = msg["List-Unsubscribe"].split(",")[0].strip(" <>")
        for part in msg.iter_parts():
            assert isinstance(part, email.message.EmailMessage)
            body = part.get_content()
            assert web in body and "%%" not in body and "unsubscribe.invalid" not in body
        html = next(p for p in msg.iter_parts() if p.get_content_subtype() == "html")
        assert "<b>" not in html.get_content()


def test_451_twice_then_delivered_others_unaffected(tmp_path: Path, server: SmtpServer) -> None:
    """Defer a greylisted address instead of waiting on it; deliver it on a later send."""
    server.handler.faults.rcpt["r2@example.org"] = ["451 4.7.1 greylisted"] * 2
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 5)
    first = send(settings, clock=lambda: NOW)
    assert first.counts == {"sent": 4, "pending": 1} and first.deferred_now == 1
    # Due between 0.75 and 1 times SMTP_RETRY_DELAY later, not before.
    assert first.next_attempt_at is not None
    assert NOW + timedelta(minutes=3) < first.next_attempt_at <= NOW + timedelta(minutes=5)
    assert send(settings, clock=lambda: NOW + timedelta(minutes=3)).sent_now == 0
    second = send(settings, clock=lambda: NOW + timedelta(minutes=5))
    assert second.counts == {"sent": 4, "pending": 1}
    # The second wait doubles.
    assert second.next_attempt_at is not None
    assert NOW + timedelta(minutes=12) < second.next_attempt_at <= NOW + timedelta(minutes=15)
    assert send(settings, clock=lambda: NOW + timedelta(minutes=15)).counts == {"sent": 5}
    assert server.handler.recipients() == {a: 1 for a in addresses}
    with Store(settings.db) as store:
        attempts = {d.email: d.attempts for d in store.ledger.rows("e1")}
    assert attempts == {a: 3 if a == "r2@example.org" else 1 for a in addresses}


def test_temporary_failures_give_up_after_retry_for(tmp_path: Path, server: SmtpServer) -> None:
    """Fail a row that still fails temporarily SMTP_RETRY_FOR after its first failure."""
    server.handler.faults.rcpt["r0@example.org"] = ["452 4.2.2 mailbox full"] * 99
    settings = smtp_settings(tmp_path, server.port, smtp_retry_for=timedelta(hours=3))
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 2)
    at = NOW
    for _ in range(12):
        report = send(settings, clock=lambda at=at: at)
        if report.complete:
            break
        assert report.next_attempt_at is not None
        # Never more than an hour apart.
        assert report.next_attempt_at - at <= timedelta(hours=1)
        at = report.next_attempt_at
    assert report.counts == {"sent": 1, "failed": 1}
    assert NOW + timedelta(hours=3) <= at < NOW + timedelta(hours=4)
    with Store(settings.db) as store:
        (row,) = store.ledger.rows("e1", ("failed",))
    assert row.last_error.startswith("gave up after 3h of temporary failures: 452 4.2.2")


def test_550_fails_once_and_is_left_out_next_time(tmp_path: Path, server: SmtpServer) -> None:
    """Never retry a 550 for an unknown mailbox, and leave the address out later."""
    server.handler.faults.rcpt["r1@example.org"] = ["550 5.1.1 no such user"] * 9
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 3)
    report = send(settings)
    assert report.counts == {"sent": 2, "bounced": 1}
    assert server.handler.attempts["r1@example.org"] == 1
    with Store(settings.db) as store:
        (row,) = store.ledger.rows("e1", ("bounced",))
        assert row.email == "r1@example.org" and "550 5.1.1" in row.last_error
        add_edition(store, "e2", NOW + timedelta(days=1))
    assert send(settings, "e2").counts == {"sent": 2}
    assert server.handler.attempts["r1@example.org"] == 1


def test_a_policy_refusal_holds_the_domain_back_and_bounces_nobody(
    tmp_path: Path, server: SmtpServer
) -> None:
    """Defer a 5.7.1 (a blocklisted IP) and the rest of its domain; bounce no one; say so."""
    blocked = [f"b{n}@blocked.example.net" for n in range(3)]
    server.handler.faults.rcpt[blocked[0]] = ["550 5.7.1 client host blocked"] * 9
    settings = smtp_settings(tmp_path, server.port, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        for address in blocked:
            store.subscribers.upsert(address, "", (), "", NOW)
        add_subscribers(store, 2)
    report = send(settings)
    assert report.counts == {"sent": 2, "pending": 3}
    assert server.handler.recipients() == {"r0@example.org": 1, "r1@example.org": 1}
    assert server.handler.attempts[blocked[0]] == 1
    assert server.handler.attempts[blocked[1]] == server.handler.attempts[blocked[2]] == 0
    assert report.held == (
        "blocked.example.net refused the sender (550 5.7.1 client host blocked);"
        " 3 addresses wait for a later send, none marked bounced",
    )
    with Store(settings.db) as store:
        for address in blocked:
            sub = store.subscribers.by_email(address)
            assert sub is not None and sub.status == "active"


def test_repeated_hard_failures_bounce(tmp_path: Path, server: SmtpServer) -> None:
    """Mark an address bounced after BOUNCE_AFTER hard failures in a row, then leave it out."""
    server.handler.faults.data["r0@example.org"] = ["554 5.6.0 content rejected"] * 9
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_subscribers(store, 2)
    statuses = []
    for n in range(BOUNCE_AFTER + 1):
        with Store(settings.db) as store:
            add_edition(store, f"e{n}", NOW + timedelta(days=n))
        report = send(settings, f"e{n}")
        with Store(settings.db) as store:
            rows = {d.email: d.status for d in store.ledger.rows(f"e{n}")}
        statuses.append(rows.get("r0@example.org", "absent"))
        assert report.counts.get("sent") == 1
    assert statuses == ["failed"] * (BOUNCE_AFTER - 1) + ["bounced", "absent"]
    with Store(settings.db) as store:
        sub = store.subscribers.by_email("r0@example.org")
        assert sub is not None and sub.status == "bounced"


def test_dropped_every_10_messages_all_delivered(tmp_path: Path, server: SmtpServer) -> None:
    """Reconnect whenever the server hangs up, and deliver everything exactly once."""
    server.handler.faults.drop_every = 10
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 45)
    assert send(settings).counts == {"sent": 45}
    assert server.handler.recipients() == {a: 1 for a in addresses}


def test_drop_after_the_dot_resends_once_later_with_the_same_message_id(
    tmp_path: Path, server: SmtpServer
) -> None:
    """Leave a message whose reply never came 'maybe sent' and send it once more, later."""
    server.handler.faults.drop_before_reply["r1@example.org"] = 1
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 3)
    first = send(settings, clock=lambda: NOW)
    assert first.counts == {"sent": 2, "pending": 1}
    with Store(settings.db) as store:
        (row,) = store.ledger.rows("e1", ("pending",))
    assert row.maybe_sent and row.next_attempt_at == NOW + settings.smtp_retry_delay
    assert send(settings, clock=lambda: NOW + timedelta(minutes=1)).sent_now == 0
    assert send(settings, clock=lambda: NOW + timedelta(minutes=5)).counts == {"sent": 3}
    (lost,) = server.handler.dropped
    (kept,) = [m for m in server.handler.received if m.recipient == "r1@example.org"]
    assert lost.message_id == kept.message_id
    # The same message; only its Date says when it went.
    lost_msg, kept_msg = lost.parsed(), kept.parsed()
    assert lost_msg["Date"] != kept_msg["Date"]
    del lost_msg["Date"], kept_msg["Date"]
    assert lost_msg.as_bytes() == kept_msg.as_bytes()


def test_a_slow_final_reply_is_waited_for(tmp_path: Path, server: SmtpServer) -> None:
    """Wait past SMTP_TIMEOUT for the reply to the end of DATA: one copy, recorded sent."""
    server.handler.faults.data_delay["r1@example.org"] = 2.5
    settings = smtp_settings(tmp_path, server.port, smtp_timeout=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 3)
    assert send(settings).counts == {"sent": 3}
    assert server.handler.recipients()["r1@example.org"] == 1


def test_no_final_reply_twice_is_not_tried_a_third_time(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try a silent DATA once more after SMTP_RETRY_DELAY, then leave it as maybe sent."""
    import digest.smtp

    monkeypatch.setattr(digest.smtp, "DATA_REPLY_TIMEOUT", 1.0)
    server.handler.faults.data_delay["r0@example.org"] = 3.0
    settings = smtp_settings(tmp_path, server.port, smtp_timeout=0.5, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 2)
    assert send(settings, clock=lambda: NOW).counts == {"sent": 1, "pending": 1}
    assert send(settings, clock=lambda: NOW + timedelta(minutes=5)).counts == {"sent": 2}
    assert send(settings, clock=lambda: NOW + timedelta(hours=5)).sent_now == 0
    with Store(settings.db) as store:
        row = next(r for r in store.ledger.rows("e1") if r.email == "r0@example.org")
    assert row.maybe_sent and "no final reply twice" in row.last_error
    assert server.handler.attempts["r0@example.org"] == 2


def test_one_bad_address_never_stops_the_send(tmp_path: Path, server: SmtpServer) -> None:
    """Fail the row of an address no message can go to; send to everyone else."""
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 3)
        # Added past the importer's checks, as an older version or a hand edit could.
        store.subscribers.add_many(["bad\r\nBcc: x@example.org", "zoë@bücher.example"], NOW)
    report = send(settings)
    assert report.complete
    for address in addresses:
        assert server.handler.recipients()[address] == 1
    with Store(settings.db) as store:
        rows = {d.email: d for d in store.ledger.rows("e1")}
    bad = rows["bad\r\nBcc: x@example.org"]
    assert bad.status == "failed" and "line break" in bad.last_error
    # An internationalised domain goes out in its IDNA form; the local part needs
    # SMTPUTF8, which this server does not offer: failed with that reason.
    assert rows["zoë@bücher.example"].status == "failed"
    assert "SMTPUTF8" in rows["zoë@bücher.example"].last_error


def test_an_internationalised_domain_is_sent_in_idna_form(
    tmp_path: Path, server: SmtpServer
) -> None:
    """Send to user@bücher.example as user@xn--bcher-kva.example."""
    settings = smtp_settings(tmp_path, server.port)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        store.subscribers.add_many(["reader@bücher.example", "r@example.org"], NOW)
    assert send(settings).counts == {"sent": 2}
    assert server.handler.recipients()["reader@xn--bcher-kva.example"] == 1


def test_the_same_4xx_to_everyone_pauses_the_send(tmp_path: Path, server: SmtpServer) -> None:
    """Pause after a few messages in a row get the same 4xx, instead of deferring all."""
    settings = smtp_settings(tmp_path, server.port, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 40)
    for address in addresses:
        server.handler.faults.rcpt[address] = ["452 4.3.1 insufficient system storage"]
    report = send(settings, clock=lambda: NOW)
    assert "5 messages in a row" in report.paused and "452 4.3.1" in report.paused
    assert report.deferred_now == 5 and report.counts == {"pending": 40}
    assert server.handler.attempts.total() == 5


def test_stop_finishes_the_message_in_flight_then_resumes(
    tmp_path: Path, server: SmtpServer
) -> None:
    """Stop between messages when asked; the next run sends the rest, nobody twice."""
    settings = smtp_settings(tmp_path, server.port, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        addresses = add_subscribers(store, 10)
    stop = threading.Event()

    def progress(p: Progress) -> None:
        if p.sent == 3:
            stop.set()

    report = send(settings, stop=stop, progress=progress)
    assert report.stopped and report.counts == {"sent": 3, "pending": 7}
    assert send(settings).counts == {"sent": 10}
    assert server.handler.recipients() == {a: 1 for a in addresses}


def test_unsubscribed_during_the_run_is_skipped(tmp_path: Path, server: SmtpServer) -> None:
    """Skip a subscriber who leaves mid-run, from the next batch claimed on."""
    settings = smtp_settings(tmp_path, server.port, smtp_connections=1)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 3 * BATCH)
        leaver = store.subscribers.by_email(f"r{2 * BATCH}@example.org")
        assert leaver is not None

    def progress(p: Progress) -> None:
        if p.sent == 1:
            with Store(settings.db) as other:
                other.subscribers.set_status(leaver.id, "unsubscribed", NOW)

    report = send(settings, progress=progress)
    assert report.counts == {"sent": 3 * BATCH - 1, "skipped": 1}
    assert leaver.email not in server.handler.recipients()


def test_no_secret_no_send(tmp_path: Path, server: SmtpServer) -> None:
    """Refuse to send without DIGEST_SECRET_KEY, naming it."""
    settings = smtp_settings(tmp_path, server.port, secret_key="")
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 1)
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        send(settings)
    assert server.handler.received == []


def test_unreachable_server_stops_and_loses_nothing(tmp_path: Path) -> None:
    """Stop the run when no connection can be made; every row stays pending."""
    with SmtpServer() as gone:
        port = gone.port
    settings = smtp_settings(tmp_path, port, smtp_max_attempts=2)
    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 4)
    with pytest.raises(DeliveryError, match="cannot reach"):
        send(settings)
    with Store(settings.db) as store:
        assert store.ledger.counts("e1") == {"pending": 4}


def _env_file(tmp_path: Path, port: int, commit_every: int = 20) -> Path:
    env = tmp_path / "send.env"
    env.write_text(
        f"DIGEST_DB={store_at(tmp_path)}\nDIGEST_OUTBOX={tmp_path / 'outbox'}\n"
        f"{SENDABLE_ENV}SMTP_HOST=127.0.0.1\nSMTP_PORT={port}\n"
        "SMTP_SECURITY=none\nSMTP_TIMEOUT=5\nSMTP_CONNECTIONS=2\n"
        f"DIGEST_SEND_COMMIT_EVERY={commit_every}\n"
    )
    return env


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}


# Three kill patterns on SQLite, one on PostgreSQL: the claims are the same statements.
# Outcomes grouped by 20 (the default) and one by one.
@pytest.mark.parametrize(
    ("db_target", "seed", "every"),
    [("sqlite", 1, 20), ("sqlite", 2, 1), ("sqlite", 3, 20), ("postgresql", 1, 20)],
    indirect=["db_target"],
)
def test_killed_send_resumes_and_sends_each_address_once(
    tmp_path: Path, seed: int, every: int
) -> None:
    """SIGKILL `digest send` at random points; the rerun reaches everyone, at most the
    messages in flight twice, with the same Message-ID: per kill, the outcomes not yet
    committed (a group of DIGEST_SEND_COMMIT_EVERY, and what the other connection
    handed in while it went) and the message each connection had under way."""
    rng = random.Random(seed)
    total = 1000
    connections = 2
    handler = Handler(Faults(delay=0.001))
    with SmtpServer(handler) as srv:
        env = _env_file(tmp_path, srv.port, every)
        with Store(store_at(tmp_path)) as store:
            add_edition(store, "e1")
            store.subscribers.add_many((f"r{n}@example.org" for n in range(total)), NOW)
        command = [sys.executable, "-m", "digest", "--env-file", str(env), "send", "e1"]
        kills = 0
        for _ in range(2):
            target = len(handler.received) + rng.randint(20, 350)
            proc = subprocess.Popen(
                command, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            # Woken by each accepted message (and each second, to notice the process
            # ending); a send that stalls is left after 300 s, for the final run to show.
            with handler.arrived:
                for _ in range(300):
                    if len(handler.received) >= target or proc.poll() is not None:
                        break
                    handler.arrived.wait(1)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=30)
        final = subprocess.run(
            command, env=_clean_env(), capture_output=True, text=True, timeout=120, check=False
        )
        assert final.returncode == 0, final.stderr
        assert f"{total} sent" in final.stdout
    assert kills >= 1
    copies = handler.recipients()
    assert set(copies) == {f"r{n}@example.org" for n in range(total)}
    twice = [a for a, n in copies.items() if n > 1]
    assert max(copies.values()) <= 1 + kills
    in_flight = every + 2 * connections - 1 if every > 1 else connections
    assert len(twice) <= in_flight * kills
    for address in twice:
        ids = {m.message_id for m in handler.received if m.recipient == address}
        assert len(ids) == 1


def test_cli_run_with_smtp_delivery_then_deliveries(
    tmp_path: Path, seeds_dir: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make and send an edition with `digest run`, report it, and send a test copy."""
    from click.testing import CliRunner

    from digest.cli import main

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    server.handler.faults.rcpt["r1@example.org"] = ["550 5.1.1 no such user"]
    (tmp_path / ".env").write_text(
        f"DIGEST_DB={store_at(tmp_path)}\n"
        f"DIGEST_SOURCES={seeds_dir}\nDIGEST_DELIVERY=smtp\n{SENDABLE_ENV}"
        f"SMTP_HOST=127.0.0.1\nSMTP_PORT={server.port}\nSMTP_SECURITY=none\n"
    )
    (tmp_path / "list.csv").write_text("email,name\nr0@example.org,A\nr1@example.org,B\n")
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "import", "list.csv"]).exit_code == 0
    result = runner.invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert "10 items" in result.output
    assert ": 1 sent, 0 failed, 1 bounced, 0 skipped, 0 pending" in result.output
    assert server.handler.recipients() == {"r0@example.org": 1}
    (msg,) = server.handler.received
    assert "unsubscribe.invalid" not in msg.data.decode()
    assert _greetings(msg.parsed()) == ("Hello A,", "Hello A,")
    result = runner.invoke(main, ["deliveries"])
    assert result.exit_code == 0, result.output
    assert "2 subscribers: 1 sent, 1 bounced." in result.output
    assert "bounced  r1@example.org  tries 1" in result.output
    assert "550 5.1.1 no such user" in result.output
    again = runner.invoke(main, ["run"])
    assert "Nothing to send" in again.output
    result = runner.invoke(main, ["send", "--test", "me@example.org"])
    assert result.exit_code == 0, result.output
    assert "Sent a test copy" in result.output
    assert server.handler.recipients()["me@example.org"] == 1
    (copy,) = [m for m in server.handler.received if m.recipient == "me@example.org"]
    assert _greetings(copy.parsed()) == ("Hello,", "Hello,")  # a test copy names nobody
    assert "me@example.org" not in runner.invoke(main, ["deliveries", "--all"]).output


def test_send_and_run_stop_on_a_preflight_error_and_print_warnings(
    tmp_path: Path, seeds_dir: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop `digest send` and `digest run` on a preflight error, sending and making
    nothing; print a warning (an edition over Gmail's clip) and send all the same."""
    from click.testing import CliRunner

    from digest.cli import main

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    env = _env_file(tmp_path, server.port)
    with Store(store_at(tmp_path)) as store:
        add_edition(store, "e1")
        add_subscribers(store, 2)
    runner = CliRunner()
    plain = {"DIGEST_BASE_URL": "http://127.0.0.1:8080"}
    for command in (["send", "e1"], ["run"], ["send", "--worker"]):
        changes = {**plain, "DIGEST_DELIVERY": "smtp", "DIGEST_SOURCES": str(seeds_dir)}
        stopped = runner.invoke(main, ["--env-file", str(env), *command], env=changes)
        assert stopped.exit_code == 2, stopped.output
        assert "error   DIGEST_BASE_URL: http://127.0.0.1:8080 is not https://" in stopped.output
        assert "error: not safe to send to real people yet" in stopped.output
    assert server.handler.received == []
    with Store(store_at(tmp_path)) as store:
        assert store.ledger.counts("e1") == {}
        assert [r.id for r in store.editions.recent(limit=5)] == ["e1"]
    with Store(store_at(tmp_path)) as store:
        add_edition(store, "e2", NOW + timedelta(days=1), extra="x" * 110_000)
    sent = runner.invoke(main, ["--env-file", str(env), "send", "e2"])
    assert sent.exit_code == 0, sent.output
    assert "warning DIGEST_MAX_ITEMS: edition e2: " in sent.output
    assert "over Gmail's 102 KB clip" in sent.output
    assert server.handler.recipients() == {"r0@example.org": 1, "r1@example.org": 1}


def test_run_with_smtp_and_no_secret_makes_nothing(settings: Settings) -> None:
    """Refuse `digest run` with DIGEST_DELIVERY=smtp and no secret before making anything."""
    from digest import pipeline

    settings = dataclasses.replace(settings, db=store_at(settings.outbox.parent))
    smtp = dataclasses.replace(settings, delivery="smtp", secret_key="")
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        pipeline.run_edition(smtp, NOW)
    with Store(settings.db) as store:
        assert store.editions.recent() == []


def test_untrusted_certificate_stops_the_send_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Stop with a message naming SMTP_CA_FILE; every row stays pending for the next run."""
    from smtpserver import make_certificates

    certs = make_certificates(tmp_path)
    with SmtpServer(tls=certs.server_context()) as srv:
        settings = smtp_settings(tmp_path, srv.port, smtp_security="starttls")
        with Store(settings.db) as store:
            add_edition(store, "e1")
            add_subscribers(store, 3)
        with pytest.raises(DeliveryError, match="SMTP_CA_FILE"):
            send(settings)
        with Store(settings.db) as store:
            assert store.ledger.counts("e1") == {"pending": 3}
        trusted = dataclasses.replace(settings, smtp_ca_file=certs.ca_file)
        assert send(trusted).counts == {"sent": 3}
        assert sorted(srv.handler.recipients()) == [
            "r0@example.org",
            "r1@example.org",
            "r2@example.org",
        ]


def test_an_old_edition_is_not_started_for_later_joiners(
    tmp_path: Path, server: SmtpServer
) -> None:
    """Send an edition older than DIGEST_MAX_AGE only to those who were there when made."""
    settings = smtp_settings(tmp_path, server.port, max_age=timedelta(days=2))
    with Store(settings.db) as store:
        add_edition(store, "old", NOW)
        store.subscribers.upsert("early@example.org", "", (), "", NOW - timedelta(days=1))
        store.subscribers.upsert("late@example.org", "", (), "", NOW + timedelta(days=1))
        add_edition(store, "fresh", NOW + timedelta(days=1, hours=1))
    later = NOW + timedelta(days=3)
    assert send(settings, "old", clock=lambda: later).counts == {"sent": 1}
    assert send(settings, "fresh", clock=lambda: later).counts == {"sent": 2}
    assert server.handler.recipients() == {"early@example.org": 2, "late@example.org": 1}
