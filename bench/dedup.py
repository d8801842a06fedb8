"""Near-duplicate detection at scale: MinHash + LSH against pairwise comparison.

Times `duplicate_groups` on 50,000 synthetic articles (with planted re-posts) and a
pairwise exact comparison of shingle sets on 2,000, extrapolated to 50,000 by the square
of the size ratio. Also prints how the LSH time grows from a quarter of the articles to
all of them (1.00 would be perfectly linear). Usage: bench/dedup.py [--quick] [N]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure

from digest.dedup import THRESHOLD, duplicate_groups, jaccard, shingles

PAIRWISE_SAMPLE = 2_000


def corpus(n: int, seed: int = 1) -> list[str]:
    """Return n article texts of about 80 words; one in fifty is a re-post of another."""
    rng = random.Random(seed)
    vocab = [f"word{i}" for i in range(20_000)]
    texts: list[str] = []
    for i in range(n):
        if i % 50 == 49:
            original = texts[rng.randrange(len(texts))].split()
            original[rng.randrange(len(original))] = "edited"
            texts.append("New title " + " ".join(original))
        else:
            texts.append(" ".join(rng.choices(vocab, k=80)))
    return texts


def pairwise(texts: list[str]) -> int:
    """Compare every pair exactly; return how many pairs are near-duplicates."""
    sets = [shingles(t) for t in texts]
    found = 0
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            found += jaccard(sets[i], sets[j]) >= THRESHOLD
    return found


def timed(texts: list[str]) -> tuple[float, int]:
    """Return the seconds duplicate_groups takes on texts and how many groups it found."""
    start = time.perf_counter()
    groups = duplicate_groups(texts)
    return time.perf_counter() - start, len(groups)


def measure(quick: bool = False, n: int | None = None) -> list[Figure]:
    """One run: the LSH time as a ratio of the extrapolated pairwise time, and its growth."""
    n = n or (2_000 if quick else 50_000)
    sample = min(PAIRWISE_SAMPLE, n // 4)
    texts = corpus(n)
    quarter, _ = timed(texts[: n // 4])
    ours, groups = timed(texts)
    assert groups >= n // 60, f"only {groups} groups of near-duplicates in {n} articles"
    start = time.perf_counter()
    pairwise(texts[:sample])
    extrapolated = (time.perf_counter() - start) * (n / sample) ** 2
    return [
        Figure(
            f"MinHash + LSH / pairwise comparison (extrapolated from {sample:,}), {n:,} articles",
            ours / extrapolated,
        ),
        Figure(
            f"LSH time growth from {n // 4:,} to {n:,} articles, relative to linear",
            ours / quarter / 4,
        ),
    ]


def main(argv: list[str]) -> int:
    """Print the figures of one run."""
    quick = "--quick" in argv[1:]
    sizes = [a for a in argv[1:] if a != "--quick"]
    for figure in measure(quick, int(sizes[0]) if sizes else None):
        print(figure.line())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
