"""The metric: compute_metrics values and errors, the evaluate module folder, the `scl-hf metric` command."""

import doctest
import gzip
import json
import math
import os
import runpy
import subprocess
import sys
import types
from unittest import mock

import pytest
import yaml
from helpers import load_script
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

import scl_hf.diversity
import scl_hf.measures
import scl_hf.metrics
from scl_hf.cli import main
from scl_hf.distribution import js_divergence, length_bin
from scl_hf.diversity import word_tokens
from scl_hf.expressions import canonical_form, classify, depth, parse, shape_form
from scl_hf.metrics import compute_metrics

naive_diversity = load_script("bench_metric").naive_diversity  # the definition, as a double loop over pairs

FOLDER = scl_hf.metrics.METRIC_DIR
METRICS_DIR = FOLDER.parent
KEYS = ["num_samples", "syntax_error_rate", "false_rate", "true_rate", "diversity", "num_unique", "unique_rate",
        "mean_length", "max_length", "mean_depth"]
# always there, after KEYS and the optional novelty_rate and diversity_stderr; top_samples always comes last
MORE_KEYS = ["distinct_1", "distinct_2", "distinct_3", "distinct_4", "compression_ratio", "canonical_unique_rate",
             "shape_unique_rate"]
REAL_KEYS = ["jsd_depth", "jsd_length", "jsd_not", "jsd_and", "jsd_or", "tail_coverage_depth", "tail_coverage_length"]

# false, true, syntax error, true, syntax error (empty), false (depth 3)
SAMPLES = ["True and False", "not False", "True or", "not False", "", "not (True or False)"]
# Token sequences A=[T and F] B=[not F] C=[T or] B E=[] G=[not ( T or F )]. Distances over the 15 pairs:
# A-B 2/3, A-C 2/3, A-B 2/3, A-E 1, A-G 4/6 (A is no subsequence of G: 3 insertions + and->or),
# B-C 1, B-B 0, B-E 1, B-G 4/6, C-B 1, C-E 1, C-G 4/6, B-E 1, B-G 4/6, E-G 1: 7 * 2/3 + 7 = 35/3 over 15 pairs.
EXPECTED = {
    "num_samples": 6,
    "syntax_error_rate": 2 / 6,
    "false_rate": 2 / 6,
    "true_rate": 2 / 6,
    "diversity": 35 / 45,
    "num_unique": 5,
    "unique_rate": 5 / 6,
    "mean_length": 15 / 6,  # 3 + 2 + 2 + 2 + 0 + 6 word tokens
    "max_length": 6,
    "mean_depth": 9 / 4,  # 2, 2, 2, 3 over the four parsable samples
    "distinct_1": 7 / 15,  # True and False not or ( ): 7 distinct of 15 tokens
    # 2-grams: A 2, B 1 (twice), C 1, G 5 = 10; "True or" is in C and G, so 8 distinct
    "distinct_2": 8 / 10,
    "distinct_3": 5 / 5,  # A 1, G 4, all distinct
    "distinct_4": 3 / 3,  # G 3
    # "True and False\nnot False\nTrue or\nnot False\n\nnot (True or False)": 63 bytes
    "compression_ratio": 63 / len(gzip.compress("\n".join(SAMPLES).encode(), compresslevel=9, mtime=0)),
    # canonical forms of A, B, B, G: "True and False", "not False", "not (True or False)"; shapes alike
    "canonical_unique_rate": 3 / 4,
    "shape_unique_rate": 3 / 4,
}
TOP = [["not False", 2], ["", 1], ["True and False", 1], ["True or", 1], ["not (True or False)", 1]]

