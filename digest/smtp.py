"""The SMTP client: TLS with certificate checks, timeouts, reconnects, retries, rate limit.

The only module that touches smtplib. The password goes to the server and nowhere else:
smtplib's own debug output (which prints the AUTH exchange) is never switched on.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from digest.config import Settings
from digest.errors import DeliveryError
from digest.smtpdata import data_bytes

if TYPE_CHECKING:
    from digest.limits import RateLimiter

logger = logging.getLogger(__name__)

# sent; transient (a 4xx, or the connection failed before the message was given);
# permanent (a 5xx); unsure (the message was given, but no final reply came).
# "abandoned": the sender gave the message up before its end went, because the row was
# no longer its own to send (its claim ran out); the server keeps nothing of it.
ReplyKind = Literal["sent", "transient", "permanent", "unsure", "abandoned"]
# Replies to RCPT that may say the mailbox does not exist; without an enhanced status
# code (RFC 3463) only their text tells, so the text must say so too.
_NO_SUCH_MAILBOX = {550, 551, 553}
_NO_SUCH_USER = re.compile(
    r"no such (user|mailbox|recipient|address)|user(name)? (unknown|not found)"
    r"|unknown (user|recipient|mailbox)|(recipient|mailbox|address|user) (does not|doesn't)"
    r" exist|(mailbox|recipient|address) not found|invalid (recipient|mailbox)",
    re.IGNORECASE,
)
# The enhanced status code at the start of a reply's text: class.subject.detail.
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# How long the server may take to answer the end of a message.
DATA_REPLY_TIMEOUT = 600.0


class SmtpSetupError(DeliveryError):
    """The server cannot be used at all: wrong host, TLS refused, login refused."""


@dataclass(frozen=True)
class Result:
    """How one message ended on one connection."""

    outcome: ReplyKind
    code: int = 0
    error: str = ""
    # A 5xx to RCPT saying the mailbox does not exist.
    no_such_mailbox: bool = False
    # A 5.7.x: the server refuses the sender (a blocklisted IP, a policy), not the
    # address; every address at that domain would get the same.
    policy: bool = False


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Return a client TLS context that checks certificates and host names."""
    context = ssl.create_default_context()
    if settings.smtp_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.smtp_ca_file))
        except (OSError, ssl.SSLError) as err:
            raise SmtpSetupError(
                f"{settings.smtp_ca_file}: cannot load the CA file: {err}",
                hint="set SMTP_CA_FILE to a PEM file holding the certificate authority",
            ) from err
    return context


