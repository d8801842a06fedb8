"""Highlights: the article's own bullets, else its best sentences, whole and in order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.cli import main
from digest.highlights import (
    ELLIPSIS,
    MAX_CHARS,
    Weights,
    choose_highlights,
    normalise,
    rank_sentences,
    shorten,
    split_sentences,
)
from digest.models import Article, Highlight
from digest.select import shown_texts

STORY = (
    "The central bank raised its main interest rate to 4.5% on Tuesday.",
    "Dr. Jane Smith, the governor, said inflation in services was still too high.",
    '"We will do what it takes," she told reporters in London.',
    "Mortgage lenders are expected to pass the rise on to borrowers within weeks.",
    "Economists at the U.S. bank Citi had forecast a smaller rise of 0.25 points.",
    "The pound rose against the dollar after the announcement.",
)


def story(title: str = "Central bank raises interest rate", **extra: object) -> Article:
    """Return a six-sentence news story in two paragraphs."""
    return Article(
        id="story",
        source="/news/story.txt",
        title=title,
        paragraphs=(" ".join(STORY[:3]), " ".join(STORY[3:])),
        **extra,  # type: ignore[arg-type]
    )


def test_segmenter_knows_abbreviations_decimals_and_quotes() -> None:
    """Split at sentence ends only, not after Dr., U.S. or inside 4.5%."""
    assert split_sentences("\n".join((" ".join(STORY[:3]), " ".join(STORY[3:])))) == list(STORY)


def test_best_sentences_in_article_order() -> None:
    """Return k whole sentences of the article, in the order they appear."""
    chosen = [hl.text for hl in choose_highlights(story(), 3)]
    assert len(chosen) == 3
    assert all(text in STORY for text in chosen)
    assert chosen == sorted(chosen, key=STORY.index)


def test_a_piece_of_a_longer_quotation_is_not_picked() -> None:
    """Skip a sentence whose quote marks do not pair up, even when it ranks well."""
    quote_open = '"The council budget is the best yet for the council budget.'
    quote_close = 'The council budget will help every school," said the mayor.'
    paragraphs = (
        "The council budget rises by 4% next year, the mayor said on Monday.",
        f"{quote_open} {quote_close}",
        "Schools and roads get most of the council budget increase.",
        "Opposition councillors said the council budget still left libraries short.",
    )
    article = Article(id="q", source="t", title="Council budget rises", paragraphs=paragraphs)
    everything = split_sentences("\n".join(paragraphs))
    assert quote_open in everything
    chosen = [hl.text for hl in choose_highlights(article, 3)]
    assert len(chosen) == 3
    assert quote_open not in chosen and quote_close not in chosen
    # With nothing else left, such a sentence is still better than no highlight.
    alone = Article(id="r", source="t", title="Budget", paragraphs=(f"{quote_open} {quote_close}",))
    (only,) = choose_highlights(alone, 1)
    assert only.text in (quote_open, quote_close)


def test_own_bullets_win_over_extraction() -> None:
    """Show the article's own bullets, labels kept, instead of extracted sentences."""
    own = (Highlight("Rates rise to 4.5%.", "Decision"), Highlight("Lenders follow."))
    assert choose_highlights(story(highlights=own), 3) == own


def test_sentences_shown_before_are_not_repeated() -> None:
    """Leave out what the previous edition showed, so an updated story shows what changed."""
    first = choose_highlights(story(), 3)
    again = choose_highlights(story(), 3, shown_texts([hl.text for hl in first]))
    assert again and not {hl.text for hl in again} & {hl.text for hl in first}
    own = (Highlight("Rates rise to 4.5%."), Highlight("Lenders follow."))
    partly_seen = choose_highlights(story(highlights=own), 3, shown_texts(["Rates rise to 4.5%."]))
    assert partly_seen == (Highlight("Lenders follow."),)


def test_a_very_long_sentence_is_shortened_at_a_word_boundary() -> None:
    """Cut a long sentence between words and mark it with an ellipsis."""
    long = "The committee " + " ".join(f"considered item{n}" for n in range(80)) + "."
    text = shorten(long)
    assert len(text) <= MAX_CHARS and text.endswith(ELLIPSIS)
    kept = text.removesuffix(ELLIPSIS)
    assert long.startswith(kept) and long[len(kept)] == " "
    assert shorten("Short enough.") == "Short enough."