# Against REAL: depth P = {2: 3/6, 3: 1/6, error: 2/6}, Q = {1: 1/2, 2: 1/2}; length bins P = {0-4: 5/6, 5-9: 1/6},
# Q = {0-4: 1}; not P = {0: 1/6, 1: 3/6, error: 2/6}, Q = {0: 1/2, 1: 1/2}; and, or P = {0: 3/6, 1: 1/6, error:
# 2/6}, Q = {0: 1}. Each JSD is 1/2 sum_b [p log2(2p / (p + q)) + q log2(2q / (p + q))].
REAL = ["True", "not False"]
EXPECTED_REAL = {
    "jsd_depth": (1 / 2 + 1 / 6 + 2 / 6) / 2,  # depth 2 is shared at 1/2 each (adds 0); 1, 3 and error disjoint
    "jsd_length": (5 / 6 * math.log2(10 / 11) + 1 / 6 + math.log2(12 / 11)) / 2,
    "jsd_not": (1 / 6 * math.log2(1 / 2) + 1 / 2 * math.log2(3 / 2) + 2 / 6) / 2,
    "jsd_and": (1 / 2 * math.log2(2 / 3) + math.log2(4 / 3) + 1 / 6 + 2 / 6) / 2,
    "jsd_or": (1 / 2 * math.log2(2 / 3) + math.log2(4 / 3) + 1 / 6 + 2 / 6) / 2,
    "tail_coverage_depth": (4 / 6) / (1 / 2),  # deepest real depth 2: held by A, B, B, G and by half the real set
    "tail_coverage_length": (5 / 6) / (1 / 2),  # L90 of lengths 1, 2 is 2 (k = ceil(1.8) = 2): all but E
}


def assert_metrics(result, expected, rel=1e-15, abs=0.0):
    """``result == expected``: numbers approximately, None and ``top_samples`` (nested lists) exactly."""
    assert list(result) == list(expected)
    exact = {k: v for k, v in expected.items() if v is None or isinstance(v, list)}
    assert {k: result[k] for k in exact} == exact
    assert {k: v for k, v in result.items() if k not in exact} == pytest.approx(
        {k: v for k, v in expected.items() if k not in exact}, rel=rel, abs=abs)


def test_hand_computed_metrics():
    result = compute_metrics(SAMPLES)
    assert list(result) == KEYS + MORE_KEYS + ["top_samples"]
    assert_metrics(result, {**EXPECTED, "top_samples": TOP})
    assert isinstance(result["num_unique"], int) and isinstance(result["max_length"], int)


def test_real_texts_add_hand_computed_divergences_and_tail_coverage():
    result = compute_metrics(SAMPLES, real_texts=REAL)
    assert list(result) == KEYS + MORE_KEYS + REAL_KEYS + ["top_samples"]
    assert_metrics(result, {**EXPECTED, **EXPECTED_REAL, "top_samples": TOP}, rel=1e-14)
    assert result["jsd_depth"] == pytest.approx(0.5, rel=1e-15)
    assert result["tail_coverage_length"] == pytest.approx(5 / 3, rel=1e-15)
    # the real set only adds values: everything else is as without it
    assert {k: v for k, v in result.items() if k not in REAL_KEYS} == compute_metrics(SAMPLES)


def test_real_texts_edge_cases():
    same = compute_metrics(["True", "not False"], real_texts=["not False", "True", "True", "not False"])
    assert [same[k] for k in REAL_KEYS] == [0.0] * 5 + [1.0, 1.0]  # the same distribution: no divergence, tails kept
    disjoint = compute_metrics(["x y", "("], real_texts=["not not True"])  # errors only, 1-2 tokens vs 3
    assert [disjoint[k] for k in REAL_KEYS] == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    # no real text parses: the depth tail is undefined, the length one still is (L90 of 0, 1 is 1: half of each)
    garbage = compute_metrics(["True", ""], real_texts=["", "x"])
    assert garbage["tail_coverage_depth"] is None and garbage["tail_coverage_length"] == 1.0
    # P = {1: 1/2, error: 1/2}, Q = {error: 1}: 1/2 [1/2 + 1/2 log2(2/3) + log2(4/3)]
    assert garbage["jsd_depth"] == pytest.approx(3 / 2 - 3 / 4 * math.log2(3), rel=1e-15)
    # samples deeper than every real text are in the depth tail; lengths of 100 and more share the capped bin
    deep = compute_metrics(["not " * 200 + "True"] * 3 + ["True"], real_texts=["not True"] * 3 + ["True"])
    assert deep["tail_coverage_depth"] == 1.0 and deep["jsd_length"] == pytest.approx(
        js_divergence({100: 3, 0: 1}, {0: 4}), rel=1e-15)
    assert length_bin(201) == length_bin(100) == 100
    one = compute_metrics(["True"], real_texts=["True"])
    assert [one[k] for k in REAL_KEYS] == [0.0] * 5 + [1.0, 1.0]
    weird = compute_metrics(["\ud800", "🙂 ∧ ⊥", "True"], real_texts=["\ud800 True", "Träue"])
    assert weird["jsd_depth"] == pytest.approx(js_divergence({"e": 2, 1: 1}, {"e": 2}), rel=1e-15)


