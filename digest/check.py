"""The preflight: is this configuration safe to send to real people?

`digest check` runs every check, the SMTP round trip included; `digest send` and
`digest run` (with DIGEST_DELIVERY=smtp) run the same checks without the round trip,
which the send makes anyway. Each finding names the key to change. Nothing here sends,
records or fetches anything; the only network access is the SMTP probe.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from itertools import pairwise
from typing import Literal
from urllib.parse import urlsplit

from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.models import Article, Edition, Highlight, Item, Section

Level = Literal["ok", "warning", "error"]

# Gmail shows "[Message clipped]" and hides the rest (the footer and its unsubscribe
# link among it) once a message's HTML passes about 102 KB.
GMAIL_CLIP = 102 * 1024
MIN_SECRET = 32
# Fewest distinct characters in a secret that looks random: a hex token of 32 has about
# 14, a word repeated far fewer.
MIN_DISTINCT = 10
# Domains kept for documentation (RFC 2606) and top-level names that never resolve on
# the public internet (RFC 2606, 6761, 6762, and the common private ones).
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
PRIVATE_TLDS = frozenset(
    {"invalid", "test", "example", "localhost", "local", "internal", "lan", "home", "corp"}
)
_PLACEHOLDER_HREF = re.compile(r"""href=["']?https://unsubscribe\.invalid/%%UNSUBSCRIBE%%""")


@dataclass(frozen=True)
class Finding:
    """One line of the preflight: ok, warning or error, the key to change, and why."""

    level: Level
    key: str
    message: str

    def line(self) -> str:
        """Return the finding as `digest check` prints it."""
        return f"{self.level:<7} {self.key}: {self.message}"


def has_errors(findings: list[Finding]) -> bool:
    """Return whether any finding is an error: then nothing may be sent."""
    return any(f.level == "error" for f in findings)


def new_secret() -> str:
    """Return a fresh value for DIGEST_SECRET_KEY: 43 URL-safe characters, 256 bits."""
    return secrets.token_urlsafe(32)


def run_checks(settings: Settings, *, smtp: bool = True) -> list[Finding]:
    """Return every finding about settings; with smtp, probe the server as well."""
    findings = [
        *check_delivery(settings),
        *check_base_url(settings),
        *check_secret(settings),
        *check_sender(settings),
        *check_list_id(settings),
        *check_mailto(settings),
        *check_templates(settings),
        *check_security(settings),
        *check_note(settings),
    ]
    from digest import authcheck

    findings += authcheck.check_key(settings)
    if smtp:
        findings += check_smtp(settings)
        findings += authcheck.check_dns(settings)
    return findings


def before_send(settings: Settings, *, force: bool = False) -> list[Finding]:
    """Return the checks a real send makes first: everything but the SMTP round trip
    and the DNS, but for the DKIM record (force makes its mismatch a warning).

    A DKIM key that cannot be used raises ConfigError, naming the setting and the file.
    """
    from digest import authcheck

    return [*run_checks(settings, smtp=False), *authcheck.before_send(settings, force=force)]


def check_note(settings: Settings) -> list[Finding]:
    """Say whether the editor's note waiting in DIGEST_NOTE_FILE can go out as written.

    A warning at worst: the run refuses a bad note itself, and an edition already made
    must still be sendable.
    """
    from digest.note import NOTE_KEY, read_note, unsafe_links

    path = settings.note_file
    if path is None:
        return []
    if not path.exists():
        return [Finding("ok", NOTE_KEY, f"{path}: no note waiting for the next edition")]
    try:
        text = read_note(path)
    except ConfigError as err:
        return [Finding("warning", NOTE_KEY, f"{err}: the next run stops until it is fixed")]
    unsafe = unsafe_links(text)
    if unsafe:
        shown = ", ".join(repr(link[:40]) for link in unsafe[:3])
        return [Finding("warning", NOTE_KEY, f"{path}: shown as text, not links: {shown}")]
    return [Finding("ok", NOTE_KEY, f"{path}: a note of {len(text):,} characters waits")]


def check_delivery(settings: Settings) -> list[Finding]:
    """Say what `digest run` does with an edition."""
    if settings.delivery == "smtp":
        return [Finding("ok", "DIGEST_DELIVERY", "smtp: `digest run` sends each edition")]
    return [
        Finding(
            "ok",
            "DIGEST_DELIVERY",
            "outbox: `digest run` only writes the outbox; `digest send` sends",
        )
    ]


def host_problem(host: str) -> str | None:
    """Return why host cannot be reached from the public internet, or None."""
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback:
            return "is a loopback address"
        if address.is_private or address.is_link_local or address.is_reserved:
            return "is a private address"
        if address.is_unspecified or address.is_multicast:
            return "is not an address a reader can reach"
        return None
    if "." not in name:
        return "is a bare host name" if name != "localhost" else "is this machine"
    tld = name.rsplit(".", 1)[1]
    if tld in PRIVATE_TLDS:
        return f"ends in .{tld}, which is not on the public internet"
    if any(name == d or name.endswith("." + d) for d in EXAMPLE_DOMAINS):
        return "is a reserved example domain"
    return None


