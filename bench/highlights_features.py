"""A supervised sentence scorer, measured held out by topic: why digest does not ship one.

Each sentence gets features meant to carry across topics, each within its own article:
centrality (digest's position-biased LexRank, stretched onto 0..1), position
(1/sqrt(position)), log length in words, the share of tokens with a digit (numbers), the
share of capitalised tokens after the first (named entities), whether it opens with a
quotation mark, and its TF-IDF cosine with the title and with the first sentence (the
lead). A pairwise logistic ranker (a summary sentence should outscore a non-summary
sentence of the same article; L2 penalty, Newton steps, plain numpy) learns one weight
per feature on one topic and picks the three best sentences of each article of the other
topic, with the same candidate rules as digest. Usage: bench/highlights_features.py
[CORPUS] (default ../shared/corpora/bbc).

On the 40 BBC articles none of the feature sets beat centrality alone held out by topic,
and most lose hits: the weights learnt on one topic do not transfer (business puts no
weight on position, entertainment a large one). So digest keeps one learnt number, the
prior of bench/highlights.py, and this script stays as the record of the attempt.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure
from highlights import Case, default_corpus, read_cases, topic_splits

from digest.highlights import (
    MIN_WORDS,
    WEIGHTS,
    _scaled,
    _tfidf,
    balanced,
    lexrank,
    normalise,
    words,
)

K = 3
FEATURES = ("centrality", "position", "length", "numbers", "capitals", "quote", "title", "lead")
# The feature sets tried: centrality alone, with each other feature, and all of them.
SETS: list[tuple[str, ...]] = [
    ("centrality",),
    *[("centrality", name) for name in FEATURES[1:]],
    FEATURES,
]
PENALTY = 0.01
# The weights of redundancy (MMR) tried on centrality alone.
REDUNDANCY = (0.0, 0.1, 0.2, 0.3, 0.5)
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Table:
    """One article's sentences as rows of features, with labels and candidate rows."""

    case: Case
    x: np.ndarray
    summary: np.ndarray
    candidates: list[int]
    # The TF-IDF cosine of every pair of sentences, for redundancy control.
    similarity: np.ndarray


def table(case: Case) -> Table:
    """Return the features of every sentence of case."""
    sentences = case.sentences
    n = len(sentences)
    matrix, (title_vec, lead_vec), _ = _tfidf(
        [Counter(words(s)) for s in sentences],
        [Counter(words(case.title)), Counter(words(sentences[0]))],
        WEIGHTS.sublinear_tf,
    )
    position = 1.0 / np.sqrt(np.arange(1, n + 1, dtype=np.float64))
    jump = (1 - WEIGHTS.prior) / n + WEIGHTS.prior * position / position.sum()

    def cosine(vec: dict[int, float]) -> np.ndarray:
        dense = np.zeros(matrix.shape[1])
        for col, value in vec.items():
            dense[col] = value
        return matrix.dot(dense)

    tokens = [_TOKEN.findall(s) for s in sentences]
    columns = {
        "centrality": _scaled(lexrank(matrix, jump)),
        "position": position,
        "length": np.log1p([len(t) for t in tokens]),
        "numbers": np.array(
            [sum(any(c.isdigit() for c in w) for w in t) / max(len(t), 1) for t in tokens]
        ),
        "capitals": np.array(
            [sum(w[0].isupper() for w in t[1:]) / max(len(t) - 1, 1) for t in tokens]
        ),
        "quote": np.array([s[:1] in "\"\u201c'" for s in sentences], dtype=np.float64),
        "title": cosine(title_vec),
        "lead": cosine(lead_vec),
    }
    title_key = normalise(case.title)
    candidates = [i for i, s in enumerate(sentences) if normalise(s) != title_key]
    candidates = [
        i for i in candidates if len(sentences[i].split()) >= MIN_WORDS and balanced(sentences[i])
    ] or candidates
    summary = np.array([normalise(s) in case.reference for s in sentences], dtype=np.float64)
    rows = np.zeros(matrix.shape)
    rows[matrix.rows, matrix.cols] = matrix.vals
    x = np.column_stack([columns[f] for f in FEATURES])
    return Table(case, x, summary, candidates, rows @ rows.T)


def fit(tables: Sequence[Table], cols: list[int]) -> np.ndarray:
    """Return the pairwise logistic ranker's weights over cols, learnt on tables."""
    pairs = [
        t.x[p, cols] - t.x[q, cols]
        for t in tables
        for p in t.candidates
        if t.summary[p]
        for q in t.candidates
        if not t.summary[q]
    ]
    d = np.array(pairs)
    w = np.zeros(len(cols))
    for _ in range(30):
        s = 1.0 / (1.0 + np.exp(-(d @ w)))
        grad = -(d * (1 - s)[:, None]).mean(axis=0) + PENALTY * w
        hess = (d * (s * (1 - s))[:, None]).T @ d / len(d) + PENALTY * np.eye(len(cols))
        step = np.linalg.solve(hess, grad)
        w = w - step
        if float(np.abs(step).max()) < 1e-9:
            break
    return w