class Connection:
    """One SMTP connection, opened on first use and re-opened after the server drops it."""

    def __init__(self, settings: Settings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = context or (
            tls_context(settings) if settings.smtp_security != "none" else None
        )
        self._smtp: smtplib.SMTP | None = None
        self.data_reply_timeout = DATA_REPLY_TIMEOUT
        # Whether the last failure happened before a connection stood: then every
        # address would fail the same way, and the run should stop rather than churn.
        self.unreachable = False

    def _where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def open(self) -> smtplib.SMTP:
        """Return the open connection, connecting, securing and logging in if needed."""
        if self._smtp is not None:
            return self._smtp
        s = self.settings
        logger.debug("connecting to %s (%s)", self._where(), s.smtp_security)
        smtp: smtplib.SMTP
        try:
            if s.smtp_security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=self.context
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            try:
                smtp.ehlo()
                if s.smtp_security == "starttls":
                    # No fall-back: a server that does not offer STARTTLS is an error.
                    if not smtp.has_extn("starttls"):
                        raise SmtpSetupError(
                            f"{self._where()} does not offer STARTTLS",
                            hint="use SMTP_SECURITY=ssl with the server's TLS port, or fix"
                            " the server; digest never falls back to plain text",
                        )
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if s.smtp_username:
                    self._login(smtp)
            except BaseException:
                _close_quietly(smtp)
                raise
        except ssl.SSLCertVerificationError as err:
            raise SmtpSetupError(
                f"{self._where()}: the server's certificate is not trusted: {err.verify_message}",
                hint="set SMTP_CA_FILE to the authority that signed it, or fix SMTP_HOST",
            ) from err
        except smtplib.SMTPAuthenticationError as err:
            raise SmtpSetupError(
                f"{self._where()}: login as {s.smtp_username!r} refused: {err.smtp_code}"
                f" {_text(err.smtp_error)}",
                hint="check SMTP_USERNAME and SMTP_PASSWORD",
            ) from err
        except smtplib.SMTPNotSupportedError as err:
            raise SmtpSetupError(
                f"{self._where()}: {err}",
                hint="check SMTP_SECURITY and whether the server wants a login",
            ) from err
        except smtplib.SMTPResponseException as err:
            if 500 <= err.smtp_code < 600:
                raise SmtpSetupError(
                    f"{self._where()}: refused: {err.smtp_code} {_text(err.smtp_error)}",
                    hint="check SMTP_HOST, SMTP_PORT and SMTP_SECURITY",
                ) from err
            raise
        self._smtp = smtp
        logger.debug("connected to %s", self._where())
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """Log in; credentials smtplib cannot send are refused without showing them."""
        s = self.settings
        try:
            smtp.login(s.smtp_username, s.smtp_password)
        except UnicodeEncodeError:
            # smtplib sends ASCII only, and its error quotes a character and its position:
            # from None, so that not even a traceback shows a piece of the password.
            key = "SMTP_PASSWORD" if s.smtp_username.isascii() else "SMTP_USERNAME"
            raise SmtpSetupError(
                f"{self._where()}: {key} contains characters the server's login cannot carry",
                hint=f"use an ASCII {key}: digest logs in with ASCII only",
            ) from None

    def close(self) -> None:
        """Say QUIT if the server still listens, then close."""
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _close_quietly(smtp)

    def drop(self) -> None:
        """Forget a connection that failed; the next send opens a new one."""
        if self._smtp is not None:
            _close_quietly(self._smtp)
            self._smtp = None

    def send_once(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        still_ours: Callable[[], bool] | None = None,
    ) -> Result:
        """Try one delivery of data; classify the reply. Setup errors are raised.

        still_ours, when given, is asked once more after the server said 354, the last
        moment at which the message can be withdrawn: a sender paused in the middle of
        a transaction (SIGSTOP, a swapped-out machine) must not finish a message whose
        row another sender has taken over meanwhile."""
        self.unreachable = False
        try:
            try:
                smtp = self.open()
            except (OSError, smtplib.SMTPException):
                self.unreachable = True
                raise
            return self._transaction(smtp, sender, recipient, data, still_ours)
        except smtplib.SMTPSenderRefused as err:
            # A refused sender says nothing about the recipient: never count it against them.
            if 500 <= err.smtp_code < 600:
                self.drop()
                raise SmtpSetupError(
                    f"{self._where()}: the sender {sender!r} was refused: {err.smtp_code}"
                    f" {_text(err.smtp_error)}",
                    hint="check DIGEST_FROM, and SMTP_USERNAME and SMTP_PASSWORD if the"
                    " server wants a login",
                ) from err
            return self._classify(err.smtp_code, err.smtp_error, rcpt=False)
        except smtplib.SMTPServerDisconnected as err:
            self.drop()
            return Result("transient", 0, f"connection dropped: {err}")
        except smtplib.SMTPResponseException as err:
            return self._classify(err.smtp_code, err.smtp_error, rcpt=False)
        except SmtpSetupError:
            self.drop()
            raise
        except (OSError, smtplib.SMTPException) as err:
            # Timeouts, refused connections, resets: the network, so worth another try.
            self.drop()
            return Result("transient", 0, f"{type(err).__name__}: {err}")

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        sender: str,
        recipient: str,
        data: bytes,
        still_ours: Callable[[], bool] | None,
    ) -> Result:
        """MAIL, RCPT and DATA, waiting for the final reply as long as RFC 5321 allows."""
        envelope, utf8 = envelope_address(recipient)
        options = [f"SIZE={len(data)}"] if smtp.has_extn("size") else []
        if utf8:
            if not smtp.has_extn("smtputf8"):
                return Result(
                    "permanent",
                    0,
                    f"{self._where()} does not offer SMTPUTF8, which this address needs",
                )
            options.append("SMTPUTF8")
        try:
            code, reply = smtp.mail(sender, options)
            if code != 250:
                if code == 421:
                    self.drop()
                else:
                    smtp.rset()
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            code, reply = smtp.rcpt(envelope)
            if code not in (250, 251):
                if code != 421:
                    smtp.rset()
                return self._classify(code, reply, rcpt=True)
            code, reply = smtp.docmd("data")
            if code != 354:
                if code != 421:
                    smtp.rset()
                return self._classify(code, reply, rcpt=False)
            if still_ours is not None and not still_ours():
                # Past 354 only a dropped connection withdraws the message: without its
                # final dot the server delivers nothing.
                self.drop()
                return Result("abandoned", 0, "the row was no longer this sender's to send")
            smtp.send(data_bytes(data))
        finally:
            # SMTPUTF8 switches the connection's command encoding for one transaction.
            smtp.command_encoding = "ascii"
        # The message is with the server now: silence means it may have been taken, and
        # the wait for this reply is ten minutes (RFC 5321, 4.5.3.2.6), not SMTP_TIMEOUT.
        if smtp.sock is not None:
            smtp.sock.settimeout(max(self.data_reply_timeout, self.settings.smtp_timeout))
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as err:
            self.drop()
            return Result("unsure", 0, f"no reply after the message was sent: {err}")
        if smtp.sock is not None:
            smtp.sock.settimeout(self.settings.smtp_timeout)
        if code == 250:
            return Result("sent", 250)
        return self._classify(code, reply, rcpt=False)

    def _classify(self, code: int, reply: bytes | str, *, rcpt: bool) -> Result:
        text = f"{code} {_text(reply)}".strip()
        if 400 <= code < 500:
            if code == 421:
                # 421 means the server is closing this connection.
                self.drop()
            return Result("transient", code, text)
        if 500 <= code < 600:
            return classify_permanent(code, _text(reply), rcpt=rcpt)
        self.drop()
        return Result("transient", code, text or "unexpected reply")