def test_diversity_measures_edge_cases():
    empty = compute_metrics(["", "", "   "])  # no tokens at all: no n-grams, nothing parses
    assert [empty[k] for k in MORE_KEYS] == [0.0] * 4 + [5 / len(gzip.compress(b"\n\n   ", 9, mtime=0)), None, None]
    assert empty["top_samples"] == [["", 2], ["   ", 1]]
    errors = compute_metrics(["True or", "x", "x", "(True"])
    assert errors["canonical_unique_rate"] is None and errors["shape_unique_rate"] is None
    assert errors["distinct_1"] == 4 / 6 and errors["distinct_2"] == 2 / 2 and errors["distinct_3"] == 0.0
    one = compute_metrics(["not (True)"] * 7)  # one distinct sample
    assert one["canonical_unique_rate"] == one["shape_unique_rate"] == 1 / 7
    assert one["distinct_1"] == 4 / 28 and one["distinct_4"] == 1 / 7 and one["top_samples"] == [["not (True)", 7]]
    spelled = compute_metrics(["True  and (False)", "(True and False)", "True and False", "False or True"])
    assert spelled["num_unique"] == 4 and spelled["canonical_unique_rate"] == 2 / 4  # one expression, three spellings
    assert spelled["shape_unique_rate"] == 2 / 4  # "x and x", "x or x"
    many = compute_metrics([f"{'not ' * k}True" for k in range(12) for _ in range(k + 1)])
    assert many["top_samples"] == [[f"{'not ' * k}True", k + 1] for k in range(11, 1, -1)]  # the 10 most frequent
    tied = compute_metrics(["b", "a", "c", "a", "b", "ä", "B"])  # count, then code point order
    assert tied["top_samples"] == [["a", 2], ["b", 2], ["B", 1], ["c", 1], ["ä", 1]]


def test_training_texts_add_novelty_and_key_order_follows_the_contract():
    result = compute_metrics(SAMPLES, training_texts=["not False", "True"])
    assert list(result) == KEYS + ["novelty_rate"] + MORE_KEYS + ["top_samples"]
    everything = compute_metrics(SAMPLES, ["True"], real_texts=["True"], max_pairs=2)
    assert list(everything) == KEYS + ["novelty_rate", "diversity_stderr"] + MORE_KEYS + REAL_KEYS + ["top_samples"]
    assert result["novelty_rate"] == 4 / 6  # all but the two "not False"
    assert compute_metrics(["True"], training_texts=[])["novelty_rate"] == 1.0


def test_char_level():
    result = compute_metrics(["True", "False", "True"], level="char")
    assert result["diversity"] == pytest.approx(2 * 0.8 / 3, rel=1e-15)  # 4 edits / 5 characters, twice of 3 pairs
    assert compute_metrics(["True", "False", "True"])["diversity"] == pytest.approx(2 / 3, rel=1e-15)


def test_max_pairs_estimates_only_when_there_are_more_pairs():
    texts = ["True", "False", "not True", "True or False"] * 25  # 100 samples, 4950 pairs
    exact = compute_metrics(texts)
    assert compute_metrics(texts, max_pairs=4950) == exact  # enough pairs for the exact value: no stderr
    sampled = compute_metrics(texts, max_pairs=2000, seed=1)
    assert list(sampled) == KEYS + ["diversity_stderr"] + MORE_KEYS + ["top_samples"]
    assert abs(sampled["diversity"] - exact["diversity"]) < 5 * sampled["diversity_stderr"]
    assert sampled == compute_metrics(texts, max_pairs=2000, seed=1)
    assert {k: v for k, v in sampled.items() if "diversity" not in k} == {
        k: v for k, v in exact.items() if k != "diversity"}
    with_refs = compute_metrics(texts, training_texts=["True"], max_pairs=2000)
    assert list(with_refs)[len(KEYS):len(KEYS) + 2] == ["novelty_rate", "diversity_stderr"]


