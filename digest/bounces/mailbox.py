"""Read delivery reports from the bounce mailbox: IMAP, POP3 or a local Maildir.

Each message is parsed, its reports recorded in one commit, and only then moved to the
processed folder (IMAP, Maildir) or deleted (POP3). A crash between the two leaves the
message where it was; read again, its reports are found already recorded and it is
moved then: none is lost and none recorded twice.
"""

from __future__ import annotations

import imaplib
import logging
import mailbox
import poplib
import re
import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import unquote, urlsplit

from digest.bounces.parse import parse_report
from digest.bounces.record import BouncePolicy, RecordedReport, record_reports
from digest.config import Settings
from digest.errors import DigestError
from digest.store import Store

logger = logging.getLogger(__name__)

# Where a read message goes (IMAP and Maildir), so that the inbox holds only new ones.
DONE_FOLDER = "digest-processed"
# A message larger than this is no delivery report: left in place, never downloaded.
MAX_MESSAGE_BYTES = 5_000_000
_UID = re.compile(rb"UID (\d+)")


class MailboxError(DigestError):
    """The bounce mailbox cannot be read (unreachable, refused the login, no folder)."""


@dataclass
class FetchResult:
    """What one pass over the mailbox did."""

    messages: int = 0
    reports: list[RecordedReport] = field(default_factory=list)


class Reader(Protocol, AbstractContextManager["Reader"]):
    """One open mailbox: its messages, and a way to put one away once recorded."""

    source: str

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Yield (key, raw message) for every message waiting."""
        ...

    def done(self, key: str) -> None:
        """Move or delete the message key: its reports are committed."""
        ...


def fetch_reports(settings: Settings, store: Store, now: datetime) -> FetchResult:
    """Read every waiting message once: parse, record, then put it away."""
    if not settings.bounce_mailbox:
        raise MailboxError(
            "no bounce mailbox is configured",
            hint="set DIGEST_BOUNCE_MAILBOX to imaps://user@host/INBOX, pop3s://user@host"
            " or a Maildir folder",
        )
    policy = BouncePolicy.from_settings(settings)
    result = FetchResult()
    with open_mailbox(settings) as reader:
        for key, raw in reader.messages():
            reports = parse_report(raw, reader.source)
            # The commit comes first; only then may the message leave the mailbox.
            result.reports += record_reports(store, reports, now, policy=policy)
            reader.done(key)
            result.messages += 1
    return result


def open_mailbox(settings: Settings) -> Reader:
    """Return the reader DIGEST_BOUNCE_MAILBOX names."""
    target = settings.bounce_mailbox
    parts = urlsplit(target)
    if parts.scheme in ("imaps", "pop3s"):
        if not parts.hostname or not parts.username:
            raise MailboxError(f"DIGEST_BOUNCE_MAILBOX={target!r}: needs user@host")
        context = _tls_context(settings)
        user = unquote(parts.username)
        if parts.scheme == "imaps":
            folder = unquote(parts.path.lstrip("/")) or "INBOX"
            return ImapReader(
                parts.hostname,
                parts.port or 993,
                user,
                settings.bounce_password,
                folder,
                context,
                settings.bounce_timeout,
            )
        return Pop3Reader(
            parts.hostname,
            parts.port or 995,
            user,
            settings.bounce_password,
            context,
            settings.bounce_timeout,
        )
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:
        raise MailboxError(
            f"DIGEST_BOUNCE_MAILBOX={target!r}: not imaps://, pop3s:// or a Maildir folder"
        )
    return MaildirReader(Path(parts.path if parts.scheme == "file" else target))


def _tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.bounce_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.bounce_ca_file))
        except (OSError, ssl.SSLError) as err:
            raise MailboxError(
                f"{settings.bounce_ca_file}: cannot load the CA file: {err}"
            ) from err
    return context


class _Closing:
    def __enter__(self) -> Reader:
        return self  # type: ignore[return-value]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""


class MaildirReader(_Closing):
    """A local Maildir: new and cur messages; read ones go to the .digest-processed folder."""

    source = "maildir"

    def __init__(self, path: Path) -> None:
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise MailboxError(f"{path}: not a Maildir folder (no new/ and cur/ in it)")
        self.box = mailbox.Maildir(path, factory=None, create=False)
        try:
            self.done_box = self.box.get_folder(DONE_FOLDER)
        except mailbox.NoSuchMailboxError:
            self.done_box = self.box.add_folder(DONE_FOLDER)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Yield every message of the inbox, oldest first."""
        for key in sorted(self.box.keys()):
            try:
                raw = self.box.get_bytes(key)
            except KeyError:
                continue  # another reader took it meanwhile
            if len(raw) <= MAX_MESSAGE_BYTES:
                yield key, raw

    def done(self, key: str) -> None:
        """Move the message to the processed folder."""
        self.done_box.add(self.box.get_message(key))
        self.box.discard(key)


