"""Few-seed statistics: interval coverage, hand-computed tests and endpoints, brute-force and scipy cross-checks."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from scl_hf.stats import (
    CLEAR_LEVEL,
    Comparison,
    area_under_curve,
    generations_to_collapse,
    is_clear,
    kaplan_meier,
    logrank_test,
    paired_difference,
    rejection_rate,
    sign_flip_pvalue,
    t_interval,
)

# t_{0.975, 2} in closed form: for 2 degrees of freedom the quantile of level q is (2q - 1) sqrt(2 / (4 q (1 - q))).
# (The often-quoted 4.302652729911275 is off by 1.6e-10.)
T_975_DF2 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))  # 4.302652729749464


def test_t_interval_hand_example():
    # [1, 2, 6]: mean 3, s^2 = (4 + 1 + 9) / 2 = 7, half width t_{0.975,2} * sqrt(7) / sqrt(3)
    half = T_975_DF2 * math.sqrt(7) / math.sqrt(3)
    mean, low, high = t_interval([1.0, 2.0, 6.0])
    assert mean == 3.0
    assert low == pytest.approx(3 - half, rel=1e-12)
    assert high == pytest.approx(3 + half, rel=1e-12)


def test_t_interval_one_value_and_zero_variance():
    mean, low, high = t_interval([5.0])
    assert mean == 5.0 and math.isnan(low) and math.isnan(high)
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="at least one value"):
        t_interval([])


@pytest.mark.parametrize("n", [3, 5])
def test_t_interval_covers_at_nominal_rate_where_the_bootstrap_does_not(n):
    rng = np.random.default_rng(1234)
    true_mean, samples = 1.0, 4000
    data = rng.normal(true_mean, 2.0, size=(samples, n))
    covered = [low <= true_mean <= high for _, low, high in map(t_interval, data)]
    # binomial SD of the coverage: sqrt(0.95 * 0.05 / 4000) = 0.0034, so 0.015 is about 4.4 SD. At n=3 a
    # z-interval (0.82 on this data), n instead of n-1 degrees of freedom (0.91) or ddof=0 (0.93) fall outside.
    assert abs(np.mean(covered) - 0.95) < 0.015

    if n == 3:
        # The percentile bootstrap it replaces: at n=3 its interval is about [min, max] of the seeds, which holds
        # the true mean with probability 1 - 2 / 2**3 = 0.75 (SD over 1,000 repetitions: 0.014).
        boot_covered = []
        for sample in data[:1000]:
            means = sample[rng.integers(0, n, size=(2000, n))].mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5])
            boot_covered.append(low <= true_mean <= high)
        assert np.mean(boot_covered) < 0.85


def test_sign_flip_hand_cases():
    # ±1 ±2 ±3 takes the values 6, 4, 2, 0, 0, -2, -4, -6: only the observed and its mirror reach |6|
    assert sign_flip_pvalue([1.0, 2.0, 3.0]) == 0.25
    # all one sign at n=5: the smallest p reachable, 2 / 32, above 0.05
    assert sign_flip_pvalue([0.3, 1.2, 0.7, 2.0, 0.9]) == 0.0625
    assert sign_flip_pvalue([-0.3, -1.2, -0.7, -2.0, -0.9]) == 0.0625
    assert sign_flip_pvalue([0.0, 0.0, 0.0]) == 1.0
    # ties in exact arithmetic: ±0.1 ±0.2 ∓0.3 is 0 for +++ and ---, in floating point ±5.6e-17; so ±0.5 on top
    # reaches |0.5| for 5 of the 8 patterns of the first three on each side: 10 / 16 (without the tolerance: 8 / 16)
    assert sign_flip_pvalue([0.1, 0.2, -0.3, 0.5]) == 0.625


def test_sign_flip_matches_brute_force():
    rng = np.random.default_rng(7)
    for n in [1, 2, 3, 5, 8]:
        d = rng.normal(0.3, 1.0, size=n)
        observed = abs(sum(d))
        # every pattern of signs, summed in Python; continuous data has no ties but the mirror, which is exact
        flips = itertools.product([1, -1], repeat=n)
        count = sum(abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= observed for signs in flips)
        assert sign_flip_pvalue(d) == count / 2**n


def test_sign_flip_size_limits():
    with pytest.raises(ValueError, match="got n=21"):
        sign_flip_pvalue(np.ones(21))
    with pytest.raises(ValueError, match="got n=0"):
        sign_flip_pvalue([])


def test_paired_difference_hand_example():
    # differences [1, 2, 3]: mean 2, s = 1, t = 2 sqrt(3); with 2 degrees of freedom the two-sided p is
    # 1 - t / sqrt(t^2 + 2) = 1 - sqrt(12 / 14)
    result = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    half = T_975_DF2 / math.sqrt(3)
    assert result.mean_difference == 2.0
    assert result.low == pytest.approx(2 - half, rel=1e-12)
    assert result.high == pytest.approx(2 + half, rel=1e-12)
    assert result.t_pvalue == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-12)
    assert result.permutation_pvalue == 0.25
    assert result.n == 3
    assert not is_clear(result)


def test_paired_difference_matches_scipy_and_subtracts_the_baseline():
    values = [0.61, 0.55, 0.70, 0.58, 0.64]
    baseline = [0.52, 0.50, 0.59, 0.57, 0.51]
    result = paired_difference(values, baseline)
    assert result.t_pvalue == pytest.approx(stats.ttest_rel(values, baseline).pvalue, rel=1e-12)
    assert result.mean_difference == pytest.approx(0.078, rel=1e-12)
    assert result.permutation_pvalue == 0.0625
    assert is_clear(result)  # t: p = 0.022; the permutation test cannot go below 0.0625 with 5 seeds
    assert paired_difference(baseline, values).mean_difference == pytest.approx(-0.078, rel=1e-12)


def test_paired_difference_needs_matched_seeds():
    with pytest.raises(ValueError, match="values has 3 seeds, baseline has 4"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="at least 2 seeds, got 1"):
        paired_difference([1.0], [0.0])


def test_is_clear_reads_the_t_test_only():
    def comparison(t_pvalue):
        return Comparison(mean_difference=1.0, low=0.5, high=1.5, t_pvalue=t_pvalue, permutation_pvalue=0.25, n=3)

    assert CLEAR_LEVEL == 0.05
    assert is_clear(comparison(0.049))
    assert not is_clear(comparison(0.05))
    assert not is_clear(comparison(math.nan))


def test_rejection_rate():
    assert rejection_rate([0.01, 0.05, 0.2, 0.049]) == 0.5  # strictly below: 0.05 does not reject
    assert rejection_rate([0.01, 0.2], level=0.3) == 1.0
    # uniform p-values (a valid test under the null): SD of the rate over 20,000 is 0.0015; 0.006 is 4 SD
    p = np.random.default_rng(3).uniform(size=20_000)
    assert abs(rejection_rate(p) - 0.05) < 0.006


def test_generations_to_collapse():
    generations = list(range(30))
    assert generations_to_collapse(generations, [0.9] * 7 + [0.05] * 23) == (7, True)
    assert generations_to_collapse(generations, [0.5] * 30) == (29, False)
    # 0.1 itself is not below 0.1: the first strictly lower share is at generation 5
    share = [0.5, 0.3, 0.2, 0.1, 0.1, 0.09] + [0.2] * 24
    assert generations_to_collapse(generations, share) == (5, True)
    with pytest.raises(ValueError, match="3 generations but 2 distinct shares"):
        generations_to_collapse([0, 1, 2], [0.5, 0.5])


def test_area_under_curve():
    # trapezoids (1 + 0.5) / 2 * 1 + (0.5 + 0.5) / 2 * 1 + (0.5 + 0) / 2 * 2 = 1.75 over a span of 4
    assert area_under_curve([0, 1, 2, 4], [1.0, 0.5, 0.5, 0.0]) == 0.4375
    assert area_under_curve([0, 10, 30], [0.3, 0.3, 0.3]) == pytest.approx(0.3, rel=1e-12)  # a mean level
    with pytest.raises(ValueError, match="increasing generations"):
        area_under_curve([3], [0.5])


def test_kaplan_meier_hand_example():
    # t=2: 5 at risk, 1 event -> 4/5 = 0.8; t=3: 4 at risk (the run censored at 3 still counts), 1 event
    # -> 0.8 * 3/4 = 0.6; t=5: 2 at risk, 1 event -> 0.6 * 1/2 = 0.3; t=7: censored, no drop
    steps = kaplan_meier([2, 3, 3, 5, 7], [True, True, False, True, False])
    assert [t for t, _ in steps] == [2.0, 3.0, 5.0, 7.0]
    assert [s for _, s in steps] == pytest.approx([0.8, 0.6, 0.3, 0.3], rel=1e-12)
    assert kaplan_meier([29, 29], [False, False]) == [(29.0, 1.0)]


def test_logrank_separated_groups_hand_computed():
    # a collapses at 1, 2, 3; b at 4, 5 and is censored at 6. Only t = 1, 2, 3 have both groups at risk:
    #   t=1: n_a=3, n=6, E_a = 3/6 = 0.5,  V = (3/6)(3/6)(5/5) = 0.25
    #   t=2: n_a=2, n=5, E_a = 2/5 = 0.4,  V = (2/5)(3/5)(4/4) = 0.24
    #   t=3: n_a=1, n=4, E_a = 1/4 = 0.25, V = (1/4)(3/4)(3/3) = 0.1875
    # t=4, 5: n_a = 0, so E_a = V = 0. O_a = 3, E_a = 1.15, V = 0.6775: chi2 = 1.85^2 / 0.6775
    statistic, pvalue = logrank_test([1, 2, 3], [True] * 3, [4, 5, 6], [True, True, False])
    assert statistic == pytest.approx(1.85**2 / 0.6775, rel=1e-12)  # 5.0517
    assert pvalue == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-12)  # chi2(1) tail: 0.0246


def test_logrank_ties_matches_scipy():
    # ties between and within groups, censorings among events; scipy's statistic is the signed square root
    a_times, a_obs = [1, 3, 3, 4, 6, 8], [True, True, False, True, True, False]
    b_times, b_obs = [3, 4, 5, 7, 8, 8], [True, False, True, True, True, False]
    statistic, pvalue = logrank_test(a_times, a_obs, b_times, b_obs)
    ref = stats.logrank(
        stats.CensoredData.right_censored(a_times, ~np.array(a_obs)),
        stats.CensoredData.right_censored(b_times, ~np.array(b_obs)),
    )
    assert statistic > 0
    assert statistic == pytest.approx(ref.statistic**2, rel=1e-12)
    assert pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_logrank_no_evidence():
    times, observed = [3, 5, 5, 8], [True, True, False, True]
    assert logrank_test(times, observed, times, observed) == (0.0, 1.0)  # identical groups: O_a = E_a
    assert logrank_test([29, 29, 29], [False] * 3, [29, 29], [False] * 2) == (0.0, 1.0)  # all censored
    assert logrank_test([4, 4], [True, True], [4, 4], [True, True]) == (0.0, 1.0)  # everyone at once: V = 0