@pytest.mark.parametrize(("texts", "max_pairs"), [
    (["True", "False", "not True", "True or False", "x"], 10),  # 10 pairs: exact, over the 10 distinct pairs
    (["True", "False", "not True"] * 3 + ["not  True"], 45),  # exact: 3 distinct token sequences, 3 distances
    (["True", "False", "not True", "True or False"] * 25, 100),  # 4,950 pairs: estimated from 100 drawn pairs
    (["not True"] * 60 + ["False"], 50),  # estimated: most drawn pairs hold two equal strings and cost nothing
])
def test_max_pairs_bounds_the_number_of_distances(texts, max_pairs):
    scored = []

    def distance(a, b, **kwargs):
        scored.append((a, b))
        return Levenshtein.distance(a, b)

    def normalized_distance(a, b, **kwargs):
        scored.append((a, b))
        return Levenshtein.normalized_distance(a, b)

    expected = compute_metrics(texts, max_pairs=max_pairs)
    scorers = types.SimpleNamespace(distance=distance, normalized_distance=normalized_distance)
    with mock.patch.object(scl_hf.diversity, "Levenshtein", scorers):  # rapidfuzz calls it once per pair
        assert compute_metrics(texts, max_pairs=max_pairs) == expected
    assert 0 < len(scored) <= max_pairs and all(a != b for a, b in scored)


def test_collapsed_generation():
    texts = ["True"] * 9_990 + ["not True"] * 10
    result = compute_metrics(texts)
    assert result["num_unique"] == 2 and result["unique_rate"] == 2 / 10_000
    assert result["true_rate"] == 0.999 and result["false_rate"] == 0.001
    assert result["diversity"] == pytest.approx(9_990 * 10 * 0.5 / (10_000 * 9_999 / 2), rel=1e-15)


def test_no_parsable_sample_has_no_mean_depth():
    result = compute_metrics(["", "True True", "🙂"])
    assert result["syntax_error_rate"] == 1.0 and result["mean_depth"] is None
    assert result["mean_length"] == 1.0 and result["max_length"] == 2


@pytest.mark.parametrize(
    ("text", "label", "length", "depth"),
    [
        ("(" * 100_000 + "True" + ")" * 100_000, "true", 200_001, 1),
        ("not " * 50_000 + "False", "false", 50_001, 50_001),
        ("True and " * 20_000 + "x", "syntax_error", 40_001, None),
        ("\x00\u2028Träue ∧ ⊥", "syntax_error", 4, None),  # U+2028 is a space, NUL is not
        ("True\nor False", "syntax_error", 3, None),  # a newline ends a Python expression
        ("\ud800True", "syntax_error", 1, None),  # a lone surrogate (not encodable, still a str)
    ],
)
def test_extreme_content(text, label, length, depth):
    result = compute_metrics([text], real_texts=[text, ""])
    assert result[f"{label}_rate"] == 1.0
    assert result["max_length"] == length and result["mean_depth"] == depth and result["diversity"] == 0.0
    assert result["top_samples"] == [[text, 1]] and result["distinct_1"] == len(set(word_tokens(text))) / length
    rate = None if depth is None else 1.0
    assert result["canonical_unique_rate"] == result["shape_unique_rate"] == rate
    assert 0.0 <= result["jsd_depth"] <= 1.0 and result["tail_coverage_length"] == 2.0  # L90 is the text's length


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=12), st.sampled_from(["token", "char"]))
def test_never_raises_on_content(texts, level):
    result = compute_metrics(texts, training_texts=texts[:1], real_texts=texts[::-2], level=level)
    assert result["syntax_error_rate"] + result["false_rate"] + result["true_rate"] == pytest.approx(1.0)
    assert 0.0 <= result["diversity"] <= 1.0 and 0.0 <= result["novelty_rate"] <= 1.0
    assert result["num_samples"] == len(texts) and 1 <= result["num_unique"] <= len(texts)
    assert all(0.0 <= result[k] <= 1.0 for k in REAL_KEYS[:5] + MORE_KEYS[:4])
    assert result["compression_ratio"] >= 0.0 and result["tail_coverage_length"] > 0.0
    assert sum(count for _, count in result["top_samples"]) <= len(texts)


