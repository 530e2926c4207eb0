"""Selection from a pool: novelty against its definition written as a double loop, its stratified variant against
D0's strata, likelihood, the random null."""

import doctest
import math
import random
from collections import Counter
from fractions import Fraction

import pytest
from rapidfuzz.distance import Levenshtein

import scl_hf.selection
from scl_hf.diversity import word_tokens
from scl_hf.expressions import GeneratorConfig, parse, random_tree, to_text
from scl_hf.selection import (
    length_edges,
    quotas,
    select_likely,
    select_novel,
    select_novel_stratified,
    select_random,
    strata,
)


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


# a hand D0: lengths 1, 1, 2, 3, 3, 5, 7 word tokens, so the tertiles fall on rows (numpy's positions 2 and 4)
HAND_D0 = ["True", "False", "not True", "True or False", "not not True", "not (not True)", "True and (False or True)"]
# D0 in thirds by length (1, 2, 3 tokens), and long expressions that farthest points prefer
THIRDS_D0 = ["True", "False", "not True", "not False", "True or False", "False and True"]
LONG = ["not (True and False) or not (False or True)", "(True or False) and (not True or not not False)",
        "not not (False and (True or not False))", "True and not (False or (True and not True))",
        "False or (not True and (False or not False))", "not (not (True or False) and False) or True"]


def test_strata_are_depth_and_the_tertile_of_the_length_in_word_tokens():
    assert length_edges(HAND_D0) == (2.0, 3.0)
    assert strata(HAND_D0, (2.0, 3.0)) == [(1, 0), (1, 0), (2, 0), (2, 1), (3, 1), (3, 2), (3, 2)]
    # a length equal to an edge goes to the lower bin; unparsable text has depth -1 and still a length bin
    assert strata(["True and", "True and True", "and or not (", "not not not True"], (2.0, 3.0)) == [
        (-1, 0), (2, 1), (-1, 2), (4, 2)]
    # tied tertiles: the middle bin is empty, lengths fall below or above
    tied = ["True", "True or False", "True or False", "False or True", "True and True", "not not True", "(True)"]
    assert length_edges(tied) == (3.0, 3.0)
    assert [b for _, b in strata(["not True", "True or False", "not not not True"], (3.0, 3.0))] == [0, 0, 2]


def test_quotas_follow_d0_shares_by_largest_remainder():
    hand = strata(HAND_D0, length_edges(HAND_D0))  # shares 2/7, 1/7, 1/7, 1/7, 2/7
    # k = 4: floors 1, 0, 0, 0, 1; remainders 1, 4, 4, 4, 1 (sevenths): the two left go to the first tied strata
    assert quotas(hand, 4) == {(1, 0): 1, (2, 0): 1, (2, 1): 1, (3, 2): 1}
    assert quotas(hand, 7) == dict(Counter(hand)) and quotas(hand, 14) == {s: 2 * c for s, c in Counter(hand).items()}
    assert quotas(hand, 1) == {(1, 0): 1}  # remainders 2, 1, 1, 1, 2: the tie between the largest to the first
    assert all(sum(quotas(hand, k).values()) == k for k in range(50))
    assert quotas([*hand, (-1, 0), (-1, 2)], 7) == quotas(hand, 7)  # unparsable rows of D0 count for nothing
    assert quotas([(-1, 0)], 3) == {} and quotas([], 3) == {}


def test_stratified_novelty_keeps_d0s_length_mix_where_plain_novelty_drifts_long():
    pool = ["True", "not True", "True", "False", "not False", "True or False", *LONG, "not True", "False and True"]
    edges = length_edges(THIRDS_D0)
    assert edges == pytest.approx((5 / 3, 7 / 3)) and quotas(strata(THIRDS_D0, edges), 6) == {
        (1, 0): 2, (2, 1): 2, (2, 2): 2}

    def length_bins(kept):
        return Counter(b for _, b in strata([pool[i] for i in kept], edges))

    plain = select_novel(pool, 6)
    assert plain == [0, 3, 5, 7, 9, 11] and length_bins(plain) == {0: 2, 2: 4}  # three of LONG, no 2-token one
    stratified = select_novel_stratified(pool, 6, THIRDS_D0)
    assert stratified == [0, 1, 3, 4, 5, 13] and length_bins(stratified) == {0: 2, 1: 2, 2: 2}
    assert select_novel_stratified(pool, 6, THIRDS_D0) == stratified  # deterministic
    assert select_novel_stratified(pool, 20, THIRDS_D0) == list(range(len(pool)))


def test_short_strata_are_filled_by_novelty_against_the_joined_and_the_kept():
    real = ["True", "not not True"]  # strata (1, 0) and (3, 2), one sample each of k = 2
    # no depth-3 sample: "True" fills its stratum; the fill, over the rest, takes the one farthest from "True",
    # the unparsable "or and" (1 away; "not True" is 0.5 away, "True or False" 2/3)
    assert select_novel_stratified(["True", "not True", "True or False", "or and"], 2, real) == [0, 3]
    assert select_novel_stratified(["True", "not True", "True or False"], 2, real) == [0, 2]
    # the joined rows steer the choice inside a stratum as they do for plain novelty
    assert select_novel_stratified(["True", "False", "not not True"], 2, real, joined=["True"]) == [1, 2]
    assert select_novel_stratified(["True", "False"], 2, real) == [0, 1]  # k >= the pool: all of it
    # a D0 with no parsable row sets no quota: everything is fill, which is plain novelty
    assert select_novel_stratified(["True", "False", "x"], 2, ["x"]) == select_novel(["True", "False", "x"], 2)


def naive_stratified(pool, k, real, joined=()):
    """The stratified selection written out with the naive farthest-point sampling and fractions for the quotas."""
    if k >= len(pool):
        return list(range(len(pool)))
    edges = length_edges(real)
    counts = Counter(s for s in strata(real, edges) if s[0] >= 0)
    exact = {s: Fraction(k * c, sum(counts.values())) for s, c in sorted(counts.items())}
    quota = {s: math.floor(q) for s, q in exact.items()}
    for s in sorted(exact, key=lambda s: (quota[s] - exact[s], s))[:k - sum(quota.values())]:
        quota[s] += 1
    pool_strata = strata(pool, edges)
    kept = []
    for s, q in quota.items():
        members = [i for i in range(len(pool)) if pool_strata[i] == s]
        kept += [members[j] for j in naive_novel([pool[i] for i in members], q, joined)]
    rest = [i for i in range(len(pool)) if i not in kept]
    kept += [rest[j] for j in naive_novel([pool[i] for i in rest], k - len(kept), [*joined, *(pool[i] for i in kept)])]
    return sorted(kept)


@pytest.mark.parametrize("seed", range(4))
def test_stratified_novelty_matches_its_definition_written_out(seed):
    rng = random.Random(seed)
    pool, real = pool_of(rng, 40), pool_of(rng, 30, repeats=0.0) + ["True and"]
    joined = pool_of(rng, 5, repeats=0.0) if seed % 2 else []
    assert any(parse(t) is None for t in real)
    for k in (1, 7, 25, 39):
        assert select_novel_stratified(pool, k, real, joined) == naive_stratified(pool, k, real, joined), k


def test_doctests():
    result = doctest.testmod(scl_hf.selection)
    assert result.attempted >= 7 and result.failed == 0
