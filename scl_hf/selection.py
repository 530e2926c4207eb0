"""Selection with extra compute: keep ``k`` of a larger pool of curated samples (``select`` with ``selection_pool``).

Each function returns the pool indices it keeps, ascending (rows keep the order they were drawn in):

- :func:`select_novel` (``novelty``), a quality-diversity selection: greedy farthest-point sampling under the
  metric's own distance, the normalized token edit distance ``d(x, y) = lev(x, y) / max(|x|, |y|)``
  (``scl_hf.diversity``). With ``K`` the samples kept so far and ``J`` the rows the samples join, every step keeps
  the sample ``x`` of the pool with the largest ``nearest(x) = min_{y in K ∪ J} d(x, y)`` (1, the largest possible
  distance, while ``K ∪ J`` is empty; ties go to the earlier sample). Only distinct sequences compete: a copy of a
  kept sample is 0 away from it, so copies are kept only once every distinct sample is, in pool order.
  ``nearest`` is computed once against ``J`` and then lowered after each step by one batched rapidfuzz call
  against the sample just kept (``min(nearest, d(x, kept))``), so keeping ``k`` of ``P`` costs
  ``P·|J| + k·P`` distances, not ``k²·P``; kept samples leave the arrays now and then, so the later steps
  compare fewer.
- :func:`select_novel_stratified` (``novelty_stratified``), the same farthest-point sampling inside quotas that
  follow D0, because farthest points drift to long samples (a long string is far from everything: on the CPU grid
  ``verified_select_novelty`` reached a length JSD of 0.74 from D0). A sample's stratum is (depth, length bin)
  (:func:`strata`): its tree depth (-1 when it does not parse), and its length in word tokens (the unit of the
  length metric, :func:`scl_hf.diversity.word_tokens`) against D0's tertiles ``e1, e2`` (:func:`length_edges`):
  bin 0 for ``l <= e1``, 1 for ``e1 < l <= e2``, 2 for ``l > e2``, so a length equal to an edge goes to the lower
  bin, and bin 1 is empty when the edges coincide. Stratum s gets the quota ``k·c_s/R`` rounded by largest remainder
  (:func:`quotas`; ``c_s`` of D0's R parsable rows are in s): each the floor, then one more to the largest remainders,
  ties to the smaller stratum, so the quotas sum to exactly ``k``; depth -1 gets 0. Each stratum keeps
  ``min(quota, available)`` by :func:`select_novel` against the same joined rows, and what short strata leave
  unfilled goes to :func:`select_novel` over every sample not yet kept, against the joined rows and the kept ones.
- :func:`select_likely` (``likelihood``), best-of-n by the model's own score: the ``k`` samples with the highest
  log-probability per token under the model that drew them, at temperature 1 (ties to the earlier sample).
- :func:`select_random` (``random``), the matched null: ``k`` of the same pool uniformly at random, so that an
  effect of the other two is not just the effect of drawing more.

Only rapidfuzz, numpy, the standard library and ``scl_hf``'s expressions and diversity are imported here.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from scl_hf.diversity import encode, word_tokens
from scl_hf.expressions import depth

SELECTIONS = ("novelty", "novelty_stratified", "likelihood", "random")
_BLOCK_ELEMENTS = 1 << 22  # distances per cdist call against the joined rows (32 MiB as float64)


def _key(seq):
    """A sequence of :func:`scl_hf.diversity.encode` as a dict key (a list of token numbers becomes a tuple)."""
    return seq if isinstance(seq, str) else tuple(seq)


def _nearest_to(seqs: list, others: list, workers: int) -> np.ndarray:
    """``min_{y in others} d(x, y)`` for each ``x`` of ``seqs`` (1 where ``others`` is empty)."""
    nearest = np.ones(len(seqs))
    if not others or not seqs:
        return nearest
    step = max(1, _BLOCK_ELEMENTS // len(seqs))
    for start in range(0, len(others), step):
        block = process.cdist(seqs, others[start:start + step], scorer=Levenshtein.normalized_distance,
                              dtype=np.float64, workers=workers)
        np.minimum(nearest, block.min(axis=1), out=nearest)
    return nearest


def select_novel(pool: Sequence[str], k: int, joined: Sequence[str] = (), *, workers: int = 1) -> list[int]:
    """The ``k`` samples of ``pool`` that greedy farthest-point sampling keeps (module docstring), as indices.

    Args:
        pool: the candidate samples, in the order they were drawn.
        k: how many to keep; all of them when ``k >= len(pool)``.
        joined: the rows the kept samples will join, which a kept sample should be far from too.
        workers: rapidfuzz threads (-1: every core).

    >>> select_novel(["True", "True", "not True", "True and True"], 2)  # "True", then the farthest from it
    [0, 3]
    >>> select_novel(["True", "True", "not True"], 2, joined=["True"])
    [0, 2]
    """
    if k >= len(pool):
        return list(range(len(pool)))
    seqs = encode([*pool, *joined])  # one vocabulary for both, so equal tokens are equal characters
    first: dict = {}
    for i, seq in enumerate(seqs[:len(pool)]):
        first.setdefault(_key(seq), i)
    alive = np.fromiter(first.values(), dtype=np.int64)  # pool index of each distinct sequence still competing
    alive_seqs = [seqs[i] for i in alive]
    nearest = _nearest_to(alive_seqs, list(dict.fromkeys(map(_key, seqs[len(pool):]))), workers)
    kept: list[int] = []
    removed = 0  # kept sequences still in the arrays, their nearest set to -1
    while len(kept) < k:
        best = int(np.argmax(nearest))
        if nearest[best] < 0:  # every distinct sequence is kept
            break
        kept.append(int(alive[best]))
        if len(kept) == k:
            break
        distances = process.cdist(alive_seqs, [alive_seqs[best]], scorer=Levenshtein.normalized_distance,
                                  dtype=np.float64, workers=workers)[:, 0]
        np.minimum(nearest, distances, out=nearest)  # the kept stay at -1
        nearest[best] = -1.0
        removed += 1
        if removed * 8 > len(alive):  # compact: the kept leave the arrays
            live = nearest >= 0
            alive, nearest = alive[live], nearest[live]
            alive_seqs = [seq for seq, keep in zip(alive_seqs, live.tolist(), strict=True) if keep]
            removed = 0
            if not len(alive):
                break
    if len(kept) < k:  # copies of kept samples, in pool order
        taken = set(kept)
        kept += [i for i in range(len(pool)) if i not in taken][:k - len(kept)]
    return sorted(kept)


def length_edges(real: Sequence[str]) -> tuple[float, float]:
    """The tertiles of the lengths of ``real`` in word tokens, ``numpy.quantile`` at 1/3 and 2/3 (linear).

    >>> length_edges(["True", "not True", "not not True", "True and True"])  # lengths 1, 2, 3, 3
    (2.0, 3.0)
    """
    e1, e2 = np.quantile([len(word_tokens(text)) for text in real], [1 / 3, 2 / 3])
    return float(e1), float(e2)


def strata(texts: Sequence[str], edges: tuple[float, float]) -> list[tuple[int, int]]:
    """``(depth, length bin)`` of each of ``texts`` (module docstring); depth -1 for a text that does not parse.

    >>> strata(["True", "not True", "not not True", "True and", "True and True"], (2.0, 3.0))
    [(1, 0), (2, 0), (3, 1), (-1, 0), (2, 1)]
    """
    out = []
    for text in texts:
        tree_depth = depth(text)
        # searchsorted "left": a length equal to an edge goes to the lower bin
        out.append((-1 if tree_depth is None else tree_depth, int(np.searchsorted(edges, len(word_tokens(text))))))
    return out


def quotas(real_strata: Sequence[tuple[int, int]], k: int) -> dict[tuple[int, int], int]:
    """How many of ``k`` samples each stratum of D0 gets: ``k`` times its share of D0's parsable rows, by largest
    remainder (ties: the smaller stratum), so the quotas sum to ``k``; strata with a quota of 0 are left out.

    >>> quotas([(1, 0), (1, 0), (2, 1), (3, 2), (-1, 0)], 2)  # k·share 1, 0.5, 0.5: the one left to the first 0.5
    {(1, 0): 1, (2, 1): 1}
    """
    counts = Counter(s for s in real_strata if s[0] >= 0)
    total = sum(counts.values())
    if not total:
        return {}
    floors = {s: k * c // total for s, c in sorted(counts.items())}
    by_remainder = sorted(floors, key=lambda s: (-(k * counts[s] % total), s))
    for s in by_remainder[:k - sum(floors.values())]:
        floors[s] += 1
    return {s: q for s, q in floors.items() if q}


def select_novel_stratified(pool: Sequence[str], k: int, real: Sequence[str], joined: Sequence[str] = (), *,
                            workers: int = 1) -> list[int]:
    """The ``k`` samples of ``pool`` kept by farthest-point sampling inside D0's strata (module docstring).

    Args:
        pool: the candidate samples, in the order they were drawn.
        k: how many to keep; all of them when ``k >= len(pool)``.
        real: D0's texts, whose strata set the quotas and whose tertiles the length bins.
        joined: the rows the kept samples will join, as for :func:`select_novel`.
        workers: rapidfuzz threads (-1: every core).

    >>> select_novel_stratified(["not not True", "True", "True and (True or True)", "False"], 2,
    ...                         real=["True", "not not True"])  # D0: half depth 1, half depth 3
    [0, 1]
    """
    if k >= len(pool):
        return list(range(len(pool)))
    edges = length_edges(real)
    pool_strata = strata(pool, edges)
    kept: list[int] = []
    for stratum, quota in quotas(strata(real, edges), k).items():
        members = [i for i, s in enumerate(pool_strata) if s == stratum]
        kept += [members[j] for j in select_novel([pool[i] for i in members], quota, joined, workers=workers)]
    if len(kept) < k:  # short strata: the rest from every sample not yet kept, far from the kept ones too
        taken = set(kept)
        rest = [i for i in range(len(pool)) if i not in taken]
        fill = select_novel([pool[i] for i in rest], k - len(kept), [*joined, *(pool[i] for i in kept)],
                            workers=workers)
        kept += [rest[j] for j in fill]
    return sorted(kept)


def select_likely(scores: Sequence[float], k: int) -> list[int]:
    """The indices of the ``k`` highest ``scores`` (ties: the earlier index), ascending.

    >>> select_likely([-0.5, -0.1, -0.9, -0.1], 2)
    [1, 3]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


def select_random(n: int, k: int, seed: int) -> list[int]:
    """``k`` of ``range(n)`` uniformly at random without replacement (``random.Random(seed)``), ascending."""
    if k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))