def straightforward_distribution(texts, real):
    """The jsd_* and tail_coverage_* values written sample by sample, from the definitions."""
    def bins(text):
        tree, tokens = parse(text), word_tokens(text)
        ops = ["e"] * 3 if tree is None else [tokens.count(op) for op in ("not", "and", "or")]
        return ["e" if tree is None else tree.depth, min(len(tokens), 100) // 5, *ops]

    def jsd(p, q):  # p, q: lists of bins
        out = 0.0
        for b in set(p) | set(q):
            x, y = p.count(b) / len(p), q.count(b) / len(q)
            out += sum(0.5 * a * math.log2(a / ((x + y) / 2)) for a in (x, y) if a > 0)
        return out

    ps, qs = [bins(t) for t in texts], [bins(t) for t in real]
    out = {f"jsd_{name}": jsd([b[i] for b in ps], [b[i] for b in qs])
           for i, name in enumerate(["depth", "length", "not", "and", "or"])}
    real_depths = [d for d in map(depth, real) if d is not None]
    deep = max(real_depths, default=None)
    out["tail_coverage_depth"] = None if deep is None else (
        sum((depth(t) or 0) >= deep for t in texts) / len(texts)) / (real_depths.count(deep) / len(real))
    lengths = sorted(len(word_tokens(t)) for t in real)
    l90 = lengths[math.ceil(0.9 * len(lengths)) - 1]
    out["tail_coverage_length"] = (sum(len(word_tokens(t)) >= l90 for t in texts) / len(texts)) / (
        sum(n >= l90 for n in lengths) / len(lengths))
    return out


def straightforward(texts, references, level, real=None):
    """compute_metrics written sample by sample, with no counting of duplicates."""
    labels = [classify(t) for t in texts]
    depths = [depth(t) for t in texts if classify(t) != "syntax_error"]
    lengths = [len(word_tokens(t)) for t in texts]
    n = len(texts)
    ngrams = {k: [tuple(word_tokens(t)[i:i + k]) for t in texts for i in range(len(word_tokens(t)) - k + 1)]
              for k in (1, 2, 3, 4)}
    trees = [parse(t) for t in texts if parse(t) is not None]
    forms = [canonical_form(tree) for tree in trees]
    joined = "\n".join(texts).encode("utf-8", "surrogatepass")
    result = {
        "num_samples": n,
        "syntax_error_rate": labels.count("syntax_error") / n,
        "false_rate": labels.count("false") / n,
        "true_rate": labels.count("true") / n,
        "diversity": naive_diversity(texts, level),
        "num_unique": len(set(texts)),
        "unique_rate": len(set(texts)) / n,
        "mean_length": sum(lengths) / n,
        "max_length": max(lengths),
        "mean_depth": sum(depths) / len(depths) if depths else None,
        "novelty_rate": sum(t not in references for t in texts) / n,
        **{f"distinct_{k}": len(set(g)) / len(g) if g else 0.0 for k, g in ngrams.items()},
        "compression_ratio": len(joined) / len(gzip.compress(joined)) if joined else 0.0,
        "canonical_unique_rate": len(set(forms)) / len(forms) if forms else None,
        "shape_unique_rate": len({shape_form(tree) for tree in trees}) / len(trees) if trees else None,
    }
    if real is not None:
        result.update(straightforward_distribution(texts, real))
    ranked = sorted(set(texts), key=lambda t: (-texts.count(t), t))
    result["top_samples"] = [[t, texts.count(t)] for t in ranked[:10]]
    return result


pool = st.lists(st.sampled_from(["True", "False", "and", "or", "not", "(", ")", " ", "x"]), max_size=9).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(st.lists(pool, min_size=1, max_size=5).flatmap(lambda p: st.lists(st.sampled_from(p), min_size=1, max_size=30)),
       st.sampled_from(["token", "char"]))
def test_equals_the_straightforward_computation(texts, level):
    references, real = texts[::3], texts[1::2] or ["not (True)", "x"]  # real texts shared with the samples or not
    result = compute_metrics(texts, references, real_texts=real, level=level)
    expected = straightforward(texts, references, level, real)
    for none_able in ("mean_depth", "canonical_unique_rate", "shape_unique_rate", "tail_coverage_depth"):
        if expected[none_able] is not None:  # approx cannot take None: assert_metrics compares None exactly
            assert result[none_able] == pytest.approx(expected.pop(none_able), rel=1e-12)
            result.pop(none_able)
    assert_metrics(result, expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"predictions": []}, ValueError, "predictions must hold at least one string, got an empty list"),
        ({"predictions": "True"}, TypeError, "predictions must be a list of strings, got str"),
        ({"predictions": None}, TypeError, "predictions must be a list of strings, got NoneType"),
        ({"predictions": ["True", 1]}, TypeError, r"predictions\[1\] must be a string, got int"),
        ({"predictions": ["True"], "training_texts": "True"}, TypeError, "training_texts must be a list of strings"),
        ({"predictions": ["True"], "training_texts": [None]}, TypeError, r"training_texts\[0\] must be a string"),
        ({"predictions": ["True"], "real_texts": []}, ValueError, "real_texts must hold at least one string"),
        ({"predictions": ["True"], "real_texts": "True"}, TypeError, "real_texts must be a list of strings, got str"),
        ({"predictions": ["True"], "real_texts": ["True", b"x"]}, TypeError, r"real_texts\[1\] must be a string"),
        ({"predictions": ["True"], "level": "word"}, ValueError, r"level must be one of \('token', 'char'\)"),
        ({"predictions": ["True"], "max_pairs": 1}, ValueError, "max_pairs must be None .* or an integer >= 2"),
        ({"predictions": ["True"], "max_pairs": 10.0}, ValueError, "max_pairs must be None"),
        ({"predictions": ["True"], "max_pairs": True}, ValueError, "max_pairs must be None"),
        ({"predictions": ["True"], "seed": "0"}, TypeError, "seed must be an integer"),
    ],
)
def test_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        compute_metrics(**kwargs)


