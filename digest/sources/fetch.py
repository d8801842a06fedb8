"""HTTP for feeds: one deadline per fetch, a size cap, gzip, redirects and conditional GET.

Redirects are followed here rather than by a library so that a loop is named as one, the
final URL is known (relative links in the feed resolve against it), the deadline covers
the whole chain and every hop can be checked before it is connected to.

Where a request may go (server-side request forgery): the URL the operator wrote in
DIGEST_SOURCES is trusted, private host and all, and so are redirects that stay on its
origin (scheme, host and port). Every other hop, and every URL taken from feed content
(fetch_untrusted), is resolved once and refused when any of its addresses is loopback,
private, link-local, multicast, reserved or unspecified, unless
DIGEST_FETCH_ALLOW_PRIVATE is set. The connection then goes to the very address that was
checked: there is no second DNS look-up for a rebinding server to answer differently.
TLS still verifies the certificate against the host name.

One deadline (DIGEST_FETCH_TIMEOUT) bounds everything: the DNS look-up, the connect, the
TLS handshake, sending the request and every read of the status line, headers and body.
Each socket read gets the time that is left, so a server dripping a byte at a time
cannot hold a fetch past the deadline.

The sockets themselves, the TLS context and the connections kept between requests are
connection.py's: a run passes one Pool to all its fetches. A kept connection is taken
only after the new request's look-up and check, and only when it goes to one of the
addresses that passed.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import socket
import ssl
import string
import zlib
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPException, HTTPResponse
from typing import IO
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from digest import __version__
from digest.errors import SourceError
from digest.sources.addresses import literal, look_up, refusal
from digest.sources.connection import AddrInfo, Deadline, FeedConnection, Pool

logger = logging.getLogger(__name__)

USER_AGENT = f"digest/{__version__} (newsletter digest; feed reader)"
ACCEPT = (
    "application/feed+json, application/atom+xml, application/rss+xml, application/rdf+xml,"
    " application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Query parameters that private feeds use for credentials; masked wherever a URL is shown.
_SECRET_PARAMS = re.compile(r"token|key|secret|pass|auth|sig|session", re.IGNORECASE)
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII stays as it is in a request target; spaces, controls and non-ASCII
# are percent-encoded (http.client would refuse them).
_TARGET_SAFE = string.punctuation
_ALLOW_HINT = "set DIGEST_FETCH_ALLOW_PRIVATE=true to allow it"


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch: deadline, size cap, User-Agent, redirects and private addresses."""

    timeout: float = 20.0
    max_bytes: int = 10_000_000
    user_agent: str = USER_AGENT
    max_redirects: int = 5
    allow_private: bool = False
    # How many feeds of one run are fetched at the same time (DIGEST_FETCH_CONCURRENCY).
    concurrency: int = 8
    # How many requests of a run may go to one host at the same time
    # (DIGEST_FETCH_PER_HOST): a feed server is asked one thing at a time by default.
    per_host: int = 1


@dataclass(frozen=True)
class Response:
    """A fetched feed, or a 304 saying the copy from last time still holds."""

    url: str
    status: int
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        """Return whether the server answered 304 Not Modified."""
        return self.status == 304

    @property
    def etag(self) -> str | None:
        """Return the ETag to send back next time."""
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        """Return the Last-Modified date to send back next time, verbatim."""
        return self.headers.get("last-modified")

    @property
    def content_type(self) -> str:
        """Return the Content-Type header, or an empty string."""
        return self.headers.get("content-type", "")


def redact(url: str) -> str:
    """Return url fit for logs and messages: no password, no token-like query values."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = parts.query
    if query and _SECRET_PARAMS.search(query):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class FetchError(SourceError):
    """A feed could not be fetched; status is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FetchRefused(FetchError):
    """A URL was not fetched because of where it points (an address, a scheme, a password)."""


def fetch(
    url: str,
    options: FetchOptions | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    *,
    pool: Pool | None = None,
) -> Response:
    """GET a URL the operator configured within options.timeout; FetchError says why not.

    The URL may name a private host, and redirects may stay on its origin; a redirect
    anywhere else is checked like a URL from feed content (see fetch_untrusted). A run
    passes its pool, so that every fetch shares one TLS context and kept connections;
    without one, the fetch makes its own and closes it.
    """
    if pool is None:
        with Pool() as own:
            return fetch(url, options, etag, last_modified, pool=own)
    return _fetch(url, options or FetchOptions(), etag, last_modified, pool, trusted=True)


def fetch_untrusted(
    url: str, options: FetchOptions | None = None, *, pool: Pool | None = None
) -> Response:
    """GET a URL taken from feed content (an article's page, say), checked from the start.

    Like fetch, except that no origin is trusted: the first URL and every redirect are
    refused (FetchRefused) when they lead to a non-public address, unless
    options.allow_private.
    """
    if pool is None:
        with Pool() as own:
            return fetch_untrusted(url, options, pool=own)
    return _fetch(url, options or FetchOptions(), None, None, pool, trusted=False)


