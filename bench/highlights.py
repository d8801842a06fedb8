"""Precision@3 of our highlights against lead-3 and a plain TextRank, on one corpus.

The corpus layout: `article/<topic>/NNN.txt` (title on the first line, then the body,
paragraphs separated by blank lines) and `summary/<topic>/NNN.txt` (the reference
sentences, one a line). Precision@3 is the share of chosen sentences found in the
reference summary. Usage: bench/highlights.py [--folds N] [CORPUS] (default
../shared/corpora/bbc).

With --folds N the articles, in sorted order, are dealt into N folds (the 1st, N+1st, …
article in the first fold, and so on). For each fold the weights are chosen from a grid
of round values on the other folds (ties go to the smaller weights, and to plain term
counts over sublinear ones) and scored on that fold alone, so the figure says how the
method does on articles its weights never saw.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digest.highlights import WEIGHTS, Weights, best_sentences, normalise, split_sentences, words

K = 3
# The round values the weights are chosen from in a cross-validation.
GRID = [
    Weights(position=position, title=title, sublinear_tf=sublinear)
    for position, title, sublinear in itertools.product(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), (0.0, 0.1, 0.2, 0.3), (False, True)
    )
]
ROOT = Path(__file__).resolve().parent.parent


def default_corpus() -> Path:
    """Return ../shared/corpora/bbc beside the repository, or the first one above it."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "corpora" / "bbc"
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "corpora" / "bbc"


Method = Callable[[str, Sequence[str]], list[int]]


def read_article(path: Path) -> tuple[str, list[str]]:
    """Return the title and the paragraphs (lines joined, as a source reader stores them)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    title = lines[0].strip()
    paragraphs: list[str] = []
    block: list[str] = []
    for line in [*lines[1:], ""]:
        if line.strip():
            block.append(line.strip())
        elif block:
            paragraphs.append(" ".join(block))
            block = []
    return title, paragraphs


def ours(title: str, sentences: Sequence[str]) -> list[int]:
    """Pick with digest's own ranking."""
    return [s.index for s in best_sentences(title, sentences, K)]


def lead(title: str, sentences: Sequence[str]) -> list[int]:
    """Pick the first K sentences."""
    return list(range(min(K, len(sentences))))


def textrank(title: str, sentences: Sequence[str]) -> list[int]:
    """Pick by plain TextRank: PageRank over word overlap (Mihalcea and Tarau, 2004)."""
    bags = [set(words(s)) for s in sentences]
    n = len(bags)
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            overlap = len(bags[i] & bags[j])
            if overlap and len(bags[i]) > 1 and len(bags[j]) > 1:
                value = overlap / (math.log(len(bags[i])) + math.log(len(bags[j])))
                sim[i, j] = sim[j, i] = value
    out = sim.sum(axis=1)
    out[out == 0] = 1.0
    p = np.full(n, 1.0 / n)
    for _ in range(50):
        p = 0.15 / n + 0.85 * (sim / out[:, None]).T @ p
    return sorted(sorted(range(n), key=lambda i: (-p[i], i))[:K])


@dataclass(frozen=True)
class Case:
    """One article as the bench sees it: title, sentences, and the reference set."""

    name: str
    title: str
    sentences: list[str]
    reference: frozenset[str]

    def hits(self, chosen: Sequence[int]) -> int:
        """Return how many of the chosen sentences are in the reference summary."""
        return sum(normalise(self.sentences[i]) in self.reference for i in chosen)


def read_cases(corpus: Path) -> list[Case]:
    """Read every article of the corpus with its reference summary, in sorted order."""
    cases: list[Case] = []
    for path in sorted((corpus / "article").glob("*/*.txt")):
        title, paragraphs = read_article(path)
        relative = path.relative_to(corpus / "article")
        lines = (corpus / "summary" / relative).read_text(encoding="utf-8").splitlines()
        cases.append(
            Case(
                name=str(relative),
                title=title,
                sentences=split_sentences("\n".join(paragraphs)),
                reference=frozenset(normalise(line) for line in lines),
            )
        )
    return cases


def precision(cases: Sequence[Case], method: Method) -> tuple[int, int]:
    """Return (hits, picked) of method over cases."""
    hits = picked = 0
    for case in cases:
        chosen = method(case.title, case.sentences)
        picked += len(chosen)
        hits += case.hits(chosen)
    return hits, picked


def describe(weights: Weights) -> str:
    """Return the weights as the bench prints them."""
    counts = "sublinear" if weights.sublinear_tf else "raw"
    return f"position {weights.position}, title {weights.title}, {counts} tf"


def with_weights(weights: Weights) -> Method:
    """Return our method with the given weights."""

    def method(title: str, sentences: Sequence[str]) -> list[int]:
        return [s.index for s in best_sentences(title, sentences, K, weights=weights)]

    return method


def cross_validate(cases: Sequence[Case], folds: int) -> None:
    """Print, per fold, the weights chosen on the other folds and the score on this one."""
    print(f"{folds}-fold cross-validation (weights chosen on the other folds):")
    held_hits = held_picked = 0
    for fold in range(folds):
        test = [c for i, c in enumerate(cases) if i % folds == fold]
        train = [c for i, c in enumerate(cases) if i % folds != fold]
        # Best on the training folds; among equals the smaller weights, then plain counts
        # (LexRank as published) over the extra log transform.
        ranked = sorted(
            GRID,
            key=lambda w: (
                -precision(train, with_weights(w))[0],
                w.position + w.title,
                w.position,
                w.sublinear_tf,
            ),
        )
        chosen = ranked[0]
        train_hits, train_picked = precision(train, with_weights(chosen))
        hits, picked = precision(test, with_weights(chosen))
        held_hits += hits
        held_picked += picked
        print(
            f"  fold {fold + 1}: {describe(chosen)}"
            f" (train {train_hits / max(train_picked, 1):.3f})"
            f" -> held-out {hits / max(picked, 1):.3f} ({hits}/{picked}, {len(test)} articles)"
        )
    print(f"  held-out overall {held_hits / max(held_picked, 1):.3f} ({held_hits}/{held_picked})")


def main(argv: list[str]) -> int:
    """Print precision@3 per method over every article of the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=default_corpus())
    parser.add_argument("--folds", type=int, default=0, help="also cross-validate the weights")
    args = parser.parse_args(argv[1:])
    corpus: Path = args.corpus
    cases = read_cases(corpus)
    if not cases:
        print(f"{corpus}: no article/<topic>/*.txt files")
        return 1
    methods: dict[str, Method] = {"ours": ours, "lead-3": lead, "textrank": textrank}
    hits: dict[str, int] = {}
    print(f"{len(cases)} articles from {corpus}, precision@{K}:")
    for name, method in methods.items():
        hits[name], picked = precision(cases, method)
        print(f"  {name:9s} {hits[name] / max(picked, 1):.3f} ({hits[name]}/{picked})")
    print(f"ours / lead-3: {hits['ours'] / max(hits['lead-3'], 1):.2f}")
    print(f"ours / textrank: {hits['ours'] / max(hits['textrank'], 1):.2f}")
    print(f"weights: {describe(WEIGHTS)}")
    if args.folds >= 2:
        cross_validate(cases, args.folds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
