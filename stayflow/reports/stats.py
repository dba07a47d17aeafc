"""The statistics of an experiment: intervals, fixed-horizon tests and an always-valid one.

- Save rate per arm: saves / decided sessions, with a 95% Wilson score interval.
- Difference in save rate (B - A): the two-proportion z-test (pooled) for the p-value and a
  Wald (unpooled) 95% interval, both from statsmodels.
- Revenue per exposure (MRR kept per decided session): Welch's t-test from each arm's mean
  and variance (scipy), with the Welch-Satterthwaite interval.
- Always valid: the mixture sequential probability ratio test (mSPRT, Johari, Koomen,
  Pekelis & Walsh 2017) on the same differences, with a normal mixing distribution
  N(0, tau^2). Its statistic may be looked at after every session: the chance that it ever
  crosses 1/alpha when there is no difference stays below alpha. Its interval is the
  matching confidence sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

ALPHA = 0.05
MIN_DECIDED = 30
# mSPRT mixing scale: for save rates an absolute 5 points; for revenue 0.1 pooled s.d.
TAU_PROPORTION = 0.05
TAU_REVENUE_SD = 0.1


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Arm:
    """One variant's sums: decided sessions, saves, and MRR kept (sum and sum of squares)."""

    decided: int
    saves: int
    kept: int = 0
    kept_sq: int = 0

    @property
    def save_rate(self) -> float:
        return self.saves / self.decided if self.decided else 0.0

    @property
    def mean_kept(self) -> float:
        return self.kept / self.decided if self.decided else 0.0

    @property
    def var_kept(self) -> float:
        """Sample variance of MRR kept per decided session (exact sums, then one division)."""
        n = self.decided
        if n < 2:
            return 0.0
        return (self.kept_sq * n - self.kept * self.kept) / (n * (n - 1))


def wilson(successes: int, n: int, alpha: float = ALPHA) -> Interval:
    if n == 0:
        return Interval(0.0, 1.0)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class Comparison:
    """B against A (the control) on one metric."""

    difference: float
    interval: Interval  # fixed horizon, 95%
    p_value: float
    # Always valid: the mSPRT statistic, its verdict, and the confidence sequence.
    msprt: float
    significant: bool
    sequential_interval: Interval


def _msprt(diff: float, variance: float, tau2: float, alpha: float) -> tuple[float, Interval]:
    """The normal mSPRT statistic for a difference ``diff`` with sampling variance ``variance``.

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 diff^2 / (2 V (V + tau^2))); the confidence
    sequence is every theta0 whose statistic stays below 1/alpha.
    """
    if variance <= 0 or tau2 <= 0:
        return (math.inf if diff != 0 else 1.0), Interval(diff, diff)
    v = variance
    exponent = tau2 * diff * diff / (2 * v * (v + tau2))
    statistic = math.sqrt(v / (v + tau2)) * math.exp(min(exponent, 700.0))
    half = math.sqrt((v * (v + tau2) / tau2) * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    return statistic, Interval(diff - half, diff + half)


def compare_save_rates(a: Arm, b: Arm, alpha: float = ALPHA) -> Comparison:
    diff = b.save_rate - a.save_rate
    if a.decided == 0 or b.decided == 0:
        return Comparison(diff, Interval(-1, 1), 1.0, 1.0, False, Interval(-1, 1))
    pooled = (a.saves + b.saves) / (a.decided + b.decided)
    if pooled in (0.0, 1.0):
        p_value = 1.0
    else:
        _, p = proportions_ztest([b.saves, a.saves], [b.decided, a.decided])
        p_value = float(p)
    low, high = confint_proportions_2indep(
        b.saves, b.decided, a.saves, a.decided, method="wald", compare="diff", alpha=alpha
    )
    variance = (
        a.save_rate * (1 - a.save_rate) / a.decided + b.save_rate * (1 - b.save_rate) / b.decided
    )
    statistic, seq = _msprt(diff, variance, TAU_PROPORTION**2, alpha)
    return Comparison(
        diff, Interval(float(low), float(high)), p_value, statistic, statistic >= 1 / alpha, seq
    )


def compare_revenue(a: Arm, b: Arm, alpha: float = ALPHA) -> Comparison:
    """Welch's t-test on MRR kept per decided session (minor units), and the mSPRT."""
    diff = b.mean_kept - a.mean_kept
    if a.decided < 2 or b.decided < 2:
        return Comparison(
            diff, Interval(-math.inf, math.inf), 1.0, 1.0, False, Interval(-math.inf, math.inf)
        )
    va, vb = a.var_kept / a.decided, b.var_kept / b.decided
    se2 = va + vb
    if se2 == 0:
        same = diff == 0
        return Comparison(
            diff,
            Interval(diff, diff),
            1.0 if same else 0.0,
            1.0 if same else math.inf,
            not same,
            Interval(diff, diff),
        )
    result = sps.ttest_ind_from_stats(
        b.mean_kept,
        math.sqrt(b.var_kept),
        b.decided,
        a.mean_kept,
        math.sqrt(a.var_kept),
        a.decided,
        equal_var=False,
    )
    df = se2**2 / (va**2 / (a.decided - 1) + vb**2 / (b.decided - 1))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * math.sqrt(se2)
    pooled_sd = math.sqrt((a.var_kept + b.var_kept) / 2)
    tau = max(TAU_REVENUE_SD * pooled_sd, 1.0)
    statistic, seq = _msprt(diff, se2, tau * tau, alpha)
    return Comparison(
        diff,
        Interval(diff - half, diff + half),
        float(result.pvalue),
        statistic,
        statistic >= 1 / alpha,
        seq,
    )
