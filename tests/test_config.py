"""Settings: defaults, the .env file, the environment's precedence, and bad values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from digest.config import Settings, load_settings
from digest.errors import ConfigError


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the documented defaults when nothing is configured."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    assert settings.max_items == 10
    assert settings.highlights == 3
    assert settings.timezone == "UTC"
    assert settings.db == tmp_path / "digest.db"
    assert settings.sources == (str(tmp_path / "seeds/"),)
    assert settings.env_file is None


def test_reads_dot_env_in_current_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read ./.env but never a parent folder's."""
    (tmp_path / ".env").write_text("DIGEST_TITLE=Parent\n")
    child = tmp_path / "child"
    child.mkdir()
    monkeypatch.chdir(child)
    assert load_settings(None, {}).title == "Daily Digest"
    (child / ".env").write_text("DIGEST_TITLE=Child\nDIGEST_MAX_ITEMS=4\n")
    settings = load_settings(None, {})
    assert (settings.title, settings.max_items) == ("Child", 4)


def test_environment_wins_over_file(tmp_path: Path) -> None:
    """Let the process environment override the file."""
    env_file = tmp_path / "digest.env"
    env_file.write_text("DIGEST_TITLE=From file\nDIGEST_HIGHLIGHTS=2\n")
    settings = load_settings(env_file, {"DIGEST_TITLE": "From env"})
    assert settings.title == "From env"
    assert settings.highlights == 2


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    """Resolve paths set in the file against the file's folder, wherever the run starts."""
    conf = tmp_path / "conf"
    conf.mkdir()
    env_file = conf / "digest.env"
    env_file.write_text(
        "DIGEST_DB=data/d.db\nDIGEST_SOURCES=a/, b/*.txt, https://example.org/feed\n"
    )
    settings = load_settings(env_file, {})
    assert settings.db == conf / "data" / "d.db"
    assert settings.sources == (str(conf / "a/"), str(conf / "b/*.txt"), "https://example.org/feed")


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("DIGEST_MAX_ITEMS", "ten", "must be a whole number"),
        ("DIGEST_MAX_ITEMS", "0", "must be at least 1"),
        ("DIGEST_HIGHLIGHTS", "-1", "must be at least 0"),
        ("DIGEST_TIMEZONE", "Mars/Olympus", "is not a known time zone"),
        ("DIGEST_TITLE", "   ", "must not be empty"),
        ("DIGEST_SOURCES", " , ", "must list at least one entry"),
    ],
)
def test_bad_value_names_key_value_and_file(tmp_path: Path, key: str, value: str, why: str) -> None:
    """Fail with a message naming the key, the value and the file."""
    env_file = tmp_path / "bad.env"
    env_file.write_text(f"{key}={value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file, {})
    message = str(info.value)
    assert key in message
    assert repr(value.strip() if why != "must not be empty" else "") in message or value in message
    assert str(env_file) in message
    assert why in message


def test_bad_value_from_environment_says_so(tmp_path: Path) -> None:
    """Name the environment as the origin when the value came from there."""
    with pytest.raises(ConfigError, match="the environment: DIGEST_MAX_ITEMS='ten'"):
        load_settings(None, {"DIGEST_MAX_ITEMS": "ten"})


def test_missing_env_file(tmp_path: Path) -> None:
    """Refuse an --env-file that does not exist."""
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings(tmp_path / "nope.env", {})


def test_unknown_key_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Warn about a misspelt key instead of silently ignoring it."""
    env_file = tmp_path / "typo.env"
    env_file.write_text("DIGEST_MAX_ITEM=5\n")
    with caplog.at_level(logging.WARNING):
        load_settings(env_file, {})
    assert "DIGEST_MAX_ITEM" in caplog.text


def test_unknown_key_in_the_environment_is_not_blamed_on_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Name the environment, not the .env file, for a misspelt key set in the environment."""
    env_file = tmp_path / "digest.env"
    env_file.write_text("DIGEST_TITLE=Mine\n")
    with caplog.at_level(logging.WARNING):
        load_settings(env_file, {"DIGEST_TITEL": "x"})
    line = next(r.getMessage() for r in caplog.records if "DIGEST_TITEL" in r.getMessage())
    assert line.startswith("the environment:") and str(env_file) not in line


def test_settings_are_frozen() -> None:
    """Keep settings immutable once built."""
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.title = "x"  # type: ignore[misc]


def test_example_file_documents_every_key_and_loads() -> None:
    """Load config.example.env as it ships, and find each key read by the code in it."""
    root = Path(__file__).resolve().parent.parent
    example = root / "config.example.env"
    settings = load_settings(example, {})
    assert settings.max_items == 10
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in example.read_text().splitlines()
        if "=" in line and line.lstrip("# ").startswith(("DIGEST_", "SMTP_"))
    }
    import re

    used: set[str] = set()
    for path in (root / "digest").rglob("*.py"):
        # Not after a dot: smtplib.SMTP_SSL is a class, not a key.
        used |= set(re.findall(r"(?<![.\w])(?:DIGEST|SMTP)_[A-Z0-9_]+\b", path.read_text()))
    assert used - documented == set()
