"""HTTP for feeds: one deadline per fetch, a size cap, gzip, redirects and conditional GET.

Redirects are followed here rather than by urllib so that a loop is named as one, the
final URL is known (relative links in the feed resolve against it) and the deadline
covers the whole chain.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPException, HTTPResponse
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from digest import __version__
from digest.errors import SourceError

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


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch: the whole-request deadline, the size cap and the User-Agent."""

    timeout: float = 20.0
    max_bytes: int = 10_000_000
    user_agent: str = USER_AGENT
    max_redirects: int = 5


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the redirect surfaces as an HTTPError that fetch() follows itself


def _opener() -> urllib.request.OpenerDirector:
    # The default context verifies certificates and host names; it is spelt out so that
    # nobody "fixes" a failing feed by turning verification off here.
    context = ssl.create_default_context()
    return urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))


def _headers(message: Message) -> dict[str, str]:
    return {key.lower(): value for key, value in message.items()}


def fetch(
    url: str,
    options: FetchOptions | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Response:
    """GET url within options.timeout; raise FetchError saying why it failed."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise FetchError(f"only http:// and https:// URLs can be fetched: {redact(url)}")
    options = options or FetchOptions()
    deadline = time.monotonic() + options.timeout
    opener = _opener()
    current = url
    chain: list[str] = []
    while True:
        if current in chain:
            loop = " -> ".join(redact(u) for u in [*chain, current])
            raise FetchError(f"redirect loop: {loop}")
        if len(chain) > options.max_redirects:
            first = redact(chain[0])
            raise FetchError(f"more than {options.max_redirects} redirects ({first} -> …)")
        chain.append(current)
        # The scheme is checked to be http(s) before any request (S310).
        request = urllib.request.Request(current, headers=_request_headers(options))  # noqa: S310
        if etag:
            request.add_header("If-None-Match", etag)
        if last_modified:
            request.add_header("If-Modified-Since", last_modified)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timed_out(options)
        try:
            response = opener.open(request, timeout=remaining)
        except HTTPError as err:
            headers = _headers(err.headers) if err.headers else {}
            err.close()
            if err.code in _REDIRECTS and headers.get("location"):
                target = urljoin(current, headers["location"])
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise FetchError(f"redirect to a non-HTTP address: {redact(target)}") from None
                logger.debug("%s: %d redirect to %s", redact(current), err.code, redact(target))
                current = target
                continue
            if err.code == 304:
                return Response(current, 304, headers=headers)
            raise FetchError(f"HTTP {err.code} {err.reason}", status=err.code) from None
        except TimeoutError:
            raise _timed_out(options) from None
        except URLError as err:
            raise FetchError(_network_reason(err.reason)) from None
        except (HTTPException, OSError) as err:
            raise FetchError(f"connection failed: {err}") from None
        with response:
            headers = _headers(response.headers)
            data = _read_body(response, headers, options, deadline)
            return Response(current, response.status, data, headers)


def _request_headers(options: FetchOptions) -> dict[str, str]:
    return {
        "User-Agent": options.user_agent or USER_AGENT,
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip",
    }


def _timed_out(options: FetchOptions) -> FetchError:
    return FetchError(f"timed out after {options.timeout:g} s (DIGEST_FETCH_TIMEOUT)")


def _too_big(options: FetchOptions) -> FetchError:
    return FetchError(
        f"response larger than {options.max_bytes} bytes (DIGEST_FETCH_MAX_BYTES); not read"
    )


def _network_reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out (DIGEST_FETCH_TIMEOUT)"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {reason.verify_message}"
    if isinstance(reason, socket.gaierror):
        return f"host not found: {reason.strerror or reason}"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {reason}"


def _read_body(
    response: HTTPResponse | IO[bytes],
    headers: dict[str, str],
    options: FetchOptions,
    deadline: float,
) -> bytes:
    """Read the body in chunks, checking the deadline and the cap as it comes."""
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
        if time.monotonic() > deadline:
            raise _timed_out(options)
        try:
            chunk = read(_CHUNK)
        except TimeoutError:
            raise _timed_out(options) from None
        except (HTTPException, OSError) as err:
            raise FetchError(f"connection broke while reading: {err}") from None
        if not chunk:
            break
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, options.max_bytes + 1 - size)
            except zlib.error as err:
                raise FetchError(f"broken gzip body: {err}") from None
            if inflater.unconsumed_tail:
                raise _too_big(options)
        size += len(chunk)
        if size > options.max_bytes:
            raise _too_big(options)
        parts.append(chunk)
    if inflater is not None:
        parts.append(inflater.flush())
    return b"".join(parts)
