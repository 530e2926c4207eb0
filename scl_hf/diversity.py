"""Diversity of a set of strings: mean pairwise normalized Levenshtein distance, unique counts, novelty.

For samples ``x_1 .. x_N`` (a multiset: duplicates count), the diversity is the mean normalized edit
distance over all ``N (N - 1) / 2`` unordered pairs::

    diversity = 2 / (N (N - 1)) * sum_{i < j} lev(x_i, x_j) / max(|x_i|, |x_j|)

with ``lev`` the Levenshtein distance (insertions, deletions, substitutions all cost 1), ``0 / 0 = 0``
for two empty strings, and ``diversity = 0`` when ``N = 1``. Each pair's term lies in [0, 1], so the
diversity does too: 0 when all samples are identical. Strings are compared as sequences of word tokens
(``level="token"``, the default; see :func:`word_tokens`) or of characters (``level="char"``).
:func:`diversity` computes that number fast (the definition written as a double loop, ``naive_diversity`` in
scripts/bench_metric.py, is what the tests and the benchmark compare it with):

- duplicates are counted once: with unique strings ``u_a`` of multiplicity ``m_a``, the sum over pairs
  of samples is ``sum_{a < b} m_a m_b d(u_a, u_b)`` (pairs of equal strings add 0), so a collapsed
  generation of 10,000 copies of 20 strings costs 190 distances;
- at the token level every distinct token becomes one character, so rapidfuzz compares short strings
  with its bit-parallel C++ scorers (and SIMD over many strings at once);
- the unique strings are sorted by length, so for ``a < b`` in that order ``max(|u_a|, |u_b|) = |u_b|``
  and the sum is ``sum_{a < b} m_a d_ab m_b / |u_b|``;
- the upper triangle of pairs ``a < b`` is split in halves: the rectangle of the first half (rows) against
  the second half (columns) is rapidfuzz's integer distance matrix (``cdist``, its fastest path) reduced by
  one matrix-vector product with ``m_b / |u_b|``, and each half's own triangle is split again, down to
  triangles of at most ``_LEAF`` strings whose pairs are scored one by one (``cpdist``). So each unordered
  pair of distinct sequences is scored exactly once and no sequence is ever compared with itself;
- rectangles are computed in blocks of about ``_BLOCK_ELEMENTS`` distances, so memory stays small and
  independent of N beyond the strings themselves; rapidfuzz's ``workers=-1`` uses every core.

Cost. For one distance between sequences of lengths ``|u_a| <= |u_b|`` (the query, the row, is always the
shorter one) rapidfuzz's bit-parallel Levenshtein takes about ``ceil(|u_a| / 64) * |u_b|`` word operations:
linear in the longer sequence while the shorter has at most 64 items, so one 10 MB string next to short ones
costs its length per pair; ``O(|u_a| |u_b| / 64)`` in the worst case, two long *distinct* sequences. That is
inherent in an exact edit distance (no strongly subquadratic algorithm exists unless SETH fails): two
distinct strings of a million word tokens each are one distance of about 1.6e10 word operations, some 15 s
on one core. The exact diversity of ``M`` distinct sequences costs the sum of that over their
``M (M - 1) / 2`` pairs, and nothing more. :func:`estimate_diversity` scores at most ``num_pairs`` distances
(a drawn pair of two equal sequences counts 0 without being scored), so ``compute_metrics(max_pairs=P)``
scores at most ``P`` distances whichever path it takes. What bounds the cost of each distance is the length
of the input: on untrusted input, the caller's to bound.

For more samples than an exact computation can afford, :func:`estimate_diversity` averages the
distance over pairs drawn uniformly at random (an unbiased estimate) and reports its standard error.
Only rapidfuzz, numpy and the standard library are imported here (no torch, no transformers).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

LEVELS = ("token", "char")
COLLAPSE_THRESHOLD = 0.1  # a diversity below this (mean normalized edit distance) counts as collapsed

# A word token is "(" or ")" or a maximal run of other non-whitespace characters, so garbage such as
# "Tru)e" or "x+1" is tokenized too: "Tru", ")", "e" and "x+1".
_WORD = re.compile(r"[()]|[^\s()]+")
_NUM_CODE_POINTS = 0x110000  # every distinct token becomes one character while there are few enough of them
_BLOCK_ELEMENTS = 1 << 22  # distances per block: 4 Mi (4-16 MiB as integers, 32 MiB more if weighted)
_SAMPLE_CHUNK = 1 << 16  # pairs drawn and scored at once by estimate_diversity
_LEAF = 16  # a triangle of at most this many strings is scored pair by pair (cpdist) instead of split further
_SERIAL = 1 << 14  # calls with fewer distances than this run on one thread: starting a pool would cost more


def word_tokens(text: str) -> list[str]:
    """Split ``text`` into word tokens: each parenthesis, and every maximal run of other non-space characters.

    >>> word_tokens("not(True)  and x+1")
    ['not', '(', 'True', ')', 'and', 'x+1']
    >>> word_tokens("   ")
    []
    """
    return _WORD.findall(text)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def encode(texts: Sequence[str], level: str = "token") -> list[str] | list[list[int]]:
    """The sequences whose edit distances define the diversity at ``level``.

    ``"char"``: the strings themselves. ``"token"``: one character per word token, the same character
    for the same token (numbered in order of first appearance), so that a character edit distance on the
    result is the token edit distance on the input. Should the input hold more distinct tokens than
    Unicode has code points, lists of token numbers are returned instead (rapidfuzz compares those too).

    >>> encode(["True and True", "not(False)"])
    ['\\x00\\x01\\x00', '\\x02\\x03\\x04\\x05']
    """
    _check_level(level)
    if level == "char":
        return list(texts)
    vocab: dict[str, int] = {}
    numbered = [[vocab.setdefault(tok, len(vocab)) for tok in _WORD.findall(text)] for text in texts]
    if len(vocab) > _NUM_CODE_POINTS:
        return numbered
    return ["".join(map(chr, ids)) for ids in numbered]


def _distinct(texts: Sequence[str], level: str) -> tuple[list, Counter, dict[str, int]]:
    """Distinct sequences at ``level``, the count of each distinct text, and the index of each text's sequence.

    Texts whose sequences are equal (at the token level: texts that differ only in spacing) share one index,
    so no two indices stand for equal sequences. Number lists become tuples (hashable).
    """
    counts = Counter(texts)
    index: dict = {}
    of_text: dict[str, int] = {}
    for text, seq in zip(counts, encode(list(counts), level), strict=True):
        of_text[text] = index.setdefault(seq if isinstance(seq, str) else tuple(seq), len(index))
    return list(index), counts, of_text


def _unique_with_weights(texts: Sequence[str], level: str) -> tuple[list, np.ndarray]:
    """Distinct sequences at ``level``, sorted by length, and how many samples each stands for."""
    seqs, counts, of_text = _distinct(texts, level)
    weights = np.zeros(len(seqs))
    for text, count in counts.items():
        weights[of_text[text]] += count
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
    return [seqs[k] for k in order], weights[order]


def _dtype(longest: int):
    """The narrowest integer type that holds a distance between sequences of at most ``longest`` items."""
    return np.uint8 if longest <= 255 else np.int16 if longest <= 32767 else np.int32


def _rectangle_sum(seqs, weights, column, rows: range, cols: range, workers: int) -> float:
    """``sum_{a in rows, b in cols} m_a * column_b * lev(u_a, u_b)``, one cdist per block of rows."""
    choices = seqs[cols.start:cols.stop]
    dtype = _dtype(len(choices[-1]))  # sorted by length: the last column is the longest of all
    column = column[cols.start:cols.stop]
    step = max(1, _BLOCK_ELEMENTS // len(cols))
    total = 0.0
    for start in range(rows.start, rows.stop, step):
        stop = min(start + step, rows.stop)
        dist = process.cdist(seqs[start:stop], choices, scorer=Levenshtein.distance, dtype=dtype,
                             workers=workers if (stop - start) * len(cols) >= _SERIAL else 1)
        row_weights = weights[start:stop]
        if np.all(row_weights == 1.0):  # no duplicates among these rows: an integer column sum is cheaper
            column_sums = dist.sum(axis=0, dtype=np.int64)
        else:
            column_sums = row_weights @ dist  # exact: integers below 2**53
        total += float(column_sums @ column)
    return total


def _leaf_sum(seqs, weights, column, start: int, stop: int) -> float:
    """``sum_{start <= a < b < stop} m_a * column_b * lev(u_a, u_b)``: each pair scored once, on one thread."""
    a, b = np.triu_indices(stop - start, 1)
    a += start
    b += start
    dist = process.cpdist([seqs[k] for k in a.tolist()], [seqs[k] for k in b.tolist()],
                          scorer=Levenshtein.distance, dtype=_dtype(len(seqs[stop - 1])), workers=1)
    return float((weights[a] * column[b]) @ dist)


def _pair_sum(seqs, weights, column, workers: int) -> float:
    """``sum_{a < b} m_a * column_b * lev(u_a, u_b)``: the upper triangle, split in halves until it is small."""
    total = 0.0
    pending = [(0, len(seqs))]
    while pending:
        start, stop = pending.pop()
        if stop - start <= _LEAF:
            if stop - start > 1:
                total += _leaf_sum(seqs, weights, column, start, stop)
            continue
        mid = (start + stop) // 2
        total += _rectangle_sum(seqs, weights, column, range(start, mid), range(mid, stop), workers)
        pending += [(start, mid), (mid, stop)]
    return total


def diversity(texts: Sequence[str], level: str = "token", *, workers: int = -1) -> float:
    """Exact mean normalized Levenshtein distance over all unordered pairs of ``texts`` (module docstring).

    Args:
        texts: the samples; duplicates count as separate samples.
        level: ``"token"`` (word tokens) or ``"char"`` (characters).
        workers: threads for rapidfuzz; -1 uses every core.

    >>> diversity(["True and False", "not False", "True or", "not False"])  # (2/3 + 2/3 + 2/3 + 1 + 0 + 1) / 6
    0.6666666666666666
    >>> diversity(["ab", "ab", "b"], level="char")  # pairs: 0, 1/2, 1/2
    0.3333333333333333
    """
    _check_level(level)
    n = len(texts)
    if n < 2:
        return 0.0
    seqs, weights = _unique_with_weights(texts, level)
    m = len(seqs)
    lengths = np.fromiter(map(len, seqs), dtype=np.float64, count=m)
    # column factor m_b / |u_b|; only the empty sequence has length 0, it sorts first and so is never a column b > a
    column = np.divide(weights, lengths, out=np.zeros(m), where=lengths > 0)
    # sum over pairs of samples of the normalized distance: pairs of equal samples add 0, every other pair of
    # samples is one of the m_a m_b behind a pair a < b of distinct sequences
    return _pair_sum(seqs, weights, column, workers) / (n * (n - 1) / 2)


def estimate_diversity(texts: Sequence[str], num_pairs: int, level: str = "token", *, seed: int = 0,
                       workers: int = -1) -> tuple[float, float]:
    """Unbiased estimate of :func:`diversity` from ``num_pairs`` random pairs, and its standard error.

    Each pair is two distinct positions ``i != j`` drawn uniformly (with replacement across pairs), so
    every unordered pair of samples is equally likely and the mean distance over the drawn pairs is
    unbiased; the standard error is the sample standard deviation over ``sqrt(num_pairs)``. The same
    ``seed`` gives the same estimate.

    >>> texts = ["True", "False"] * 50
    >>> estimate_diversity(texts, 1000) == estimate_diversity(texts, 1000)
    True
    >>> estimate_diversity(["True"] * 100, 10)
    (0.0, 0.0)
    """
    _check_level(level)
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 2:
        raise ValueError(f"num_pairs must be an integer >= 2, got {num_pairs!r}")
    n = len(texts)
    if n < 2:
        return 0.0, 0.0
    seqs, _, of_text = _distinct(texts, level)
    unique_of = np.fromiter((of_text[t] for t in texts), dtype=np.int64, count=n)  # sample -> its sequence
    rng = np.random.default_rng(seed)
    total = total_sq = 0.0
    for done in range(0, num_pairs, _SAMPLE_CHUNK):
        k = min(_SAMPLE_CHUNK, num_pairs - done)
        i = rng.integers(0, n, size=k)
        j = rng.integers(0, n - 1, size=k)
        j += j >= i  # uniform over positions other than i
        left, right = unique_of[i], unique_of[j]
        scored = np.flatnonzero(left != right)  # two positions holding equal sequences are at distance 0
        dist = np.zeros(k)
        if scored.size:
            dist[scored] = process.cpdist([seqs[x] for x in left[scored].tolist()],
                                          [seqs[x] for x in right[scored].tolist()],
                                          scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=workers)
        total += float(dist.sum())
        total_sq += float(np.square(dist).sum())
    mean = total / num_pairs
    variance = max(0.0, (total_sq - total * mean) / (num_pairs - 1))
    return mean, math.sqrt(variance / num_pairs)


def novelty_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of ``predictions`` (duplicates counted) that do not occur verbatim in ``references``.

    >>> novelty_rate(["True", "True", "False", "not True"], ["True", "False"])
    0.25
    """
    if len(predictions) == 0:
        raise ValueError("predictions must hold at least one string, got an empty list")
    seen = set(references)
    return sum(text not in seen for text in predictions) / len(predictions)