@pytest.mark.parametrize(
    ("paragraphs", "count"),
    [
        ((), 0),
        (("",), 0),
        (("Only one sentence here, and it is short.",), 1),
        (("THIS IS ALL IN CAPITALS. THE MARKET FELL SHARPLY. TRADERS WERE VERY WORRIED.",), 3),
        (("Der Bundestag hat heute ein Gesetz beschlossen. Die Opposition ist dagegen.",), 2),
        (("日本銀行は金利を引き上げた。市場は落ち着いている。",), 1),
    ],
)
def test_awkward_articles_get_sensible_highlights(paragraphs: tuple[str, ...], count: int) -> None:
    """Give short, empty, shouting or foreign articles their sentences or none, no crash."""
    article = Article(id="x", source="/x.txt", title="Title", paragraphs=paragraphs)
    chosen = choose_highlights(article, 3)
    assert len(chosen) <= 3
    assert len(chosen) == count or (count == 1 and len(chosen) >= 1)


def test_five_thousand_sentences() -> None:
    """Pick three sentences out of 5,000 without building a 5,000 x 5,000 matrix."""
    body = " ".join(
        f"Report {n} says the harbour {('cranes', 'ferries', 'tolls')[n % 3]} changed."
        for n in range(5000)
    )
    article = Article(id="x", source="/x.txt", title="Harbour report", paragraphs=(body,))
    chosen = choose_highlights(article, 3)
    assert len(chosen) == 3 and all(hl.text in body for hl in chosen)


word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)
sentence = st.builds(
    lambda first, rest, end: " ".join([first.capitalize(), *rest]) + end,
    word,
    st.lists(word, min_size=2, max_size=12),
    st.sampled_from([".", "!", "?"]),
)


@settings(max_examples=60, deadline=None)
@given(
    paragraphs=st.lists(st.lists(sentence, min_size=1, max_size=6), min_size=1, max_size=5),
    k=st.integers(min_value=0, max_value=6),
)
def test_highlights_are_sentences_of_the_article_in_order(
    paragraphs: list[list[str]], k: int
) -> None:
    """Return at most k highlights, each whole text of the article, in article order."""
    article = Article(
        id="x", source="/x.txt", title="A title", paragraphs=tuple(" ".join(p) for p in paragraphs)
    )
    body = " ".join(article.paragraphs)
    chosen = choose_highlights(article, k)
    assert len(chosen) <= k
    cursor = 0
    for hl in chosen:
        kept = hl.text.removesuffix(ELLIPSIS)
        found = body.find(kept, cursor)
        assert found >= 0, hl.text
        # A whole sentence: it starts where the text or a sentence starts.
        assert found == 0 or body[found - 2] in ".!?", hl.text
        cursor = found + len(kept)


def test_the_biased_jump_favours_the_lead_among_equals() -> None:
    """Two sentences with the same words: the earlier ranks higher with a prior, and they
    tie without one (plain LexRank)."""
    sentences = [
        "Harbour repairs begin on the old ferry pier.",
        "The fishing fleet waits for the harbour decision.",
        "Council money for the pier repairs was approved.",
        "The ferry company welcomed the council decision.",
        "Ferry pier repairs begin at the old harbour.",
    ]
    plain = rank_sentences("Harbour", sentences, Weights(prior=0.0))
    assert abs(plain[0] - plain[4]) < 1e-9
    biased = rank_sentences("Harbour", sentences, Weights(prior=0.5))
    assert biased[0] > biased[4] + 0.01


def test_normalise_ignores_spacing_case_and_ellipsis() -> None:
    """Compare sentences for repeats regardless of spacing, case and shortening."""
    assert normalise("The  Pound rose…") == normalise("the pound rose")


def test_highlights_command_text_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Print titles with highlights, or one JSON object per article a line."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    (tmp_path / "story.txt").write_text(
        "Central bank raises interest rate\n\n"
        + " ".join(STORY[:3])
        + "\n\n"
        + " ".join(STORY[3:])
        + "\n"
    )
    runner = CliRunner()
    text = runner.invoke(main, ["highlights", "story.txt"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == "Central bank raises interest rate"
    assert len([line for line in lines if line.startswith("  - ")]) == 3

    as_json = runner.invoke(main, ["highlights", "--json", "story.txt"])
    assert as_json.exit_code == 0, as_json.output
    (line,) = as_json.output.splitlines()
    record = json.loads(line)
    assert record["source"] == "story.txt"
    assert record["title"] == "Central bank raises interest rate"
    assert len(record["highlights"]) == 3 and all(h in STORY for h in record["highlights"])


def test_a_length_limit_never_yields_a_broken_sentence() -> None:
    """Read only the start of a very long text, dropping the sentence the cut broke."""
    text = "One two three four. Five six seven eight. Nine ten eleven twelve."
    assert split_sentences(text, 30) == ["One two three four."]
    assert split_sentences(text, len(text)) == split_sentences(text)
