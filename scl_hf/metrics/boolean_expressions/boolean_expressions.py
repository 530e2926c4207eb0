"""The ``boolean_expressions`` evaluate module: correctness, diversity and distribution of generated Boolean
expressions.

A thin wrapper: the numbers come from ``compute_metrics`` of ``measures.py`` (the project's parser,
never ``eval``, and rapidfuzz edit distances), so the metric and the training loop cannot disagree.
``measures.py``, ``expressions.py``, ``diversity.py`` and ``distribution.py`` are scl_hf's own modules, next to
this script in its folder and in its Hub Space; evaluate fetches them because they are imported here by top-level
relative imports, so loading the metric needs evaluate, numpy and rapidfuzz, not scl_hf.

evaluate reads the import lines of this script only (not of the modules it imports): every sibling
module and every library the four modules need is imported here, whether or not the script uses it
(ruff's unused-import rule is off for this file; the standard library, gzip included, needs no line), and no
import line carries a comment, because evaluate would read the comment as a download location.

Input is checked the way ``compute_metrics`` checks it, before evaluate stores it: evaluate writes the
predictions to an Arrow table of strings, which would turn an int or bytes into its ``str`` and cannot hold a
lone surrogate (``"\\ud800"``, a valid Python string that UTF-8 cannot encode). So ``add`` and ``add_batch``
(which ``compute(predictions=...)`` calls) refuse a non-string with the TypeError of ``compute_metrics``, and
store each prediction escaped (:func:`_escape`, reversed in ``_compute``), so every string is measured as
``compute_metrics`` measures it.
"""

import datasets
import evaluate
import numpy
import rapidfuzz

from .distribution import compression_ratio
from .diversity import LEVELS
from .expressions import parse
from .measures import as_string, as_strings, compute_metrics

# A prediction goes into evaluate's Arrow table escaped, so that every Python string survives UTF-8: each
# surrogate code point becomes _ESCAPE and its 4 hex digits, and _ESCAPE itself (U+10FFFF, a noncharacter:
# Unicode keeps it for a program's internal use) is doubled. Strings with neither are stored as they are.
_ESCAPE = "\U0010ffff"
_ESCAPES = {code: f"{_ESCAPE}{code:04x}" for code in range(0xD800, 0xE000)}
_ESCAPES[ord(_ESCAPE)] = _ESCAPE * 2


def _escape(text: str) -> str:
    """``text`` with every surrogate and every ``_ESCAPE`` escaped: valid UTF-8, and :func:`_unescape` undoes it.

    >>> _escape("True\\ud800 or"), _unescape(_escape("True\\ud800 or")) == "True\\ud800 or"
    ('True\\U0010ffffd800 or', True)
    """
    if text.isascii():
        return text
    if _ESCAPE not in text:
        try:
            text.encode("utf-8")  # fails exactly on surrogates
            return text
        except UnicodeEncodeError:
            pass
    return text.translate(_ESCAPES)


def _unescape(text: str) -> str:
    """The string that :func:`_escape` turned into ``text``: the parts between escapes, read left to right."""
    if _ESCAPE not in text:
        return text
    parts = iter(text.split(_ESCAPE))
    out = [next(parts)]
    for part in parts:
        if part:  # an escaped surrogate: its 4 hex digits, then plain text
            out.append(chr(int(part[:4], 16)) + part[4:])
        else:  # a doubled _ESCAPE: the escape itself, then the plain text up to the next escape
            out.append(_ESCAPE + next(parts))
    return "".join(out)


_CITATION = """\
@article{briesch2023large,
  title={Large Language Models Suffer From Their Own Output: An Analysis of the Self-Consuming Training Loop},
  author={Briesch, Martin and Sobania, Dominik and Rothlauf, Franz},
  journal={arXiv preprint arXiv:2311.16822},
  year={2023}
}
"""

