"""Pairwise diversity, unique counts and novelty: hand-computed values, fast path == definition, sampling."""

import doctest
import itertools
import types
from collections import Counter
from unittest import mock

import pytest
from helpers import load_script
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

import scl_hf.diversity as dv
from scl_hf.diversity import (
    diversity,
    encode,
    estimate_diversity,
    novelty_rate,
    word_tokens,
)

naive_diversity = load_script("bench_metric").naive_diversity  # the definition, as a double loop over pairs


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("True and False", ["True", "and", "False"]),
        ("not(True)", ["not", "(", "True", ")"]),
        ("  ((x+1 ) ", ["(", "(", "x+1", ")"]),
        ("Tru)e", ["Tru", ")", "e"]),
        ("True\tand\nFalse\x0cor", ["True", "and", "False", "or"]),
        ("äö ü", ["äö", "ü"]),
        ("", []),
        (" \t ", []),
    ],
)
def test_word_tokens(text, tokens):
    assert word_tokens(text) == tokens


def test_encode_maps_each_token_to_one_character():
    assert encode(["True and True", "not(False)", "True"]) == ["\x00\x01\x00", "\x02\x03\x04\x05", "\x00"]
    assert encode(["ab c", ""], level="char") == ["ab c", ""]


# Hand-computed: every distance below is worked out in the comment next to it.
@pytest.mark.parametrize(
    ("texts", "level", "expected"),
    [
        # [T and F] [not F] [T or] [not F]: 2/3, 2/3, 2/3 (rows of the first), 1, 0, 1 -> 4 / 6
        (["True and False", "not False", "True or", "not False"], "token", 4 / 6),
        (["ab", "ab", "b"], "char", (0 + 1 / 2 + 1 / 2) / 3),
        (["True", "False"], "token", 1.0),  # one substitution over one token
        (["True", "False"], "char", 4 / 5),  # T->F, r->a, u->l, insert s: 4 edits, longer string 5
        (["True"] * 3 + ["False"] * 2, "token", 6 / 10),  # 6 of 10 pairs differ
        (["True"] * 3 + ["False"] * 2, "char", 6 * 0.8 / 10),
        (["True and True", "True  and True"], "token", 0.0),  # same tokens
        (["True and True", "True  and True"], "char", 1 / 14),  # one inserted space, longer string 14
        (["not(True)", "not True"], "token", 2 / 4),  # delete ( and )
        (["not(True)", "not True"], "char", 2 / 9),  # ( -> space, delete )
        (["ä ö", "ä"], "token", 1 / 2),
        (["", ""], "token", 0.0),  # 0 / 0 = 0
        (["", "True"], "char", 1.0),
        (["True"], "token", 0.0),  # no pairs
        ([], "char", 0.0),
    ],
)
def test_hand_computed_values(texts, level, expected):
    assert diversity(texts, level) == pytest.approx(expected, rel=1e-15, abs=1e-15)
    assert naive_diversity(texts, level) == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_all_identical_is_zero_and_collapsed_set_is_exact():
    assert diversity(["not (True or False)"] * 1000) == 0.0
    # 20 distinct strings, 500 copies each: every distinct pair appears 500 * 500 times
    pool = [f"{'not ' * k}True" for k in range(20)]
    texts = pool * 500
    expected = sum(500 * 500 * abs(a - b) / (max(a, b) + 1) for a in range(20) for b in range(a + 1, 20))
    assert diversity(texts) == pytest.approx(expected / (10_000 * 9_999 / 2), rel=1e-13)


words = st.sampled_from(["True", "False", "and", "or", "not", "(", ")", " ", "  ", "x", "ä", "🙂", "Tru", "\t"])
strings = st.one_of(
    st.lists(words, max_size=12).map("".join),
    st.text(alphabet="Tru eF()ä", max_size=12),
)
# a small pool of strings sampled with replacement: plenty of duplicates
samples = st.lists(strings, min_size=1, max_size=6).flatmap(lambda pool: st.lists(st.sampled_from(pool), max_size=30))


