"""The metric every generation is judged by: correctness, diversity and distribution of a list of generated strings.

:func:`compute_metrics` returns the ``metrics`` block of a generation's ``metrics.json``; the
``evaluate`` module ``scl_hf/metrics/boolean_expressions/`` wraps it, and ``scl-hf metric FILE``
prints it. Labels and depths come from the project's parser (never ``eval``); distances from
:mod:`scl_hf.diversity`; divergences from a real set, tail coverage, n-gram, compression and mode
measures from :mod:`scl_hf.distribution`. Nothing here imports torch, transformers or evaluate.

This module, ``expressions.py``, ``diversity.py`` and ``distribution.py`` import each other only by top-level
relative imports and need nothing but the standard library, numpy and rapidfuzz: the metric's Hub Space ships
these very files next to its script, so ``evaluate.load("<namespace>/boolean_expressions")`` works where scl_hf
is not installed.

Every statistic is over samples, duplicates counted; each distinct string is parsed and tokenized once (a real
string that is also a sample is not read again; the other real strings are read without building their trees,
by :func:`scl_hf.distribution.real_facts`). Lengths are in word tokens
(:func:`scl_hf.diversity.word_tokens`), so garbage is measured too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .distribution import NGRAM_SIZES, compare, compression_ratio, distinct_n, facts, real_facts, top_samples
from .diversity import LEVELS, diversity, estimate_diversity, novelty_rate, word_tokens
from .expressions import canonical_form, label, parse, shape_form


def as_string(value, name: str) -> str:
    """``value`` if it is a string (lone surrogates included), else a TypeError naming it, e.g. ``predictions[3]``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}: {value!r}")
    return value


