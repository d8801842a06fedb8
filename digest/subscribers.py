"""The subscriber list: CSV import and export, add and remove, address checks."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from digest.errors import DigestError
from digest.models import Consent, Subscriber
from digest.store import Store, SubscriberChange

logger = logging.getLogger(__name__)

COLUMNS = ("email", "name", "topics", "timezone")
# Long enough for any real name; short enough that a To header stays one folded line.
MAX_NAME = 200


class SubscriberError(DigestError):
    """A subscriber file or address cannot be used."""


@dataclass(frozen=True)
class Rejected:
    """A row left out of an import, with its line number and why."""

    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    """What an import did, row by row."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    # Unsubscribed or bounced addresses whose status the import left as it was.
    kept: int = 0
    # Unsubscribed through their own link, so not re-activated by --resubscribe.
    own: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def count(self, change: SubscriberChange) -> None:
        """Add one row's outcome."""
        setattr(self, change, getattr(self, change) + 1)


def normalise_email(address: str) -> str:
    """Return the address in normal form, or raise SubscriberError saying what is wrong.

    An internationalised domain is kept in its ASCII (IDNA, xn--) form: that is what
    goes in the envelope and the To header, and one form per address keeps an import
    from adding user@exämple.org again as user@xn--exmple-cua.org.
    """
    local = address.strip().rpartition("@")[0]
    if not local.isascii():
        # It could only travel over SMTPUTF8, which digest does not send.
        raise SubscriberError(
            "the part before the @ must be ASCII: digest does not send SMTPUTF8 mail"
        )
    try:
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        raise SubscriberError(str(err)) from None
    return str(checked.ascii_email or checked.normalized)


def check_fields(name: str, topics: str, timezone: str) -> tuple[str, tuple[str, ...], str]:
    """Return the cleaned name, topics and time zone, or raise SubscriberError."""
    name = " ".join(name.split())
    if any(c in name for c in "\r\n\0") or len(name) > MAX_NAME:
        raise SubscriberError(f"name must be one line of at most {MAX_NAME} characters")
    parts = tuple(sorted({t.strip().lower() for t in topics.replace(";", ",").split(",")} - {""}))
    timezone = timezone.strip()
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SubscriberError(f"unknown time zone {timezone!r}") from None
    return name, parts, timezone


def warn_unknown_topics(where: str, topics: Sequence[str], sections: Sequence[str]) -> None:
    """Warn about topics that name none of the configured sections: they pick nothing.

    Topics choose sections (DIGEST_SECTIONS and DIGEST_DEFAULT_SECTION); with no sections
    configured every subscriber gets the whole edition, and there is nothing to check.
    """
    known = {" ".join(s.split()).casefold() for s in sections}
    unknown = [t for t in topics if known and " ".join(t.split()).casefold() not in known]
    if unknown:
        logger.warning(
            "%s: %s not among the sections (%s): subscribers get only the sections their"
            " topics name",
            where,
            ", ".join(f"topic {t!r} is" for t in unknown),
            ", ".join(sections),
        )


def add_subscriber(
    store: Store,
    email: str,
    now: datetime,
    *,
    name: str = "",
    topics: str = "",
    timezone: str = "",
    resubscribe: bool = False,
    sections: Sequence[str] = (),
    consent: Consent | None = None,
) -> SubscriberChange:
    """Add or update one subscriber after checking the address and fields."""
    try:
        address = normalise_email(email)
    except SubscriberError as err:
        raise SubscriberError(f"{email.strip()}: {err}") from None
    clean_name, parts, zone = check_fields(name, topics, timezone)
    warn_unknown_topics(address, parts, sections)
    return store.subscribers.upsert(
        address, clean_name, parts, zone, now, resubscribe=resubscribe, consent=consent
    )


# Header names other programs export (Mailchimp, Sendy, Buttondown, spreadsheets), by
# their letters and digits only, lower case, mapped to our columns.
HEADER_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "subscriberemail": "email",
    "name": "name",
    "fullname": "name",
    "firstname": "first name",
    "givenname": "first name",
    "lastname": "last name",
    "surname": "last name",
    "familyname": "last name",
    "topics": "topics",
    "timezone": "timezone",
    "tz": "timezone",
}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def _column(header: str) -> str:
    """Return our column for an exported header ("Email Address" → email), else the header."""
    key = "".join(c for c in header.lower() if c.isalnum())
    return HEADER_ALIASES.get(key, header.strip().lower())


