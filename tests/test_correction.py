"""The correction function: exact hand-picked corrections, minimality against blind enumeration, its evaluator."""

import doctest
import itertools
import random

import pytest
from helpers import load_script
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from scl_hf import correction
from scl_hf.correction import START, correct, correct_text, final, step
from scl_hf.diversity import word_tokens
from scl_hf.expressions import TOKENS, GeneratorConfig, parse, random_tree, to_text

naive_distance = load_script("bench_correct").naive_distance  # the definition, by blind enumeration


def is_answer(tokens, lo=1, hi=5) -> bool:
    tree = parse(" ".join(tokens))
    return tree is not None and tree.value and lo <= tree.depth <= hi


@pytest.mark.parametrize(("text", "expected"), [
    ("True", ("True", 0)),
    ("not (True", ("not not True", 1)),  # the only one-edit fix: "(" becomes "not"
    ("not not not not not True", ("not not not not True", 1)),  # depth 6 is out of bounds: one not fewer
    ("not not not not not False", ("not not not not True", 2)),  # True at depth 6; at depth <= 5 two edits
    ("True and and True", ("True and True", 1)),
])
def test_hand_picked_corrections(text, expected):
    assert correct_text(text, 1, 5) == expected


@pytest.mark.parametrize(("text", "choices", "edits"), [
    ("False", {"True", "not False"}, 1),
    ("True and", {"True", "True and True"}, 1),
    ("True and False", {"True and True", "True or False", "True and not False", "True"}, 1),
    ("(False or False)", {"(True or False)", "(False or True)", "(not False or False)", "(False or not False)",
                          "not (False or False)"}, 1),
    ("True True", {"True and True", "True or True", "True"}, 1),  # an operator inserted, or a literal deleted
    ("notTrue", {"True"}, 1),  # one fragment, substituted
])
def test_ties_are_broken_by_the_seed_among_the_shortest(text, choices, edits):
    found = {seed: correct_text(text, 1, 5, seed=seed) for seed in range(30)}
    assert naive_distance(word_tokens(text), 1, 5) == edits
    assert all(e == edits for _, e in found.values())
    assert all(parse(t).value and to_text(parse(t)) == t for t, _ in found.values())  # True, printed as real data
    assert found[3] == correct_text(text, 1, 5, seed=3)  # deterministic for a seed
    if choices is not None:
        assert {t for t, _ in found.values()} <= choices


def test_garbage_and_the_budget():
    assert correct_text("Tr ue", 1, 5)[1] == 2  # two fragments: two edits at least
    assert correct_text("Tr ue x", 1, 5) is None  # three fragments: over the budget of 2
    assert correct_text("Tr ue x", 1, 5, max_edits=3)[1] == 3
    assert correct_text("", 1, 5)[1] == 1  # an empty sample: one literal inserted
    assert correct_text("True", 2, 5)[1] == 2 and parse(correct_text("True", 2, 5)[0]).depth >= 2  # min_depth
    assert correct_text("((((((True", 1, 5) is None  # six parentheses to close or delete
    assert correct(["True"] * (correction.MAX_TOKENS + 1), 1, 5) is None  # too long to search


def test_minimal_on_every_sample_of_up_to_three_tokens():
    """Exhaustive where enumeration is cheap; ``( True Tr`` needs one edit (``Tr`` becomes ``)``), which a bound that
    counted the fragment and the open parenthesis separately once cut."""
    for length in range(4):
        for tokens in itertools.product([*TOKENS, "Tr"], repeat=length):
            found = correct(list(tokens), 1, 4, max_edits=2)
            assert (None if found is None else found[1]) == naive_distance(tokens, 1, 4, max_edits=2), tokens
    assert correct(["(", "True", "Tr"], 1, 4) == (["(", "True", ")"], 1)
    assert correct(["(", "(", "Tr"], 1, 4)[1] == 2


TOKEN_LISTS = st.lists(st.sampled_from([*TOKENS, "Tr", "ue"]), max_size=6)


@settings(max_examples=120, deadline=None)
@given(TOKEN_LISTS, st.integers(0, 3))
def test_every_correction_is_true_in_bounds_within_budget_and_minimal(tokens, seed):
    found = correct(tokens, 1, 4, max_edits=2, seed=seed)
    best = naive_distance(tokens, 1, 4, max_edits=2)
    if found is None:
        assert best is None
        return
    out, edits = found
    assert is_answer(out, 1, 4)
    assert Levenshtein.distance(tokens, out) <= edits == best <= 2


@pytest.mark.parametrize("seed", range(5))
def test_the_evaluator_state_gives_the_value_and_depth_of_the_parse(seed):
    rng = random.Random(seed)
    for _ in range(200):
        tree = random_tree(rng, GeneratorConfig(max_depth=6, paren_prob=0.3))
        state = START
        for token in word_tokens(to_text(tree)):
            state = step(state, token)
            assert state is not None
        assert final(state) == (tree.value, tree.depth)
    for bad in (["True", "True"], [")"], ["and"], ["(", ")"], ["not", "or"]):
        state = START
        for token in bad:
            state = None if state is None else step(state, token)
        assert state is None or final(state) is None


def test_prefixes_that_cannot_continue_are_refused_at_once():
    for prefix in itertools.product(TOKENS, repeat=3):
        state = START
        for token in prefix:
            state = None if state is None else step(state, token)
        viable = state is not None
        # a viable prefix can always be completed: close every parenthesis after an operand
        if viable:
            completion = [] if not state[-1][3] else ["True"]
            completion += [")"] * (len(state) - 1)
            assert parse(" ".join([*prefix, *completion])) is not None


def test_doctests():
    assert doctest.testmod(correction).failed == 0
