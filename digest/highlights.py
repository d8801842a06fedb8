"""An article's key points: its own bullets where it has them, else its best sentences.

Extraction ranks the article's sentences by centrality (LexRank: a sentence similar to
many others carries the story, similarity being the cosine of TF-IDF vectors in which a
word counts as often as it occurs), biased towards early sentences (news puts the
essentials first): part of LexRank's random jump lands on a sentence in proportion to
1/sqrt(position), as in PositionRank, so that an early sentence counts for more only
through the sentences that resemble it. An additive position prior and similarity to
the title can be blended in too, but are off by default. The chosen sentences are shown
in article order, verbatim.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syntok import segmenter

from digest.models import Article, Highlight, Skipped

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# A highlight longer than this is shortened at a word boundary, so the email stays light.
MAX_CHARS = 320
ELLIPSIS = "…"
# Only this much of a very long article is read for highlights: segmenting costs about
# 0.2 ms a sentence, and a story's key points are not 600 sentences deep.
MAX_TEXT = 40_000
# Sentences shorter than this say too little to stand alone as a key point.
MIN_WORDS = 4

DAMPING = 0.85
ITERATIONS = 30

_WORD = re.compile(r"\w+", re.UNICODE)
# Function words carry no topic; without them similarity measures content overlap.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own said same say says she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours yourself yourselves mr mrs ms one two new""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Weights:
    """How the signals are blended into one score per sentence.

    Chosen with bench/highlights.py (never fitted to single articles) from a few round
    values, the figure that counts being the one held out by topic (chosen on business,
    scored on entertainment and the other way round): centrality carries most of the
    quality, and sending half of LexRank's random jump by position (prior 0.5) lifts it
    on the held-out topic where an additive position bonus did not. Any weight on title
    similarity lowered it (a headline's words are often not the summary's), so that
    signal is off. Counting a word as often as it occurs (sublinear_tf off, LexRank's own
    idf-modified cosine) scored a little better than 1 + log(count). Signals measured and
    left out: sentence length, a penalty for direct quotation, a word-frequency list,
    dropping a near-repeat of a sentence already chosen (MMR), BM25 or thresholded
    LexRank, and a pairwise logistic ranker over position, length, numbers, capitalised
    words, quotation and overlap with the title and the lead
    (bench/highlights_features.py). `bench/highlights.py --folds N` and `--by-topic`
    re-choose the prior on some articles and score it on the others; the stop-word list,
    the rule against broken quotations and the signals left out were decided on all 40
    articles and are not re-chosen there.
    """

    centrality: float = 1.0
    title: float = 0.0
    # An additive bonus, this times 1/sqrt(position); it was 0.3 before the biased jump.
    position: float = 0.0
    # The share of LexRank's random jump that lands by position (1/sqrt(position))
    # rather than uniformly: 0 is plain LexRank, 1 all by position.
    prior: float = 0.5
    # Whether a repeated word counts 1 + log(count) instead of count in TF-IDF.
    sublinear_tf: bool = False


WEIGHTS = Weights()


@dataclass(frozen=True)
class Sentence:
    """A sentence as it stands in the article, with its place in reading order."""

    text: str
    index: int


def split_sentences(text: str, limit: int | None = None) -> list[str]:
    """Split text into sentences with a segmenter that knows abbreviations and quotes.

    With limit, only the first limit characters are read, and a sentence the cut may
    have broken is left out.
    """
    if limit is not None and len(text) > limit:
        return split_sentences(text[:limit])[:-1]
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        if not paragraph.strip():
            continue
        for para in segmenter.analyze(paragraph):
            for tokens in para:
                if not tokens:
                    continue
                # Slice the original text, so that a highlight is verbatim from the article.
                start = tokens[0].offset
                end = tokens[-1].offset + len(tokens[-1].value)
                sentence = " ".join(paragraph[start:end].split())
                if sentence:
                    sentences.append(sentence)
    return sentences


def balanced(sentence: str) -> bool:
    """Return whether every quotation the sentence opens is closed in it, and vice versa."""
    return sentence.count('"') % 2 == 0 and sentence.count("\u201c") == sentence.count("\u201d")


def words(text: str) -> list[str]:
    """Return the content words of text, lower-cased."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and not w.startswith("_")]


