"""Distribution measures of generated strings: against a real set (divergences, tails) and on their own (n-grams,
compression, the mode).

Against a real reference set (``real_texts``; in the training loop D0), with ``P`` the distribution of the
samples and ``Q`` that of the real set over the same bins (duplicates counted, shares of all strings of each set):

- **Jensen-Shannon divergence**, base 2, so it lies in [0, 1] (0: the same distribution; 1: disjoint supports)::

      JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M),  M = (P + Q) / 2,  KL(P || M) = sum_b P(b) log2(P(b) / M(b))

  with ``0 log 0 = 0``, over the union of the bins of both sets. :func:`js_divergence` computes it as the sum
  over bins of ``1/2 P log2(2P / (P + Q)) + 1/2 Q log2(2Q / (P + Q))``. Bins (:func:`histograms`):

  - ``depth``: the depth of a parsable string (one bin per depth), syntax errors in one bin of their own;
  - ``length``: the length in word tokens (:func:`scl_hf.diversity.word_tokens`, so every string has one,
    garbage included) in fixed bins of ``LENGTH_BIN_WIDTH`` = 5 tokens, 0-4, 5-9, ..., 95-99, and a last bin of
    ``LENGTH_CAP`` = 100 tokens and more (:func:`length_bin`);
  - ``not``, ``and``, ``or`` (one distribution each): how often the operator occurs in a parsable string
    (0, 1, 2, ...; one bin per count), syntax errors in one bin of their own.

- **Tail coverage**, for the real set's rarest strata: the share of samples in the stratum divided by the real
  set's share in it (1: the tail is kept; 0: lost; above 1: over-represented). The strata (:func:`tail_coverage`):

  - ``depth``: depth at least the deepest depth of a parsable real string (samples deeper than every real string
    count too; syntax errors never do). None when no real string parses;
  - ``length``: length at least the real set's 90th percentile length ``L90``, the nearest-rank percentile:
    with the real lengths sorted ``l_1 <= ... <= l_R``, ``L90 = l_k`` for ``k = ceil(0.9 R)`` (numpy's
    ``percentile(..., 90, method="inverted_cdf")``). At least one real string is that long, so the real share
    is never 0.

On the samples alone:

- **distinct-n** (:func:`distinct_n`), n = 1..4: the number of distinct n-grams of word tokens over all samples
  divided by the number of n-grams (duplicates counted; n-grams do not cross from one sample into the next);
  0 when there are no n-grams (every sample shorter than n tokens).
- **compression ratio** (:func:`compression_ratio`, as Shaib et al. 2024 define it): the size of the samples
  joined by newlines, in UTF-8 bytes, divided by its gzip-compressed size (level 9, Python's default, which
  their code uses; they join with spaces). High means repetitive; gzip's 18 bytes of header and trailer make it
  below 1 for tiny inputs, and it is 0 when the joined text is empty. gzip finds repeats only within its last
  32 KiB, so the ratio of many distinct samples says how alike neighbouring samples are (about 500 at the
  real data's length), not the whole set.
- **the mode** (:func:`top_samples`): the most frequent samples with their counts.

Besides its siblings ``expressions.py`` and ``diversity.py``, numpy and the standard library only (gzip
included): the metric's Hub Space ships this module as it is next to ``measures.py``, which imports it by a
top-level relative import.
"""

from __future__ import annotations

import gzip
import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from .diversity import word_tokens
from .expressions import _PRECEDENCE, WORDS, Expr

OPERATORS = ("not", "and", "or")
FEATURES = ("depth", "length", *OPERATORS)  # the features the divergences compare, in the order of the result keys
LENGTH_BIN_WIDTH = 5  # word tokens per length bin: 0-4, 5-9, ...
LENGTH_CAP = 100  # the last length bin holds every length from LENGTH_CAP on
NGRAM_SIZES = (1, 2, 3, 4)
NUM_TOP_SAMPLES = 10
SYNTAX_ERROR = "syntax_error"  # the bin of a string that does not parse, for the depth and the operator counts
_ALPHABET_TOKENS = WORDS | {"(", ")"}
# whitespace that ends a Python expression: any but spaces, tabs and form feeds (re's \s is str.isspace)
_BREAKING_SPACE = re.compile(r"[^\S \t\f]")

