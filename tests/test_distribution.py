"""Distribution measures: canonical forms and shapes, divergences, tails, n-grams, compression, the mode."""

import doctest
import gzip
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scl_hf.distribution
import scl_hf.expressions
from scl_hf.distribution import (
    compare,
    compression_ratio,
    depth_of_tokens,
    distinct_n,
    facts,
    histograms,
    js_divergence,
    length_bin,
    percentile90,
    real_facts,
    tail_coverage,
    top_samples,
)
from scl_hf.diversity import word_tokens
from scl_hf.expressions import (
    Expr,
    GeneratorConfig,
    canonical_form,
    make_real_dataset,
    parse,
    random_tree,
    shape_form,
    to_text,
    tokenize,
)


def stripped(tree: Expr) -> Expr:
    """``tree`` without its ``"()"`` nodes (recursive: small trees only)."""
    while tree.op == "()":
        tree = tree.args[0]
    return Expr(tree.op, tuple(stripped(child) for child in tree.args))


# --- canonical forms and shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "form", "shape"), [
    ("True", "True", "x"),
    ("((( False )))", "False", "x"),
    ("not(True)", "not True", "not x"),
    ("not (not (False))", "not not False", "not not x"),
    ("not (True and False)", "not (True and False)", "not (x and x)"),
    ("(not True) and False", "not True and False", "not x and x"),
    ("(True and False) and True", "True and False and True", "x and x and x"),
    ("True and (False and True)", "True and (False and True)", "x and (x and x)"),  # the other tree: kept
    ("True or (False and True)", "True or False and True", "x or x and x"),
    ("(True or False) and True", "(True or False) and True", "(x or x) and x"),
    ("True and (False or True)", "True and (False or True)", "x and (x or x)"),
    ("(True or False) or (True)", "True or False or True", "x or x or x"),
    ("True or (False or True)", "True or (False or True)", "x or (x or x)"),
    ("(True and False) or True", "True and False or True", "x and x or x"),
    ("True\tand  not (  (False) )", "True and not False", "x and not x"),
])
def test_canonical_form_and_shape_by_hand(text, form, shape):
    tree = parse(text)
    assert canonical_form(tree) == form and shape_form(tree) == shape == shape_form(form)
    assert stripped(parse(form)) == stripped(tree)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.0, 1.0), st.integers(1, 7))
def test_canonical_form_is_the_tree_without_redundant_parentheses(seed, paren_prob, max_depth):
    tree = random_tree(random.Random(seed), GeneratorConfig(max_depth=max_depth, paren_prob=paren_prob))
    form = canonical_form(tree)
    again = parse(form)
    assert stripped(again) == stripped(tree)  # the same expression
    assert canonical_form(again) == form == canonical_form(stripped(tree))  # a fixed point, whatever the spelling
    # no pair of parentheses can go: dropping any one of them changes the tree or breaks the parse
    opens = [i for i, ch in enumerate(form) if ch == "("]
    for i in opens:
        depth, j = 0, i
        while True:
            depth += {"(": 1, ")": -1}.get(form[j], 0)
            if depth == 0:
                break
            j += 1
        other = parse(form[:i] + form[i + 1:j] + form[j + 1:])
        assert other is None or stripped(other) != stripped(tree)
    # a text without parentheses is already canonical (compute_metrics skips the walk for those): here the
    # tree's tokens without any parentheses, which parse (maybe to another tree)
    plain = " ".join(tok for tok in word_tokens(to_text(tree)) if tok not in "()")
    assert canonical_form(parse(plain)) == plain
    assert shape_form(tree) == form.replace("True", "x").replace("False", "x")


def test_canonical_form_and_shape_never_recurse():
    k = 100_000
    assert canonical_form(parse("(" * k + "True" + ")" * k)) == "True"
    right = "True and (" * k + "True and False" + ")" * k  # every pair needed: the text is its own canonical form
    assert canonical_form(parse(right)) == right
    assert shape_form(parse(right)) == "x and (" * k + "x and x" + ")" * k
    left = "(" * k + "True" + " or False)" * k  # left-nested: no pair needed
    assert canonical_form(parse(left)) == "True" + " or False" * k
    nots = "not (" * k + "True" + ")" * k
    assert canonical_form(parse(nots)) == "not " * k + "True"


# --- what a string contributes: the tree-free reading of the real set agrees with parse -------------------

PIECES = ["True", "False", "and", "or", "not", "(", ")", " ", "  ", "\t", "\x0c", "\n", "\r", "\u2028", "\x1c",
          "\xa0", "\x85", "\u200b", "x", "ä", "🙂", "\ud800", "\x00", "Tru", "e", "notTrue"]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(PIECES), max_size=14).map("".join), st.text(max_size=20)))
def test_real_facts_are_the_facts_of_the_parse(text):
    tree = parse(text)
    assert real_facts(text) == facts(tree, word_tokens(text))
    tokens = tokenize(text)
    if tokens is not None:
        assert depth_of_tokens(tokens) == (None if tree is None else tree.depth)


