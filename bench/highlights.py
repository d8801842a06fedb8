"""Precision@3 of our highlights against lead-3 and a plain TextRank, on one corpus.

The corpus layout: `article/<topic>/NNN.txt` (title on the first line, then the body,
paragraphs separated by blank lines) and `summary/<topic>/NNN.txt` (the reference
sentences, one a line). Precision@3 is the share of chosen sentences found in the
reference summary. Usage: bench/highlights.py [CORPUS] (default ../shared/corpora/bbc).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from digest.highlights import best_sentences, normalise, split_sentences, words

K = 3
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


def main(argv: list[str]) -> int:
    """Print precision@3 per method over every article of the corpus."""
    corpus = Path(argv[1]) if len(argv) > 1 else default_corpus()
    articles = sorted((corpus / "article").glob("*/*.txt"))
    if not articles:
        print(f"{corpus}: no article/<topic>/*.txt files")
        return 1
    methods: dict[str, Method] = {"ours": ours, "lead-3": lead, "textrank": textrank}
    hits = dict.fromkeys(methods, 0)
    picked = dict.fromkeys(methods, 0)
    for path in articles:
        title, paragraphs = read_article(path)
        summary_path = corpus / "summary" / path.relative_to(corpus / "article")
        reference = {
            normalise(line) for line in summary_path.read_text(encoding="utf-8").splitlines()
        }
        sentences = split_sentences("\n".join(paragraphs))
        for name, method in methods.items():
            chosen = method(title, sentences)
            picked[name] += len(chosen)
            hits[name] += sum(normalise(sentences[i]) in reference for i in chosen)
    print(f"{len(articles)} articles from {corpus}, precision@{K}:")
    for name in methods:
        print(f"  {name:9s} {hits[name] / max(picked[name], 1):.3f}")
    print(f"ours / lead-3: {hits['ours'] / max(hits['lead-3'], 1):.2f}")
    print(f"ours / textrank: {hits['ours'] / max(hits['textrank'], 1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