def normalise(text: str) -> str:
    """Return text as compared for repeats: spacing and case do not count."""
    return " ".join(text.removesuffix(ELLIPSIS).split()).casefold()


def shorten(text: str, limit: int = MAX_CHARS) -> str:
    """Shorten text to at most limit characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + ELLIPSIS


class _Sparse:
    """A sentence-by-word matrix in coordinate form: linear in its entries, whatever n is."""

    def __init__(
        self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
    ):
        self.rows, self.cols, self.vals, self.shape = rows, cols, vals, shape

    def dot(self, v: np.ndarray) -> np.ndarray:
        """Return X @ v."""
        import numpy as np  # here: numpy costs a quarter second to import

        return np.bincount(self.rows, weights=self.vals * v[self.cols], minlength=self.shape[0])

    def tdot(self, u: np.ndarray) -> np.ndarray:
        """Return X.T @ u."""
        import numpy as np  # here: numpy costs a quarter second to import

        return np.bincount(self.cols, weights=self.vals * u[self.rows], minlength=self.shape[1])


def _tfidf(
    bags: Sequence[Counter[str]], extra: Iterable[Counter[str]] = (), sublinear: bool = False
) -> tuple[_Sparse, list[dict[int, float]], dict[str, int]]:
    """Return unit-length TF-IDF rows for bags (sparse) and for extra bags (as dicts).

    A word counts as often as it occurs (as in LexRank's idf-modified cosine), or with
    sublinear, 1 + log of that, so that repeats count less.
    """
    import numpy as np  # here: numpy costs a quarter second to import

    vocab: dict[str, int] = {}
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag.keys())
    n = len(bags)
    # Smoothed IDF: a word in every sentence still counts a little.
    idf = {w: math.log((1 + n) / (1 + d)) + 1.0 for w, d in df.items()}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []

    def tf(count: int) -> float:
        return 1 + math.log(count) if sublinear else float(count)

    for i, bag in enumerate(bags):
        weights = {w: tf(c) * idf[w] for w, c in bag.items()}
        norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
        for w, x in weights.items():
            rows.append(i)
            cols.append(vocab.setdefault(w, len(vocab)))
            vals.append(x / norm)
    matrix = _Sparse(
        np.asarray(rows, dtype=np.intp),
        np.asarray(cols, dtype=np.intp),
        np.asarray(vals, dtype=np.float64),
        (n, len(vocab)),
    )
    others: list[dict[int, float]] = []
    for bag in extra:
        known = {vocab[w]: tf(c) * idf[w] for w, c in bag.items() if w in vocab}
        norm = math.sqrt(sum(x * x for x in known.values())) or 1.0
        others.append({k: x / norm for k, x in known.items()})
    return matrix, others, vocab


def lexrank(matrix: _Sparse, jump: np.ndarray | None = None) -> np.ndarray:
    """Return each sentence's centrality: continuous LexRank with cosine similarity.

    jump, summing to 1, is where the random surfer lands when it jumps (uniform when
    None). The similarity matrix S = X X^T is never built: a power-iteration step only
    needs S @ v = X (X^T v), so a 5,000-sentence article costs as much as its word count.
    """
    import numpy as np  # here: numpy costs a quarter second to import

    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0)
    teleport = (1 - DAMPING) * (np.full(n, 1.0 / n) if jump is None else jump)
    # Row sums of S without the diagonal (a sentence does not vote for itself).
    self_sim = np.bincount(matrix.rows, weights=matrix.vals**2, minlength=n)
    degree = matrix.dot(matrix.tdot(np.ones(n))) - self_sim
    degree[degree <= 1e-12] = 1.0
    p = np.full(n, 1.0 / n)
    for _ in range(ITERATIONS):
        q = p / degree
        nxt = teleport + DAMPING * (matrix.dot(matrix.tdot(q)) - self_sim * q)
        done = float(np.abs(nxt - p).sum()) < 1e-9
        p = nxt
        if done:
            break
    return p


def _scaled(values: np.ndarray) -> np.ndarray:
    """Stretch values onto 0..1, so that signals of different scales can be blended."""
    import numpy as np  # here: numpy costs a quarter second to import

    if not values.size:
        return values
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def rank_sentences(title: str, sentences: Sequence[str], weights: Weights = WEIGHTS) -> np.ndarray:
    """Return a score per sentence blending centrality, position and title similarity."""
    import numpy as np  # here: numpy costs a quarter second to import

    n = len(sentences)
    if n == 0:
        return np.zeros(0)
    bags = [Counter(words(s)) for s in sentences]
    matrix, (title_vec,), _ = _tfidf(bags, [Counter(words(title))], weights.sublinear_tf)
    # Lead bias that fades with depth instead of stopping at a fixed sentence.
    position = 1.0 / np.sqrt(np.arange(1, n + 1, dtype=np.float64))
    jump = (1 - weights.prior) / n + weights.prior * position / position.sum()
    centrality = lexrank(matrix, jump)
    scores = weights.centrality * _scaled(centrality) + weights.position * position
    if weights.title:
        title_arr = np.zeros(matrix.shape[1])
        for col, x in title_vec.items():
            title_arr[col] = x
        scores += weights.title * _scaled(matrix.dot(title_arr))
    return scores


def best_sentences(
    title: str,
    sentences: Sequence[str],
    k: int,
    exclude: frozenset[str] = frozenset(),
    weights: Weights = WEIGHTS,
) -> list[Sentence]:
    """Return the k best sentences, in article order, leaving out those in exclude."""
    if k <= 0 or not sentences:
        return []
    scores = rank_sentences(title, sentences, weights)
    title_key = normalise(title)
    candidates = [
        i
        for i, s in enumerate(sentences)
        if normalise(s) not in exclude and normalise(s) != title_key
    ]
    # Fragments ("Read more.") and pieces of a quotation that runs over several
    # sentences (its quote marks unbalanced) read badly alone: only when nothing else is left.
    full = [
        i for i in candidates if len(sentences[i].split()) >= MIN_WORDS and balanced(sentences[i])
    ] or candidates
    chosen = sorted(full, key=lambda i: (-scores[i], i))[:k]
    return [Sentence(text=sentences[i], index=i) for i in sorted(chosen)]


def choose_highlights(
    article: Article, k: int, shown: frozenset[str] = frozenset()
) -> tuple[Highlight, ...]:
    """Return at most k highlights: the article's own bullets first, else its best sentences.

    shown holds normalised sentences an earlier edition already showed: they are left
    out, so that an updated article shows what changed.
    """
    if k <= 0:
        return ()
    own = tuple(hl for hl in article.highlights if normalise(hl.text) not in shown)
    if own:
        return tuple(Highlight(text=shorten(hl.text), label=hl.label) for hl in own[:k])
    sentences = split_sentences(_text_of(article), MAX_TEXT)
    best = best_sentences(article.title, sentences, k, shown)
    return tuple(Highlight(text=shorten(s.text)) for s in best)


def _text_of(article: Article) -> str:
    """Return the text highlights are chosen from."""
    # A thin feed item's page text (DIGEST_FULL_TEXT) gives the selector more to choose from.
    return article.full_text or "\n".join(article.paragraphs) or article.summary


def sentence_key(text: str) -> str:
    """Return a short fingerprint of a sentence, as normalise compares it."""
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).hexdigest()


def sentence_keys(article: Article) -> list[str]:
    """Return the fingerprints of every sentence a highlight of article could be (its own
    bullets too), kept with an edition's items: an update of the article then shows only
    sentences the version readers saw did not have."""
    texts = [hl.text for hl in article.highlights]
    texts += split_sentences(_text_of(article), MAX_TEXT)
    return sorted({sentence_key(t) for t in texts})


def known_sentences(article: Article, keys: Collection[str]) -> frozenset[str]:
    """Return article's sentences (normalised) whose fingerprints are among keys."""
    texts = [hl.text for hl in article.highlights]
    texts += split_sentences(_text_of(article), MAX_TEXT)
    return frozenset(normalise(t) for t in texts if sentence_key(t) in keys)


def read_highlights(
    paths: Sequence[Path], k: int
) -> tuple[list[tuple[Article, tuple[Highlight, ...]]], list[Skipped]]:
    """Read articles from paths (files or folders); return each with its highlights."""
    from digest import sources

    found: list[tuple[Article, tuple[Highlight, ...]]] = []
    skipped: list[Skipped] = []
    for result in sources.read_sources(tuple(str(p) for p in paths)):
        skipped.extend(result.skipped)
        found.extend((a, choose_highlights(a, k)) for a in result.articles)
    return found, skipped