class _Problem(Exception):
    """Why one hop failed, before it is worded with the URLs it concerns."""

    def __init__(
        self, reason: str, status: int | None = None, *, refused: bool = False, chain: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.refused = refused  # where the URL points is not allowed
        self.chain = chain  # about the redirect chain as a whole, not the last hop


@dataclass(frozen=True)
class _Target:
    """One hop's URL taken apart: where to connect and what to ask for."""

    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets around an IPv6 address
    port: int
    path: str  # the request target: path and query

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _fetch(
    url: str,
    options: FetchOptions,
    etag: str | None,
    last_modified: str | None,
    pool: Pool,
    *,
    trusted: bool,
) -> Response:
    deadline: Deadline | None = None
    chain = [url]
    home: tuple[str, str, int] | None = None
    while True:
        current = chain[-1]
        try:
            if len(chain) > 1:
                _check_redirect(chain[-2], current)
            elif urlsplit(url).scheme.lower() not in _DEFAULT_PORTS:
                raise _Problem("only http:// and https:// URLs can be fetched")
            target = _parse(current)
            if trusted and len(chain) == 1:
                home = target.origin
            check = not options.allow_private and target.origin != home
            # Waiting for the first host's turn is not part of the fetch's own deadline
            # (a run of many feeds on one host queues them); a redirect's hop waits
            # within it.
            wait = None if deadline is None else deadline.remaining()
            with pool.host_turn(target.host, options.per_host, wait):
                deadline = deadline or Deadline(options.timeout)
                addresses = _resolve(target, deadline, check=check)
                outcome = _exchange(pool, target, addresses, options, etag, last_modified, deadline)
            if isinstance(outcome, Response):
                return Response(current, outcome.status, outcome.data, outcome.headers)
            following = urljoin(current, outcome)
            if following in chain:
                loop = " -> ".join(redact(u) for u in [*chain, following])
                raise _Problem(f"redirect loop: {loop}", chain=True)
            if len(chain) > options.max_redirects:
                raise _Problem(f"more than {options.max_redirects} redirects", chain=True)
            logger.debug("%s: redirect to %s", redact(current), redact(following))
            chain.append(following)
        except _Problem as problem:
            raise _error(url, current, problem) from None
        except TimeoutError:
            reason = f"timed out after {options.timeout:g} s (DIGEST_FETCH_TIMEOUT)"
            raise _error(url, current, _Problem(reason)) from None
        except ssl.SSLCertVerificationError as err:
            reason = f"TLS certificate not trusted: {err.verify_message}"
            raise _error(url, current, _Problem(reason)) from None
        except ssl.SSLError as err:
            raise _error(url, current, _Problem(f"TLS failed: {err.reason or err}")) from None
        except socket.gaierror as err:
            reason = f"host not found: {err.strerror or err}"
            raise _error(url, current, _Problem(reason)) from None
        except ConnectionRefusedError:
            raise _error(url, current, _Problem("connection refused")) from None
        except (HTTPException, OSError) as err:
            reason = f"connection failed: {err or type(err).__name__}"
            raise _error(url, current, _Problem(reason)) from None


def _error(source: str, current: str, problem: _Problem) -> FetchError:
    """Word a problem as one line naming the source (and the hop it happened at)."""
    shown = redact(source)
    if problem.refused:
        if current == source:
            return FetchRefused(f"{shown}: refused: {problem.reason}")
        message = f"{shown}: redirect to {redact(current)} refused: {problem.reason}"
        logger.warning("%s", message)
        return FetchRefused(message)
    if current != source and not problem.chain:
        return FetchError(
            f"{shown}: {problem.reason} (after a redirect to {redact(current)})", problem.status
        )
    return FetchError(f"{shown}: {problem.reason}", problem.status)


def _check_redirect(previous: str, following: str) -> None:
    """Refuse a redirect off HTTP, or from https down to plain http."""
    scheme = urlsplit(following).scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _Problem("a non-HTTP address", refused=True)
    if scheme == "http" and urlsplit(previous).scheme.lower() == "https":
        raise _Problem("it leads from https:// down to plain http://", refused=True)


def _parse(url: str) -> _Target:
    """Take an http(s) URL apart; refuse a user name or password before anything else."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise _Problem("a user name or password in a URL is not accepted", refused=True)
    host = parts.hostname or ""
    if not host:
        raise _Problem("the URL has no host name")
    try:
        port = parts.port
    except ValueError:
        raise _Problem("the URL has a bad port number") from None
    if literal(host) is None:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Problem(f"bad host name {host!r}") from None
    scheme = parts.scheme.lower()
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Target(scheme, host, port or _DEFAULT_PORTS[scheme], path)


def _resolve(target: _Target, deadline: Deadline, *, check: bool) -> list[AddrInfo]:
    """Look the host up once, within the deadline; with check, refuse a non-public address."""
    addresses = look_up(target.host, target.port, deadline)
    if check:
        for info in addresses:
            address = ipaddress.ip_address(str(info[4][0]))
            why = refusal(address)
            if why is None:
                continue
            if literal(target.host) is not None:
                raise _Problem(f"{target.host} is {why}; {_ALLOW_HINT}", refused=True)
            reason = f"{target.host} resolves to {address}, {why}; {_ALLOW_HINT}"
            raise _Problem(reason, refused=True)
    return addresses


def _exchange(
    pool: Pool,
    target: _Target,
    addresses: list[AddrInfo],
    options: FetchOptions,
    etag: str | None,
    last_modified: str | None,
    deadline: Deadline,
) -> Response | str:
    """Make one request; return the response, or the Location of a redirect.

    A kept connection the server has closed in the meantime fails before any answer; the
    request (a GET, safe to repeat) is then sent once more on a new connection.
    """
    headers = _request_headers(options)
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    connection, kept = pool.connection(target.origin, addresses, deadline)
    try:
        response = _send(connection, target, headers)
    except _STALE:
        connection.close()
        if not kept:
            raise
        connection = pool.fresh(target.origin, addresses, deadline)
        response = _send(connection, target, headers)
    reusable = False
    try:
        with response:
            outcome = _answer(response, options, deadline)
            # Kept only when the answer was read to its end (a 304 has no body at all).
            done = response.isclosed() or response.length == 0
            reusable = done and not response.will_close
        return outcome
    finally:
        if reusable:
            pool.keep(connection)
        else:
            connection.close()


# How a kept connection that the server closed while it was idle fails.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


def _send(connection: FeedConnection, target: _Target, headers: dict[str, str]) -> HTTPResponse:
    try:
        connection.request("GET", target.path, headers=headers)
        return connection.getresponse()
    except BaseException:
        connection.close()
        raise


def _answer(response: HTTPResponse, options: FetchOptions, deadline: Deadline) -> Response | str:
    """Turn a response into a Response, the Location of a redirect, or a _Problem."""
    received = _headers(response.headers)
    status = response.status
    if status in _REDIRECTS and received.get("location"):
        _drain(response, deadline)
        return received["location"]
    if status == 304:
        return Response("", 304, headers=received)
    if not 200 <= status < 300:
        raise _Problem(f"HTTP {status} {response.reason}", status=status)
    data = _read_body(response, received, options, deadline)
    return Response("", status, data, received)


def _drain(response: HTTPResponse, deadline: Deadline) -> None:
    """Read the small body of a redirect, so that its connection can be kept; a large one
    is left, and the connection closed."""
    if response.length is not None and response.length <= _CHUNK:
        deadline.remaining()
        response.read()


def _headers(message: Message) -> dict[str, str]:
    return {key.lower(): value for key, value in message.items()}


def _request_headers(options: FetchOptions) -> dict[str, str]:
    return {
        "User-Agent": options.user_agent or USER_AGENT,
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip",
    }


def _too_big(options: FetchOptions) -> _Problem:
    return _Problem(
        f"response larger than {options.max_bytes} bytes (DIGEST_FETCH_MAX_BYTES); not read"
    )


def _read_body(
    response: HTTPResponse | IO[bytes],
    headers: dict[str, str],
    options: FetchOptions,
    deadline: Deadline,
) -> bytes:
    """Read the body in chunks, within the deadline and the cap."""
    declared = headers.get("content-length", "")
    encoding = headers.get("content-encoding", "identity").strip().lower()
    gzipped = encoding in ("gzip", "x-gzip")
    if declared.isdigit() and int(declared) > options.max_bytes and not gzipped:
        raise _too_big(options)
    # 16 + MAX_WBITS: expect a gzip header; the decompressed size is capped too, so a
    # small gzip bomb cannot fill the memory.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    parts: list[bytes] = []
    size = 0
    read = getattr(response, "read1", response.read)
    while True:
        deadline.remaining()  # raises TimeoutError once the deadline has passed
        try:
            chunk = read(_CHUNK)
        except TimeoutError:
            raise
        except (HTTPException, OSError) as err:
            raise _Problem(f"connection broke while reading: {err}") from None
        if not chunk:
            break
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, options.max_bytes + 1 - size)
            except zlib.error as err:
                raise _Problem(f"broken gzip body: {err}") from None
            if inflater.unconsumed_tail:
                raise _too_big(options)
        size += len(chunk)
        if size > options.max_bytes:
            raise _too_big(options)
        parts.append(chunk)
    if inflater is not None:
        parts.append(inflater.flush())
    return b"".join(parts)
