"""Find near-duplicate articles: the same story from two sources, a re-post with a new title.

MinHash signatures over word shingles go into an LSH index, so that each article is
compared only with the few that share a band of its signature: near-linear in the number
of articles instead of quadratic. Candidates are then confirmed with the exact Jaccard
similarity of their shingle sets, so a false LSH hit never merges two stories.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Sequence

from digest.models import Article

logger = logging.getLogger(__name__)

SHINGLE = 3
NUM_PERM = 64
# Share of shingles two versions of one story have in common; rewrites of a wire story
# with a new title and a changed sentence or two stay well above it.
THRESHOLD = 0.5
_WORD = re.compile(r"\w+")
# Only the start of a text is shingled (about 15,000 words, more than nearly any article
# has): two versions of a story agree there, and a 10 MB body must not cost seconds.
SCAN_CHARS = 100_000


def shingles(text: str, size: int = SHINGLE) -> set[int]:
    """Return the hashed word shingles of text's start (its words for short text)."""
    tokens = _WORD.findall(text[:SCAN_CHARS].lower())
    if len(tokens) < size:
        grams = [" ".join(tokens)] if tokens else []
    else:
        grams = [" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]
    return {zlib.crc32(g.encode("utf-8")) for g in grams}


def article_text(article: Article) -> str:
    """Return what identifies a story: its body, else its summary, with the title."""
    return "\n".join([article.title, article.body or article.summary])


def _hash32(value: bytes) -> int:
    return int(struct.unpack("<I", value)[0])


def jaccard(a: set[int], b: set[int]) -> float:
    """Return the Jaccard similarity of two shingle sets."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def duplicate_groups(texts: Sequence[str], threshold: float = THRESHOLD) -> list[list[int]]:
    """Return groups of indices of texts that are near-duplicates, each in input order.

    Texts that have no near-duplicate are not listed.
    """
    sets = [shingles(t) for t in texts]
    # Imported here: datasketch brings numpy and scipy, which commands that select
    # nothing (status, --help) should not pay for.
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    # The shingles are already 32-bit hashes: feed them as 4 bytes and read them back.
    packed = [[struct.pack("<I", s) for s in shingle_set] for shingle_set in sets]
    signatures = MinHash.bulk(packed, num_perm=NUM_PERM, hashfunc=_hash32)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, signature in enumerate(signatures):
        if not sets[i]:
            continue
        for j in lsh.query(signature):
            if jaccard(sets[i], sets[j]) >= threshold:
                ri, rj = root(i), root(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
        lsh.insert(i, signature)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def merge_duplicates(
    articles: Sequence[Article], threshold: float = THRESHOLD
) -> list[tuple[Article, tuple[Article, ...]]]:
    """Return each story once, as (the first version in articles, the other versions).

    articles should come best first: the first version of a story is the one shown.
    """
    groups = duplicate_groups([article_text(a) for a in articles], threshold)
    others: dict[int, list[int]] = {}
    absorbed: set[int] = set()
    for group in groups:
        head, *rest = group
        others[head] = rest
        absorbed.update(rest)
        logger.info(
            "'%s' merged with %d other versions of the story",
            articles[head].title,
            len(rest),
        )
    return [
        (article, tuple(articles[j] for j in others.get(i, ())))
        for i, article in enumerate(articles)
        if i not in absorbed
    ]
