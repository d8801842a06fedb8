"""Connections for the fetcher: the deadline on every socket call, TLS, and a pool per run.

A run makes one Pool and every fetch of that run goes through it. The pool holds one TLS
context, made the first time an https:// URL is connected to (loading the system's CA
store costs tens of milliseconds, so a run that only reads http:// feeds or files never
pays it), and keeps connections alive between requests to the same origin and address.

A kept connection is reused only for the same scheme, host and port and only when it goes
to one of the addresses the new request's look-up returned and checked (fetch.py decides
which addresses are allowed): reuse never skips the private-address check.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias, cast

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed import ReadableBuffer, WriteableBuffer

_SockAddr: TypeAlias = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
# One answer of socket.getaddrinfo: family, type, protocol, canonical name, address.
AddrInfo: TypeAlias = tuple[socket.AddressFamily, socket.SocketKind, int, str, _SockAddr]
# Where a kept connection goes: scheme, host name (as in the URL) and port.
Origin: TypeAlias = tuple[str, str, int]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
# Idle connections kept per origin; more than the fetch concurrency would never be used.
MAX_IDLE_PER_ORIGIN = 8


class Deadline:
    """The moment a fetch must be over; remaining() raises TimeoutError once it is."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Return the seconds left; raise TimeoutError when there are none."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch deadline has passed")
        return left


def connect(addresses: Iterable[AddrInfo], deadline: Deadline) -> socket.socket:
    """Connect to the first of the resolved addresses that answers, within the deadline."""
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            last = err
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last or OSError("no address to connect to")


class _DeadlineSocket:
    """The part of a socket http.client uses, with the current request's deadline applied
    to every call; a kept connection gets the next request's deadline before it is used."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline

    def sendall(self, data: ReadableBuffer) -> None:
        self.sock.settimeout(self.deadline.remaining())
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side that gives every read only the time left."""

    def __init__(self, wrapper: _DeadlineSocket) -> None:
        super().__init__()
        self._wrapper = wrapper
        # A SocketIO of its own keeps the socket open until this reader is closed, even
        # when http.client closes the connection and leaves the body to the response.
        self._raw = wrapper.sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        sock = self._wrapper.sock
        sock.settimeout(self._wrapper.deadline.remaining())
        if _QUICKACK is not None:
            # A kept connection counts as interactive to Linux, which then delays its ACKs;
            # a server that writes the header and the body apart (Nagle holds the body
            # until the header is acknowledged) would stall 40 ms on every request.
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class FeedConnection(http.client.HTTPConnection):
    """HTTP or HTTPS to addresses resolved and checked beforehand, never looked up again.

    With TLS the certificate is verified against the host name of the URL
    (server_hostname), not the address connected to.
    """

    def __init__(
        self,
        origin: Origin,
        addresses: list[AddrInfo],
        deadline: Deadline,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(origin[1], origin[2], timeout=deadline.remaining())
        self.origin = origin
        self.peer = ""  # the address connected to, once connected
        self._addresses = addresses
        self._deadline = deadline
        self._tls = tls

    def use(self, deadline: Deadline) -> None:
        """Bound every call of the next request by deadline."""
        self._deadline = deadline
        if isinstance(self.sock, _DeadlineSocket):
            self.sock.deadline = deadline

    def connect(self) -> None:
        sock = connect(self._addresses, self._deadline)
        self.peer = str(sock.getpeername()[0])
        if self._tls is not None:
            try:
                # The socket's timeout bounds the whole handshake, not each of its reads.
                sock.settimeout(self._deadline.remaining())
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = cast(socket.socket, _DeadlineSocket(sock, self._deadline))

    def idle_and_open(self) -> bool:
        """Return whether a kept connection still looks usable: connected, and nothing to
        read (an idle connection that is readable was closed by the server, or is broken)."""
        wrapper = self.sock
        if not isinstance(wrapper, _DeadlineSocket):
            return False
        poller = select.poll()
        try:
            poller.register(wrapper.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False


class Pool:
    """One run's TLS context and kept-alive connections, shared by threads; close() it."""

    def __init__(self, max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN) -> None:
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[FeedConnection]] = {}
        self._max_idle = max_idle_per_origin
        self._closed = False
        self._hosts: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def host_turn(self, host: str, per_host: int, timeout: float | None = None) -> Iterator[None]:
        """Hold one of host's per_host request slots (a polite client asks one server a
        few things at a time, however many threads the run has); raise TimeoutError when
        none frees up within timeout."""
        with self._lock:
            gate = self._hosts.get(host)
            if gate is None:
                gate = self._hosts[host] = threading.BoundedSemaphore(max(1, per_host))
        if not gate.acquire(timeout=timeout):
            raise TimeoutError(f"waiting for a turn at {host}")
        try:
            yield
        finally:
            gate.release()

    def tls_context(self) -> ssl.SSLContext:
        """Return the run's TLS context, made (and the CA store loaded) on first use."""
        with self._lock:
            if self._tls is None:
                # The default context verifies certificates and host names; it is spelt out
                # so that nobody "fixes" a failing feed by turning verification off here.
                self._tls = ssl.create_default_context()
            return self._tls

    def connection(
        self, origin: Origin, addresses: list[AddrInfo], deadline: Deadline
    ) -> tuple[FeedConnection, bool]:
        """Return a connection to origin at one of addresses, and whether it was kept from
        an earlier request (the caller retries once on a fresh one if a kept one fails)."""
        allowed = {str(info[4][0]) for info in addresses}
        found: FeedConnection | None = None
        with self._lock:
            idle = self._idle.get(origin, [])
            for conn in reversed(idle):
                if conn.peer in allowed:
                    idle.remove(conn)
                    found = conn
                    break
        if found is not None:
            if found.idle_and_open():
                found.use(deadline)
                return found, True
            found.close()
        return self.fresh(origin, addresses, deadline), False

    def fresh(
        self, origin: Origin, addresses: list[AddrInfo], deadline: Deadline
    ) -> FeedConnection:
        """Return a new, not yet connected connection (it connects on its first request)."""
        tls = self.tls_context() if origin[0] == "https" else None
        return FeedConnection(origin, addresses, deadline, tls)

    def keep(self, conn: FeedConnection) -> None:
        """Take back a connection whose response was read to the end, for the next request."""
        with self._lock:
            idle = self._idle.setdefault(conn.origin, [])
            if self._closed or len(idle) >= self._max_idle or not conn.peer:
                extra: FeedConnection | None = conn
            else:
                idle.append(conn)
                extra = None
        if extra is not None:
            extra.close()

    def close(self) -> None:
        """Close every kept connection; connections handed back later are closed at once."""
        with self._lock:
            self._closed = True
            kept = [conn for idle in self._idle.values() for conn in idle]
            self._idle.clear()
        for conn in kept:
            conn.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
