"""The experiment statistics against hand-computed examples and the libraries' own results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from stayflow.reports import stats as S

Z = 1.959963984540054


def test_wilson_interval_matches_the_formula_by_hand() -> None:
    # 12 saves of 40: p = 0.3; centre (p + z^2/2n) / (1 + z^2/n), half-width
    # z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    n, p = 40, 0.3
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    got = S.wilson(12, 40)
    assert got.low == pytest.approx(centre - half, abs=1e-12)
    assert got.high == pytest.approx(centre + half, abs=1e-12)
    assert got.low == pytest.approx(0.18075, abs=1e-5)
    assert got.high == pytest.approx(0.45430, abs=1e-5)


def test_two_proportions_by_hand() -> None:
    a, b = S.Arm(decided=100, saves=20), S.Arm(decided=100, saves=30)
    got = S.compare_save_rates(a, b)
    # Pooled z: p = 0.25, se = sqrt(0.25 * 0.75 * (1/100 + 1/100)) = 0.0612372.
    z = 0.1 / math.sqrt(0.25 * 0.75 * 0.02)
    assert z == pytest.approx(1.6329932, abs=1e-6)
    assert got.p_value == pytest.approx(2 * (1 - sps.norm.cdf(z)), abs=1e-9)
    assert got.p_value == pytest.approx(0.10247, abs=1e-5)
    # Wald interval: 0.1 +- 1.96 sqrt(0.3*0.7/100 + 0.2*0.8/100) = 0.1 +- 0.119222.
    se = math.sqrt(0.0021 + 0.0016)
    assert got.interval.low == pytest.approx(0.1 - Z * se, abs=1e-9)
    assert got.interval.high == pytest.approx(0.1 + Z * se, abs=1e-9)
    assert got.difference == pytest.approx(0.1)


def test_msprt_by_hand() -> None:
    a, b = S.Arm(decided=100, saves=20), S.Arm(decided=100, saves=30)
    got = S.compare_save_rates(a, b)
    v, tau2 = 0.0037, 0.05**2
    expected = math.sqrt(v / (v + tau2)) * math.exp(tau2 * 0.01 / (2 * v * (v + tau2)))
    assert got.msprt == pytest.approx(expected, rel=1e-9)
    # sqrt(0.0037/0.0062) = 0.772512, exp(0.000025 / 0.00004588) = exp(0.544899) = 1.724441
    assert got.msprt == pytest.approx(1.33215, abs=1e-4)
    assert got.significant is False  # needs 1 / 0.05 = 20
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(20) + math.log((v + tau2) / v)))
    assert got.sequential_interval.low == pytest.approx(0.1 - half, rel=1e-9)
    # Always-valid intervals are wider than the fixed-horizon one.
    assert got.sequential_interval.low < got.interval.low


def test_welch_matches_scipy_on_the_raw_samples() -> None:
    rng = np.random.default_rng(7)
    a = (rng.random(400) < 0.2) * rng.integers(500, 3000, 400)
    b = (rng.random(300) < 0.3) * rng.integers(500, 3000, 300)
    arm_a = S.Arm(len(a), int((a > 0).sum()), int(a.sum()), int((a * a).sum()))
    arm_b = S.Arm(len(b), int((b > 0).sum()), int(b.sum()), int((b * b).sum()))
    got = S.compare_revenue(arm_a, arm_b)
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    ci = expected.confidence_interval(0.95)
    assert got.interval.low == pytest.approx(ci.low, rel=1e-9)
    assert got.interval.high == pytest.approx(ci.high, rel=1e-9)
    assert got.difference == pytest.approx(b.mean() - a.mean())


def _peeking(
    rng: np.random.Generator, runs: int, rate_a: float, rate_b: float
) -> tuple[float, float]:
    """Share of experiments ever called significant when looked at every 50 sessions per arm."""
    sequential = fixed = 0
    for _ in range(runs):
        xa = np.cumsum(rng.random(2000) < rate_a)
        xb = np.cumsum(rng.random(2000) < rate_b)
        seen_seq = seen_fixed = False
        for n in range(50, 2001, 50):
            cmp = S.compare_save_rates(S.Arm(n, int(xa[n - 1])), S.Arm(n, int(xb[n - 1])))
            seen_seq = seen_seq or cmp.significant
            seen_fixed = seen_fixed or cmp.p_value < 0.05
        sequential += seen_seq
        fixed += seen_fixed
    return sequential / runs, fixed / runs


def test_looking_every_day_does_not_inflate_false_positives_with_the_sequential_test() -> None:
    seq, fixed = _peeking(np.random.default_rng(11), 200, 0.3, 0.3)
    # Peeking at a fixed-horizon test 40 times finds "significance" far above 5%...
    assert fixed > 0.12
    # ...the always-valid test stays at or below alpha (with room for simulation noise).
    assert seq <= 0.06


def test_the_sequential_test_finds_a_real_difference() -> None:
    seq, _ = _peeking(np.random.default_rng(12), 40, 0.2, 0.3)
    assert seq > 0.8
