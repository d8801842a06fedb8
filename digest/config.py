"""Settings: read once from a `.env` file and the environment, validated, then frozen."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

from digest import config_values as cv
from digest.errors import ConfigError

logger = logging.getLogger(__name__)


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
    # The editor's note for the next edition made; moved aside once used (digest.note).
    note_file: Path | None = None
    # The subject line pattern; digest/subjects.py lists its variables.
    subject: str = "{title}: {date}"
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
    v = cv.Values(file_values, env, env_file)
    settings = Settings(
        sources=cv.resolve_sources(v, "DIGEST_SOURCES", ("seeds/",)),
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
        note_file=v.optional_path("DIGEST_NOTE_FILE"),
        subject=cv.subject(v, "DIGEST_SUBJECT"),
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
        list_id=cv.list_id(v),
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
        unsubscribe_mailto=cv.optional_mailbox(v, "DIGEST_UNSUBSCRIBE_MAILTO"),
        webhook_ses_topics=cv.sns_topics(v, "DIGEST_WEBHOOK_SES_TOPICS"),
        webhook_postmark_auth=cv.basic_auth(v, "DIGEST_WEBHOOK_POSTMARK_AUTH"),
        webhook_mailgun_key=v.secret("DIGEST_WEBHOOK_MAILGUN_KEY").strip(),
        webhook_sendgrid_key=cv.ec_public_key(v, "DIGEST_WEBHOOK_SENDGRID_KEY"),
        dkim_key=v.optional_path("DIGEST_DKIM_KEY"),
        dkim_selector=cv.dns_name(v, "DIGEST_DKIM_SELECTOR"),
        dkim_domain=v.text("DIGEST_DKIM_DOMAIN", "", allow_empty=True),
        dns_servers=v.listing("DIGEST_DNS_SERVERS", ()) if v.raw("DIGEST_DNS_SERVERS")[0] else (),
        dns_timeout=v.number("DIGEST_DNS_TIMEOUT", 5.0, minimum=0.1, maximum=60),
        confirm_ttl=v.duration("DIGEST_CONFIRM_TTL", "3d", maximum=timedelta(days=60)),
        welcome=v.boolean("DIGEST_WELCOME", False),
        signup_rate=v.integer("DIGEST_SIGNUP_RATE", 10, minimum=0, maximum=100_000),
        signup_origins=cv.origins(v, "DIGEST_SIGNUP_ORIGINS"),
        signup_min_seconds=v.integer("DIGEST_SIGNUP_MIN_SECONDS", 2, minimum=0, maximum=600),
        bounce_address=cv.optional_mailbox(v, "DIGEST_BOUNCE_ADDRESS"),
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