_DESCRIPTION = """\
Correctness and diversity of generated Boolean expressions over the tokens True, False, and, or, not, ( and ),
as measured by Briesch et al. (2023) in their study of self-consuming training loops. Each prediction is
classified by Python's reading of it (syntax error, False or True) with a parser that never evaluates code;
the diversity is the mean normalized Levenshtein distance over all unordered pairs of predictions, on word
tokens or characters. Next to it, measures the field compares with: distinct-n, the gzip compression ratio,
structural uniqueness (distinct canonical expressions and tree shapes) and the most frequent predictions; given a
real reference set, the Jensen-Shannon divergences of depth, length and operator counts from it and how well its
rarest strata (deepest depth, longest length decile) are covered.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated strings, any content (garbage, empty, long, non-ASCII, lone
        surrogates); an item that is not a `str` raises a TypeError naming it, as `compute_metrics` does.
    training_texts (`list` of `str`, *optional*): the training set, of any length; adds `novelty_rate`. Not
        paired with the predictions, so it is a keyword of `compute` only (not of `add_batch`).
    real_texts (`list` of `str`, *optional*): a real reference set (in a self-consuming loop, the real data D0),
        of any length >= 1 and not paired with the predictions (a keyword of `compute` only; `references` keeps
        evaluate's paired meaning and is not used); adds the `jsd_*` and `tail_coverage_*` values.
    level (`str`, defaults to `"token"`): `"token"` compares word tokens (each parenthesis, and every maximal
        run of other non-space characters), `"char"` compares characters.
    max_pairs (`int`, *optional*): when there are more unordered pairs than this, the diversity is estimated
        from `max_pairs` random pairs and `diversity_stderr` is added. Defaults to exact.
    seed (`int`, defaults to 0): seed of the pair sampling.
Returns:
    num_samples (`int`), syntax_error_rate, false_rate, true_rate (`float`, summing to 1; true_rate is the
    paper's semantic correctness, 1 - syntax_error_rate its syntactic correctness), diversity (`float` in
    [0, 1]), num_unique (`int`), unique_rate (`float`), mean_length (`float`) and max_length (`int`) in word
    tokens, mean_depth (`float` over parsable predictions, None if there are none), novelty_rate (`float`,
    with training_texts), diversity_stderr (`float`, when estimated); then distinct_1 .. distinct_4 (`float`,
    distinct word-token n-grams / n-grams, 0 without n-grams), compression_ratio (`float`, UTF-8 size of the
    predictions joined by newlines / gzip size), canonical_unique_rate and shape_unique_rate (`float`, distinct
    expressions printed without redundant parentheses, and distinct tree shapes with literals abstracted, as a
    share of the parsable predictions; None if there are none); with real_texts, jsd_depth, jsd_length, jsd_not,
    jsd_and, jsd_or (`float` in [0, 1], base-2 Jensen-Shannon divergences from the real set) and
    tail_coverage_depth, tail_coverage_length (`float` >= 0, 1 = the real set's rarest stratum is as frequent
    among the predictions as in the real set; tail_coverage_depth is None if no real text parses); last
    top_samples (`list` of `[text, count]`, the 10 most frequent predictions, count descending, then text).
Examples:
    Run from the folder that holds `boolean_expressions/`, or load `"<namespace>/boolean_expressions"` from a
    Hub Space.

    >>> import evaluate
    >>> metric = evaluate.load("boolean_expressions")
    >>> results = metric.compute(predictions=["True and False", "not False", "True or", "not False"])
    >>> results["syntax_error_rate"], results["false_rate"], results["true_rate"]
    (0.25, 0.25, 0.5)
    >>> round(results["diversity"], 4)  # token distances 2/3, 2/3, 2/3, 1, 0, 1: mean 4/6
    0.6667
    >>> results["num_unique"], results["unique_rate"], results["mean_length"], results["max_length"]
    (3, 0.75, 2.25, 3)
    >>> results["mean_depth"]
    2.0

    The training set adds the share of predictions not in it:

    >>> metric.compute(predictions=["True", "True", "not True", "False"], training_texts=["True"])["novelty_rate"]
    0.5

    Characters instead of word tokens ("True" -> "False" takes 4 edits, normalized by 5):

    >>> metric.compute(predictions=["True", "False"])["diversity"]
    1.0
    >>> metric.compute(predictions=["True", "False"], level="char")["diversity"]
    0.8

    An estimate from sampled pairs carries its standard error:

    >>> results = metric.compute(predictions=["True", "False"] * 100, max_pairs=1000)
    >>> 0.45 < results["diversity"] < 0.56, results["diversity_stderr"] < 0.02
    (True, True)

    Structure and the mode: "(True)" and "True" are one expression, "True" and "False" one shape:

    >>> results = metric.compute(predictions=["True", "(True)", "False", "True"])
    >>> results["canonical_unique_rate"], results["shape_unique_rate"], results["top_samples"]
    (0.5, 0.25, [['True', 2], ['(True)', 1], ['False', 1]])
    >>> results["distinct_1"], results["distinct_2"]  # 4 distinct of 6 tokens; 2 distinct of 2 2-grams
    (0.6666666666666666, 1.0)

    A real reference set adds divergences and tail coverage. Depths 3, 3 against 1, 3: JSD = 3/2 - 3/4 log2(3),
    and every prediction is in the real set's deepest stratum, which holds half of it:

    >>> results = metric.compute(predictions=["not not True", "not not False"], real_texts=["True", "not not True"])
    >>> round(results["jsd_depth"], 6), results["jsd_length"], results["tail_coverage_depth"]
    (0.311278, 0.0, 2.0)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BooleanExpressions(evaluate.Metric):
    """Correctness (syntax error / False / True rates) and pairwise edit-distance diversity of expressions."""

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/2311.16822"],
        )

    # add and add_batch are overridden to check and escape the predictions before evaluate casts and stores
    # them (the module docstring says why), not to rename references; compute(predictions=...) goes through
    # add_batch, so compute is evaluate's own. Signatures, and everything else the two do, are evaluate's too.
    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction to the module's stack: a string, else the TypeError ``compute_metrics`` raises."""
        if "predictions" in kwargs:  # evaluate takes the feature's own name too, and then ignores prediction
            kwargs["predictions"] = _escape(as_string(kwargs["predictions"], "predictions"))
        else:
            prediction = _escape(as_string(prediction, "prediction"))
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions to the module's stack: strings, else the TypeError ``compute_metrics`` raises."""
        predictions = [_escape(text) for text in as_strings(predictions, "predictions")]
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, training_texts=None, real_texts=None, level="token", max_pairs=None, seed=0):
        predictions = [_unescape(text) for text in predictions]
        return compute_metrics(predictions, training_texts, real_texts=real_texts, level=level, max_pairs=max_pairs,
                               seed=seed)
