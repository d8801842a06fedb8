"""Settings: read once from a `.env` file and the environment, validated, then frozen."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import AddressHeader, HeaderRegistry
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from digest.errors import ConfigError

logger = logging.getLogger(__name__)

PREFIXES = ("DIGEST_", "SMTP_")
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# What goes between the angle brackets of List-Id (RFC 2919): ASCII, domain-like.
_LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_-]+)*")
# A URL from the settings is pasted into HTML attributes and headers as it is: none of
# these may end the attribute, start a tag or split the value.
_URL_FORBIDDEN = frozenset("\"'<>\\`")
# Larger integers overflow the C functions some settings reach (zlib, sockets, sleeps).
_LARGEST_INTEGER = 2**31 - 1
# Durations beyond this overflow date arithmetic (now - DIGEST_MAX_AGE) long before any
# use for them.
_LONGEST = timedelta(days=3650)


@dataclass(frozen=True)
class Settings:
    """Every setting digest uses; see config.example.env for each key."""

    sources: tuple[str, ...] = ("seeds/",)
    # A SQLite file, or a postgresql:// URL (a str) naming a shared database.
    db: Path | str = Path("digest.db")
    outbox: Path = Path("outbox")
    title: str = "Daily Digest"
    sender: str = "Digest <digest@example.com>"
    max_items: int = 10
    highlights: int = 3
    timezone: str = "UTC"
    templates_dir: Path | None = None
    base_url: str = "http://127.0.0.1:8080"
    # Where the archive's pages are published; "" means DIGEST_BASE_URL's /archive/.
    archive_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    # "auto": served only while the server listens on loopback.
    preview: str = "auto"
    language: str = "en"
    schedule: str = "0 7 * * *"
    catchup: timedelta = timedelta(hours=6)
    local_time: bool = False
    brand_color: str = "#1d4ed8"
    logo_url: str = ""
    logo_width: int = 200
    logo_height: int = 50
    tagline: str = ""
    postal_address: str = ""
    # Where relative paths were resolved from; the file the settings came from, if any.
    env_file: Path | None = None
    fetch_timeout: float = 20.0
    fetch_interval: timedelta = timedelta(minutes=30)
    fetch_max_bytes: int = 10_000_000
    max_article_bytes: int = 2_000_000
    fetch_allow_private: bool = False
    fetch_concurrency: int = 8
    fetch_per_host: int = 1
    # Thin feed items: fetch the article's page and keep its main text (off or auto).
    full_text: str = "off"
    full_text_min_words: int = 120
    full_text_hosts: tuple[str, ...] = ()
    # Empty: digest/<version>, which names the program to the sites it reads.
    user_agent: str = ""
    source_failing_days: int = 3
    # Selection: ranking, caps and sections.
    recency_half_life: timedelta = timedelta(hours=24)
    source_weights: tuple[tuple[str, float], ...] = ()
    max_per_source: int = 0
    sections: tuple[str, ...] = ()
    section_max: int = 0
    default_section: str = "More"
    min_items: int = 1
    max_age: timedelta = timedelta(days=7)
    # Articles never carried, and fingerprints of files gone, are forgotten after this.
    retention: timedelta = timedelta(days=90)

    def source_weight(self, name: str) -> float:
        """Return the ranking weight of a source by its name (1 when not configured)."""
        wanted = name.casefold()
        return next((w for n, w in self.source_weights if n.casefold() == wanted), 1.0)

    # Sending. Secrets stay out of repr so that a logged Settings never leaks them.
    secret_key: str = field(default="", repr=False)
    # Empty in the file means digest.<domain of DIGEST_FROM>, filled in when loading.
    list_id: str = "digest.example.com"
    delivery: str = "outbox"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_security: str = "starttls"
    smtp_timeout: float = 30.0
    smtp_connections: int = 2
    smtp_rate: int = 0
    smtp_max_attempts: int = 5
    smtp_retry_delay: timedelta = timedelta(minutes=5)
    smtp_retry_for: timedelta = timedelta(days=2)
    smtp_ca_file: Path | None = None
    # Messages a minute to one receiving domain, over every sender together (0: no limit).
    smtp_domain_rate: int = 0
    # How long a sender's claim on ledger rows holds without renewal.
    send_lease: timedelta = timedelta(minutes=2)
    # Outcomes a sender records in one commit: what a killed sender may send again.
    send_commit_every: int = 20
    # How often `digest send --worker` looks for due rows when nothing wakes it sooner.
    worker_poll: timedelta = timedelta(seconds=30)
    # A mailbox something reads for unsubscribe requests by mail (empty: no mailto: in
    # List-Unsubscribe, only the one-click URL).
    unsubscribe_mailto: str = ""
    # Webhooks for delivery reports (docs/webhooks.md); each route is off while its key
    # is empty. SES: the SNS topic ARNs whose notifications are accepted.
    webhook_ses_topics: tuple[str, ...] = ()
    # Postmark: "user:password" for the webhook URL's basic auth.
    webhook_postmark_auth: str = field(default="", repr=False)
    # Mailgun: the HTTP webhook signing key.
    webhook_mailgun_key: str = field(default="", repr=False)
    # SendGrid: the Signed Event Webhook's verification key (public; base64 DER).
    webhook_sendgrid_key: str = ""
    # DKIM signing (digest/dkim.py): on when the key is set; the domain defaults to the
    # domain of DIGEST_FROM.
    dkim_key: Path | None = None
    dkim_selector: str = ""
    dkim_domain: str = ""
    # DNS servers `digest check` asks, as host or host:port (empty: the system's).
    dns_servers: tuple[str, ...] = ()
    dns_timeout: float = 5.0
    # Sign-up: how long a confirmation link holds (and a pending address is kept), the
    # welcome mail, sign-ups an hour from one IP (0: no limit), the other sites whose
    # pages may post the form or the JSON, and the least time a person takes to fill it.
    confirm_ttl: timedelta = timedelta(days=3)
    welcome: bool = False
    signup_rate: int = 10
    signup_origins: tuple[str, ...] = ()
    signup_min_seconds: int = 2
    # Delivery reports read after the send (digest/bounces/).
    bounce_address: str = ""
    bounce_mailbox: str = ""
    bounce_password: str = field(default="", repr=False)
    bounce_interval: timedelta = timedelta(minutes=15)
    bounce_score: int = 3
    bounce_window: timedelta = timedelta(days=14)
    bounce_timeout: float = 30.0
    bounce_ca_file: Path | None = None

    @property
    def zone(self) -> ZoneInfo:
        """Return the configured time zone."""
        return ZoneInfo(self.timezone)


class _Values:
    """Raw key values with their origin, so that an error can name the file."""

    def __init__(
        self, file_values: Mapping[str, str | None], env: Mapping[str, str], env_file: Path | None
    ) -> None:
        self.file_values = {k: v for k, v in file_values.items() if v is not None}
        self.env = env
        self.env_file = env_file
        self.used: set[str] = set()

    def raw(self, key: str) -> tuple[str | None, str]:
        """Return the value of key and where it came from; the environment wins."""
        self.used.add(key)
        if key in self.env:
            return self.env[key], "the environment"
        if key in self.file_values:
            return self.file_values[key], str(self.env_file)
        return None, "the defaults"

    def fail(self, key: str, value: str, origin: str, why: str) -> ConfigError:
        """Build an error that names the key, its value and where it was set."""
        return ConfigError(
            f"{origin}: {key}={value!r}: {why}",
            hint="see config.example.env for every key and its allowed values",
        )

    def base_dir(self, key: str) -> Path:
        """Return the folder a relative path in key is resolved against."""
        _, origin = self.raw(key)
        if self.env_file is not None and origin == str(self.env_file):
            return self.env_file.parent
        return Path.cwd()

    def text(self, key: str, default: str, *, allow_empty: bool = False) -> str:
        value, origin = self.raw(key)
        if value is None:
            return default
        value = value.strip()
        if not value and not allow_empty:
            raise self.fail(key, value, origin, "must not be empty")
        if any(c in value for c in "\r\n\0"):
            raise self.fail(key, value, origin, "must be on one line")
        return value

    def secret(self, key: str) -> str:
        """Read a secret; an error names the key but never shows the value."""
        value, origin = self.raw(key)
        if value is None:
            return ""
        if any(c in value for c in "\r\n\0"):
            raise self.fail(key, "***", origin, "must be on one line")
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value, origin = self.raw(key)
        if value is None or not value.strip():
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise self.fail(key, value, origin, "must be a whole number") from None
        upper = _LARGEST_INTEGER if maximum is None else maximum
        if number < minimum or number > upper:
            raise self.fail(key, value, origin, f"must be at least {minimum} and at most {upper}")
        return number

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        """Read a finite number in [minimum, maximum]; nan, inf and 1e400 are refused."""
        value, origin = self.raw(key)
        if value is None or not value.strip():
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise self.fail(key, value, origin, "must be a number") from None
        bounds = f"at least {minimum:g} and at most {maximum:g}"
        # nan compares false with everything, so it would slip past the range check.
        if not math.isfinite(number):
            raise self.fail(key, value, origin, f"must be a finite number, {bounds}")
        if not minimum <= number <= maximum:
            raise self.fail(key, value, origin, f"must be {bounds}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value, origin = self.raw(key)
        if value is None or not value.strip():
            return default
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise self.fail(key, value, origin, "must be true or false")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default).lower()
        if value not in choices:
            raw, origin = self.raw(key)
            raise self.fail(key, raw or "", origin, f"must be one of {', '.join(choices)}")
        return value

    def store(self, key: str, default: str) -> Path | str:
        """A database URL as it is, or a SQLite file path resolved like any path."""
        value = self.text(key, default).strip()
        if "://" in value:
            return value
        return self.path(key, default)

    def path(self, key: str, default: str) -> Path:
        value = self.text(key, default)
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir(key) / path

    def optional_path(self, key: str) -> Path | None:
        value, _ = self.raw(key)
        if value is None or not value.strip():
            return None
        return self.path(key, value)

    def listing(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value, origin = self.raw(key)
        if value is None:
            return default
        parts = tuple(p.strip() for p in value.split(",") if p.strip())
        if not parts:
            raise self.fail(key, value, origin, "must list at least one entry")
        return parts

    def zone(self, key: str, default: str) -> str:
        value = self.text(key, default)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raw, origin = self.raw(key)
            raise self.fail(key, raw or value, origin, "is not a known time zone") from None
        return value

    def duration(self, key: str, default: str, *, maximum: timedelta = _LONGEST) -> timedelta:
        """Read a duration such as 90m, 6h or 1d; a bare number counts hours."""
        value = self.text(key, default)
        match = _DURATION.fullmatch(value.strip().lower())
        if not match:
            raw, origin = self.raw(key)
            raise self.fail(key, raw or value, origin, "must be a duration such as 30m, 6h or 1d")
        unit = match.group(2) or "h"
        # Compared in seconds first: timedelta itself overflows on 99999999999d.
        seconds = float(match.group(1)) * _SECONDS[unit]
        if seconds > maximum.total_seconds():
            raw, origin = self.raw(key)
            raise self.fail(key, raw or value, origin, f"must be at most {_short(maximum)}")
        return timedelta(seconds=seconds)

    def crontab(self, key: str, default: str) -> str:
        """Read a five-field crontab expression and check that it parses."""
        from apscheduler.triggers.cron import CronTrigger

        value = " ".join(self.text(key, default).split())
        try:
            CronTrigger.from_crontab(value)
        except ValueError as err:
            raw, origin = self.raw(key)
            raise self.fail(
                key, raw or value, origin, f"is not a crontab expression: {err}"
            ) from None
        return value

    def color(self, key: str, default: str) -> str:
        value = self.text(key, default)
        if not _HEX_COLOR.fullmatch(value):
            raw, origin = self.raw(key)
            raise self.fail(key, raw or value, origin, "must be a hex colour such as #1d4ed8")
        return value.lower()

    def url(self, key: str, default: str, *, required: bool = False, base: bool = False) -> str:
        """Read an http(s) URL that is safe to paste into HTML and headers as it is.

        With base, pages are appended to it: a query or fragment would swallow them, and
        a trailing slash is dropped.
        """
        value = self.text(key, default, allow_empty=not required)
        if not value:
            return value
        why = "" if required else " or empty"
        raw, origin = self.raw(key)
        if any(c in _URL_FORBIDDEN or c.isspace() or not c.isprintable() for c in value):
            raise self.fail(
                key,
                raw or value,
                origin,
                "must be an http(s) URL without quotes, spaces, <, >, \\ or control characters",
            )
        try:
            parts = urlsplit(value)
        except ValueError:
            raise self.fail(key, raw or value, origin, f"must be an http(s) URL{why}") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise self.fail(key, raw or value, origin, f"must be an http(s) URL{why}")
        if base and (parts.query or parts.fragment or value.endswith(("?", "#"))):
            raise self.fail(
                key, raw or value, origin, "must not have a query or fragment: pages follow it"
            )
        return value.rstrip("/") if base else value

    def mailbox(self, key: str, default: str) -> str:
        """Read one address, `Name <user@example.com>` or `user@example.com`."""
        value = self.text(key, default)
        raw, origin = self.raw(key)
        example = "one address such as Digest <digest@example.com>"
        try:
            header = HeaderRegistry()("From", value)
            found = header.addresses if isinstance(header, AddressHeader) else ()
        except Exception:
            # The standard library's header parser raises IndexError, AttributeError,
            # TypeError and more on hostile input; each means the same: not an address.
            raise self.fail(key, raw or value, origin, f"must be {example}") from None
        if len(found) > 1:
            raise self.fail(
                key, raw or value, origin, f"names {len(found)} addresses: give {example}"
            )
        if header.defects or not found or not found[0].username or not found[0].domain:
            raise self.fail(key, raw or value, origin, f"must be {example}")
        address = found[0].addr_spec
        if not address.isascii():
            # Non-ASCII would need SMTPUTF8, which digest does not send.
            raise self.fail(
                key,
                raw or value,
                origin,
                "the address must be ASCII: write an internationalised domain in its xn-- form",
            )
        return value

    def folder(self, key: str) -> Path | None:
        """Read an optional path that must name an existing folder."""
        path = self.optional_path(key)
        if path is not None and not path.is_dir():
            raw, origin = self.raw(key)
            why = "is not a folder" if path.exists() else f"no such folder: {path}"
            raise self.fail(key, raw or str(path), origin, why)
        return path

    def weights(self, key: str) -> tuple[tuple[str, float], ...]:
        """Read name=weight pairs separated by commas, such as `Wire=0.5,Blog=2`."""
        value, origin = self.raw(key)
        if value is None or not value.strip():
            return ()
        pairs: list[tuple[str, float]] = []
        for part in value.split(","):
            name, sep, number = part.rpartition("=")
            try:
                weight = float(number)
            except ValueError:
                weight = -1.0
            if not sep or not name.strip() or not 0 <= weight < math.inf:
                raise self.fail(
                    key, value, origin, f"'{part.strip()}' is not name=weight (0 or more)"
                )
            pairs.append((name.strip(), weight))
        return tuple(pairs)

    def unknown_keys(self) -> list[str]:
        """Return DIGEST_/SMTP_ keys that were set but never read: most likely typos."""
        given = set(self.file_values) | {k for k in self.env if k.startswith(PREFIXES)}
        return sorted(k for k in given if k.startswith(PREFIXES) and k not in self.used)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _short(delta: timedelta) -> str:
    """Return delta as the settings write it: 3650d, 6h, 30m."""
    seconds = int(delta.total_seconds())
    unit = next(u for u in "dhms" if u == "s" or seconds % _SECONDS[u] == 0)
    return f"{seconds // _SECONDS[unit]}{unit}"


def _resolve_sources(values: _Values, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Make relative source paths absolute; URLs stay as they are."""
    base = values.base_dir(key)
    resolved = []
    for entry in values.listing(key, default):
        if "://" in entry or Path(entry).expanduser().is_absolute():
            resolved.append(str(Path(entry).expanduser()) if "://" not in entry else entry)
        else:
            resolved.append(str(base / entry))
    return tuple(resolved)


