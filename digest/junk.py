"""Tell placeholder and boilerplate text from an article worth a reader's time."""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(
    r"\b(will be (expanded|updated|added|published)( soon| shortly| later)?|coming soon|"
    r"lorem ipsum|content to follow|placeholder text)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def junk_reason(title: str, text: str) -> str | None:
    """Return why title and text are not worth including, or None when they are."""
    whole = f"{title}\n{text}".strip()
    if not title.strip():
        return "no title"
    match = _PLACEHOLDER.search(whole)
    if match:
        return f"placeholder text ('{match.group(0)}')"
    sentences = [s.strip().lower() for s in _SENTENCE_END.split(whole) if s.strip()]
    if len(sentences) >= 3 and len(set(sentences)) <= len(sentences) / 2:
        return "the text repeats itself"
    return None