def classify_permanent(code: int, reply: str, *, rcpt: bool) -> Result:
    """Classify a 5xx reply: a policy refusal (5.7.x), a mailbox that does not exist
    (5.1.x, or a bare 550/551/553 whose text says so), or another permanent failure."""
    text = f"{code} {reply}".strip()
    enhanced = _ENHANCED.match(reply)
    if enhanced is not None and enhanced.group(2) == "7":
        return Result("permanent", code, text, policy=True)
    if enhanced is not None:
        gone = enhanced.group(2) == "1"
    else:
        gone = code in _NO_SUCH_MAILBOX and _NO_SUCH_USER.search(reply) is not None
    return Result("permanent", code, text, no_such_mailbox=rcpt and gone)


def envelope_address(address: str) -> tuple[str, bool]:
    """Return the address for RCPT (its domain in IDNA form) and whether it needs SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return address, True
    return f"{local}{at}{domain}", not local.isascii()


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def _close_quietly(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


def backoff(attempt: int, base: float, cap: float = 300.0) -> float:
    """Return the wait before try number attempt + 1: base, 2 base, 4 base, … up to cap."""
    return float(min(cap, base * 2 ** (attempt - 1)))


def send_with_retries(
    connection: Connection,
    sender: str,
    recipient: str,
    data: bytes,
    *,
    max_attempts: int,
    retry_delay: float,
    limiter: RateLimiter | None = None,
    stop: threading.Event | None = None,
    still_ours: Callable[[], bool] | None = None,
) -> tuple[Result, int]:
    """Send data, retrying temporary failures with back-off; return the result and tries."""
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.wait(stop)
        result = connection.send_once(sender, recipient, data, still_ours)
        # A 4xx reply is the address's to wait out, in minutes; only a connection that
        # failed before the message went is worth another quick try.
        quick = result.outcome == "transient" and result.code == 0
        if not quick or attempt >= max_attempts:
            return result, attempt
        delay = backoff(attempt, retry_delay)
        logger.info(
            "%s: %s; try %d of %d in %.1f s",
            recipient,
            result.error,
            attempt + 1,
            max_attempts,
            delay,
        )
        # A stop request ends the back-off: the row stays pending for the next run.
        if stop is not None and stop.wait(delay):
            return result, attempt
        if stop is None:
            time.sleep(delay)


@dataclass(frozen=True)
class ProbeStep:
    """One step of a probe of the SMTP server: the setting it depends on, and how it went."""

    key: str
    ok: bool
    text: str


def probe(settings: Settings, sender: str) -> list[ProbeStep]:
    """Connect, secure and log in as a send would, offer MAIL FROM for sender, then RSET
    and QUIT: nothing is sent. Stop at the first step that fails."""
    s = settings
    where = f"{s.smtp_host}:{s.smtp_port}"
    steps: list[ProbeStep] = []
    try:
        context = tls_context(s) if s.smtp_security != "none" else None
    except SmtpSetupError as err:
        return [ProbeStep("SMTP_CA_FILE", False, str(err))]
    smtp: smtplib.SMTP | None = None
    key = "SMTP_HOST"
    try:
        if s.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        code, reply = smtp.ehlo()
        greeting = _text(reply.splitlines()[0] if reply else b"")
        steps.append(ProbeStep(key, True, f"{where} answers ({code} {greeting})"))
        key = "SMTP_SECURITY"
        if s.smtp_security == "starttls":
            if not smtp.has_extn("starttls"):
                steps.append(ProbeStep(key, False, f"{where} does not offer STARTTLS"))
                return steps
            smtp.starttls(context=context)
            smtp.ehlo()
            steps.append(ProbeStep(key, True, "starttls: STARTTLS offered, certificate verified"))
        elif s.smtp_security == "ssl":
            steps.append(ProbeStep(key, True, "ssl: TLS from the start, certificate verified"))
        if s.smtp_username:
            key = "SMTP_PASSWORD"
            try:
                smtp.login(s.smtp_username, s.smtp_password)
            except UnicodeEncodeError:
                bad = "SMTP_PASSWORD" if s.smtp_username.isascii() else "SMTP_USERNAME"
                steps.append(ProbeStep(bad, False, "holds characters the login cannot carry"))
                return steps
            steps.append(ProbeStep(key, True, f"login as {s.smtp_username!r} accepted"))
        key = "DIGEST_FROM"
        code, reply = smtp.mail(sender)
        if code != 250:
            wants_login = code == 530 and not s.smtp_username
            steps.append(
                ProbeStep(
                    "SMTP_USERNAME" if wants_login else key,
                    False,
                    f"MAIL FROM:<{sender}> refused: {code} {_text(reply)}"
                    + ("; the server wants a login" if wants_login else ""),
                )
            )
        else:
            steps.append(ProbeStep(key, True, f"MAIL FROM:<{sender}> accepted (then RSET)"))
        smtp.rset()
    except ssl.SSLCertVerificationError as err:
        steps.append(
            ProbeStep(
                "SMTP_CA_FILE", False, f"{where}: certificate not trusted: {err.verify_message}"
            )
        )
    except smtplib.SMTPAuthenticationError as err:
        steps.append(
            ProbeStep(
                "SMTP_PASSWORD",
                False,
                f"login as {s.smtp_username!r} refused: {err.smtp_code} {_text(err.smtp_error)}",
            )
        )
    except smtplib.SMTPNotSupportedError as err:
        steps.append(ProbeStep(key, False, f"{where}: {err}"))
    except (OSError, smtplib.SMTPException) as err:
        if key == "SMTP_HOST":
            steps.append(ProbeStep(key, False, f"{where} does not answer: {err}"))
        else:
            steps.append(ProbeStep(key, False, f"{where}: {type(err).__name__}: {err}"))
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _close_quietly(smtp)
    return steps
