"""The SMTP client against a real aiosmtpd server: TLS, login, timeouts, fault replies."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtpserver import Certificates, Faults, Handler, SilentServer, SmtpServer, make_certificates

from digest.config import Settings
from digest.limits import RateLimiter
from digest.smtp import (
    Connection,
    SmtpSetupError,
    backoff,
    classify_permanent,
    send_with_retries,
)
from digest.smtpdata import data_bytes

MESSAGE = b"From: d@example.com\r\nTo: r@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def plain(port: int, **changes: object) -> Settings:
    """Return settings for a plain-text server on 127.0.0.1:port."""
    base = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_timeout=5)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def send(settings: Settings, to: str = "r@example.org", attempts: int = 1) -> tuple[str, int]:
    """Send MESSAGE once through a fresh connection; return the outcome and the tries."""
    connection = Connection(settings)
    try:
        result, tries = send_with_retries(
            connection, "d@example.com", to, MESSAGE, max_attempts=attempts, retry_delay=0.01
        )
    finally:
        connection.close()
    return result.outcome, tries


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Return a CA and a server certificate made for this module."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    """Run a plain server with no faults."""
    with SmtpServer() as running:
        yield running


def test_plain_send_is_received(server: SmtpServer) -> None:
    """Deliver one message byte for byte."""
    assert send(plain(server.port)) == ("sent", 1)
    (got,) = server.handler.received
    assert got.recipient == "r@example.org"
    assert b"Subject: hi" in got.data


def test_4xx_is_returned_at_once_for_the_ledger_to_defer() -> None:
    """Give a 451 back after one try: waiting minutes on it is the ledger's job."""
    faults = Faults(rcpt={"r@example.org": ["451 4.7.1 try later", "451 4.7.1 try later"]})
    with SmtpServer(Handler(faults)) as srv:
        assert send(plain(srv.port), attempts=5) == ("transient", 1)
        assert srv.handler.attempts["r@example.org"] == 1


def test_421_closes_the_connection_and_the_next_message_reconnects() -> None:
    """Treat 421 as temporary, drop the line, and send the next message on a new one."""
    faults = Faults(data={"r@example.org": ["421 4.7.0 rate limit exceeded, slow down"]})
    with SmtpServer(Handler(faults)) as srv:
        connection = Connection(plain(srv.port))
        first = connection.send_once("d@example.com", "r@example.org", MESSAGE)
        assert (first.outcome, first.code) == ("transient", 421)
        assert connection.send_once("d@example.com", "r@example.org", MESSAGE).outcome == "sent"
        connection.close()
        assert srv.handler.recipients() == {"r@example.org": 1}


def test_5xx_is_not_retried() -> None:
    """Give up at once on a 550 and say the mailbox does not exist."""
    faults = Faults(rcpt={"r@example.org": ["550 5.1.1 no such user"] * 5})
    with SmtpServer(Handler(faults)) as srv:
        connection = Connection(plain(srv.port))
        result, tries = send_with_retries(
            connection, "d@example.com", "r@example.org", MESSAGE, max_attempts=5, retry_delay=0
        )
        connection.close()
        assert (result.outcome, tries, result.no_such_mailbox) == ("permanent", 1, True)
        assert "550 5.1.1 no such user" in result.error
        assert srv.handler.attempts["r@example.org"] == 1


def test_refused_connections_are_retried_quickly_up_to_the_tries() -> None:
    """Try SMTP_MAX_ATTEMPTS times when no connection can be made, then say so."""
    with SmtpServer() as gone:
        port = gone.port
    connection = Connection(plain(port))
    result, tries = send_with_retries(
        connection, "d@example.com", "r@example.org", MESSAGE, max_attempts=3, retry_delay=0.01
    )
    assert (result.outcome, tries, result.code) == ("transient", 3, 0)
    assert connection.unreachable


def test_drop_before_the_reply_is_unsure_and_not_resent_at_once() -> None:
    """Report 'unsure' when the line dies between '.' and the reply: it may have arrived."""
    faults = Faults(drop_before_reply={"r@example.org": 1})
    with SmtpServer(Handler(faults)) as srv:
        assert send(plain(srv.port), attempts=3) == ("unsure", 1)
        assert len(srv.handler.dropped) == 1 and srv.handler.received == []


def test_the_final_reply_is_awaited_past_smtp_timeout() -> None:
    """Wait up to ten minutes for the reply to the end of DATA, not SMTP_TIMEOUT."""
    faults = Faults(data_delay={"r@example.org": 1.5})
    with SmtpServer(Handler(faults)) as srv:
        assert send(plain(srv.port, smtp_timeout=0.5), attempts=3) == ("sent", 1)
        assert srv.handler.recipients() == {"r@example.org": 1}


