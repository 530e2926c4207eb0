"""Diversity of a set of strings: mean pairwise normalized Levenshtein distance, unique counts, novelty.

For samples ``x_1 .. x_N`` (a multiset: duplicates count), the diversity is the mean normalized edit
distance over all ``N (N - 1) / 2`` unordered pairs::

    diversity = 2 / (N (N - 1)) * sum_{i < j} lev(x_i, x_j) / max(|x_i|, |x_j|)

with ``lev`` the Levenshtein distance (insertions, deletions, substitutions all cost 1), ``0 / 0 = 0``
for two empty strings, and ``diversity = 0`` when ``N = 1``. Each pair's term lies in [0, 1], so the
diversity does too: 0 when all samples are identical. Strings are compared as sequences of word tokens
(``level="token"``, the default; see :func:`word_tokens`) or of characters (``level="char"``).
:func:`naive_diversity` is that definition written as a double loop; :func:`diversity` computes the
same number fast:

- duplicates are counted once: with unique strings ``u_a`` of multiplicity ``m_a``, the sum over pairs
  of samples is ``sum_{a < b} m_a m_b d(u_a, u_b)`` (pairs of equal strings add 0), so a collapsed
  generation of 10,000 copies of 20 strings costs 190 distances;
- at the token level every distinct token becomes one character, so rapidfuzz compares short strings
  with its bit-parallel C++ scorers (and SIMD over many strings at once);
- the unique strings are sorted by length, so for ``a < b`` in that order ``max(|u_a|, |u_b|) = |u_b|``:
  a block of rows of the upper triangle is rapidfuzz's integer distance matrix (its fastest path)
  reduced by one matrix-vector product with ``m_b / |u_b|``;
- rows are processed in blocks of about ``_BLOCK_ELEMENTS`` distances, so memory stays small and
  independent of N beyond the strings themselves; rapidfuzz's ``workers=-1`` uses every core. Each
  unordered pair is scored once, except inside the square diagonal blocks, where both orders are scored
  (a share ``rows per block / unique strings`` of the work, 4% for 10,000 strings): rapidfuzz scores a
  full square with SIMD about twice as fast as one triangle without.

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


def _unique_with_weights(texts: Sequence[str], level: str) -> tuple[list, np.ndarray]:
    """Distinct sequences at ``level``, sorted by length, and how many samples each stands for."""
    counts = Counter(texts)
    weights: dict = {}
    for seq, count in zip(encode(list(counts), level), counts.values(), strict=True):
        key = seq if isinstance(seq, str) else tuple(seq)  # texts that differ only in spacing merge
        weights[key] = weights.get(key, 0) + count
    order = sorted(weights, key=len)
    return order, np.fromiter((weights[s] for s in order), dtype=np.float64, count=len(order))


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
    # a distance is at most the longer length: the narrowest integer type that holds it is the fastest
    longest = int(lengths[-1])
    dtype = np.uint8 if longest <= 255 else np.int16 if longest <= 32767 else np.int32
    rows_per_block = max(1, _BLOCK_ELEMENTS // m)
    total = 0.0  # sum over pairs of samples of the normalized distance
    for start in range(0, m - 1, rows_per_block):
        stop = min(start + rows_per_block, m)
        # dist[r, c] = lev(u_{start + r}, u_{start + c}); shape (stop - start, m - start)
        dist = process.cdist(seqs[start:stop], seqs[start:], scorer=Levenshtein.distance, dtype=dtype,
                             workers=workers)
        square = stop - start
        dist[:, :square] = np.triu(dist[:, :square], 1)  # keep pairs a < b only inside the diagonal block
        row_weights = weights[start:stop]
        if np.all(row_weights == 1.0):  # no duplicates among these rows: an integer column sum is cheaper
            column_sums = dist.sum(axis=0, dtype=np.int64)
        else:
            column_sums = row_weights @ dist  # exact: integers below 2**53
        total += float(column_sums @ column[start:])
    return total / (n * (n - 1) / 2)


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
    counts = Counter(texts)
    seqs = encode(list(counts), level)
    index = {text: k for k, text in enumerate(counts)}
    unique_of = np.fromiter((index[t] for t in texts), dtype=np.int64, count=n)  # sample -> its unique string
    rng = np.random.default_rng(seed)
    total = total_sq = 0.0
    for done in range(0, num_pairs, _SAMPLE_CHUNK):
        k = min(_SAMPLE_CHUNK, num_pairs - done)
        i = rng.integers(0, n, size=k)
        j = rng.integers(0, n - 1, size=k)
        j += j >= i  # uniform over positions other than i
        left = [seqs[x] for x in unique_of[i].tolist()]
        right = [seqs[x] for x in unique_of[j].tolist()]
        dist = process.cpdist(left, right, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=workers)
        total += float(dist.sum())
        total_sq += float(np.square(dist).sum())
    mean = total / num_pairs
    variance = max(0.0, (total_sq - total * mean) / (num_pairs - 1))
    return mean, math.sqrt(variance / num_pairs)


def naive_diversity(texts: Sequence[str], level: str = "token") -> float:
    """The definition as a plain double loop over pairs (token lists, no encoding): the reference for tests.

    >>> naive_diversity(["True and False", "not False", "True or", "not False"])
    0.6666666666666666
    """
    _check_level(level)
    seqs = [word_tokens(t) for t in texts] if level == "token" else list(texts)
    n = len(seqs)
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            total += Levenshtein.normalized_distance(seqs[i], seqs[j])
    return total / (n * (n - 1) / 2)


def novelty_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of ``predictions`` (duplicates counted) that do not occur verbatim in ``references``.

    >>> novelty_rate(["True", "True", "False", "not True"], ["True", "False"])
    0.25
    """
    if len(predictions) == 0:
        raise ValueError("predictions must hold at least one string, got an empty list")
    seen = set(references)
    return sum(text not in seen for text in predictions) / len(predictions)
