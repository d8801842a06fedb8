"""The main text of an article's page, for feed items that carry only a summary.

With DIGEST_FULL_TEXT=auto an item whose feed text is shorter than
DIGEST_FULL_TEXT_MIN_WORDS has its page fetched once, through the feeds' own fetcher
(deadline, size cap, the private-address checks of a URL taken from feed content, the
run's pool) and with what a polite crawler adds: the host must be allowed
(DIGEST_FULL_TEXT_HOSTS, or the feed's own host), its robots.txt must allow the page
(read once per host per run), and one host gets at most one page request a second.
trafilatura finds the main text (comments, menus and the rest left out), nh3 cleans it,
and the plain paragraphs are stored with the article: highlights read them, the email
never shows them whole. A page that fails leaves the feed's text, with the reason logged
and stored, so that it is not fetched again on every run.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from digest.errors import SourceError
from digest.models import Article
from digest.sources.connection import Pool
from digest.sources.fetch import FetchError, FetchOptions, Response, fetch_untrusted, redact
from digest.sources.sanitize import clean_html, html_paragraphs

logger = logging.getLogger(__name__)

# One page request per host in this many seconds.
SPACING = 1.0
# Fewer words than this from a page is a cookie wall or an error page, not an article.
MIN_EXTRACTED_WORDS = 40


@dataclass(frozen=True)
class FullTextOptions:
    """When and where article pages are fetched."""

    min_words: int = 120
    # Hosts whose pages may be fetched (each with its subdomains); empty: the feed's own.
    hosts: tuple[str, ...] = ()


def word_count(article: Article, stop: int) -> int:
    """Return how many words the feed gave for article, counting no further than stop."""
    count = 0
    for paragraph in article.paragraphs or (article.summary,):
        count += len(paragraph.split())
        if count >= stop:
            break
    return count


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Return whether host is one of allowed or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in (h.lower().strip(".") for h in allowed))


class FullText:
    """Fetches article pages for one run: robots.txt and host spacing kept per host."""

    def __init__(
        self,
        options: FullTextOptions,
        fetch_options: FetchOptions,
        pool: Pool,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options
        self.fetch_options = fetch_options
        self.pool = pool
        self._sleep = sleep
        self._lock = threading.Lock()
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._last: dict[str, float] = {}

    def wants(self, article: Article) -> bool:
        """Return whether article is thin enough to have its page read."""
        return bool(article.url) and word_count(article, self.options.min_words) < (
            self.options.min_words
        )

    def enrich(self, article: Article, feed_url: str) -> Article:
        """Return article with its page's main text, or with the reason there is none."""
        url = article.url or ""
        try:
            text = self._page_text(url, feed_url)
        except SourceError as err:
            logger.info("%s: feed text kept: %s", redact(url), err)
            return replace(article, full_text_note=str(err)[:500])
        return replace(article, full_text=text)

    def _page_text(self, url: str, feed_url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise SourceError("not an http(s) link")
        host = parts.hostname
        allowed = self.options.hosts or (urlsplit(feed_url).hostname or "",)
        if not host_allowed(host, allowed):
            raise SourceError(f"{host} is not in DIGEST_FULL_TEXT_HOSTS")
        robots = self._robots_for(parts.scheme, parts.netloc)
        if robots is not None and not robots.can_fetch(self.fetch_options.user_agent, url):
            raise SourceError(f"robots.txt of {host} disallows it")
        response = self._fetch(url, parts.netloc)
        return extract(response.data.decode("utf-8", "replace"), response.url)

    def _fetch(self, url: str, netloc: str) -> Response:
        self._wait_turn(netloc)
        return fetch_untrusted(url, self.fetch_options, pool=self.pool)

    def _wait_turn(self, netloc: str) -> None:
        """Keep requests to one host SPACING seconds apart."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._last.get(netloc, now - SPACING) + SPACING)
            self._last[netloc] = start
        if start > now:
            self._sleep(start - now)

    def _robots_for(self, scheme: str, netloc: str) -> urllib.robotparser.RobotFileParser | None:
        """Return host's robots.txt rules (None: no rules), read once per run.

        No robots.txt (a 4xx) allows everything; one that cannot be read (a 5xx, a
        timeout) allows nothing, as crawlers treat a server that cannot say.
        """
        key = f"{scheme}://{netloc}"
        with self._lock:
            if key in self._robots:
                return self._robots[key]
        rules = urllib.robotparser.RobotFileParser()
        found: urllib.robotparser.RobotFileParser | None = rules
        try:
            response = self._fetch(f"{key}/robots.txt", netloc)
            rules.parse(response.data.decode("utf-8", "replace").splitlines())
        except FetchError as err:
            if err.status is not None and 400 <= err.status < 500:
                found = None
            else:
                logger.info("%s/robots.txt: %s; no page of it is fetched", redact(key), err)
                rules.parse(["User-agent: *", "Disallow: /"])
        with self._lock:
            self._robots[key] = found
        return found


def extract(html: str, url: str = "") -> str:
    """Return the main text of a page as paragraphs, one a line; SourceError if none."""
    import trafilatura  # here: it costs a noticeable time to import, and most runs skip it

    found = trafilatura.extract(
        html,
        url=url or None,
        output_format="html",
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
    )
    if not found:
        raise SourceError("no main text found on the page")
    paragraphs, _ = html_paragraphs(clean_html(found))
    text = "\n".join(paragraphs)
    if len(text.split()) < MIN_EXTRACTED_WORDS:
        raise SourceError("the page's main text is too short to be the article")
    return text
