"""Tell placeholder and boilerplate text from an article worth a reader's time."""

from __future__ import annotations

import re

from digest.models import Article

_PLACEHOLDER = re.compile(
    r"\b(will be (expanded|updated|added|published)( soon| shortly| later)?|coming soon|"
    r"lorem ipsum|content to follow|placeholder text)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Titles a page gets when nobody gave it one.
_NO_TITLE = re.compile(
    r"(untitled( document| post| article)?|no title|new post|draft|home( ?page)?|index|"
    r"page not found|404( not found)?|read more|click here|test( post)?|null|none|n/?a)",
    re.IGNORECASE,
)
# Sentences of a site's furniture rather than of a story.
_BOILERPLATE = re.compile(
    r"\b(cookies?|cookie (policy|settings)|accept all|privacy (policy|settings)|"
    r"skip to (main )?content|sign (in|up)|log ?in|subscribe( now)?|newsletter|"
    r"all rights reserved|terms (of use|and conditions)|share (this|on)|"
    r"follow us|back to top|javascript|enable (javascript|cookies)|main menu|navigation)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")
# Fewer words than this (title aside) cannot say anything a reader could use.
MIN_WORDS = 4
# Only the start of a text is scanned (about 15,000 words, more than nearly any article
# has): what it is shows there, and a 10 MB body from a feed must not cost seconds.
SCAN_CHARS = 100_000


def junk_reason(title: str, text: str) -> str | None:
    """Return why title and text are not worth including, or None when they are."""
    whole = f"{title}\n{text[:SCAN_CHARS]}"[:SCAN_CHARS].strip()
    if not title.strip():
        return "no title"
    match = _PLACEHOLDER.search(whole)
    if match:
        return f"placeholder text ('{match.group(0)}')"
    sentences = [s.strip().lower() for s in _SENTENCE_END.split(whole) if s.strip()]
    if len(sentences) >= 3 and len(set(sentences)) <= len(sentences) / 2:
        return "the text repeats itself"
    return None


def title_problem(title: str) -> str | None:
    """Return why a title is not a real one, or None."""
    bare = title.strip().strip(".:-–—|#*").strip()
    if not title.strip():
        return "no title"
    if not _WORD.search(bare):
        return "no real title"
    if _NO_TITLE.fullmatch(bare) or re.fullmatch(r"https?://\S+|[\d\W_]+", bare):
        return f"no real title ('{bare[:40]}')"
    return None


def is_boilerplate(text: str) -> bool:
    """Tell whether text is site furniture (cookie notices, menus) rather than a story."""
    text = text[:SCAN_CHARS]
    # A menu: a row of short links between separators.
    pieces = [p.strip() for p in re.split(r"\s[|·»/]\s", text) if p.strip()]
    if len(pieces) >= 4 and sum(len(p.split()) for p in pieces) / len(pieces) <= 3:
        return True
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    furniture = sum(bool(_BOILERPLATE.search(s)) for s in sentences)
    # Two such sentences at least: one mention of cookies or a newsletter is news too.
    return furniture >= 2 and furniture > len(sentences) / 2


def _text_of(article: Article) -> str:
    return "\n".join(
        [*article.paragraphs, article.summary, *(hl.text for hl in article.highlights)]
    ).strip()[:SCAN_CHARS]


def is_link_only(article: Article) -> bool:
    """Tell whether article says too little to quote but has a link: a Hacker News item
    whose text is "Comments", a releases feed of titles. It is shown as title and link."""
    return bool(article.url) and len(_WORD.findall(_text_of(article))) < MIN_WORDS


def article_junk_reason(article: Article) -> str | None:
    """Return why article should not be in an edition, or None when it may be."""
    text = _text_of(article)
    reason = title_problem(article.title) or junk_reason(article.title, text)
    if reason:
        return reason
    # The word minimum is for items with neither text nor a link: a real title with a
    # link is an item a reader can use.
    if len(_WORD.findall(text)) < MIN_WORDS and not article.url:
        return "too short to say anything"
    if is_boilerplate(text):
        return "navigation or cookie text, not an article"
    return None