def test_dots_at_line_starts_are_doubled_and_restored() -> None:
    """Send a body line that starts with a dot intact (RFC 5321 transparency)."""
    body = MESSAGE + b".hidden line\r\n..two dots\r\n."
    with SmtpServer() as srv:
        connection = Connection(plain(srv.port))
        assert connection.send_once("d@example.com", "r@example.org", body).outcome == "sent"
        connection.close()
        (got,) = srv.handler.received
    assert got.data.endswith(b".hidden line\r\n..two dots\r\n.\r\n")


@pytest.mark.parametrize("seed", range(4))
def test_data_bytes_stuffs_dots_as_line_anchored_substitution_does(seed: int) -> None:
    """Double every dot at a line start (after CRLF, a bare LF, or at the very start) and
    end with CRLF . CRLF, as smtplib's own regular expression does, whether a message
    has a few dots or many."""
    rng = random.Random(seed)
    line_start = re.compile(rb"(?m)^\.")
    for _ in range(2000):
        alphabet = b".\r\nab" if seed % 2 else b"ab\r\n" + b"." * 30
        message = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        expected = line_start.sub(b"..", message)
        expected += (b"" if expected.endswith(b"\r\n") else b"\r\n") + b".\r\n"
        assert data_bytes(message) == expected


def test_connection_is_reused_and_reopened() -> None:
    """Send many messages over one connection, reopening it when the server drops it."""
    with SmtpServer(Handler(Faults(drop_every=3))) as srv:
        connection = Connection(plain(srv.port))
        for n in range(7):
            result, _ = send_with_retries(
                connection,
                "d@example.com",
                f"r{n}@example.org",
                MESSAGE,
                max_attempts=3,
                retry_delay=0,
            )
            assert result.outcome == "sent"
        connection.close()
        assert sorted(srv.handler.recipients()) == sorted(f"r{n}@example.org" for n in range(7))


def test_silent_server_times_out_within_the_timeout() -> None:
    """Fail the attempt within SMTP_TIMEOUT when the server never greets.

    The attempt runs in a thread: without the timeout it would wait for a greeting that
    never comes, and the generous join below would give up on it.
    """
    outcomes: list[tuple[str, bool]] = []
    with SilentServer() as srv:
        connection = Connection(plain(srv.port, smtp_timeout=0.5))

        def attempt() -> None:
            result = connection.send_once("d@example.com", "r@example.org", MESSAGE)
            outcomes.append((result.outcome, connection.unreachable))

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(60)
        assert outcomes == [("transient", True)], "the attempt never gave up"


def test_starttls_with_a_trusted_ca(certs: Certificates) -> None:
    """Upgrade with STARTTLS when SMTP_CA_FILE trusts the server's certificate."""
    with SmtpServer(tls=certs.server_context()) as srv:
        settings = plain(srv.port, smtp_security="starttls", smtp_ca_file=certs.ca_file)
        assert send(settings) == ("sent", 1)


def test_starttls_with_an_untrusted_certificate_is_refused(certs: Certificates) -> None:
    """Refuse a certificate no trusted CA signed, and name SMTP_CA_FILE."""
    with SmtpServer(tls=certs.server_context()) as srv:
        with pytest.raises(SmtpSetupError, match="SMTP_CA_FILE"):
            send(plain(srv.port, smtp_security="starttls"))
        assert srv.handler.received == []


def test_wrong_host_name_is_refused(tmp_path: Path) -> None:
    """Check the host name: a trusted certificate for another name does not do."""
    other = make_certificates(tmp_path, names=("mail.example.net",))
    with SmtpServer(tls=other.server_context()) as srv:
        settings = plain(srv.port, smtp_security="starttls", smtp_ca_file=other.ca_file)
        with pytest.raises(SmtpSetupError, match="not trusted"):
            send(settings)
        assert srv.handler.received == []


def test_smtps_with_a_trusted_ca(certs: Certificates) -> None:
    """Speak TLS from the first byte with SMTP_SECURITY=ssl."""
    with SmtpServer(tls=certs.server_context(), implicit_tls=True) as srv:
        settings = plain(srv.port, smtp_security="ssl", smtp_ca_file=certs.ca_file)
        assert send(settings) == ("sent", 1)
        with pytest.raises(SmtpSetupError, match="not trusted"):
            send(plain(srv.port, smtp_security="ssl"))


