"""The correction function of the ``correct`` curation step: the True expression fewest token edits away.

A sample is a list of word tokens (``scl_hf.diversity.word_tokens``; a fragment such as ``Tr`` is one token
too). An edit inserts one of the seven tokens of the language, deletes a token, or substitutes one of the
seven for a token. :func:`correct` returns a True expression whose depth lies in the real data's bounds and
that is the fewest edits away (at most ``max_edits``), or None.

Algorithm. The output is read left to right by a small evaluator whose state is exactly what the rest of the
expression needs to know: per open parenthesis a frame ``(or_part, and_part, nots, expect_operand)``, where
``or_part`` and ``and_part`` are ``(value, depth)`` of the finished disjunction and the conjunction in progress
(None before the first) and ``nots`` counts the ``not``s waiting for their operand. The grammar
(``E := T (or T)*``, ``T := F (and F)*``, ``F := not F | True | False | ( E )``) is thereby a deterministic
automaton whose state at the end gives the expression's value and its depth as ``Expr`` computes them. The
search runs over ``(position in the sample, state, edits left)``: keep the next token (no edit) or spend one
edit (delete it, substitute a token, insert a token before it), only through tokens the state accepts, so a
branch dies at the first token that cannot continue an expression. Edits left are deepened from 0 to
``max_edits``: the first budget that reaches an accepting end (state complete, value True, depth in bounds) is
the minimum. Each ``(position, state, edits left)`` that failed is remembered and never searched again,
and a branch is cut when the tokens ahead certainly need more edits than are left: each fragment that is not
a token needs one (a deletion or a substitution), and so does each open parenthesis that no ``)`` ahead can
close (an inserted or substituted ``)``); one substitution of a fragment by ``)`` serves both, so the bound is
the larger of the two counts, not their sum. Ties among equally short
corrections are broken by the order in which the edits are tried, shuffled by ``random.Random(seed)``: the
same sample and seed always give the same correction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from scl_hf.diversity import word_tokens
from scl_hf.expressions import TOKENS, parse, to_text

Part = tuple[bool, int] | None  # (value, depth) of a finished sub-expression, None before the first
Frame = tuple[Part, Part, int, bool]  # (or_part, and_part, nots, expect_operand)
State = tuple[Frame, ...]  # one frame per open parenthesis, the outermost first

START: State = ((None, None, 0, True),)
MAX_TOKENS = 500  # a longer sample is not corrected (the search recurses once per token); samples are far shorter
# The edit budget unless a caller gives one (``correction_max_edits``): a literal flipped and a parenthesis closed;
# a sample farther from every True expression would be replaced by another expression rather than corrected.
DEFAULT_MAX_EDITS = 2
_TOKEN_SET = frozenset(TOKENS)


def _join(part: Part, value: bool, depth: int, op: str) -> tuple[bool, int]:
    if part is None:
        return value, depth
    return (part[0] and value) if op == "and" else (part[0] or value), max(part[1], depth) + 1


def _operand(frame: Frame, value: bool, depth: int) -> Frame:
    """``frame`` after an operand of ``(value, depth)`` (a literal or a closed parenthesis) and its ``not``s."""
    or_part, and_part, nots, _ = frame
    value, depth = value ^ (nots % 2 == 1), depth + nots
    return or_part, _join(and_part, value, depth, "and"), 0, False


def _close(frame: Frame) -> tuple[bool, int]:
    """The value and depth of the finished expression of ``frame`` (which holds at least one operand)."""
    or_part, and_part, _, _ = frame
    return _join(or_part, and_part[0], and_part[1], "or")


def step(state: State, token: str) -> State | None:
    """The state after ``token``, or None when no expression continues this way."""
    frame = state[-1]
    expect = frame[3]
    if expect:
        if token in ("True", "False"):
            return state[:-1] + (_operand(frame, token == "True", 1),)
        if token == "not":
            return state[:-1] + ((frame[0], frame[1], frame[2] + 1, True),)
        if token == "(":
            return state + ((None, None, 0, True),)
        return None
    if token == "and":
        return state[:-1] + ((frame[0], frame[1], 0, True),)
    if token == "or":
        return state[:-1] + ((_join(frame[0], frame[1][0], frame[1][1], "or"), None, 0, True),)
    if token == ")" and len(state) > 1:
        value, depth = _close(frame)
        return state[:-2] + (_operand(state[-2], value, depth),)
    return None


def final(state: State) -> tuple[bool, int] | None:
    """``(value, depth)`` when ``state`` ends a whole expression, else None."""
    if len(state) != 1 or state[0][3]:
        return None
    return _close(state[0])


def correct(tokens: Sequence[str], min_depth: int, max_depth: int, max_edits: int = DEFAULT_MAX_EDITS,
            seed: int = 0) -> tuple[list[str], int] | None:
    """The True expression (its tokens) fewest edits from ``tokens``, with its depth in ``min_depth..max_depth``,
    and the number of edits; None when every such expression is more than ``max_edits`` edits away.

    >>> correct(["True", "and", "False"], 1, 5)  # one literal flipped (or the operator, or a not added)
    (['True', 'and', 'True'], 1)
    >>> correct(["not", "(", "True"], 1, 5)[1], correct(["True"], 1, 5)
    (1, (['True'], 0))
    >>> correct(["Tr", "ue", "x", "y"], 1, 5, max_edits=2) is None  # four fragments: four edits at least
    True
    """
    tokens = list(tokens)
    n = len(tokens)
    if n > MAX_TOKENS:
        return None
    rng = random.Random(seed)
    # lower bounds on the edits the tokens from i on need: fragments, and closing parentheses available
    fragments = [0] * (n + 1)
    closers = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        fragments[i] = fragments[i + 1] + (tokens[i] not in _TOKEN_SET)
        closers[i] = closers[i + 1] + (tokens[i] == ")")
    order = list(TOKENS)
    failed: set[tuple[int, State, int]] = set()

    def search(i: int, state: State, left: int) -> list[str] | None:
        if max(fragments[i], len(state) - 1 - closers[i]) > left or (i, state, left) in failed:
            return None
        if i == n:
            end = final(state)
            if end is not None and end[0] and min_depth <= end[1] <= max_depth:
                return []
        else:
            nxt = step(state, tokens[i])  # None for a fragment too
            if nxt is not None:
                rest = search(i + 1, nxt, left)
                if rest is not None:
                    return [tokens[i], *rest]
        if left > 0:
            edits = [("insert", t) for t in order] + ([("delete", None)] if i < n else [])
            if i < n:
                edits += [("substitute", t) for t in order if t != tokens[i]]
            rng.shuffle(edits)
            for kind, token in edits:
                if kind == "delete":
                    rest = search(i + 1, state, left - 1)
                    if rest is not None:
                        return rest
                    continue
                nxt = step(state, token)
                if nxt is None:
                    continue
                rest = search(i + (kind == "substitute"), nxt, left - 1)
                if rest is not None:
                    return [token, *rest]
        failed.add((i, state, left))
        return None

    for budget in range(max_edits + 1):
        found = search(0, START, budget)
        if found is not None:
            return found, budget
    return None


def correct_text(text: str, min_depth: int, max_depth: int, max_edits: int = DEFAULT_MAX_EDITS,
                 seed: int = 0) -> tuple[str, int] | None:
    """:func:`correct` on a sample's word tokens: ``(text, 0)`` for a True sample within the depth bounds, else
    the correction printed as the real data is (``to_text``) with its number of edits, or None.

    >>> correct_text("not not not not not True", 1, 5)  # False at depth 6: one not fewer is True at depth 5
    ('not not not not True', 1)
    """
    tree = parse(text)
    if tree is not None and tree.value and min_depth <= tree.depth <= max_depth:
        return text, 0
    found = correct(word_tokens(text), min_depth, max_depth, max_edits, seed)
    if found is None:
        return None
    tokens, edits = found
    return to_text(parse(" ".join(tokens))), edits