def hits(
    tables: Sequence[Table], cols: list[int], w: np.ndarray, redundancy: float = 0.0
) -> tuple[int, int]:
    """Return (hits, picked) of the K best candidates by x @ w over tables, chosen one at
    a time less redundancy times the cosine with the closest sentence already chosen
    (maximal marginal relevance; 0 is the plain K best)."""
    found = picked = 0
    for t in tables:
        scores = t.x[:, cols] @ w
        chosen: list[int] = []
        left = list(t.candidates)
        while left and len(chosen) < K:
            values = [
                float(scores[i])
                - redundancy * max((float(t.similarity[i, j]) for j in chosen), default=0.0)
                for i in left
            ]
            best = left[max(range(len(left)), key=lambda n: (values[n], -left[n]))]
            chosen.append(best)
            left.remove(best)
        picked += len(chosen)
        found += int(t.summary[chosen].sum())
    return found, picked


def held_out_by_topic(
    cases: Sequence[Case],
) -> list[tuple[tuple[str, ...], dict[str, tuple[int, int, np.ndarray]]]]:
    """Return, per feature set, each held-out topic's (hits, picked, weights learnt)."""
    tables = {c.name: table(c) for c in cases}
    results = []
    for names in SETS:
        cols = [FEATURES.index(name) for name in names]
        per_topic: dict[str, tuple[int, int, np.ndarray]] = {}
        for label, train, test in topic_splits(cases):
            w = fit([tables[c.name] for c in train], cols)
            h, p = hits([tables[c.name] for c in test], cols, w)
            per_topic[label] = (h, p, w)
        results.append((names, per_topic))
    return results


def mmr_by_topic(cases: Sequence[Case]) -> dict[float, dict[str, tuple[int, int]]]:
    """Return, per redundancy weight, each held-out topic's (hits, picked) of centrality
    with MMR (nothing is learnt: centrality's weight is 1)."""
    tables = [table(c) for c in cases]
    one = np.ones(1)
    return {
        r: {
            topic: hits([t for t in tables if t.case.topic == topic], [0], one, r)
            for topic in sorted({c.topic for c in cases})
        }
        for r in REDUNDANCY
    }


def measure(quick: bool = False, corpus: Path | None = None) -> list[Figure]:
    """One run: by-topic held-out precision@3 of the ranker with each feature set."""
    cases = read_cases(corpus or default_corpus())
    if quick:
        cases = cases[::5]
    if len({c.topic for c in cases}) < 2:
        return []  # nothing to hold out
    figures = []
    for names, per_topic in held_out_by_topic(cases):
        h = sum(r[0] for r in per_topic.values())
        p = sum(r[1] for r in per_topic.values())
        label = " + ".join(names)
        figures.append(
            Figure(f"ranker held out by topic, {label} ({h}/{p} hits)", h / max(p, 1), "",
                   None, "higher")
        )  # fmt: skip
    return figures


def main(argv: list[str]) -> int:
    """Print each feature set's held-out hits per topic and the weights it learnt."""
    corpus = Path(argv[1]) if len(argv) > 1 else default_corpus()
    cases = read_cases(corpus)
    if len({c.topic for c in cases}) < 2:
        print(f"{corpus}: needs at least two topics")
        return 1
    print(f"pairwise logistic ranker, {len(cases)} articles, precision@{K} held out by topic:")
    for names, per_topic in held_out_by_topic(cases):
        h = sum(r[0] for r in per_topic.values())
        p = sum(r[1] for r in per_topic.values())
        print(f"  {' + '.join(names)}: {h / max(p, 1):.3f} ({h}/{p})")
        for label, (th, tp, w) in per_topic.items():
            weights = ", ".join(f"{n} {x:+.2f}" for n, x in zip(names, w, strict=True))
            print(f"    {label}: {th}/{tp}; weights learnt on the other topic: {weights}")
    print("centrality with redundancy control (MMR), per topic:")
    for r, mmr in mmr_by_topic(cases).items():
        h = sum(v[0] for v in mmr.values())
        p = sum(v[1] for v in mmr.values())
        each = ", ".join(f"{topic} {th}/{tp}" for topic, (th, tp) in mmr.items())
        print(f"  redundancy {r}: {h / max(p, 1):.3f} ({h}/{p}); {each}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
