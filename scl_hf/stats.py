"""Statistics for comparing configurations run with few seeds: t-intervals, paired tests, endpoints, survival.

A *run* is one seed of one configuration; it yields one number per generation. Runs of two configurations
with the same seed share D0 and the held-out set, so they are compared as pairs matched by seed: the
difference removes the between-seed spread of the data, which with 3 to 5 seeds is most of the spread.

The rule for "clear" (the only one; :func:`is_clear` encodes it): a configuration differs *clearly* from
its baseline when the two-sided paired t-test over seeds gives ``p < CLEAR_LEVEL = 0.05``. The exact
sign-flip permutation p-value is printed beside it as a robustness check and is never the rule: with n
pairs its smallest value is ``2 / 2**n`` (0.25 at n=3, 0.125 at n=4, 0.0625 at n=5), so below 6 seeds
it can never be under 0.05, whatever the data.

Endpoints, fixed before any run is looked at, one number per run:

- generations to collapse: the first generation whose distinct share is below 0.1, censored at the last
  generation for runs that never get there (:func:`generations_to_collapse`; compare groups with
  :func:`kaplan_meier` and :func:`logrank_test`);
- the diversity curve's mean level (:func:`area_under_curve`);
- the final held-out NLL: the last generation's value, as it is.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

CLEAR_LEVEL = 0.05  # two-sided level of the paired t-test that makes a difference "clear"
MAX_SIGN_FLIP_PAIRS = 20  # 2**20 signed sums: about a million floats, 8 MB
# Sign-flip sums that are equal in exact arithmetic can differ in the last bits, since each sums the same
# numbers in another sign pattern; the rounding error scales with sum(|d|), not with the sum, so ties are
# decided with a tolerance relative to that scale. Distinct sums closer than this do not occur in practice.
_TIE_TOLERANCE = 1e-9


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Student-t interval of the mean over seeds: ``mean ± t_{(1+confidence)/2, n-1} * s / sqrt(n)``.

    Not a percentile bootstrap: with 3 seeds the bootstrap's resampled means stay between the seeds'
    min and max, so its "95%" interval is roughly that range and covers the true mean about 75% of the
    time. The t-interval is exact for normal data and widens as it should when n is small.

    Returns:
        ``(mean, low, high)``. One value: ``(value, nan, nan)``, since one seed says nothing about the
        spread. Seeds that all agree: a zero-width interval ``(mean, mean, mean)``.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Comparison:
    """A configuration against its baseline, seed by seed: differences are ``value - baseline``.

    ``t_pvalue`` is nan when every difference is the same number 0 (no spread, no test) and 0.0 when every
    difference is the same nonzero number; a nan is never clear.
    """

    mean_difference: float
    low: float  # t-interval of the mean difference
    high: float
    t_pvalue: float  # two-sided paired t-test: the one "clear" uses
    permutation_pvalue: float  # exact two-sided sign-flip test: the robustness check
    n: int  # pairs (seeds)


def paired_difference(values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Comparison:
    """Compare ``values`` with ``baseline``, both given in seed order (same seed, same position)."""
    if len(values) != len(baseline):
        raise ValueError(f"paired by seed: values has {len(values)} seeds, baseline has {len(baseline)}")
    if len(values) < 2:
        raise ValueError(f"a paired test needs at least 2 seeds, got {len(values)}")
    differences = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    mean, low, high = t_interval(differences, confidence)
    return Comparison(
        mean_difference=mean,
        low=low,
        high=high,
        t_pvalue=_paired_t_pvalue(values, baseline),
        permutation_pvalue=sign_flip_pvalue(differences),
        n=len(values),
    )


def _paired_t_pvalue(values: Sequence[float], baseline: Sequence[float]) -> float:
    """The two-sided paired t-test's p. Differences equal up to rounding (a shift the same on every seed) make
    scipy warn of precision loss; the p it returns, near 0, is the right answer for them, so the warning is not
    passed on to every report."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return float(stats.ttest_rel(values, baseline).pvalue)


def sign_flip_pvalue(differences: Sequence[float]) -> float:
    """Exact two-sided permutation test of "mean difference = 0" for paired data.

    Under the null each pair's difference is as likely to have either sign, so all ``2**n`` sign flips are
    enumerated and ``p`` is the share of them whose ``|mean|`` is at least the observed ``|mean|`` (the
    observed pattern and its mirror always count). The smallest reachable p is therefore ``2 / 2**n``:
    0.25 at n=3, 0.0625 at n=5, 0.03125 at n=6. Below 6 seeds this test can never reach 0.05, which is
    why "clear" is the paired t-test's verdict and this p-value only stands beside it.
    """
    d = np.asarray(differences, dtype=float)
    if not 1 <= d.size <= MAX_SIGN_FLIP_PAIRS:
        raise ValueError(f"sign_flip_pvalue enumerates 2**n flips for 1 <= n <= {MAX_SIGN_FLIP_PAIRS}, got n={d.size}")
    # sums[k] is the signed sum for the k-th sign pattern; built by doubling, so sums[0] is all plus signs
    sums = np.zeros(1)
    for x in d:
        sums = np.concatenate([sums + x, sums - x])
    observed = abs(sums[0])
    return float(np.mean(np.abs(sums) >= observed - _TIE_TOLERANCE * np.abs(d).sum()))