def as_strings(values: Iterable[str], name: str) -> list[str]:
    """``values`` as a list, or a TypeError naming the argument (and the first item that is not a string).

    The evaluate module checks its input with this function and :func:`as_string` too, so both paths refuse
    the same values with the same message.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            as_string(value, f"{name}[{i}]")
    return values


def compute_metrics(predictions: list[str], training_texts: list[str] | None = None, *,
                    real_texts: list[str] | None = None, level: str = "token", max_pairs: int | None = None,
                    seed: int = 0) -> dict:
    """Correctness, diversity, shape and distribution statistics of ``predictions``.

    Args:
        predictions: generated strings, any content (garbage, empty, very long, non-ASCII).
        training_texts: the training set (any length, not paired with ``predictions``), to measure
            ``novelty_rate``; omitted from the result when None.
        real_texts: a real reference set (any length >= 1, not paired; in the loop D0), to compare the
            distributions with; the ``jsd_*`` and ``tail_coverage_*`` values are omitted when None.
        level: ``"token"`` (word tokens, the default) or ``"char"``: what the edit distance counts.
        max_pairs: None computes the diversity exactly over all pairs. An integer >= 2 caps the work: when
            there are more unordered pairs than that, the diversity is estimated from ``max_pairs`` random
            pairs and ``diversity_stderr`` is added.
        seed: seed of the pair sampling (only used when ``max_pairs`` applies).

    Returns:
        ``num_samples``, ``syntax_error_rate``, ``false_rate``, ``true_rate`` (these three sum to 1),
        ``diversity``, ``num_unique``, ``unique_rate``, ``mean_length``, ``max_length`` (word tokens),
        ``mean_depth`` (over parsable samples; None when there are none), then ``novelty_rate`` when
        ``training_texts`` are given and ``diversity_stderr`` when the diversity was estimated; then
        ``distinct_1`` .. ``distinct_4`` and ``compression_ratio`` (:mod:`scl_hf.distribution`),
        ``canonical_unique_rate`` and ``shape_unique_rate`` (distinct :func:`~scl_hf.expressions.canonical_form`
        and :func:`~scl_hf.expressions.shape_form` over the parsable samples, as a share of them; None when
        none parses); with ``real_texts``, ``jsd_depth``, ``jsd_length``, ``jsd_not``, ``jsd_and``, ``jsd_or``,
        ``tail_coverage_depth`` (None when no real string parses) and ``tail_coverage_length``; last
        ``top_samples``, the 10 most frequent samples as ``[text, count]`` (count descending, then text).

    Raises:
        ValueError: empty ``predictions`` or ``real_texts``, unknown ``level``, ``max_pairs`` not None or an
            integer >= 2.
        TypeError: ``predictions``/``training_texts``/``real_texts`` not a list of strings, ``seed`` not an integer.

    >>> m = compute_metrics(["True and False", "not False", "True or", "not False"], training_texts=["not False"])
    >>> m["syntax_error_rate"], m["false_rate"], m["true_rate"], m["num_unique"], m["novelty_rate"]
    (0.25, 0.25, 0.5, 3, 0.5)
    >>> round(m["diversity"], 6), m["mean_length"], m["max_length"], m["mean_depth"]
    (0.666667, 2.25, 3, 2.0)
    >>> m["distinct_1"], m["canonical_unique_rate"], m["top_samples"][:2]  # 1-grams: 5 of 9; 2 of 3 parsable
    (0.5555555555555556, 0.6666666666666666, [['not False', 2], ['True and False', 1]])
    >>> round(compute_metrics(["True", "not True"], real_texts=["True"])["jsd_depth"], 6)  # 3/2 - 3/4 log2(3)
    0.311278
    """
    predictions = as_strings(predictions, "predictions")
    if not predictions:
        raise ValueError("predictions must hold at least one string, got an empty list")
    if training_texts is not None:
        training_texts = as_strings(training_texts, "training_texts")
    if real_texts is not None:
        real_texts = as_strings(real_texts, "real_texts")
        if not real_texts:
            raise ValueError("real_texts must hold at least one string, got an empty list")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 2):
        raise ValueError(f"max_pairs must be None (exact) or an integer >= 2, got {max_pairs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")

    n = len(predictions)
    counts = Counter(predictions)
    labels = Counter()
    depth_sum = length_sum = max_length = 0
    known = {}  # distinct prediction -> its facts (depth, length, operator counts), for the real set
    profile = Counter()  # facts -> number of samples
    token_counts = Counter()  # word-token tuple -> number of samples
    forms, shapes = set(), set()  # canonical forms and shapes of the parsable samples
    for text, count in counts.items():
        tree = parse(text)
        labels[label(tree)] += count
        tokens = word_tokens(text)
        if tree is not None:
            depth_sum += tree.depth * count
            # without parentheses, the tokens are already the canonical form (the tree needs none)
            form = " ".join(tokens) if "(" not in text else canonical_form(tree)
            forms.add(form)
            shapes.add(shape_form(form))
        length = len(tokens)
        length_sum += length * count
        max_length = max(max_length, length)
        known[text] = fact = facts(tree, tokens)
        profile[fact] += count
        token_counts[tuple(tokens)] += count
    num_valid = labels["true"] + labels["false"]

    num_pairs = n * (n - 1) // 2
    stderr = None
    if max_pairs is not None and num_pairs > max_pairs:
        value, stderr = estimate_diversity(predictions, max_pairs, level, seed=seed)
    else:
        value = diversity(predictions, level)

    result = {
        "num_samples": n,
        "syntax_error_rate": labels["syntax_error"] / n,
        "false_rate": labels["false"] / n,
        "true_rate": labels["true"] / n,
        "diversity": value,
        "num_unique": len(counts),
        "unique_rate": len(counts) / n,
        "mean_length": length_sum / n,
        "max_length": max_length,
        "mean_depth": depth_sum / num_valid if num_valid else None,
    }
    if training_texts is not None:
        result["novelty_rate"] = novelty_rate(predictions, training_texts)
    if stderr is not None:
        result["diversity_stderr"] = stderr
    result.update({f"distinct_{k}": v for k, v in distinct_n(token_counts, NGRAM_SIZES).items()})
    result["compression_ratio"] = compression_ratio(predictions)
    result["canonical_unique_rate"] = len(forms) / num_valid if num_valid else None
    result["shape_unique_rate"] = len(shapes) / num_valid if num_valid else None
    if real_texts is not None:
        real = Counter()
        for text, count in Counter(real_texts).items():
            fact = known.get(text)
            real[fact if fact is not None else real_facts(text)] += count
        result.update(compare(profile, real))
    result["top_samples"] = top_samples(counts)
    return result