def test_real_facts_on_real_data_and_deep_input():
    for text in make_real_dataset(500, seed=3):
        assert real_facts(text) == facts(parse(text), word_tokens(text))
    k = 100_000
    assert real_facts("(" * k + "not True" + ")" * k) == (2, 2 * k + 2, 1, 0, 0)
    assert real_facts("not " * k + "True")[:2] == (k + 1, k + 1)
    assert real_facts("True and (" * k + "False" + ")" * k)[0] == k + 1
    assert real_facts("(" * k + "True" + ")" * (k - 1)) == (None, 2 * k, None, None, None)
    assert depth_of_tokens([]) is None and depth_of_tokens(["x"]) is None


# --- divergences and tails ---------------------------------------------------------------------------------


def test_js_divergence_by_hand():
    assert js_divergence({1: 3}, {1: 1}) == 0.0
    assert js_divergence({1: 1, 2: 2}, {2: 4, 1: 2}) == 0.0  # counts are normalized
    assert js_divergence({1: 1}, {2: 1}) == 1.0
    # P = (1/2, 1/2), Q = (1, 0): M = (3/4, 1/4); 1/2 [1/2 log2(2/3) + 1/2 log2(2)] + 1/2 log2(4/3)
    assert js_divergence({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(1.5 - 0.75 * math.log2(3), rel=1e-15)
    # P = (1/4, 3/4), Q = (3/4, 1/4): M = (1/2, 1/2), JSD = 1/4 log2(1/2) + 3/4 log2(3/2) = 3/4 log2(3) - 1
    assert js_divergence({0: 1, 1: 3}, {0: 3, 1: 1}) == pytest.approx(0.75 * math.log2(3) - 1, rel=1e-14)
    with pytest.raises(ValueError, match="two non-empty histograms"):
        js_divergence({}, {1: 1})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 6), st.integers(1, 50), min_size=1),
       st.dictionaries(st.integers(0, 6), st.integers(1, 50), min_size=1))
def test_js_divergence_is_a_bounded_symmetric_divergence(p, q):
    value = js_divergence(p, q)
    assert 0.0 <= value <= 1.0 and value == pytest.approx(js_divergence(q, p), abs=1e-15)
    assert (value == 1.0) == (not p.keys() & q.keys()) or value == pytest.approx(1.0)
    # the definition: entropy of the mixture minus the mean entropy (base 2)
    def entropy(d):
        total = sum(d.values())
        return -sum(v / total * math.log2(v / total) for v in d.values() if v)
    pt, qt = sum(p.values()), sum(q.values())
    mix = {k: (p.get(k, 0) / pt + q.get(k, 0) / qt) / 2 for k in p.keys() | q.keys()}
    assert value == pytest.approx(entropy(mix) - (entropy(p) + entropy(q)) / 2, abs=1e-12)


def test_length_bins_and_histograms():
    assert [length_bin(n) for n in (0, 4, 5, 9, 10, 99, 100, 101, 10**9)] == [0, 0, 5, 5, 10, 95, 100, 100, 100]
    profile = {facts(parse("not (True and not False)"), word_tokens("not (True and not False)")): 2,
               facts(None, ["x"] * 12): 1}
    assert profile == {(4, 7, 2, 1, 0): 2, (None, 12, None, None, None): 1}
    assert histograms(profile) == {"depth": {4: 2, "syntax_error": 1}, "length": {5: 2, 10: 1},
                                   "not": {2: 2, "syntax_error": 1}, "and": {1: 2, "syntax_error": 1},
                                   "or": {0: 2, "syntax_error": 1}}


def test_percentile90_is_the_nearest_rank():
    assert percentile90({5: 1}) == 5
    assert percentile90({n: 1 for n in range(1, 11)}) == 9  # k = 9 of 10
    assert percentile90({n: 1 for n in range(1, 12)}) == 10  # k = ceil(9.9) = 10 of 11
    assert percentile90({1: 90, 2: 10}) == 1 and percentile90({1: 89, 2: 11}) == 2
    with pytest.raises(ValueError):
        percentile90({})


def test_tail_coverage_by_hand():
    real = {(1, 1, 0, 0, 0): 6, (3, 4, 2, 0, 0): 3, (5, 9, 2, 1, 1): 1}  # deepest: 5, a tenth; L90 of the lengths: 4
    assert percentile90({1: 6, 4: 3, 9: 1}) == 4
    lost = tail_coverage({(1, 1, 0, 0, 0): 10}, real)
    assert lost == {"depth": 0.0, "length": 0.0}
    kept = tail_coverage({(1, 1, 0, 0, 0): 6, (3, 4, 2, 0, 0): 3, (5, 9, 2, 1, 1): 1}, real)
    assert kept == {"depth": 1.0, "length": 1.0}
    # a fifth of the samples deeper than every real text, a fifth syntax errors of 50 tokens
    more = tail_coverage({(1, 1, 0, 0, 0): 3, (7, 3, 6, 0, 0): 1, (None, 50, None, None, None): 1}, real)
    assert more["depth"] == pytest.approx((1 / 5) / (1 / 10), rel=1e-15)
    assert more["length"] == pytest.approx((1 / 5) / (4 / 10), rel=1e-15)  # only the 50-token one is >= 4
    assert tail_coverage({(1, 1, 0, 0, 0): 1}, {(None, 3, None, None, None): 1}) == {"depth": None, "length": 0.0}