def is_clear(comparison: Comparison) -> bool:
    """The module docstring's rule: the paired t-test's two-sided p is below CLEAR_LEVEL."""
    return comparison.t_pvalue < CLEAR_LEVEL


def rejection_rate(pvalues: Sequence[float], level: float = CLEAR_LEVEL) -> float:
    """Share of p-values strictly below ``level`` (a nan p-value does not reject).

    For the standing null check: ``select_random`` against ``full_synthetic`` over many seeds must reject
    at about ``level``; much more means the test is anticonservative.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        raise ValueError("rejection_rate needs at least one p-value")
    return float(np.mean(p < level))


def generations_to_collapse(
    generations: Sequence[int], distinct_share: Sequence[float], threshold: float = 0.1
) -> tuple[int, bool]:
    """First generation whose distinct share is strictly below ``threshold``.

    Returns:
        ``(generation, True)`` when the run collapsed; ``(last generation, False)`` when it never did: the
        run is censored there, all we know is that it lasted at least that long.
    """
    if len(generations) != len(distinct_share):
        raise ValueError(f"{len(generations)} generations but {len(distinct_share)} distinct shares")
    below = np.flatnonzero(np.asarray(distinct_share, dtype=float) < threshold)
    if below.size:
        return int(generations[below[0]]), True
    return int(generations[-1]), False


def area_under_curve(generations: Sequence[int], values: Sequence[float]) -> float:
    """Trapezoidal area under the curve divided by the span of generations: the curve's mean level.

    In the units of ``values`` (a diversity, not diversity x generations), so runs of different lengths compare.
    """
    span = generations[-1] - generations[0]
    if span <= 0:
        raise ValueError(f"area_under_curve needs increasing generations, got {generations[0]} .. {generations[-1]}")
    return float(integrate.trapezoid(values, generations) / span)


def kaplan_meier(times: Sequence[float], observed: Sequence[bool]) -> list[tuple[float, float]]:
    """Product-limit estimate of the share of runs not yet collapsed, ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)``.

    A run censored at ``t`` is still at risk at ``t`` (events before censorings at the same time). Returns
    ``(time, S just after time)`` at every distinct time, censorings included (there S does not drop), so the
    curve reaches the last follow-up; ``S = 1`` before the first time.
    """
    sample = stats.CensoredData.right_censored(np.asarray(times, dtype=float), ~np.asarray(observed, dtype=bool))
    sf = stats.ecdf(sample).sf
    return [(float(t), float(s)) for t, s in zip(sf.quantiles, sf.probabilities, strict=True)]


def logrank_test(
    times_a: Sequence[float], observed_a: Sequence[bool], times_b: Sequence[float], observed_b: Sequence[bool]
) -> tuple[float, float]:
    """Two-group log-rank test: ``chi2 = (O_a - E_a)**2 / V`` on 1 degree of freedom.

    At each distinct event time, with ``n`` runs at risk (``n_a`` in group a) and ``d`` events, group a
    expects ``d n_a / n`` events, with the hypergeometric variance ``d (n_a / n) (1 - n_a / n) (n - d) / (n - 1)``.
    When ``V = 0`` (no events at all, e.g. every run censored, or events only where no run at risk survives)
    ``O_a = E_a`` too: no evidence, returned as statistic 0 and p = 1.0 (``scipy.stats.logrank`` gives nan).
    The chi-square p-value is a large-sample approximation; with 3 to 5 runs per group it is rough.

    Returns:
        ``(statistic, pvalue)``.
    """
    t_a, t_b = np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float)
    o_a, o_b = np.asarray(observed_a, dtype=bool), np.asarray(observed_b, dtype=bool)
    event_times = np.unique(np.concatenate([t_a[o_a], t_b[o_b]]))[:, None]  # (T, 1) against (runs,)
    n_a = (t_a >= event_times).sum(axis=1)
    n = n_a + (t_b >= event_times).sum(axis=1)
    d_a = ((t_a == event_times) & o_a).sum(axis=1)
    d = d_a + ((t_b == event_times) & o_b).sum(axis=1)
    expected_a = d * n_a / n
    # n = 1 gives 0/0; its variance is 0 (one run at risk, nothing to distribute)
    variance = np.where(n > 1, d * (n_a / n) * (1 - n_a / n) * (n - d) / np.maximum(n - 1, 1), 0.0).sum()
    if variance == 0:
        return 0.0, 1.0
    statistic = float((d_a.sum() - expected_a.sum()) ** 2 / variance)
    return statistic, float(stats.chi2.sf(statistic, df=1))
