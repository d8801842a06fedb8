"""Tell placeholder and boilerplate text from an article worth a reader's time."""

from __future__ import annotations

import re

from digest.models import Article

# Matched on lower-cased text: the same pattern with re.IGNORECASE took three times as long.
_PLACEHOLDER_LOWER = re.compile(
    r"\b(will be (expanded|updated|added|published)( soon| shortly| later)?|coming soon|"
    r"lorem ipsum|content to follow|placeholder text)\b"
)
# A piece of every placeholder match: the regex runs only on a text holding one.
_PLACEHOLDER_WORDS = ("will be", "coming soon", "lorem ipsum", "content to follow", "placeholder")
# Only to quote a match as written, once one was found.
_PLACEHOLDER = re.compile(_PLACEHOLDER_LOWER.pattern, re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Titles a page gets when nobody gave it one.
_NO_TITLE = re.compile(
    r"(untitled( document| post| article)?|no title|new post|draft|home( ?page)?|index|"
    r"page not found|404( not found)?|read more|click here|test( post)?|null|none|n/?a)",
    re.IGNORECASE,
)
# Sentences of a site's furniture rather than of a story.
# Matched once over the lower-cased text, not once per sentence with re.IGNORECASE:
# that was most of the cost of judging an article.
_BOILERPLATE = re.compile(
    r"\b(cookies?|cookie (policy|settings)|accept all|privacy (policy|settings)|"
    r"skip to (main )?content|sign (in|up)|log ?in|subscribe( now)?|newsletter|"
    r"all rights reserved|terms (of use|and conditions)|share (this|on)|"
    r"follow us|back to top|javascript|enable (javascript|cookies)|main menu|navigation)\b"
)
# A piece of every furniture match above: a text holding fewer than two of them has
# fewer than two matches, which str.count finds out several times faster than the regex.
_FURNITURE_WORDS = (
    "cookie",
    "accept all",
    "privacy",
    "skip to",
    "sign ",
    "log",
    "subscribe",
    "newsletter",
    "rights reserved",
    "terms ",
    "share ",
    "follow us",
    "back to top",
    "javascript",
    "enable ",
    "main menu",
    "navigation",
)
_MENU_SEPARATOR = re.compile(r"\s[|·»/]\s")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
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
    lower = whole.lower()
    if any(word in lower for word in _PLACEHOLDER_WORDS) and _PLACEHOLDER_LOWER.search(lower):
        match = _PLACEHOLDER.search(whole)
        return f"placeholder text ('{match.group(0) if match else '?'}')"
    sentences = [s.strip() for s in _SENTENCE_END.split(lower) if s.strip()]
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
    pieces = [p.strip() for p in _MENU_SEPARATOR.split(text) if p.strip()]
    if len(pieces) >= 4 and sum(len(p.split()) for p in pieces) / len(pieces) <= 3:
        return True
    lower = text.lower()
    # Two such sentences at least: one mention of cookies or a newsletter is news too.
    if sum(lower.count(word) for word in _FURNITURE_WORDS) < 2:
        return False
    if len(_BOILERPLATE.findall(lower)) < 2:
        return False
    # Only then sentence by sentence: few texts get here.
    sentences = [s for s in _SENTENCE_BREAK.split(lower) if s.strip()]
    furniture = sum(bool(_BOILERPLATE.search(s)) for s in sentences)
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
