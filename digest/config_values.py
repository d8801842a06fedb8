"""Reading the settings' values: each key's text from the environment or the .env file,
checked and converted, and one clear line naming the key and its origin when it is bad."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from email.headerregistry import AddressHeader, HeaderRegistry
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


class Values:
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


def resolve_sources(values: Values, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Make relative source paths absolute; URLs stay as they are."""
    base = values.base_dir(key)
    resolved = []
    for entry in values.listing(key, default):
        if "://" in entry or Path(entry).expanduser().is_absolute():
            resolved.append(str(Path(entry).expanduser()) if "://" not in entry else entry)
        else:
            resolved.append(str(base / entry))
    return tuple(resolved)


def list_id(values: Values) -> str:
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


def optional_mailbox(values: Values, key: str) -> str:
    """Return the bare address of an optional mailbox setting, or "" when it is not set."""
    if not values.text(key, "", allow_empty=True):
        return ""
    return parseaddr(values.mailbox(key, ""))[1]


# An SNS topic ARN: arn:aws:sns:us-east-1:123456789012:digest-bounces (other partitions too).
_SNS_TOPIC = re.compile(r"arn:aws(?:-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")


def sns_topics(values: Values, key: str) -> tuple[str, ...]:
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


def basic_auth(values: Values, key: str) -> str:
    """Return a user:password secret, or "" when it is not set; never show the value."""
    value = values.secret(key).strip()
    if value and (":" not in value or not value.partition(":")[0]):
        _, origin = values.raw(key)
        raise values.fail(key, "***", origin, "must be user:password")
    return value


def ec_public_key(values: Values, key: str) -> str:
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


def dns_name(values: Values, key: str) -> str:
    """Return a DKIM selector, or "" when it is not set; characters DNS refuses are an error."""
    given = values.text(key, "", allow_empty=True)
    if given and not _SELECTOR.fullmatch(given):
        raw, origin = values.raw(key)
        raise values.fail(
            key, raw or given, origin, "must be DNS labels: ASCII letters, digits, inner hyphens"
        )
    return given


def origins(values: Values, key: str) -> tuple[str, ...]:
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


def subject(values: Values, key: str) -> str:
    """Return the subject line pattern, checked: known variables, balanced braces."""
    from digest.subjects import DEFAULT, problem

    pattern = values.text(key, DEFAULT)
    why = problem(pattern)
    if why:
        raw, origin = values.raw(key)
        raise values.fail(key, raw or pattern, origin, why)
    return pattern
