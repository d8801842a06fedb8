"""Find near-duplicate articles: the same story from two sources, a re-post with a new title.

Each article gets a MinHash signature over its word shingles once, when it is ingested;
the store keeps it as NUM_PERM 32-bit values in bytes. Grouping cuts the signatures into
bands (LSH): two articles are compared only when one band of theirs is equal, which is
near-linear in the number of articles instead of quadratic. Candidates are then confirmed
with the exact Jaccard similarity of their shingle sets, so a false LSH hit never merges
two stories; real candidate pairs are rare, so their texts are shingled again when asked
rather than every article's shingle set being stored.

The hashing is numpy's (a dependency already): datasketch, which did this before, imports
scipy with its LSH module, 0.4 s of every run, and kept about 90 KB a signature in Python
objects.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from digest.models import Article

logger = logging.getLogger(__name__)

SHINGLE = 3
NUM_PERM = 64
# Bands of ROWS values each: two texts sharing half their shingles meet in one band
# with probability 1 - (1 - 0.5**4)**16 = 0.64, at 0.7 with 0.99; a text shares a band
# with an unrelated one (similarity 0.05) about once in 4 million pairs.
ROWS = 4
BANDS = NUM_PERM // ROWS
# Share of shingles two versions of one story have in common; rewrites of a wire story
# with a new title and a changed sentence or two stay well above it.
THRESHOLD = 0.5
# Words are cut into pieces of at most this many characters, which bounds the work.
MAX_WORD = 32
_WORD = re.compile(rf"\w{{1,{MAX_WORD}}}")
# Only the start of a text is shingled (about 15,000 words, more than nearly any article
# has): two versions of a story agree there, and a 10 MB body must not cost seconds.
SCAN_CHARS = 100_000

Shingles = npt.NDArray[np.uint32]

# Where each bin of one permutation hashing starts among 32-bit hashes.
_BIN_STARTS = (np.arange(NUM_PERM, dtype=np.uint64) << np.uint64(32)) // np.uint64(NUM_PERM)
_DISTANCE = np.uint32(0x9E3779B1)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_POWERS = np.cumprod(np.full(MAX_WORD, 1_000_003, dtype=np.uint64), dtype=np.uint64)
_SHIFT = np.uint64(32)


def _word_hashes(tokens: list[str]) -> npt.NDArray[np.uint64]:
    """Return a stable 64-bit hash of each token (Python's own hash() changes per process)."""
    codes = np.array(tokens).view(np.uint32).reshape(len(tokens), -1)
    # A polynomial in the code points, lowest power first: the zeros the array pads
    # shorter words with add nothing, so a word hashes the same beside any other.
    powers = _POWERS[: codes.shape[1]]
    hashes: npt.NDArray[np.uint64] = (codes.astype(np.uint64) * powers).sum(axis=1, dtype=np.uint64)
    return hashes


def shingle_array(text: str, size: int = SHINGLE) -> Shingles:
    """Return the sorted distinct 32-bit hashes of text's word shingles (its words if short)."""
    tokens = _WORD.findall(text[:SCAN_CHARS].lower())
    if not tokens:
        return np.empty(0, dtype=np.uint32)
    words = _word_hashes(tokens)
    width = min(size, len(words))
    grams = words[: len(words) - width + 1].copy()
    for offset in range(1, width):
        grams = grams * _MIX + words[offset : len(words) - width + 1 + offset]
    hashed = np.sort(((grams * _MIX) >> _SHIFT).astype(np.uint32))
    # np.unique does the same in several times as long.
    return hashed[np.concatenate(([True], hashed[1:] != hashed[:-1]))]


def shingles(text: str, size: int = SHINGLE) -> set[int]:
    """Return the hashed word shingles of text's start (its words for short text)."""
    return {int(s) for s in shingle_array(text, size)}


def article_text(article: Article) -> str:
    """Return what identifies a story: its body, else its summary, with the title."""
    return "\n".join([article.title, article.body or article.summary])


def signature_of(grams: Shingles) -> bytes:
    """Return the MinHash signature of a shingle set: NUM_PERM little-endian uint32s.

    One permutation hashing: the shingle hashes (uniform already) fall into NUM_PERM
    bins by their top bits, and each bin keeps its least hash, a single pass where
    NUM_PERM hash functions took NUM_PERM. A bin no shingle fell into takes the next
    filled bin's value (circularly), marked with the distance, so that two texts agree
    on it about as often as on a filled one. An empty set has an empty signature,
    which matches nothing.
    """
    if grams.size == 0:
        return b""
    # grams is sorted: the first hash at or after each bin's start is the bin's least.
    first = np.searchsorted(grams, _BIN_STARTS)
    filled = first < np.append(first[1:], grams.size)
    values = grams[np.minimum(first, grams.size - 1)]
    if not filled.all():
        donors = np.flatnonzero(filled)
        # For each bin, the next filled bin at or after it, wrapping round.
        after = np.searchsorted(donors, np.arange(NUM_PERM))
        donor = donors[after % donors.size]
        distance = (donor - np.arange(NUM_PERM)) % NUM_PERM
        values = values[donor] ^ (distance.astype(np.uint32) * _DISTANCE)
    return bytes(values.astype("<u4").tobytes())


def signature(text: str) -> bytes:
    """Return the MinHash signature of text's shingles, as stored with an article."""
    return signature_of(shingle_array(text))


def article_signature(article: Article) -> bytes:
    """Return the signature of an article's story text."""
    return signature(article_text(article))


def jaccard(a: set[int], b: set[int]) -> float:
    """Return the Jaccard similarity of two shingle sets."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def array_jaccard(a: Shingles, b: Shingles) -> float:
    """Return the Jaccard similarity of two sorted distinct shingle arrays."""
    if a.size == 0 or b.size == 0:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def candidate_pairs(signatures: Sequence[bytes]) -> list[tuple[int, int]]:
    """Return the pairs (i < j) of signatures that agree on at least one band, in order."""
    present = [i for i, s in enumerate(signatures) if len(s) == NUM_PERM * 4]
    if len(present) < 2:
        return []
    matrix = np.frombuffer(b"".join(signatures[i] for i in present), dtype="<u4")
    bands = matrix.reshape(len(present), BANDS, ROWS).astype(np.uint64)
    keys = bands[:, :, 0]
    for row in range(1, ROWS):
        keys = keys * _MIX + bands[:, :, row]
    index = np.asarray(present)
    pairs: set[tuple[int, int]] = set()
    for band in range(BANDS):
        column = keys[:, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        # Runs of equal keys: the members of one bucket.
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        if same.size == 0:
            continue
        starts = same[np.r_[True, same[1:] != same[:-1] + 1]]
        for start in starts.tolist():
            end = start + 1
            while end < len(ordered) and ordered[end] == ordered[start]:
                end += 1
            members = sorted(index[order[start:end]].tolist())
            pairs.update(
                (members[x], members[y])
                for x in range(len(members))
                for y in range(x + 1, len(members))
            )
    return sorted(pairs)


def group_signatures(
    signatures: Sequence[bytes],
    shingles_of: Callable[[Sequence[int]], Mapping[int, Shingles]],
    threshold: float = THRESHOLD,
) -> list[list[int]]:
    """Return groups of indices whose texts are near-duplicates, each in input order.

    shingles_of(indices) gives the shingle arrays of those texts; it is asked once, for
    the texts of candidate pairs only. Texts that have no near-duplicate are not listed.
    """
    pairs = candidate_pairs(signatures)
    grams = shingles_of(sorted({i for pair in pairs for i in pair})) if pairs else {}
    parent = list(range(len(signatures)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        # Already one story: no need to confirm this pair (a bucket of many copies).
        if ri != rj and array_jaccard(grams[i], grams[j]) >= threshold:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(signatures)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def duplicate_groups(texts: Sequence[str], threshold: float = THRESHOLD) -> list[list[int]]:
    """Return groups of indices of texts that are near-duplicates, each in input order.

    Texts that have no near-duplicate are not listed.
    """
    arrays = [shingle_array(t) for t in texts]
    signatures = [signature_of(a) for a in arrays]
    return group_signatures(signatures, lambda wanted: {i: arrays[i] for i in wanted}, threshold)


def merge_groups(
    titles: Sequence[str], groups: list[list[int]]
) -> list[tuple[int, tuple[int, ...]]]:
    """Return each story once by index, as (its first version, the other versions).

    groups are duplicate groups over the same items as titles, best first.
    """
    others: dict[int, list[int]] = {}
    absorbed: set[int] = set()
    for group in groups:
        head, *rest = group
        others[head] = rest
        absorbed.update(rest)
        logger.info("'%s' merged with %d other versions of the story", titles[head], len(rest))
    return [(i, tuple(others.get(i, ()))) for i in range(len(titles)) if i not in absorbed]


def merge_duplicates(
    articles: Sequence[Article], threshold: float = THRESHOLD
) -> list[tuple[Article, tuple[Article, ...]]]:
    """Return each story once, as (the first version in articles, the other versions).

    articles should come best first: the first version of a story is the one shown.
    """
    groups = duplicate_groups([article_text(a) for a in articles], threshold)
    return [
        (articles[i], tuple(articles[j] for j in rest))
        for i, rest in merge_groups([a.title for a in articles], groups)
    ]