def test_accepts_any_iterable_of_strings():
    assert compute_metrics(iter(SAMPLES)) == compute_metrics(tuple(SAMPLES)) == compute_metrics(SAMPLES)
    assert compute_metrics(SAMPLES, real_texts=iter(REAL)) == compute_metrics(SAMPLES, real_texts=tuple(REAL))


def test_doctests_of_compute_metrics():
    result = doctest.testmod(scl_hf.measures)
    assert result.attempted >= 5 and result.failed == 0


# --- the evaluate module folder ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(str(FOLDER))


def test_evaluate_module_matches_compute_metrics(metric):
    assert metric.name == "boolean_expressions"
    assert metric.compute(predictions=SAMPLES) == compute_metrics(SAMPLES)
    refs = ["not False", "True"]
    assert metric.compute(predictions=SAMPLES, training_texts=refs) == compute_metrics(SAMPLES, refs)
    assert metric.compute(predictions=SAMPLES, level="char", max_pairs=5, seed=2) == compute_metrics(
        SAMPLES, level="char", max_pairs=5, seed=2)
    with_real = metric.compute(predictions=SAMPLES, training_texts=refs, real_texts=REAL)
    assert with_real == compute_metrics(SAMPLES, refs, real_texts=REAL)
    assert list(with_real) == KEYS + ["novelty_rate"] + MORE_KEYS + REAL_KEYS + ["top_samples"]


def test_evaluate_module_batches_and_training_texts_at_compute(metric):
    metric.add_batch(predictions=SAMPLES[:3])
    metric.add(predictions=SAMPLES[3])
    metric.add_batch(predictions=SAMPLES[4:])
    assert metric.compute(training_texts=["True"]) == compute_metrics(SAMPLES, ["True"])
    metric.add_batch(predictions=SAMPLES)
    assert metric.compute(real_texts=REAL) == compute_metrics(SAMPLES, real_texts=REAL)


def test_evaluate_module_bad_input(metric):
    with pytest.raises(ValueError, match="predictions must hold at least one string"):
        metric.compute(predictions=[])
    with pytest.raises(ValueError, match="level must be one of"):
        metric.compute(predictions=["True"], level="word")
    with pytest.raises(ValueError, match="real_texts must hold at least one string"):
        metric.compute(predictions=["True"], real_texts=[])


NOT_STRINGS = [[1], ["True", 1], [b"True"], ["True", b"not True"], [None], ["True", None], [1.5], [True],
               ["True", ["x"]], [{"x": 1}], "True", b"True", 5]