def test_compare_names_its_values():
    profile = {(2, 2, 1, 0, 0): 1}
    assert compare(profile, profile) == {"jsd_depth": 0.0, "jsd_length": 0.0, "jsd_not": 0.0, "jsd_and": 0.0,
                                         "jsd_or": 0.0, "tail_coverage_depth": 1.0, "tail_coverage_length": 1.0}


# --- n-grams, compression, the mode ------------------------------------------------------------------------


def test_distinct_n_by_hand():
    tokens = {("True", "and", "True"): 2, ("not", "True"): 1, (): 3}
    # 1-grams: 3 + 3 + 2 = 8, distinct True, and, not; 2-grams: 2 + 2 + 1 = 5, distinct "True and", "and True",
    # "not True"; 3-grams: 2, one distinct; no 4-gram
    assert distinct_n(tokens) == {1: 3 / 8, 2: 3 / 5, 3: 1 / 2, 4: 0.0}
    assert distinct_n({(): 5}, (1, 2)) == {1: 0.0, 2: 0.0}
    assert distinct_n({("a", "a", "a", "a"): 1}, (1, 2, 3, 4)) == {1: 1 / 4, 2: 1 / 3, 3: 1 / 2, 4: 1.0}
    long = tuple(map(str, range(10_000)))  # every n-gram distinct
    assert distinct_n({long: 1}) == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    assert distinct_n({("a", "b"): 1, ("b", "a"): 1}, (2, 3)) == {2: 1.0, 3: 0.0}  # "b b" spans no two samples
    assert distinct_n({("a",): 1}, ()) == {} and distinct_n({(): 1}, (7,)) == {7: 0.0}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.lists(st.sampled_from(["a", "b", "c", "(", "True"]), max_size=8).map(tuple),
                       st.integers(1, 4), min_size=1))
def test_distinct_n_is_the_definition(tokens):
    for n in (1, 2, 3, 4, 5):
        grams = [seq[i:i + n] for seq, count in tokens.items() for _ in range(count) for i in range(len(seq) - n + 1)]
        assert distinct_n(tokens, (n,)) == {n: len(set(grams)) / len(grams) if grams else 0.0}


def test_compression_ratio_by_hand():
    assert compression_ratio([]) == compression_ratio([""]) == 0.0
    texts = ["True and False", "ä 🙂", "\ud800"]  # 14 + 1 + 7 + 1 + 3 bytes (the surrogate as its 3 bytes)
    data = "True and False\nä 🙂\n".encode() + b"\xed\xa0\x80"
    assert len(data) == 26 and compression_ratio(texts) == 26 / len(gzip.compress(data, 9, mtime=0))
    assert compression_ratio(["True"] * 1000) == 4999 / len(gzip.compress(b"\n".join([b"True"] * 1000), 9, mtime=0))
    # repetition compresses: the same number of bytes, of one string or of many
    rng = random.Random(0)
    varied = [to_text(random_tree(rng)) for _ in range(300)]
    assert compression_ratio([varied[0]] * 300) > 3 * compression_ratio(varied)


def test_top_samples_by_hand():
    counts = {"b": 3, "a": 3, "": 3, "z": 5, "é": 1, "B": 1}
    assert top_samples(counts) == [["z", 5], ["", 3], ["a", 3], ["b", 3], ["B", 1], ["é", 1]]
    assert top_samples(counts, 2) == [["z", 5], ["", 3]]
    assert top_samples({str(i): 1 for i in range(100)}) == [[str(i), 1] for i in sorted(map(str, range(100)))[:10]]


def test_doctests():
    result = doctest.testmod(scl_hf.distribution)
    assert result.attempted >= 12 and result.failed == 0
    result = doctest.testmod(scl_hf.expressions)
    assert result.attempted >= 3 and result.failed == 0


def test_imports_only_the_standard_library_and_siblings():
    source = scl_hf.distribution.__file__
    with open(source, encoding="utf-8") as f:
        imports = [line for line in f if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations\n", "import gzip\n", "import heapq\n", "import math\n",
                       "import re\n", "from collections import Counter\n",
                       "from collections.abc import Iterable, Mapping\n", "import numpy as np\n",
                       "from .diversity import word_tokens\n", "from .expressions import _PRECEDENCE, WORDS, Expr\n"]


def test_measures_do_not_depend_on_string_hashing():
    """Sets of mixed bins iterate in hash order, which PYTHONHASHSEED changes: the numbers must not."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json\nfrom scl_hf.measures import compute_metrics\n"
            "s = ['True and False', 'not False', 'True or', 'not False', '', 'not (True or False)', '((True))']\n"
            "print(json.dumps(compute_metrics(s, real_texts=['True', 'not (True and False)', 'False or True', ')'])))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outs) == 1 and json.loads(outs.pop())["jsd_depth"] > 0