@pytest.mark.parametrize("block", [1, 5, 1 << 22])
@pytest.mark.parametrize("level", ["token", "char"])
@settings(max_examples=150, deadline=None)
@given(texts=samples)
def test_fast_path_equals_definition(block, level, texts):
    with mock.patch.object(dv, "_BLOCK_ELEMENTS", block):  # one row per block up to one block for all
        assert diversity(texts, level) == pytest.approx(naive_diversity(texts, level), rel=1e-12, abs=1e-14)


class Scored:
    """Stands in for rapidfuzz's Levenshtein in scl_hf.diversity and records every pair it is asked to score.

    rapidfuzz's cdist and cpdist call a Python scorer once per pair, so ``pairs`` lists exactly the
    distances the code asks for, each as (query, choice).
    """

    def __init__(self):
        self.pairs = []
        self._patch = mock.patch.object(dv, "Levenshtein", types.SimpleNamespace(
            distance=self.distance, normalized_distance=self.normalized_distance))

    def distance(self, a, b, **kwargs):
        self.pairs.append((a, b))
        return Levenshtein.distance(a, b)

    def normalized_distance(self, a, b, **kwargs):
        self.pairs.append((a, b))
        return Levenshtein.normalized_distance(a, b)

    def __enter__(self):
        self._patch.start()
        return self

    def __exit__(self, *exc):
        self._patch.stop()


def distinct_sequences(texts, level):
    return {tuple(seq) if isinstance(seq, list) else seq for seq in encode(list(texts), level)}


@pytest.mark.parametrize(("block", "leaf"), [(1, 1), (5, 2), (7, 3), (1 << 22, 16), (1 << 22, 1000)])
@pytest.mark.parametrize("level", ["token", "char"])
@settings(max_examples=40, deadline=None)
@given(texts=samples)
def test_each_pair_of_distinct_sequences_is_scored_once_and_none_with_itself(block, leaf, level, texts):
    with mock.patch.object(dv, "_BLOCK_ELEMENTS", block), mock.patch.object(dv, "_LEAF", leaf), Scored() as scored:
        value = diversity(texts, level)
    assert all(a != b for a, b in scored.pairs)  # never a sequence with itself
    unordered = Counter(frozenset(pair) for pair in scored.pairs)
    expected = {frozenset(pair) for pair in itertools.combinations(distinct_sequences(texts, level), 2)}
    assert set(unordered) == expected and set(unordered.values()) <= {1}  # every pair of distinct ones, once
    assert value == pytest.approx(naive_diversity(texts, level), rel=1e-12, abs=1e-14)


def test_duplicates_and_spacing_variants_cost_no_distance():
    texts = ["not (True)"] * 50 + ["not ( True )"] * 50 + ["not  (True)"]  # one token sequence, three strings
    with Scored() as scored:
        assert diversity(texts) == 0.0
        assert diversity(texts + ["False"] * 3) == pytest.approx(101 * 3 * 1.0 / (104 * 103 / 2), rel=1e-15)
    assert len(scored.pairs) == 1  # only the sequence of not ( True ) against that of False


@pytest.mark.parametrize("level", ["token", "char"])
def test_a_long_string_next_to_a_short_one_costs_one_linear_distance(level):
    small = "not " * 2_000 + "True"  # 2,001 tokens ending in True: 2,000 tokens or len - 4 characters from "True"
    short_to_small = 2_000 / 2_001 if level == "token" else (len(small) - 4) / len(small)
    with Scored() as scored:
        assert diversity([small, "True", small], level) == pytest.approx(2 / 3 * short_to_small, rel=1e-13)
    assert len(scored.pairs) == 1  # the two copies of small are one sequence, never compared with itself
    # with rapidfuzz's own scorer: 3 MB (750,001 tokens) compared with itself would be minutes of quadratic work,
    # against "True" it is one distance linear in its length
    long = "not " * 750_000 + "True"
    expected = 750_000 / 750_001 if level == "token" else (len(long) - 4) / len(long)
    assert diversity([long, "True"], level) == pytest.approx(expected, rel=1e-13)