def type_error(fn, *args, **kwargs):
    with pytest.raises(TypeError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("predictions", NOT_STRINGS, ids=repr)
def test_evaluate_module_refuses_what_compute_metrics_refuses(metric, predictions):
    expected = type_error(compute_metrics, predictions)  # e.g. "predictions[1] must be a string, got int: 1"
    assert type_error(metric.compute, predictions=predictions) == expected
    assert type_error(metric.add_batch, predictions=predictions) == expected
    metric.add_batch(predictions=["True"])  # a bad batch later on is refused as well, what came before is kept
    assert type_error(metric.add_batch, predictions=predictions) == expected
    assert type_error(metric.compute, predictions=predictions) == expected
    assert metric.compute(predictions=["not True"]) == compute_metrics(["True", "not True"])
    assert metric.compute(predictions=SAMPLES) == compute_metrics(SAMPLES)  # nothing bad was stored


@pytest.mark.parametrize("prediction", [1, b"True", None, 1.5, True, ["True"]], ids=repr)
def test_evaluate_module_add_refuses_a_non_string(metric, prediction):
    expected = type_error(compute_metrics, ["True", prediction]).replace("predictions[1]", "prediction")
    assert expected.startswith(f"prediction must be a string, got {type(prediction).__name__}: ")
    assert type_error(metric.add, prediction=prediction) == expected
    metric.add(prediction="True")
    assert type_error(metric.add, prediction=prediction) == expected
    # evaluate's add also takes the feature's name, predictions=, for one prediction
    assert type_error(metric.add, predictions=prediction) == expected.replace("prediction", "predictions", 1)
    metric.add(predictions="not True")
    assert metric.compute() == compute_metrics(["True", "not True"])


# lone surrogates (not encodable as UTF-8, so not storable in Arrow as they are), a surrogate pair written as two
# code points (not the emoji), the escape character U+10FFFF and strings that look like its escapes
ODD_STRINGS = ["\ud800", "True\udfff and False", "\ud83d\ude42", "🙂", "not True", "\U0010ffff", "\U0010ffffd800",
               "a\U0010ffff\U0010ffffdfff", "\ud800" * 3 + "True", "\udbff\U0010ffff\udc00", "", "(True)\ud800"]


@pytest.mark.parametrize("level", ["token", "char"])
def test_evaluate_module_measures_lone_surrogates_as_compute_metrics(metric, level):
    training = ["\ud800", "True", "\U0010ffff"]
    expected = compute_metrics(ODD_STRINGS, training, level=level)
    assert expected["num_unique"] == len(ODD_STRINGS) and expected["novelty_rate"] == 10 / 12
    assert metric.compute(predictions=ODD_STRINGS, training_texts=training, level=level) == expected
    assert metric.compute(predictions=ODD_STRINGS, real_texts=ODD_STRINGS[::-1], level=level) == compute_metrics(
        ODD_STRINGS, real_texts=ODD_STRINGS[::-1], level=level)
    # the same strings through add, add_batch and compute together
    metric.add(prediction=ODD_STRINGS[0])
    metric.add_batch(predictions=ODD_STRINGS[1:5])
    metric.add(prediction=ODD_STRINGS[5])
    metric.add_batch(predictions=iter(ODD_STRINGS[6:9]))  # any iterable, as compute_metrics takes
    assert metric.compute(predictions=ODD_STRINGS[9:], training_texts=training, level=level) == expected


surrogates_and_escapes = st.lists(st.one_of(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                                            st.sampled_from(["\U0010ffff", "d", "8", "0", "f", "True", " ", "(", "ä"]),
                                            st.characters()), max_size=12).map("".join)


@settings(max_examples=40, deadline=None)
@given(st.lists(surrogates_and_escapes, min_size=1, max_size=8))
def test_evaluate_module_equals_compute_metrics_on_any_string(metric, texts):
    assert metric.compute(predictions=texts, training_texts=texts[:2]) == compute_metrics(texts, texts[:2])


def test_evaluate_module_doctests(metric, monkeypatch):
    monkeypatch.chdir(METRICS_DIR)  # the examples load "boolean_expressions" relative to the working directory
    module = sys.modules[type(metric).__module__]
    result = doctest.testmod(module)
    assert result.attempted >= 10 and result.failed == 0


def test_metric_card(metric):
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and {"evaluate", "metric"} <= set(meta["tags"])
    assert meta["title"] and meta["description"]
    assert "2 / (N (N - 1))" in body and "arXiv:2311.16822" in body
    # the card's examples run
    body = body.replace("\n```", "\n\n```")  # a closing fence is not expected output
    examples = doctest.DocTestParser().get_doctest(body, {"metric": metric}, "README.md", str(FOLDER), 0)
    runner = doctest.DocTestRunner()
    runner.run(examples)
    assert runner.summarize(verbose=False) == (0, 14)
    assert "JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M)" in body and "ceil(0.9 R)" in body


def test_script_imports_as_evaluate_scans_them():
    from evaluate.loading import get_imports

    imports = get_imports(str(FOLDER / "boolean_expressions.py"))
    assert sorted(name for kind, name, _, _ in imports if kind == "library") == [
        "datasets", "evaluate", "numpy", "rapidfuzz"]
    # the package modules the script needs, fetched from the same folder or Space by evaluate
    assert sorted(name for kind, name, _, _ in imports if kind == "internal") == sorted(
        name.removesuffix(".py") for name in scl_hf.metrics.SPACE_MODULES)
    assert {kind for kind, *_ in imports} == {"library", "internal"}
    for name in scl_hf.metrics.SPACE_MODULES:  # the folder's copies are the package's modules themselves
        assert (FOLDER / name).resolve() == (METRICS_DIR.parent / name).resolve()
    requirements = (FOLDER / "requirements.txt").read_text().split("\n")
    names = {line.split(">")[0].split("=")[0].strip() for line in requirements if line and not line.startswith("#")}
    assert names == {"evaluate", "rapidfuzz", "numpy"}


def test_app_loads_the_metric_from_its_folder(monkeypatch):
    import evaluate.utils

    launched = []
    monkeypatch.setattr(evaluate.utils, "launch_gradio_widget", launched.append)  # no Gradio here
    monkeypatch.chdir(METRICS_DIR.parent)  # anywhere but the folder
    runpy.run_path(str(FOLDER / "app.py"))
    assert len(launched) == 1 and launched[0].name == "boolean_expressions"
    assert launched[0].compute(predictions=["True"])["true_rate"] == 1.0


NO_TRAINING_STACK = """
import sys


class Hide:  # as if torch, transformers and scl_hf were not installed: find_spec gives None, import raises
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "transformers", "scl_hf"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):  # invalidate_caches, find_distributions (package metadata), ...
        return getattr(self.finder, name)


sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
import evaluate

metric = evaluate.load(sys.argv[1])
print(metric.compute(predictions=["True", "not True"])["true_rate"])
print(sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "transformers", "scl_hf")))
"""


@pytest.mark.slow
def test_imports_stay_light():
    code = ("import sys, scl_hf.metrics, scl_hf.diversity\n"
            "print(sorted(m for m in ('torch', 'transformers', 'evaluate', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "[]"
    # evaluate.load + compute in an environment without torch, transformers and scl_hf
    out = subprocess.run([sys.executable, "-c", NO_TRAINING_STACK, str(FOLDER)], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["0.5", "[]"]


# --- the command line -------------------------------------------------------------------------------------


def test_cli_metric(tmp_path, capsys):
    predictions = tmp_path / "samples.txt"
    predictions.write_text("\n".join(SAMPLES) + "\n", encoding="utf-8")
    training = tmp_path / "train.txt"
    training.write_text("not False\r\nTrue\r\n", encoding="utf-8")  # CRLF lines
    assert main(["metric", str(predictions)]) == 0
    assert_metrics(json.loads(capsys.readouterr().out), {**EXPECTED, "top_samples": TOP})
    assert main(["metric", str(predictions), "--training_texts", str(training), "--level", "char",
                 "--max_pairs", "5"]) == 0
    assert json.loads(capsys.readouterr().out) == compute_metrics(SAMPLES, ["not False", "True"], level="char",
                                                                   max_pairs=5)


def test_cli_metric_real_texts(tmp_path, capsys):
    predictions, real = tmp_path / "samples.txt", tmp_path / "real.txt"
    predictions.write_text("\n".join(SAMPLES) + "\n", encoding="utf-8")
    real.write_text("True\nnot (True and False)\n", encoding="utf-8")
    assert main(["metric", str(predictions), "--real_texts", str(real)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(
        compute_metrics(SAMPLES, real_texts=["True", "not (True and False)"])))


def test_cli_metric_reads_lines_exactly(tmp_path, capsys):
    path = tmp_path / "odd.txt"
    path.write_bytes("True\x0cand True\n\nnot\u2028True".encode())  # form feed and U+2028 stay inside a line
    assert main(["metric", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == compute_metrics(["True\x0cand True", "", "not\u2028True"])


def test_cli_metric_errors(tmp_path, capsys):
    assert main(["metric", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read predictions file" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["metric", str(empty)]) == 2
    assert "predictions must hold at least one string" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert main(["metric", str(tmp_path / "latin1.txt")]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
    one = tmp_path / "one.txt"
    one.write_text("True\n")
    assert main(["metric", str(one), "--max_pairs", "1"]) == 2
    assert "max_pairs must be None (exact) or an integer >= 2, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["metric", str(empty), "--level", "word"])
    assert "invalid choice: 'word'" in capsys.readouterr().err
