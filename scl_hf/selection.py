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
- :func:`select_likely` (``likelihood``), best-of-n by the model's own score: the ``k`` samples with the highest
  log-probability per token under the model that drew them, at temperature 1 (ties to the earlier sample).
- :func:`select_random` (``random``), the matched null: ``k`` of the same pool uniformly at random, so that an
  effect of the other two is not just the effect of drawing more.

Only rapidfuzz, numpy and the standard library are imported here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from scl_hf.diversity import encode

SELECTIONS = ("novelty", "likelihood", "random")
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