def check_base_url(settings: Settings) -> list[Finding]:
    """The one-click URL must be https:// on a host readers can reach (RFC 8058)."""
    url = settings.base_url
    parts = urlsplit(url)
    found: list[Finding] = []
    if parts.scheme.lower() != "https":
        found.append(
            Finding(
                "error",
                "DIGEST_BASE_URL",
                f"{url} is not https://: RFC 8058 one-click unsubscribe needs an HTTPS URL"
                " (set it to the public address of `digest serve`, behind TLS)",
            )
        )
    problem = host_problem(parts.hostname or "")
    if problem is not None:
        found.append(
            Finding(
                "error",
                "DIGEST_BASE_URL",
                f"{parts.hostname} {problem}: unsubscribe links would not reach this server",
            )
        )
    return found or [Finding("ok", "DIGEST_BASE_URL", f"{url}: https on a public host")]


def looks_random(secret: str) -> bool:
    """Return whether secret looks random: varied, no character dominating, no run."""
    counts = Counter(secret)
    if len(counts) < MIN_DISTINCT or max(counts.values()) > len(secret) / 4:
        return False
    # abcdef… or 123456…: most neighbours one code point apart.
    steps = sum(1 for a, b in pairwise(secret) if abs(ord(a) - ord(b)) == 1)
    return steps < len(secret) / 2


def check_secret(settings: Settings) -> list[Finding]:
    """DIGEST_SECRET_KEY signs unsubscribe links: long and random, or they can be forged."""
    key = settings.secret_key
    fresh = "`digest check --new-secret` prints a fresh one"
    if not key:
        why = f"is not set: unsubscribe links cannot be signed; {fresh}"
    elif len(key) < MIN_SECRET:
        why = f"has {len(key)} characters: use at least {MIN_SECRET} random ones; {fresh}"
    elif not looks_random(key):
        why = f"does not look random (a word, a repeat or a run): {fresh}"
    else:
        return [Finding("ok", "DIGEST_SECRET_KEY", f"{len(key)} random-looking characters")]
    return [Finding("error", "DIGEST_SECRET_KEY", why)]


def check_sender(settings: Settings) -> list[Finding]:
    """DIGEST_FROM must be an address on a real domain, or receivers refuse or junk it."""
    address = parseaddr(settings.sender)[1]
    domain = address.rpartition("@")[2]
    problem = host_problem(domain)
    if problem is not None:
        return [
            Finding(
                "error",
                "DIGEST_FROM",
                f"{address}: {domain} {problem}: give an address on a domain you send for",
            )
        ]
    return [Finding("ok", "DIGEST_FROM", f"{address}")]


def check_list_id(settings: Settings) -> list[Finding]:
    """DIGEST_LIST_ID names the list to mail clients and filters: a domain you control."""
    problem = host_problem(settings.list_id)
    if problem is not None:
        return [
            Finding(
                "error",
                "DIGEST_LIST_ID",
                f"{settings.list_id} {problem}: name the list under a domain you control"
                " (empty: digest.<the domain of DIGEST_FROM>)",
            )
        ]
    return [Finding("ok", "DIGEST_LIST_ID", settings.list_id)]


def check_mailto(settings: Settings) -> list[Finding]:
    """Say what List-Unsubscribe offers."""
    if settings.unsubscribe_mailto:
        text = (
            f"List-Unsubscribe also offers mailto:{settings.unsubscribe_mailto}:"
            " make sure something reads that mailbox"
        )
    else:
        text = "not set: List-Unsubscribe offers the one-click URL only"
    return [Finding("ok", "DIGEST_UNSUBSCRIBE_MAILTO", text)]


def check_security(settings: Settings) -> list[Finding]:
    """SMTP_SECURITY=none is plain text: fine to a relay on this host only."""
    if settings.smtp_security != "none":
        return []
    if is_local(settings.smtp_host):
        return [
            Finding("ok", "SMTP_SECURITY", f"none, to a relay on this host ({settings.smtp_host})")
        ]
    crossing = "mail and the password cross" if settings.smtp_username else "mail crosses"
    return [
        Finding(
            "warning",
            "SMTP_SECURITY",
            f"none: {crossing} the network to {settings.smtp_host} in plain text;"
            " use starttls or ssl",
        )
    ]