def _list_id(values: _Values) -> str:
    """Return DIGEST_LIST_ID, or one made from the sender's domain."""
    given = values.text("DIGEST_LIST_ID", "", allow_empty=True)
    if given:
        if not _LIST_ID.fullmatch(given):
            raw, origin = values.raw("DIGEST_LIST_ID")
            raise values.fail(
                "DIGEST_LIST_ID",
                raw or given,
                origin,
                "must be a domain-like name such as digest.example.com"
                " (ASCII letters, digits, dots, hyphens, underscores)",
            )
        return given
    domain = parseaddr(values.mailbox("DIGEST_FROM", "digest@example.com"))[1].rpartition("@")[2]
    return f"digest.{domain or 'example.com'}"


def _optional_mailbox(values: _Values, key: str) -> str:
    """Return the bare address of an optional mailbox setting, or "" when it is not set."""
    if not values.text(key, "", allow_empty=True):
        return ""
    return parseaddr(values.mailbox(key, ""))[1]


# An SNS topic ARN: arn:aws:sns:us-east-1:123456789012:digest-bounces (other partitions too).
_SNS_TOPIC = re.compile(r"arn:aws(?:-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")


def _sns_topics(values: _Values, key: str) -> tuple[str, ...]:
    """Return the SNS topic ARNs of key, each checked, or () when it is not set."""
    raw, origin = values.raw(key)
    if raw is None or not raw.strip():
        return ()
    topics = values.listing(key, ())
    for topic in topics:
        if not _SNS_TOPIC.fullmatch(topic):
            raise values.fail(
                key, raw, origin, f"{topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ID:NAME)"
            )
    return topics