def test_estimate_scores_no_pair_of_equal_sequences():
    # "True" and " True" are one token sequence; any two distinct sequences here are at distance 1 (one token),
    # so the estimate is the share of drawn pairs whose sequences differ: exactly the pairs that get scored
    texts = ["True", " True", "False", "not"] * 30
    expected = estimate_diversity(texts, 5000, seed=7)
    with Scored() as scored:
        assert estimate_diversity(texts, 5000, seed=7) == expected  # the same draws, the same numbers
    assert all(a != b for a, b in scored.pairs)
    assert len(scored.pairs) == round(expected[0] * 5000) > 0
    with Scored() as scored:
        assert estimate_diversity(["not True"] * 20 + ["not  True"] * 20, 1000) == (0.0, 0.0)
        assert estimate_diversity(["not True"] * 40, 1000, level="char") == (0.0, 0.0)
    assert scored.pairs == []


def test_lists_of_token_numbers_when_code_points_run_out():
    texts = ["a b c", "c b a", "a b c", "d e", "", "e a"]
    with mock.patch.object(dv, "_NUM_CODE_POINTS", 2):
        assert encode(["a b", "b c"]) == [[0, 1], [1, 2]]
        assert diversity(texts) == pytest.approx(naive_diversity(texts), rel=1e-15)
    assert diversity(texts) == pytest.approx(naive_diversity(texts), rel=1e-15)


@pytest.mark.parametrize("tokens", [300, 40_000])  # int16 and int32 distance matrices
def test_long_strings(tokens):
    deep = "(" * (tokens // 2) + "True" + ")" * (tokens // 2)  # tokens + 1 word tokens
    near = deep[:-1] + "x"  # last ")" replaced: distance 1
    texts = [deep, "True", near, deep]
    # deep-True: tokens/2 + tokens/2 deletions; deep-near: 1; True-near: all but "True"
    n = tokens + 1
    expected = (tokens / n + 1 / n + 0.0 + tokens / n + 1 / n + tokens / n) / 6
    assert diversity(texts) == pytest.approx(expected, rel=1e-13)


def test_estimate_is_exact_when_every_pair_has_the_same_distance():
    assert estimate_diversity(["True", "False", "not", "and"], 500) == (1.0, 0.0)
    assert estimate_diversity(["True"] * 50, 500, level="char") == (0.0, 0.0)
    assert estimate_diversity(["True"], 10) == (0.0, 0.0)


def test_estimate_is_seeded_and_close_to_the_exact_value():
    texts = [f"{'not ' * (k % 7)}True and {'False' if k % 3 else 'True'}" for k in range(300)]
    exact = diversity(texts)
    first = estimate_diversity(texts, 20_000, seed=3)
    assert first == estimate_diversity(texts, 20_000, seed=3)
    assert first != estimate_diversity(texts, 20_000, seed=4)
    mean, stderr = first
    assert 0.0 < stderr < 0.01
    assert abs(mean - exact) < 5 * stderr
    # more pairs than one chunk: the chunks together give the same kind of estimate
    with mock.patch.object(dv, "_SAMPLE_CHUNK", 777):
        chunked_mean, chunked_stderr = estimate_diversity(texts, 20_000, seed=3)
    assert abs(chunked_mean - exact) < 5 * chunked_stderr


def test_estimate_draws_pairs_of_distinct_positions_uniformly():
    # "a" vs "b": distance 1, so the estimate counts how often the two drawn positions hold different letters;
    # positions must differ (i != j), and with 2 a's and 1 b exactly 2 of the 3 pairs differ.
    mean, stderr = estimate_diversity(["a", "a", "b"], 200_000, level="char", seed=0)
    assert abs(mean - 2 / 3) < 5 * stderr


@pytest.mark.parametrize("num_pairs", [1, 0, -5, 2.0, True, None])
def test_estimate_rejects_bad_num_pairs(num_pairs):
    with pytest.raises(ValueError, match="num_pairs must be an integer >= 2"):
        estimate_diversity(["True", "False"], num_pairs)


@pytest.mark.parametrize("fn", [diversity, encode])
def test_unknown_level(fn):
    with pytest.raises(ValueError, match=r"level must be one of \('token', 'char'\), got 'word'"):
        fn(["True"], level="word")


def test_novelty():
    assert novelty_rate(["True", "True", "False", "not True"], ["True", "False"]) == 0.25
    assert novelty_rate(["True"], []) == 1.0
    with pytest.raises(ValueError, match="predictions must hold at least one string"):
        novelty_rate([], ["True"])


def test_doctests():
    result = doctest.testmod(dv)
    assert result.attempted >= 9
    assert result.failed == 0