# What a string contributes to the distributions, found once per distinct string: (depth, length, count of
# not, count of and, count of or); depth and the counts are None for a syntax error.
Facts = tuple


def facts(tree: Expr | None, tokens: list[str]) -> Facts:
    """``(depth, length, not count, and count, or count)`` of a string, from its tree (None: a syntax error) and
    its word tokens. The counts come from the tokens, which for a parsable string are exactly its tokens.

    >>> from .expressions import parse
    >>> facts(parse("not (True and not False)"), ["not", "(", "True", "and", "not", "False", ")"])
    (4, 7, 2, 1, 0)
    >>> facts(None, ["True", "or"])
    (None, 2, None, None, None)
    """
    if tree is None:
        return (None, len(tokens), None, None, None)
    return (tree.depth, len(tokens), *(tokens.count(op) for op in OPERATORS))


def depth_of_tokens(tokens: list[str]) -> int | None:
    """The depth of the tree ``parse`` builds from alphabet ``tokens`` (as :func:`~scl_hf.expressions.tokenize`
    returns them), None where ``parse`` finds a syntax error, computed without building the tree (a token outside
    the alphabet is a syntax error too).

    The same explicit-stack operator-precedence pass as ``parse``, step for step, on depths instead of nodes (a
    literal is 1, ``not`` and a binary operator add one level, parentheses none), so it accepts exactly the token
    lists ``parse`` accepts and is about six times faster: :func:`real_facts` measures a real set with it, where
    no tree is needed. Recursion-free.

    >>> depth_of_tokens(["not", "(", "True", "and", "False", ")"]), depth_of_tokens(["True", "True"])
    (3, None)
    """
    if not tokens:
        return None
    depths: list[int] = []  # the depth of each operand waiting for its operator
    operators: list[str] = []

    def reduce() -> None:
        if operators.pop() == "not":
            depths[-1] += 1
        else:
            right = depths.pop()
            depths[-1] = max(depths[-1], right) + 1

    expect_operand = True
    for tok in tokens:
        if expect_operand:
            if tok in ("True", "False"):
                depths.append(1)
                expect_operand = False
            elif tok in ("not", "("):
                operators.append(tok)
            else:
                return None
        elif tok in ("and", "or"):
            while operators and operators[-1] != "(" and _PRECEDENCE[operators[-1]] >= _PRECEDENCE[tok]:
                reduce()
            operators.append(tok)
            expect_operand = True
        elif tok == ")":
            while operators and operators[-1] != "(":
                reduce()
            if not operators:
                return None
            operators.pop()
        else:
            return None
    if expect_operand:
        return None
    while operators:
        if operators[-1] == "(":
            return None
        reduce()
    return depths[0]


def real_facts(text: str) -> Facts:
    """``facts(parse(text), word_tokens(text))``, without building the tree (see :func:`depth_of_tokens`).

    ``tokenize`` accepts a text exactly when its word tokens are alphabet tokens and its only whitespace is
    spaces, tabs and form feeds; then its tokens are the word tokens. Both checks run in C here.

    >>> real_facts("not (True or  False)"), real_facts("True or"), real_facts("True\\nor False")
    ((3, 6, 1, 0, 1), (None, 2, None, None, None), (None, 3, None, None, None))
    """
    tokens = word_tokens(text)
    alphabet = _ALPHABET_TOKENS.issuperset(tokens) and not _BREAKING_SPACE.search(text)
    depth = depth_of_tokens(tokens) if alphabet else None
    if depth is None:
        return (None, len(tokens), None, None, None)
    return (depth, len(tokens), *(tokens.count(op) for op in OPERATORS))


