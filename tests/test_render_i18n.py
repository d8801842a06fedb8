"""Golden files of the seed edition in every shipped language, HTML and text."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _editions import NOW
from conftest import SEEDS
from test_render import with_env

from digest.config import Settings
from digest.pipeline import preview
from digest.render import TEXT_WIDTH

GOLDEN = Path(__file__).parent / "data" / "golden_i18n"
LANGUAGES = ("en", "de", "fr", "es")


def _render(settings: Settings, seeds_dir: Path, tmp_path: Path, language: str) -> dict[str, str]:
    for path in seeds_dir.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    folder = tmp_path / language
    result = preview(with_env(settings, DIGEST_LANGUAGE=language), folder, NOW)
    assert result.folder is not None
    return {
        suffix: (result.folder / f"digest.{suffix}").read_text(encoding="utf-8")
        for suffix in ("html", "txt")
    }


@pytest.fixture(scope="module")
def editions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Render the seed edition once per language (each render reads every seed)."""
    base = tmp_path_factory.mktemp("i18n")
    seeds = base / "seeds"
    shutil.copytree(SEEDS, seeds)
    out = {}
    for language in LANGUAGES:
        settings = with_env(
            Settings(sources=(str(seeds),), db=base / f"{language}.db", outbox=base / "outbox"),
        )
        out[language] = _render(settings, seeds, base, language)
    return out


@pytest.mark.parametrize("suffix", ["html", "txt"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_seed_edition_matches_its_golden_file_in_each_language(
    editions: dict[str, dict[str, str]], language: str, suffix: str
) -> None:
    """Render the seed edition as recorded per language; DIGEST_UPDATE_GOLDEN=1 records it."""
    golden = GOLDEN / language / f"seed.{suffix}"
    actual = editions[language][suffix]
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.is_file(), f"{golden} is missing: run with DIGEST_UPDATE_GOLDEN=1"
    assert actual == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_text_part_wraps_at_72_columns_in_each_language(
    editions: dict[str, dict[str, str]], language: str
) -> None:
    """Keep every line of the text part within 72 columns, links alone excepted."""
    for line in editions[language]["txt"].splitlines():
        assert len(line) <= TEXT_WIDTH or " " not in line.split("] ", 1)[-1], line


def test_the_languages_differ_where_they_should(editions: dict[str, dict[str, str]]) -> None:
    """Write each edition's date in its own language."""
    dates = {
        "en": "Saturday, 28 November 2026",
        "de": "Samstag, 28. November 2026",
        "fr": "samedi 28 novembre 2026",
        "es": "sábado, 28 de noviembre de 2026",
    }
    for language, date_text in dates.items():
        assert date_text in editions[language]["txt"]
        assert date_text in editions[language]["html"]
