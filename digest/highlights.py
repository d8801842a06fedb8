"""An article's key points: its own bullets where it has them, else its first sentences."""

from __future__ import annotations

import re

from digest.models import Article, Highlight

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before a capital.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences."""
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        sentences.extend(s.strip() for s in _BOUNDARY.split(paragraph) if s.strip())
    return sentences


def choose_highlights(article: Article, k: int) -> tuple[Highlight, ...]:
    """Return at most k highlights: the article's own bullets first, else its first sentences."""
    if k <= 0:
        return ()
    if article.highlights:
        return article.highlights[:k]
    sentences = split_sentences("\n".join(article.paragraphs))
    return tuple(Highlight(text=s) for s in sentences[:k])