def test_no_plain_text_fallback(server: SmtpServer) -> None:
    """Refuse to go on in plain text when STARTTLS was asked for and is not offered."""
    with pytest.raises(SmtpSetupError, match="does not offer STARTTLS"):
        send(plain(server.port, smtp_security="starttls"))
    assert server.handler.received == []


def test_login_required_and_password_never_logged(
    certs: Certificates, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Log in when asked; never write the password anywhere, even at debug level."""
    password = "hunter2-Secret-Value"
    with SmtpServer(tls=certs.server_context(), auth=("digest", password)) as srv:
        secure = plain(srv.port, smtp_security="starttls", smtp_ca_file=certs.ca_file)
        with pytest.raises(SmtpSetupError, match="SMTP_USERNAME"):
            send(dataclasses.replace(secure, smtp_username="digest", smtp_password="wrong"))
        with pytest.raises(SmtpSetupError):
            send(secure)  # no login at all: the server refuses MAIL
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            settings = dataclasses.replace(secure, smtp_username="digest", smtp_password=password)
            assert send(settings) == ("sent", 1)
            assert password not in repr(settings)
        assert srv.logins == ["digest"]
    assert caplog.records, "debug logging was captured"
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert password not in text


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_spreads_messages() -> None:
    """Let 600 a minute through at one every 0.1 s; with no limit, never wait."""
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.wait()
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(1000.3)
    unlimited = RateLimiter(0, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        unlimited.wait()
    assert len(clock.slept) == 3


def test_stop_cuts_the_back_off_short() -> None:
    """Return at once from a back-off when asked to stop.

    The back-off after the refused connection is five minutes; the send runs in a thread
    and the join waits one: only a stop that cut the back-off short lets it end in time.
    """
    stop = threading.Event()
    with SmtpServer() as gone:
        port = gone.port
    connection = Connection(plain(port))
    outcomes: list[tuple[str, int]] = []

    def attempt() -> None:
        result, tries = send_with_retries(
            connection,
            "d@example.com",
            "r@example.org",
            MESSAGE,
            max_attempts=5,
            retry_delay=3600,
            stop=stop,
        )
        outcomes.append((result.outcome, tries))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    stop.set()
    thread.join(60)
    connection.close()
    assert outcomes == [("transient", 1)]


def test_backoff_doubles_up_to_a_cap() -> None:
    """Wait base, 2 base, 4 base, … and never more than the cap."""
    assert [backoff(n, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30, 1.0) == 300.0


def test_unreadable_ca_file_names_the_key(tmp_path: Path) -> None:
    """Name SMTP_CA_FILE when the CA file cannot be read."""
    with pytest.raises(SmtpSetupError, match="SMTP_CA_FILE"):
        Connection(plain(1, smtp_security="ssl", smtp_ca_file=tmp_path / "missing.pem"))


@pytest.mark.parametrize(
    ("code", "reply", "gone", "policy"),
    [
        (550, "5.1.1 no such user", True, False),
        (550, "5.7.1 client host blocked using a DNS blocklist", False, True),
        (554, "5.7.1 message refused as spam", False, True),
        (550, "no such user here", True, False),
        (550, "Requested action not taken: mailbox unavailable", False, False),
        (553, "User unknown", True, False),
        (552, "5.2.2 mailbox full", False, False),
    ],
)
def test_only_mailbox_level_refusals_count_as_no_such_mailbox(
    code: int, reply: str, gone: bool, policy: bool
) -> None:
    """Bounce at once only for 5.1.x or a bare 550 that says so; 5.7.x is a policy."""
    result = classify_permanent(code, reply, rcpt=True)
    assert (result.outcome, result.no_such_mailbox, result.policy) == ("permanent", gone, policy)


def test_a_message_whose_row_is_no_longer_ours_is_withdrawn_before_its_end(
    server: SmtpServer,
) -> None:
    """Asked after 354 whether the row is still this sender's, a no drops the connection
    before the final dot: the server delivers nothing, and the next message goes."""
    connection = Connection(plain(server.port))
    asked: list[str] = []

    def no() -> bool:
        asked.append("asked")
        return False

    try:
        gone = connection.send_once("d@example.com", "r@example.org", MESSAGE, still_ours=no)
        kept = connection.send_once(
            "d@example.com", "s@example.org", MESSAGE, still_ours=lambda: True
        )
    finally:
        connection.close()
    assert gone.outcome == "abandoned" and asked == ["asked"]
    assert kept.outcome == "sent"
    assert server.handler.recipients() == {"s@example.org": 1}
