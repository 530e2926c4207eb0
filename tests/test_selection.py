"""Selection from a pool: novelty against its definition written as a double loop, likelihood, the random null."""

import random

import pytest
from rapidfuzz.distance import Levenshtein

from scl_hf.diversity import word_tokens
from scl_hf.expressions import GeneratorConfig, random_tree, to_text
from scl_hf.selection import select_likely, select_novel, select_random


def distance(a: str, b: str) -> float:
    return Levenshtein.normalized_distance(word_tokens(a), word_tokens(b))


def naive_novel(pool, k, joined=()):
    """Greedy farthest-point sampling written out: distinct sequences compete, ties go to the earlier one."""
    distinct = []
    for i, text in enumerate(pool):
        if all(word_tokens(text) != word_tokens(pool[j]) for j in distinct):
            distinct.append(i)
    kept = []
    while len(kept) < min(k, len(distinct)):
        def nearest(i):
            others = [pool[j] for j in kept] + list(joined)
            return min((distance(pool[i], o) for o in others), default=1.0)
        candidates = [i for i in distinct if i not in kept]
        kept.append(max(candidates, key=lambda i: (nearest(i), -i)))
    kept += [i for i in range(len(pool)) if i not in kept][:k - len(kept)]
    return sorted(kept)


def pool_of(rng, n, repeats=0.3):
    texts = []
    for _ in range(n):
        if texts and rng.random() < repeats:
            texts.append(rng.choice(texts))
        else:
            texts.append(to_text(random_tree(rng, GeneratorConfig(max_depth=4))))
    return texts


@pytest.mark.parametrize("seed", range(6))
def test_novelty_is_greedy_farthest_point_sampling(seed):
    rng = random.Random(seed)
    pool = pool_of(rng, 40)
    joined = pool_of(rng, 5, repeats=0.0) if seed % 2 else []
    for k in (1, 7, 25, 39):
        assert select_novel(pool, k, joined) == naive_novel(pool, k, joined), k


def test_novelty_keeps_copies_last_and_everything_when_asked_for_more():
    pool = ["True", "True", "False", "True", "not True"]
    assert select_novel(pool, 3) == [0, 2, 4]  # the three distinct ones
    assert select_novel(pool, 4) == [0, 1, 2, 4]  # then the first copy
    assert select_novel(pool, 9) == [0, 1, 2, 3, 4]
    assert select_novel(["True", "True"], 1, joined=["True"]) == [0]  # all 0 away from the joined: the first
    assert select_novel(["", "x", ""], 2) == [0, 1]  # empty and garbage strings are samples too


def test_novelty_spreads_the_kept_set_wider_than_a_random_subset():
    """Farthest-point sampling raises the smallest distance between kept samples (it may lower the mean one:
    on this pool it keeps many short expressions, which are all far from each other but near in length)."""
    pool = pool_of(random.Random(3), 400, repeats=0.5)

    def closest_pair(texts):
        return min(distance(a, b) for i, a in enumerate(texts) for b in texts[i + 1:])

    novel = [pool[i] for i in select_novel(pool, 100)]
    null = [pool[i] for i in select_random(len(pool), 100, seed=0)]
    assert len(set(novel)) == 100 and len(set(null)) < 100
    assert closest_pair(novel) > closest_pair(null) == 0.0
    assert closest_pair(novel) >= closest_pair(sorted(set(null)))


def test_likelihood_keeps_the_highest_scores_and_random_is_seeded():
    assert select_likely([-1.0, -0.2, -3.0, -0.2, -0.5], 3) == [1, 3, 4]
    assert select_likely([-1.0], 3) == [0]
    a, b = select_random(100, 10, seed=4), select_random(100, 10, seed=4)
    assert a == b == sorted(set(a)) and len(a) == 10 and a != select_random(100, 10, seed=5)
    assert select_random(3, 5, seed=0) == [0, 1, 2]
