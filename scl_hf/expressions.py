"""The Boolean-expression domain: alphabet, random generator, parser, evaluator, printer.

Standard library only, so that the metric and any pipeline can import it without torch.

The language is Python's reading of strings over the tokens ``True False and or not ( )``:
precedence ``not`` > ``and`` > ``or``, both binary operators left-associative, redundant
parentheses allowed, tokens separated by any amount of spaces/tabs (a keyword glued to another
word, as in ``notTrue``, is one unknown word). Anything else is a syntax error. Model output is
untrusted, so nothing here calls ``eval``: the parser is an explicit-stack operator-precedence
parser, linear in the input length, with no recursion (100,000 nested parentheses are fine).

Trees are :class:`Expr` nodes with an explicit ``"()"`` node for every pair of parentheses, so that
``parse(to_text(tree)) == tree`` holds exactly. ``depth`` counts operator levels (a literal has
depth 1, ``not``/``and``/``or`` add one, parentheses add nothing) and is computed at construction,
as is the truth value, so neither needs a recursive walk.

Generator (a documented reconstruction of Briesch et al. 2023, arXiv 2311.16822, Sec. 3.1, whose
exact probabilities are not published): draw a target depth ``d`` uniformly from
``[min_depth, max_depth]`` and build a tree of exactly that depth top-down. A node that must reach
depth ``d > 1`` is an operator, chosen with weights ``not_weight : and_weight : or_weight``; ``not``
takes one child of depth ``d - 1``; a binary node gives depth ``d - 1`` to one child (left or right
with equal probability) and a depth drawn uniformly from ``[1, d - 1]`` to the other. A child is
wrapped in parentheses where precedence requires it (a binary operand of ``not``, an ``or`` inside
``and``, a same-operator right operand) and otherwise with probability ``paren_prob`` (the paper's
examples contain redundant parentheses). The real dataset D0 keeps the unique expressions that
evaluate to True; ``num_true_expressions`` counts how many distinct ones the generator can make.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field

TOKENS = ("True", "False", "and", "or", "not", "(", ")")
WORDS = frozenset(("True", "False", "and", "or", "not"))
ALPHABET = "".join(sorted(set("".join(TOKENS)) | {" "}))  # every character a valid expression may use
LABELS = ("syntax_error", "false", "true")

# Python's tokenizer separates parentheses from words and skips spaces, tabs and form feeds;
# every maximal run of other characters is one word, which must be a keyword of the alphabet.
_LEXEME = re.compile(r"[()]|[^\s()]+|\s+")
_BLANK = frozenset(" \t\f")
_PRECEDENCE = {"or": 1, "and": 2, "not": 3}


@dataclass(frozen=True, slots=True)
class Expr:
    """A node: ``op`` is ``"True"``, ``"False"``, ``"not"``, ``"and"``, ``"or"`` or ``"()"``."""

    op: str
    args: tuple[Expr, ...] = ()
    value: bool = field(init=False, compare=False, repr=False)
    depth: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        a = self.args
        if self.op in ("True", "False"):
            value, depth = self.op == "True", 1
        elif self.op == "()":
            value, depth = a[0].value, a[0].depth
        elif self.op == "not":
            value, depth = not a[0].value, a[0].depth + 1
        elif self.op == "and":
            value, depth = a[0].value and a[1].value, max(a[0].depth, a[1].depth) + 1
        elif self.op == "or":
            value, depth = a[0].value or a[1].value, max(a[0].depth, a[1].depth) + 1
        else:
            raise ValueError(f"unknown operator {self.op!r}; allowed: True, False, not, and, or, ()")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "depth", depth)


def tokenize(text: str) -> list[str] | None:
    """Split ``text`` into alphabet tokens, or return None if it holds anything else."""
    tokens = []
    for lexeme in _LEXEME.findall(text):
        if lexeme[0].isspace():
            if not set(lexeme) <= _BLANK:  # newlines and exotic unicode spaces end a Python expression
                return None
        elif lexeme in WORDS or lexeme in "()":
            tokens.append(lexeme)
        else:
            return None
    return tokens


def parse(text: str) -> Expr | None:
    """Parse ``text`` into a tree, or return None for a syntax error. Never raises on a string."""
    tokens = tokenize(text) if isinstance(text, str) else None
    if not tokens:
        return None
    operands: list[Expr] = []
    operators: list[str] = []  # "not", "and", "or" and "(" waiting for their operands

    def reduce() -> None:
        op = operators.pop()
        if op == "not":
            operands.append(Expr("not", (operands.pop(),)))
        else:
            right = operands.pop()
            operands.append(Expr(op, (operands.pop(), right)))

    expect_operand = True
    for tok in tokens:
        if expect_operand:
            if tok in ("True", "False"):
                operands.append(Expr(tok))
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
            operands.append(Expr("()", (operands.pop(),)))
        else:
            return None
    if expect_operand:
        return None
    while operators:
        if operators[-1] == "(":
            return None
        reduce()
    return operands[0]


def label(tree: Expr | None) -> str:
    """``"syntax_error"`` for None (what ``parse`` gives a non-expression), else ``"false"`` or ``"true"``."""
    if tree is None:
        return "syntax_error"
    return "true" if tree.value else "false"


def classify(text: str) -> str:
    """Return ``"syntax_error"``, ``"false"`` or ``"true"`` for any string (Python's reading)."""
    return label(parse(text))


def depth(item: Expr | str) -> int | None:
    """Depth of a tree or of a string (None for a syntax error); see the module docstring."""
    tree = parse(item) if isinstance(item, str) else item
    return None if tree is None else tree.depth


def to_text(tree: Expr) -> str:
    """Canonical printer: single spaces between tokens, none inside parentheses: ``not (True or False)``."""
    out: list[str] = []
    stack: list[Expr | str] = [tree]  # explicit stack: parsed trees can be arbitrarily deep
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item.op in ("True", "False"):
            out.append(item.op)
        elif item.op == "()":
            stack += [")", item.args[0], "("]
        elif item.op == "not":
            stack += [item.args[0], "not "]
        else:
            stack += [item.args[1], f" {item.op} ", item.args[0]]
    return "".join(out)


SHAPE_LITERAL = "x"  # what shape_form prints for every literal (a word outside the language, so never mistaken)


def _unwrap(tree: Expr) -> Expr:
    """``tree`` without the parentheses around it: the first node below any ``"()"`` nodes."""
    while tree.op == "()":
        tree = tree.args[0]
    return tree


def canonical_form(tree: Expr) -> str:
    """The expression of ``tree`` printed canonically: as :func:`to_text`, but with only necessary parentheses.

    Every ``"()"`` node is dropped and parentheses are printed exactly where the tree needs them to parse back
    the same (a binary operand of ``not``, an ``or`` inside ``and``, a same-operator or ``or`` right operand), so
    two strings that differ only in spacing or redundant parentheses get the same form, and ``parse`` of the
    form gives the tree with its redundant parentheses removed. Recursion-free, like :func:`to_text`.

    >>> canonical_form(parse("((not (True)) and (False or True))"))
    'not True and (False or True)'
    >>> canonical_form(parse("True and (True and False)")), canonical_form(parse("(True and True) and False"))
    ('True and (True and False)', 'True and True and False')
    """
    out: list[str] = []
    stack: list[Expr | str] = [_unwrap(tree)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item.op in ("True", "False"):
            out.append(item.op)
        elif item.op == "not":
            child = _unwrap(item.args[0])
            stack += [")", child, "not ("] if _needs_parens("not", child.op, False) else [child, "not "]
        else:
            left, right = _unwrap(item.args[0]), _unwrap(item.args[1])
            stack += [")", right, f" {item.op} ("] if _needs_parens(item.op, right.op, True) else [
                right, f" {item.op} "]
            stack += [")", left, "("] if _needs_parens(item.op, left.op, False) else [left]
    return "".join(out)


def shape_form(item: Expr | str) -> str:
    """The shape of a tree: its :func:`canonical_form` with every literal printed as ``SHAPE_LITERAL``.

    ``item`` is a tree, or the canonical form of one (the literals are then replaced without a second walk).

    >>> shape_form(parse("(True or False) and not False")), shape_form("True and False")
    ('(x or x) and not x', 'x and x')
    """
    text = canonical_form(item) if isinstance(item, Expr) else item
    return text.replace("True", SHAPE_LITERAL).replace("False", SHAPE_LITERAL)


MAX_DEPTH = 500  # random_tree recurses once per level, and Python's default recursion limit is 1000 frames


@dataclass(frozen=True)
class GeneratorConfig:
    """Branching probabilities of the random generator (see the module docstring). Defaults: the paper's bounds."""

    min_depth: int = 1  # smallest tree depth drawn (1 = a bare literal); the paper: 1..5
    max_depth: int = 5
    not_weight: float = 1.0  # relative odds of not / and / or at an inner node (a reconstruction)
    and_weight: float = 1.0
    or_weight: float = 1.0
    paren_prob: float = 0.1  # probability of redundant parentheses around a child or the whole expression
    true_prob: float = 0.5  # probability that a literal is True

    def __post_init__(self) -> None:
        weights = ("not_weight", "and_weight", "or_weight")
        total = sum(getattr(self, k) for k in weights)
        largest = max(weights, key=lambda k: getattr(self, k))
        checks = [
            # first: inf passes ">= 0" and nan fails every comparison, which would hide what is wrong
            *((math.isfinite(getattr(self, k)), k, "a finite number") for k in (*weights, "paren_prob", "true_prob")),
            (self.min_depth >= 1, "min_depth", "an integer >= 1"),
            (self.max_depth >= self.min_depth, "max_depth", f"an integer >= min_depth={self.min_depth}"),
            (self.max_depth <= MAX_DEPTH, "max_depth", f"at most {MAX_DEPTH} (the generator recurses once per level)"),
            *((getattr(self, k) >= 0.0, k, "a number >= 0") for k in weights),
            (total > 0.0, "not_weight", "a number > 0 when and_weight and or_weight are 0"),
            (math.isfinite(total), largest, "small enough that not_weight + and_weight + or_weight is finite"),
            *((0.0 <= getattr(self, k) <= 1.0, k, "in [0, 1]") for k in ("paren_prob", "true_prob")),
        ]
        for ok, key, allowed in checks:
            if not ok:
                raise ValueError(f"{key} must be {allowed}, got {getattr(self, key)!r}")


def _needs_parens(parent: str, child_op: str, right: bool) -> bool:
    """Whether a child whose root is ``child_op`` must be parenthesized under ``parent`` to print unambiguously."""
    if child_op in ("True", "False", "()", "not"):
        return False
    if parent == "not":
        return True
    if parent == "and":
        return child_op == "or" or right
    return right and child_op == "or"  # parent "or": only a right "or" would re-associate


def random_tree(rng: random.Random, cfg: GeneratorConfig = GeneratorConfig()) -> Expr:
    """Draw one tree whose depth lies in ``[cfg.min_depth, cfg.max_depth]``."""
    target = rng.randint(cfg.min_depth, cfg.max_depth)
    ops, weights = ("not", "and", "or"), (cfg.not_weight, cfg.and_weight, cfg.or_weight)

    def wrap(parent: str, child: Expr, right: bool) -> Expr:
        if _needs_parens(parent, child.op, right) or rng.random() < cfg.paren_prob:
            return Expr("()", (child,))
        return child

    def build(d: int) -> Expr:  # a tree of depth exactly d; d <= max_depth, so recursion is shallow
        if d == 1:
            return Expr("True" if rng.random() < cfg.true_prob else "False")
        op = rng.choices(ops, weights)[0]
        if op == "not":
            return Expr("not", (wrap("not", build(d - 1), False),))
        deep, other = build(d - 1), build(rng.randint(1, d - 1))
        left, right = (deep, other) if rng.random() < 0.5 else (other, deep)
        return Expr(op, (wrap(op, left, False), wrap(op, right, True)))

    tree = build(target)
    return Expr("()", (tree,)) if rng.random() < cfg.paren_prob else tree


def num_true_expressions(cfg: GeneratorConfig = GeneratorConfig(), limit: int | None = None) -> int:
    """How many distinct strings ``make_real_dataset`` can return: the True texts ``random_tree`` can emit.

    Every tree ``random_tree`` can draw is counted once: a literal at depth 1 (True and/or False, as
    ``true_prob`` allows), above it every operator of nonzero weight, a binary node over every pair of
    children whose deeper one has depth d - 1, and around each child none or one pair of parentheses
    (exactly one where ``_needs_parens`` requires it; none or one otherwise, as ``paren_prob`` allows:
    both for 0 < paren_prob < 1), likewise around the whole. ``to_text`` is injective on these trees
    (``parse`` inverts it), so trees and strings are counted alike.

    The count is a dynamic programme over depth on (root operator, value), exact in Python integers.
    It grows about as the square per level (default knobs, depth 1..max_depth: 2, 38, 7,726,
    248,449,310, about 2.3e17 and 1.8e35 for max_depth 1 to 6), so ``limit`` stops it early: with
    ``limit`` the result is ``min(count, limit)``, in at most ``max_depth`` steps on integers of
    at most ``limit ** 2``.
    """
    def cap(x: int) -> int:
        return x if limit is None else min(x, limit)

    binary = [op for op, w in (("and", cfg.and_weight), ("or", cfg.or_weight)) if w > 0]
    wrap_ways = 2 if 0.0 < cfg.paren_prob < 1.0 else 1  # no parentheses or one pair, where both can happen
    # child positions: (parent, right); per position and value, the ways to print a child (parentheses included)
    positions = [("not", False)] + [(op, right) for op in binary for right in (False, True)]
    exact = {p: {True: 0, False: 0} for p in positions}  # children of depth d - 1
    below = {p: {True: 0, False: 0} for p in positions}  # children of depth < d - 1
    # trees of depth exactly d, by (root operator, value); a literal's "operator" is "True"
    level = {("True", True): int(cfg.true_prob > 0.0), ("True", False): int(cfg.true_prob < 1.0)}
    total = 0
    for d in range(1, cfg.max_depth + 1):
        if d > 1:
            level = {}
            if cfg.not_weight > 0:
                for v in (True, False):
                    level["not", v] = exact["not", False][not v]
            for op in binary:
                left, right = exact[op, False], exact[op, True]
                left_below, right_below = below[op, False], below[op, True]
                for v in (True, False):  # the left child of depth d - 1 (the right one: any), or only the right one
                    level[op, v] = cap(sum(left[a] * (right[b] + right_below[b]) + left_below[a] * right[b]
                                           for a in (True, False) for b in (True, False)
                                           if (a and b if op == "and" else a or b) == v))
        if d >= cfg.min_depth:
            total = cap(total + wrap_ways * sum(n for (_, v), n in level.items() if v))
            if limit is not None and total >= limit:
                return total
        for parent, is_right in positions:
            p = (parent, is_right)
            for v in (True, False):
                below[p][v] = cap(below[p][v] + exact[p][v])
                exact[p][v] = cap(sum(n * (1 if _needs_parens(parent, op, is_right) else wrap_ways)
                                      for (op, value), n in level.items() if value == v))
    return total


def make_real_dataset(n: int = 10_000, seed: int = 0, cfg: GeneratorConfig = GeneratorConfig(),
                      exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """``n`` unique canonical expressions that evaluate to True, in generation order.

    The same ``seed`` gives the same list on every machine (``random.Random`` is specified).
    ``exclude`` holds strings that must not be drawn (e.g. D0 when drawing fresh real data).

    Raises:
        ValueError: if the generator cannot produce ``n`` such expressions (depth bounds too small).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    seen: set[str] = set(exclude)
    out: list[str] = []
    misses = 0
    while len(out) < n:
        tree = random_tree(rng, cfg)
        text = to_text(tree)
        if tree.value and text not in seen:
            seen.add(text)
            out.append(text)
            misses = 0
        else:
            misses += 1
            if misses > 100_000 + 100 * n:
                raise ValueError(f"only {len(out)} unique True expressions found for n={n} with "
                                 f"depth {cfg.min_depth}..{cfg.max_depth}; raise max_depth or lower n")
    return out


def dataset_stats(texts: list[str]) -> dict:
    """Counts a researcher checks first: size, uniqueness, labels, depth and length histograms."""
    trees = [parse(t) for t in texts]
    labels = Counter(map(label, trees))
    depths = Counter(t.depth for t in trees if t is not None)
    lengths = [len(t) for t in texts]
    return {
        "num_rows": len(texts),
        "num_unique": len(set(texts)),
        "labels": {k: labels.get(k, 0) for k in LABELS},
        "depth_histogram": dict(sorted(depths.items())),
        "mean_chars": sum(lengths) / len(lengths) if lengths else 0.0,
        "max_chars": max(lengths, default=0),
    }