class ImapReader(_Closing):
    """An IMAP mailbox over TLS; read messages are moved to the processed folder."""

    source = "imap"

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        folder: str,
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        try:
            self.conn = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
            self.conn.login(user, password)
            kind, _ = self.conn.select(_quote(folder))
            if kind != "OK":
                raise MailboxError(f"imaps://{host}/{folder}: no such folder")
            self.conn.create(_quote(DONE_FOLDER))  # NO when it exists: that is fine
        except (OSError, imaplib.IMAP4.error) as err:
            raise MailboxError(f"imaps://{host}:{port}: {err}") from err
        self.host = host
        # Asked again after the login: the server names MOVE only to a logged-in client.
        _, caps = self.conn.capability()
        self.can_move = b"MOVE" in b" ".join(c for c in caps if isinstance(c, bytes)).split()

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Yield each message by UID, without marking it seen."""
        kind, data = self.conn.uid("SEARCH", "ALL")
        if kind != "OK" or not data or not data[0]:
            return
        for uid in data[0].split():
            kind, sizes = self.conn.uid("FETCH", uid, "(RFC822.SIZE)")
            size = re.search(
                rb"RFC822\.SIZE (\d+)", sizes[0] if sizes and isinstance(sizes[0], bytes) else b""
            )
            if size and int(size.group(1)) > MAX_MESSAGE_BYTES:
                continue
            kind, fetched = self.conn.uid("FETCH", uid, "(BODY.PEEK[])")
            for item in fetched:
                if isinstance(item, tuple):
                    yield uid.decode(), item[1]

    def done(self, key: str) -> None:
        """Move the message: MOVE where the server has it, else COPY and expunge."""
        if self.can_move:
            kind, _ = self.conn.uid("MOVE", key, _quote(DONE_FOLDER))
        else:
            kind, _ = self.conn.uid("COPY", key, _quote(DONE_FOLDER))
            if kind == "OK":
                self.conn.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
                self.conn.expunge()
        if kind != "OK":
            raise MailboxError(f"imaps://{self.host}: cannot move message {key} to {DONE_FOLDER}")

    def close(self) -> None:
        """Log out."""
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            logger.debug("the IMAP server went away before the logout")


class Pop3Reader(_Closing):
    """A POP3 mailbox over TLS; read messages are deleted when the session ends."""

    source = "pop3"

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        try:
            self.conn = poplib.POP3_SSL(host, port, context=context, timeout=timeout)
            self.conn.user(user)
            self.conn.pass_(password)
        except (OSError, poplib.error_proto) as err:
            raise MailboxError(f"pop3s://{host}:{port}: {err}") from err

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Yield each message by its number in this session."""
        _, listing, _ = self.conn.list()
        for line in listing:
            number, _, size = line.decode().partition(" ")
            if int(size or 0) > MAX_MESSAGE_BYTES:
                continue
            _, lines, _ = self.conn.retr(int(number))
            yield number, b"\r\n".join(lines) + b"\r\n"

    def done(self, key: str) -> None:
        """Mark the message deleted; the server deletes it at QUIT."""
        self.conn.dele(int(key))

    def close(self) -> None:
        """End the session, which deletes the messages marked."""
        try:
            self.conn.quit()
        except (OSError, poplib.error_proto):
            logger.debug("the POP3 server went away before QUIT")


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