def is_loopback(host: str) -> bool:
    """Return whether host is a loopback address (or localhost); "" and 0.0.0.0 are not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local(host: str) -> bool:
    """Return whether host is this machine: localhost, a loopback address or its own name."""
    name = host.strip().strip("[]").lower()
    return is_loopback(name) or name in {socket.gethostname().lower(), socket.getfqdn().lower()}


def sample_edition(settings: Settings, now: datetime | None = None) -> Edition:
    """Return an edition as full as the settings allow, to render the templates with."""
    now = now or datetime.now(UTC)
    sentence = (
        "The council approved the plan after a long debate, and the first works on the"
        " new bridge are to start in the spring, officials said on Tuesday."
    )
    items = []
    for n in range(settings.max_items):
        article = Article(
            id=f"check-{n}",
            source="https://news.digest-check.net/feed.xml",
            title=f"Council approves the plan for the new bridge over the river, part {n + 1}",
            paragraphs=(sentence,) * 3,
            highlights=tuple(Highlight(sentence) for _ in range(settings.highlights)),
            url=f"https://news.digest-check.net/2026/bridge-{n + 1}",
            source_name="Digest Check News",
            published=now,
        )
        items.append(Item(article, article.highlights))
    titles = (*settings.sections, settings.default_section) if settings.sections else ("",)
    per = -(-len(items) // len(titles))
    sections = tuple(
        Section(title, tuple(items[i * per : (i + 1) * per])) for i, title in enumerate(titles)
    )
    return Edition(
        "check",
        settings.title,
        now.date(),
        now,
        tuple(s for s in sections if s.items) or (Section("", ()),),
    )


def check_templates(settings: Settings) -> list[Finding]:
    """Render a full sample edition: both parts carry the unsubscribe link, and the HTML
    stays under Gmail's clip; the newest stored edition (what `digest send` sends) too."""
    from digest.render import UNSUBSCRIBE_PLACEHOLDER, render_edition

    key = "DIGEST_TEMPLATES_DIR" if settings.templates_dir is not None else "templates"
    where = str(settings.templates_dir) if settings.templates_dir else "the built-in templates"
    try:
        rendered = render_edition(settings, sample_edition(settings))
    except DigestError as err:
        return [Finding("error", key, f"{where} do not render: {err}")]
    found = _unsubscribe_findings(key, where, rendered.html, rendered.text, UNSUBSCRIBE_PLACEHOLDER)
    label = f"a sample edition of {settings.max_items} items"
    found.append(_size(settings, label, rendered.html))
    found += _stored_edition(settings, UNSUBSCRIBE_PLACEHOLDER)
    return found


def _unsubscribe_findings(
    key: str, where: str, html: str, text: str, placeholder: str
) -> list[Finding]:
    missing = []
    if not _PLACEHOLDER_HREF.search(html):
        missing.append(
            "the HTML part (digest.html.j2 and its partials: a link with"
            ' href="{{ unsubscribe_url }}")'
        )
    if placeholder not in text:
        missing.append("the text part (digest.txt.j2: {{ unsubscribe_url }})")
    if missing:
        return [
            Finding(
                "error",
                key,
                f"{where}: no unsubscribe link in {' nor in '.join(missing)}; the law and"
                " the mailbox providers require one in every message",
            )
        ]
    return [Finding("ok", key, f"{where}: both parts carry the unsubscribe link")]


def _size(settings: Settings, label: str, html: str) -> Finding:
    """Measure html as a reader's message carries it, against Gmail's clip."""
    from digest.render import UNSUBSCRIBE_PLACEHOLDER
    from digest.tokens import TOKEN_LENGTH, unsubscribe_url

    real = unsubscribe_url(settings.base_url, "x" * TOKEN_LENGTH)
    size = len(html.replace(UNSUBSCRIBE_PLACEHOLDER, real).encode("utf-8"))
    figure = f"{label}: {size / 1024:.1f} KB of HTML"
    if size > GMAIL_CLIP:
        return Finding(
            "warning",
            "DIGEST_MAX_ITEMS",
            f"{figure}, over Gmail's 102 KB clip: Gmail hides the rest, the unsubscribe"
            " link included; lower DIGEST_MAX_ITEMS or DIGEST_HIGHLIGHTS",
        )
    return Finding("ok", "DIGEST_MAX_ITEMS", f"{figure}, under Gmail's 102 KB clip")


def _stored_edition(settings: Settings, placeholder: str) -> list[Finding]:
    """Check the newest stored edition, the one `digest send` sends by default."""
    from digest.store import Store, store_exists

    if not store_exists(settings.db):
        return []

    try:
        with Store(settings.db, readonly=True) as store:
            edition_id = store.editions.latest_sendable()
            content = store.editions.content(edition_id) if edition_id else None
    except DigestError:
        # An old or unreadable store: the send says so itself, in its own words.
        return []
    if edition_id is None or content is None:
        return []
    label = f"edition {edition_id}"
    found = _unsubscribe_findings("templates", label, content.html, content.text, placeholder)
    found.append(_size(settings, label, content.html))
    return found


def check_smtp(settings: Settings) -> list[Finding]:
    """Probe the SMTP server: answers, secures, logs in and accepts MAIL FROM (then RSET)."""
    from digest.smtp import probe

    sender = parseaddr(settings.sender)[1]
    return [
        Finding("ok" if step.ok else "error", step.key, step.text)
        for step in probe(settings, sender)
    ]