def _basic_auth(values: _Values, key: str) -> str:
    """Return a user:password secret, or "" when it is not set; never show the value."""
    value = values.secret(key).strip()
    if value and (":" not in value or not value.partition(":")[0]):
        _, origin = values.raw(key)
        raise values.fail(key, "***", origin, "must be user:password")
    return value


def _ec_public_key(values: _Values, key: str) -> str:
    """Return an ECDSA public key (base64 DER as SendGrid shows it), checked."""
    value = values.text(key, "", allow_empty=True)
    if not value:
        return ""
    from digest.bounces.sendgrid import load_key

    try:
        load_key(value)
    except ValueError as err:
        raw, origin = values.raw(key)
        raise values.fail(key, raw or value, origin, str(err)) from None
    return value


# A DKIM selector is one or more DNS labels of letters, digits and inner hyphens (RFC 6376).
_SELECTOR = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _dns_name(values: _Values, key: str) -> str:
    """Return a DKIM selector, or "" when it is not set; characters DNS refuses are an error."""
    given = values.text(key, "", allow_empty=True)
    if given and not _SELECTOR.fullmatch(given):
        raw, origin = values.raw(key)
        raise values.fail(
            key, raw or given, origin, "must be DNS labels: ASCII letters, digits, inner hyphens"
        )
    return given


