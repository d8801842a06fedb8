"""A real SMTP server (aiosmtpd) on 127.0.0.1 with faults to inject, and TLS material.

The server runs its own event loop in a thread; handlers answer chosen addresses with
chosen replies, drop connections, or slow down, and record every message they accept.
"""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    recipient: str
    message_id: str
    data: bytes

    def parsed(self) -> email.message.EmailMessage:
        """Return the message parsed with the modern policy."""
        msg = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@dataclass
class Faults:
    """What the server does wrong, and to whom."""

    # Replies to MAIL FROM, used up one per command ("553 …").
    mail: list[str] = field(default_factory=list)
    # Replies to RCPT TO for an address, used up one per attempt ("451 …", "550 …").
    rcpt: dict[str, list[str]] = field(default_factory=dict)
    # Replies to the end of DATA for an address, used up one per attempt.
    data: dict[str, list[str]] = field(default_factory=dict)
    # Times to close the connection after the final "." for an address, before replying.
    drop_before_reply: dict[str, int] = field(default_factory=dict)
    # Close each connection after this many accepted messages (0: never).
    drop_every: int = 0
    # Seconds to wait before answering each DATA.
    delay: float = 0.0
    # Seconds to wait before answering the end of DATA for an address (a slow commit).
    data_delay: dict[str, float] = field(default_factory=dict)


class Handler:
    """Accept mail, inject the configured faults and record what was accepted."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.received: list[Received] = []
        self.dropped: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        # Notified under lock each time a message is accepted, so a test can wait for it.
        self.arrived = threading.Condition(self.lock)
        self._per_connection: dict[int, int] = {}

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.lock:
            if self.faults.mail:
                return self.faults.mail.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            self.attempts[address] += 1
            replies = self.faults.rcpt.get(address)
            if replies:
                return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        slow = self.faults.data_delay.get(envelope.rcpt_tos[0], 0.0)
        if slow:
            await asyncio.sleep(slow)
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(data, policy=policy.default)
        recipient = envelope.rcpt_tos[0]
        message = Received(recipient, str(parsed.get("Message-ID", "")), data)
        with self.lock:
            replies = self.faults.data.get(recipient)
            if replies:
                return replies.pop(0)
            if self.faults.drop_before_reply.get(recipient, 0) > 0:
                self.faults.drop_before_reply[recipient] -= 1
                self.dropped.append(message)
                # abort(), not close(): nothing buffered may reach the client.
                transport = server.transport
                assert isinstance(transport, asyncio.WriteTransport)
                transport.abort()
                return "250 never heard"
            self.received.append(message)
            self.arrived.notify_all()
            key = id(server)
            self._per_connection[key] = self._per_connection.get(key, 0) + 1
            drop = (
                self.faults.drop_every and self._per_connection[key] % self.faults.drop_every == 0
            )
        if drop:
            # After the 250 has been written: the next command finds the line dead.
            transport = server.transport
            assert transport is not None
            asyncio.get_running_loop().call_soon(transport.close)
        return "250 Message accepted"

    def recipients(self) -> Counter[str]:
        """Return how many copies each address received."""
        with self.lock:
            return Counter(m.recipient for m in self.received)


class SmtpServer:
    """aiosmtpd on 127.0.0.1 on a free port, in its own thread; use as a context manager."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.handler = handler or Handler()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.port = 0
        self.logins: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname="localhost",
            tls_context=None if self.implicit_tls else self.tls,
            require_starttls=self.tls is not None and not self.implicit_tls,
            auth_required=self.auth is not None,
            auth_require_tls=self.tls is not None,
            authenticator=self._authenticate if self.auth else None,
            loop=self._loop,
        )

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        ssl_context = self.tls if self.implicit_tls else None
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(self._protocol, "127.0.0.1", 0, ssl=ssl_context),
            self._loop,
        )
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        server = self._server
        if server is not None:
            # Only the loop's own thread may touch the server.
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class SilentServer:
    """Accepts TCP connections and never says a word: a server that never greets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for client in self.clients:
            client.close()


@dataclass(frozen=True)
class Certificates:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context presenting the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(
    folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Certificates:
    """Create a CA and a server certificate it signed for names, as PEM files in folder."""
    ca = trustme.CA()
    issued = ca.issue_cert(*names)
    files = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    issued.cert_chain_pems[0].write_to_path(str(files.cert_file))
    issued.private_key_pem.write_to_path(str(files.key_file))
    return files