def length_bin(length: int) -> int:
    """The first length of the bin of ``length``: 0 for 0-4, 5 for 5-9, ..., ``LENGTH_CAP`` for all beyond.

    >>> [length_bin(n) for n in (0, 4, 5, 99, 100, 10**6)]
    [0, 0, 5, 95, 100, 100]
    """
    return min(length, LENGTH_CAP) // LENGTH_BIN_WIDTH * LENGTH_BIN_WIDTH


def histograms(profile: Mapping[Facts, int]) -> dict[str, Counter]:
    """``{feature: Counter(bin -> number of strings)}`` for each of ``FEATURES``, from ``{facts: count}``."""
    out = {name: Counter() for name in FEATURES}
    for (depth, length, *ops), count in profile.items():
        out["depth"][SYNTAX_ERROR if depth is None else depth] += count
        out["length"][length_bin(length)] += count
        for name, n in zip(OPERATORS, ops, strict=True):
            out[name][SYNTAX_ERROR if n is None else n] += count
    return out


def js_divergence(p: Mapping, q: Mapping) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms ``{bin: count}``, each normalized.

    >>> js_divergence({"a": 1}, {"a": 5}), js_divergence({"a": 1}, {"b": 1})
    (0.0, 1.0)
    >>> round(js_divergence({"a": 1, "b": 1}, {"a": 1}), 6)  # 3/2 - 3/4 log2(3)
    0.311278
    """
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total <= 0 or q_total <= 0:
        raise ValueError("js_divergence needs two non-empty histograms")
    total = 0.0
    for key in sorted(p.keys() | q.keys(), key=repr):  # a fixed order: the sum must not depend on string hashing
        a, b = p.get(key, 0) / p_total, q.get(key, 0) / q_total
        if a > 0:
            total += a * math.log2(2 * a / (a + b))
        if b > 0:
            total += b * math.log2(2 * b / (a + b))
    return min(max(total / 2, 0.0), 1.0)  # rounding may step a hair outside [0, 1]


def percentile90(lengths: Mapping[int, int]) -> int:
    """The nearest-rank 90th percentile of a multiset of lengths ``{length: count}``: ``l_k``, ``k = ceil(0.9 R)``.

    >>> percentile90({n: 1 for n in range(1, 11)}), percentile90({3: 1}), percentile90({1: 95, 7: 5})
    (9, 3, 1)
    """
    size = sum(lengths.values())
    rank = -(-9 * size // 10)  # ceil(0.9 R) in integers
    seen = 0
    for length in sorted(lengths):
        seen += lengths[length]
        if seen >= rank:
            return length
    raise ValueError("percentile90 needs at least one length")


def tail_coverage(samples: Mapping[Facts, int], real: Mapping[Facts, int]) -> dict[str, float | None]:
    """``{"depth": ..., "length": ...}``: share of ``samples`` in each of the real set's tail strata over the real
    share (see the module docstring); each argument is ``{facts: count}``.

    >>> real = {(2, 3, 1, 0, 0): 8, (4, 12, 1, 1, 1): 2}  # 20% of the real set has depth 4 and 12 tokens
    >>> tail_coverage({(2, 3, 1, 0, 0): 9, (5, 12, 2, 1, 1): 1}, real)  # 10% of the samples: depth 5, 12 tokens
    {'depth': 0.5, 'length': 0.5}
    """
    n, r = sum(samples.values()), sum(real.values())
    depths = [f[0] for f in real if f[0] is not None]
    out: dict[str, float | None] = {"depth": None, "length": None}
    if depths:
        deepest = max(depths)
        share = sum(c for f, c in samples.items() if f[0] is not None and f[0] >= deepest) / n
        out["depth"] = share / (sum(c for f, c in real.items() if f[0] == deepest) / r)
    lengths = Counter()
    for f, c in real.items():
        lengths[f[1]] += c
    threshold = percentile90(lengths)
    share = sum(c for f, c in samples.items() if f[1] >= threshold) / n
    out["length"] = share / (sum(c for length, c in lengths.items() if length >= threshold) / r)
    return out


def compare(samples: Mapping[Facts, int], real: Mapping[Facts, int]) -> dict[str, float | None]:
    """The values against the real set, as ``compute_metrics`` names them: ``jsd_<feature>`` for each of
    ``FEATURES``, then ``tail_coverage_depth`` and ``tail_coverage_length``."""
    ps, qs = histograms(samples), histograms(real)
    out: dict[str, float | None] = {f"jsd_{name}": js_divergence(ps[name], qs[name]) for name in FEATURES}
    out.update({f"tail_coverage_{k}": v for k, v in tail_coverage(samples, real).items()})
    return out


def distinct_n(tokens: Mapping[tuple[str, ...], int], sizes: Iterable[int] = NGRAM_SIZES) -> dict[int, float]:
    """``{n: distinct n-grams / n-grams}`` over samples given as ``{word-token tuple: count}``; 0 where there are none.

    The distinct sequences are numbered token by token (0 separates two sequences, so no n-gram spans two) and
    each n-gram is numbered by the rank of (its first n - 1 tokens' number, its last token): equal n-grams get
    equal numbers, and numbers stay below the number of tokens, so any input fits in 64 bits.

    >>> distinct_n({("True", "and", "True"): 2, ("True",): 1}, (1, 2, 3, 4))  # 1-grams: 7, of which 2 distinct
    {1: 0.2857142857142857, 2: 0.5, 3: 0.5, 4: 0.0}
    """
    sizes = sorted(set(sizes))
    vocab: dict[str, int] = {}
    ids: list[int] = []
    for seq in tokens:
        ids += [vocab.setdefault(tok, len(vocab) + 1) for tok in seq]
        ids.append(0)
    a = np.array(ids, dtype=np.int64)
    lengths = np.fromiter(map(len, tokens), np.int64, len(tokens))
    counts = np.fromiter(tokens.values(), np.int64, len(tokens))
    base = len(vocab) + 1
    key, clean = a, a != 0  # per start position: the n-gram's number, and whether it lies within one sequence
    out = {}
    for n in range(1, sizes[-1] + 1 if sizes else 1):
        if n > 1:
            m = max(len(a) - n + 1, 0)
            last = a[n - 1:n - 1 + m]
            clean = clean[:m] & (last != 0)
            key = np.unique(key[:m] * base + last, return_inverse=True)[1].reshape(-1)
        if n in sizes:
            total = int((np.maximum(lengths - n + 1, 0) * counts).sum())
            out[n] = len(np.unique(key[clean])) / total if total else 0.0
    return out


def compression_ratio(texts: Iterable[str]) -> float:
    """UTF-8 size of ``texts`` joined by newlines over its gzip size (level 9); 0.0 for an empty join.

    A lone surrogate (a Python string UTF-8 cannot encode) counts as its 3 bytes under ``surrogatepass``. The
    compressed stream is made with a zero timestamp, so the value depends on the texts alone.

    >>> compression_ratio(["True"] * 1000)  # 4,999 bytes, 51 compressed
    98.01960784313725
    """
    data = "\n".join(texts).encode("utf-8", "surrogatepass")
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)) if data else 0.0


def top_samples(counts: Mapping[str, int], k: int = NUM_TOP_SAMPLES) -> list[list]:
    """The ``k`` most frequent strings as ``[text, count]`` pairs: count descending, then text ascending.

    >>> top_samples({"True": 2, "False": 2, "not True": 3, "x": 1}, 3)
    [['not True', 3], ['False', 2], ['True', 2]]
    """
    return [[text, count] for text, count in heapq.nsmallest(k, counts.items(), key=lambda tc: (-tc[1], tc[0]))]