def _origins(values: _Values, key: str) -> tuple[str, ...]:
    """Return the web origins (scheme://host[:port]) listed in key, each checked."""
    value, origin = values.raw(key)
    if value is None or not value.strip():
        return ()
    found: list[str] = []
    for part in value.split(","):
        entry = part.strip().rstrip("/")
        try:
            parts = urlsplit(entry)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise values.fail(
                key, value, origin, f"'{entry}' is not an origin such as https://example.org"
            )
        found.append(f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}")
    return tuple(found)


def load_settings(
    env_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from env_file (or ./.env if present) and the environment.

    The process environment takes precedence over the file. Parent folders are never
    searched, so a stray .env higher up cannot change a run.
    """
    env = dict(os.environ if environ is None else environ)
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"{env_file}: no such settings file")
    elif (Path.cwd() / ".env").is_file():
        env_file = Path.cwd() / ".env"
    file_values: dict[str, str | None] = {}
    if env_file is not None:
        env_file = env_file.resolve()
        try:
            file_values = dict(dotenv_values(env_file, interpolate=False, encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{env_file}: cannot read settings: {err}") from err
    v = _Values(file_values, env, env_file)
    settings = Settings(
        sources=_resolve_sources(v, "DIGEST_SOURCES", ("seeds/",)),
        db=v.store("DIGEST_DB", "digest.db"),
        outbox=v.path("DIGEST_OUTBOX", "outbox"),
        title=v.text("DIGEST_TITLE", "Daily Digest"),
        sender=v.mailbox("DIGEST_FROM", "Digest <digest@example.com>"),
        max_items=v.integer("DIGEST_MAX_ITEMS", 10, minimum=1, maximum=500),
        highlights=v.integer("DIGEST_HIGHLIGHTS", 3, minimum=0, maximum=20),
        timezone=v.zone("DIGEST_TIMEZONE", "UTC"),
        templates_dir=v.folder("DIGEST_TEMPLATES_DIR"),
        base_url=v.url("DIGEST_BASE_URL", "http://127.0.0.1:8080", required=True, base=True),
        archive_url=v.url("DIGEST_ARCHIVE_URL", "", base=True),
        language=v.text("DIGEST_LANGUAGE", "en"),
        host=v.text("DIGEST_HOST", "127.0.0.1"),
        port=v.integer("DIGEST_PORT", 8080, minimum=1, maximum=65535),
        preview=v.choice("DIGEST_PREVIEW", "auto", ("auto", "on", "off")),
        schedule=v.crontab("DIGEST_SCHEDULE", "0 7 * * *"),
        catchup=v.duration("DIGEST_CATCHUP", "6h"),
        local_time=v.boolean("DIGEST_LOCAL_TIME", False),
        brand_color=v.color("DIGEST_BRAND_COLOR", "#1d4ed8"),
        logo_url=v.url("DIGEST_LOGO_URL", ""),
        logo_width=v.integer("DIGEST_LOGO_WIDTH", 200, minimum=1, maximum=600),
        logo_height=v.integer("DIGEST_LOGO_HEIGHT", 50, minimum=1, maximum=600),
        tagline=v.text("DIGEST_TAGLINE", "", allow_empty=True),
        postal_address=v.text("DIGEST_POSTAL_ADDRESS", "", allow_empty=True),
        env_file=env_file,
        fetch_timeout=v.number("DIGEST_FETCH_TIMEOUT", 20.0, minimum=0.1, maximum=3600),
        fetch_interval=v.duration("DIGEST_FETCH_INTERVAL", "30m"),
        fetch_max_bytes=v.integer("DIGEST_FETCH_MAX_BYTES", 10_000_000, minimum=1024),
        max_article_bytes=v.integer("DIGEST_MAX_ARTICLE_BYTES", 2_000_000, minimum=1024),
        fetch_allow_private=v.boolean("DIGEST_FETCH_ALLOW_PRIVATE", False),
        fetch_concurrency=v.integer("DIGEST_FETCH_CONCURRENCY", 8, minimum=1, maximum=64),
        fetch_per_host=v.integer("DIGEST_FETCH_PER_HOST", 1, minimum=1, maximum=64),
        full_text=v.choice("DIGEST_FULL_TEXT", "off", ("off", "auto")),
        full_text_min_words=v.integer(
            "DIGEST_FULL_TEXT_MIN_WORDS", 120, minimum=1, maximum=100_000
        ),
        full_text_hosts=(
            v.listing("DIGEST_FULL_TEXT_HOSTS", ()) if v.raw("DIGEST_FULL_TEXT_HOSTS")[0] else ()
        ),
        user_agent=v.text("DIGEST_USER_AGENT", "", allow_empty=True),
        source_failing_days=v.integer("DIGEST_SOURCE_FAILING_DAYS", 3, minimum=1, maximum=365),
        recency_half_life=v.duration("DIGEST_RECENCY_HALF_LIFE", "24h"),
        source_weights=v.weights("DIGEST_SOURCE_WEIGHTS"),
        max_per_source=v.integer("DIGEST_MAX_PER_SOURCE", 0, minimum=0, maximum=500),
        sections=v.listing("DIGEST_SECTIONS", ()) if v.raw("DIGEST_SECTIONS")[0] else (),
        section_max=v.integer("DIGEST_SECTION_MAX", 0, minimum=0, maximum=500),
        default_section=v.text("DIGEST_DEFAULT_SECTION", "More"),
        min_items=v.integer("DIGEST_MIN_ITEMS", 1, minimum=1, maximum=500),
        max_age=v.duration("DIGEST_MAX_AGE", "7d"),
        retention=v.duration("DIGEST_RETENTION", "90d"),
        secret_key=v.secret("DIGEST_SECRET_KEY").strip(),
        list_id=_list_id(v),
        delivery=v.choice("DIGEST_DELIVERY", "outbox", ("outbox", "smtp")),
        smtp_host=v.text("SMTP_HOST", "localhost"),
        smtp_port=v.integer("SMTP_PORT", 587, minimum=1, maximum=65535),
        smtp_username=v.text("SMTP_USERNAME", "", allow_empty=True),
        smtp_password=v.secret("SMTP_PASSWORD"),
        smtp_security=v.choice("SMTP_SECURITY", "starttls", ("starttls", "ssl", "none")),
        smtp_timeout=v.number("SMTP_TIMEOUT", 30.0, minimum=0.1, maximum=3600),
        smtp_connections=v.integer("SMTP_CONNECTIONS", 2, minimum=1, maximum=32),
        smtp_rate=v.integer("SMTP_RATE", 0, minimum=0),
        smtp_max_attempts=v.integer("SMTP_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
        smtp_retry_delay=v.duration("SMTP_RETRY_DELAY", "5m"),
        smtp_retry_for=v.duration("SMTP_RETRY_FOR", "2d"),
        smtp_ca_file=v.optional_path("SMTP_CA_FILE"),
        smtp_domain_rate=v.integer("SMTP_DOMAIN_RATE", 0, minimum=0),
        send_lease=v.duration("DIGEST_SEND_LEASE", "2m", maximum=timedelta(days=1)),
        send_commit_every=v.integer("DIGEST_SEND_COMMIT_EVERY", 20, minimum=1, maximum=1000),
        worker_poll=v.duration("DIGEST_WORKER_POLL", "30s", maximum=timedelta(days=1)),
        unsubscribe_mailto=_optional_mailbox(v, "DIGEST_UNSUBSCRIBE_MAILTO"),
        webhook_ses_topics=_sns_topics(v, "DIGEST_WEBHOOK_SES_TOPICS"),
        webhook_postmark_auth=_basic_auth(v, "DIGEST_WEBHOOK_POSTMARK_AUTH"),
        webhook_mailgun_key=v.secret("DIGEST_WEBHOOK_MAILGUN_KEY").strip(),
        webhook_sendgrid_key=_ec_public_key(v, "DIGEST_WEBHOOK_SENDGRID_KEY"),
        dkim_key=v.optional_path("DIGEST_DKIM_KEY"),
        dkim_selector=_dns_name(v, "DIGEST_DKIM_SELECTOR"),
        dkim_domain=v.text("DIGEST_DKIM_DOMAIN", "", allow_empty=True),
        dns_servers=v.listing("DIGEST_DNS_SERVERS", ()) if v.raw("DIGEST_DNS_SERVERS")[0] else (),
        dns_timeout=v.number("DIGEST_DNS_TIMEOUT", 5.0, minimum=0.1, maximum=60),
        confirm_ttl=v.duration("DIGEST_CONFIRM_TTL", "3d", maximum=timedelta(days=60)),
        welcome=v.boolean("DIGEST_WELCOME", False),
        signup_rate=v.integer("DIGEST_SIGNUP_RATE", 10, minimum=0, maximum=100_000),
        signup_origins=_origins(v, "DIGEST_SIGNUP_ORIGINS"),
        signup_min_seconds=v.integer("DIGEST_SIGNUP_MIN_SECONDS", 2, minimum=0, maximum=600),
        bounce_address=_optional_mailbox(v, "DIGEST_BOUNCE_ADDRESS"),
        bounce_mailbox=v.text("DIGEST_BOUNCE_MAILBOX", "", allow_empty=True),
        bounce_password=v.secret("DIGEST_BOUNCE_PASSWORD"),
        bounce_interval=v.duration("DIGEST_BOUNCE_INTERVAL", "15m", maximum=timedelta(days=1)),
        bounce_score=v.integer("DIGEST_BOUNCE_SCORE", 3, minimum=1, maximum=100),
        bounce_window=v.duration("DIGEST_BOUNCE_WINDOW", "14d"),
        bounce_timeout=v.number("DIGEST_BOUNCE_TIMEOUT", 30.0, minimum=0.1, maximum=3600),
        bounce_ca_file=v.optional_path("DIGEST_BOUNCE_CA_FILE"),
    )
    for key in v.unknown_keys():
        # A key in both places is read from the environment; blame the file only for its own.
        where = env_file if key in v.file_values and key not in env else "the environment"
        logger.warning("%s: unknown setting %s is ignored", where, key)
    return settings