def read_rows(handle: TextIO, where: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV file with a header row naming its columns.

    The delimiter (comma, semicolon or tab, as spreadsheets in many languages export) is
    the one the header row uses most; common export headers ("Email Address", "First
    Name", "Last Name") are understood.
    """
    first = handle.readline()
    handle.seek(0)
    delimiter = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
    reader = csv.DictReader(handle, delimiter=delimiter)
    found = [h.strip() for h in reader.fieldnames or []]
    header = [_column(h) for h in found]
    if "email" not in header:
        shown = ", ".join(repr(h) for h in found) or "nothing"
        raise SubscriberError(
            f"{where}: the header row has no 'email' column: found {shown}"
            f" ({DELIMITERS[delimiter]}-separated)",
            hint="start the file with a line such as: email,name,topics,timezone"
            " ('Email Address', 'First Name' and 'Last Name' are understood too)",
        )
    known = {*COLUMNS, "first name", "last name"}
    unknown = [h for h, c in zip(found, header, strict=True) if c not in known]
    if unknown:
        logger.warning("%s: ignoring unknown columns %s", where, ", ".join(unknown))
    reader.fieldnames = header
    for row in reader:
        values = {k: (v or "") for k, v in row.items() if isinstance(k, str)}
        if not values.get("name", "").strip():
            parts = (values.get("first name", "").strip(), values.get("last name", "").strip())
            values["name"] = " ".join(p for p in parts if p)
        # line_num counts physical lines read so far, so a quoted field with a line
        # break inside still points at the row's last line, which is where it ended.
        yield reader.line_num, values


def import_csv(
    store: Store,
    path: Path,
    now: datetime,
    *,
    resubscribe: bool = False,
    sections: Sequence[str] = (),
) -> ImportReport:
    """Import subscribers from path; bad rows are reported by line and the rest go in."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise SubscriberError(f"{path}: cannot read the subscriber file: {err}") from err
    return import_rows(store, io.StringIO(text, newline=""), str(path), now, resubscribe, sections)


def import_rows(
    store: Store,
    handle: TextIO,
    where: str,
    now: datetime,
    resubscribe: bool = False,
    sections: Sequence[str] = (),
) -> ImportReport:
    """Import subscribers from an open CSV file; see import_csv."""
    report = ImportReport()
    consent = Consent(source="import", note=f"imported from {where}")
    seen: dict[str, int] = {}
    for line, row in read_rows(handle, where):
        raw = row.get("email", "").strip()
        if not raw and not any(v.strip() for v in row.values()):
            continue
        try:
            address = normalise_email(raw) if raw else ""
            if not address:
                raise SubscriberError("the email column is empty")
            if address.lower() in seen:
                raise SubscriberError(f"same address as line {seen[address.lower()]}")
            name, topics, zone = check_fields(
                row.get("name", ""), row.get("topics", ""), row.get("timezone", "")
            )
        except SubscriberError as err:
            report.rejected.append(Rejected(line, raw, str(err)))
            logger.info("%s:%d: rejected %r: %s", where, line, raw, err)
            continue
        seen[address.lower()] = line
        warn_unknown_topics(f"{where}:{line}: {address}", topics, sections)
        change = store.subscribers.upsert(
            address, name, topics, zone, now, resubscribe=resubscribe, consent=consent
        )
        report.count(change)
    return report


CONSENT_COLUMNS = (
    "consent_source",
    "consent_note",
    "signup_at",
    "signup_ip",
    "signup_agent",
    "confirmed_at",
    "confirm_ip",
    "confirm_agent",
)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def consent_values(sub: Subscriber) -> tuple[str, ...]:
    """Return the consent record of sub in CONSENT_COLUMNS order ("" where unknown)."""
    c = sub.consent or Consent()
    return (
        c.source or "",
        c.note,
        _when(c.signup_at),
        c.signup_ip,
        c.signup_agent,
        _when(c.confirmed_at),
        c.confirm_ip,
        c.confirm_agent,
    )


def describe_subscriber(sub: Subscriber) -> list[tuple[str, str]]:
    """Return the labelled lines `digest subscribers show` prints for sub."""
    c = sub.consent or Consent()
    lines = [
        ("Address", sub.email),
        ("Name", sub.name or "-"),
        ("Status", sub.status + (f" (by {sub.ended_by})" if sub.ended_by else "")),
        ("Topics", ", ".join(sub.topics) or "all"),
        ("Time zone", sub.timezone or "the list's"),
        ("Added", _when(sub.created)),
    ]
    if sub.paused_until:
        lines.append(("Paused until", _when(sub.paused_until)))
    source = {"form": "their own sign-up", "import": "an import", "operator": "an operator"}
    lines.append(("Consent", source.get(c.source or "", "not recorded")))
    if c.note:
        lines.append(("Consent note", c.note))
    if c.signup_at:
        lines.append(("Signed up", f"{_when(c.signup_at)} from {c.signup_ip or '?'}"))
        lines.append(("  browser", c.signup_agent or "-"))
    if c.confirmed_at:
        lines.append(("Confirmed", f"{_when(c.confirmed_at)} from {c.confirm_ip or '?'}"))
        lines.append(("  browser", c.confirm_agent or "-"))
    return lines


def export_csv(subscribers: Iterable[Subscriber], handle: TextIO) -> int:
    """Write subscribers as CSV with a header row (the import's columns, status, times and
    the record of consent)."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow((*COLUMNS, "status", "created", "updated", *CONSENT_COLUMNS))
    count = 0
    for sub in subscribers:
        writer.writerow(
            (
                sub.email,
                sub.name,
                ",".join(sub.topics),
                sub.timezone,
                sub.status,
                sub.created.isoformat(timespec="seconds"),
                sub.updated.isoformat(timespec="seconds"),
                *consent_values(sub),
            )
        )
        count += 1
    return count
