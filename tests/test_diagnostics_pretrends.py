"""Tests of ``impact.diagnostics.pretrends`` and ``pretrend_power`` (Roth 2022).

Reference (res2): the README of the R package ``pretrends`` (github.com/jonathandroth/pretrends,
commit 122731d, "Application to He and Wang (2017)"), run on the package's own data
``HeAndWangResults`` (``tests/reference/pretrends_he_wang_inputs.csv``, written by
``tests/reference/generate_pretrends_reference.py``)::

    slope50 <- slope_for_power(sigma, targetPower = 0.5, tVec, referencePeriod = -1)
    #> 0.05205871
    pretrends(beta, sigma, tVec, referencePeriod = -1, deltatrue = slope50 * (tVec + 1))$df_power
    #> Power 0.4999776  Bayes.Factor 0.56901  Likelihood.Ratio 0.1057627
    pretrends(..., deltatrue = 0.024 * (tVec + 1)^2)$df_power
    #> Power 0.6624282  Bayes.Factor 0.3841516  Likelihood.Ratio 0.4332635

Tolerances come from how R computed each number (the package hard-codes the t-threshold 1.96;
we pass ``alpha = 2 * norm.sf(1.96)`` to use the same test):

- power and the Bayes factor use ``mvtnorm::pmvnorm`` with its default ``GenzBretz(abseps =
  1e-3)``, a randomised integration accurate to 1e-3 only; we compare to 1e-3. (An independent
  quadrature below shows that our power is right to 1e-6, so the gap to R is R's error.)
- the slope is ``uniroot`` with its default tolerance ``.Machine$double.eps^0.25`` = 1.2e-4.
- the likelihood ratio is ``dmvnorm`` (exact), compared to half a unit of its 7th digit.
- ``meanAfterPretesting`` (``tmvtnorm::mtmvnorm``) rests on pmvnorm probabilities too; an error of
  1e-3 in them moves the conditional means by well under 1e-4 here (densities <= 1/se ~ 20,
  covariances ~ 5e-3), so we compare to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from impact.diagnostics import pretrend_power, pretrends
from impact.diagnostics.pre_trends import rectangle_probability, truncated_normal_mean
from impact.errors import EstimationError

REF = Path(__file__).parent / "reference" / "pretrends_he_wang_inputs.csv"
R_ALPHA = 2 * stats.norm.sf(1.96)  # the package's hard-coded 1.96


@pytest.fixture(scope="module")
def he_wang() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(REF)
    sigma = frame[[f"sigma_{j}" for j in range(len(frame))]].to_numpy()
    return frame["beta"].to_numpy(), sigma, frame["event_time"].to_numpy()


def test_slope_for_50_percent_power_matches_package(he_wang):
    beta, sigma, _ = he_wang
    res = pretrend_power(beta, sigma, n_pre=3, target_power=0.5, alpha=R_ALPHA)
    assert res.slope == pytest.approx(0.05205871, abs=1.3e-4)
    assert res.power == pytest.approx(0.5, abs=1e-9)  # by construction (root found to 1e-14)
    np.testing.assert_allclose(res.table["delta"], res.slope * (res.table["event_time"] + 1))


def test_power_table_matches_package_readme(he_wang):
    beta, sigma, t = he_wang
    res = pretrend_power(beta, sigma, n_pre=3, delta=0.05205871 * (t + 1), alpha=R_ALPHA)
    assert res.slope is None
    assert res.power == pytest.approx(0.4999776, abs=1e-3)
    assert res.bayes_factor == pytest.approx(0.56901, abs=1e-3)
    assert res.likelihood_ratio == pytest.approx(0.1057627, abs=5e-8)
    # df_eventplot as printed by the README (8 significant digits; reference row included)
    published = pd.DataFrame(
        {
            "event_time": [-4, -3, -2, -1, 0, 1, 2, 3],
            "estimate": [
                0.066703148,
                -0.007701792,
                -0.030769054,
                0,
                0.084030658,
                0.242441818,
                0.219878986,
                0.191092536,
            ],
            "delta": [
                -0.15617613,
                -0.10411742,
                -0.05205871,
                0,
                0.05205871,
                0.10411742,
                0.15617613,
                0.20823484,
            ],
            "se": [
                0.09437463,
                0.07705139,
                0.05512372,
                0,
                0.06264775,
                0.08981034,
                0.08877826,
                0.09893648,
            ],
            "mean_after_pretesting": [
                -0.09230764,
                -0.05555285,
                -0.02790950,
                0,
                0.06490184,
                0.12084694,
                0.16946498,
                0.22453827,
            ],
        }
    )
    assert list(res.table.columns) == [
        "event_time",
        "estimate",
        "se",
        "delta",
        "mean_after_pretesting",
    ]
    np.testing.assert_array_equal(res.table["event_time"], published["event_time"])
    for col in ["estimate", "delta", "se"]:
        np.testing.assert_allclose(res.table[col], published[col], atol=5e-9)
    np.testing.assert_allclose(
        res.table["mean_after_pretesting"], published["mean_after_pretesting"], atol=1e-4
    )


def test_quadratic_violation_matches_package_readme(he_wang):
    beta, sigma, t = he_wang
    res = pretrend_power(beta, sigma, n_pre=3, delta=0.024 * (t + 1) ** 2, alpha=R_ALPHA)
    assert res.power == pytest.approx(0.6624282, abs=1e-3)
    assert res.bayes_factor == pytest.approx(0.3841516, abs=1e-3)
    assert res.likelihood_ratio == pytest.approx(0.4332635, abs=5e-8)


def _box_probability_quadrature(mean, cov, bound, nodes=200):
    """P(|X_i| <= bound_i) for a trivariate normal: Gauss-Legendre over x1, x2; x3 exact."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    x1 = bound[0] * x
    w1 = bound[0] * w
    total = 0.0
    for a, wa in zip(x1, w1, strict=True):
        f1 = stats.norm.pdf(a, mean[0], np.sqrt(cov[0, 0]))
        m2 = mean[1:] + cov[1:, 0] / cov[0, 0] * (a - mean[0])
        s2 = cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0]
        x2, w2 = bound[1] * x, bound[1] * w
        f2 = stats.norm.pdf(x2, m2[0], np.sqrt(s2[0, 0]))
        m3 = m2[1] + s2[1, 0] / s2[0, 0] * (x2 - m2[0])
        s3 = np.sqrt(s2[1, 1] - s2[1, 0] ** 2 / s2[0, 0])
        p3 = special.ndtr((bound[2] - m3) / s3) - special.ndtr((-bound[2] - m3) / s3)
        total += wa * f1 * np.sum(w2 * f2 * p3)
    return total


def test_rectangle_probability_against_quadrature(he_wang):
    _, sigma, _ = he_wang
    s = sigma[:3, :3]
    bound = 1.96 * np.sqrt(np.diag(s))
    for mean in [
        np.zeros(3),
        0.05205871 * np.array([-3.0, -2.0, -1.0]),
        np.array([0.1, -0.05, 0.02]),
    ]:
        exact = _box_probability_quadrature(mean, s, bound)
        assert rectangle_probability(mean, s, -bound, bound) == pytest.approx(exact, abs=2e-6)


def test_truncated_mean_against_monte_carlo(he_wang):
    _, sigma, _ = he_wang
    s = sigma[:3, :3]
    mean = np.array([-0.15, -0.1, -0.05])
    bound = 1.96 * np.sqrt(np.diag(s))
    draws = np.random.default_rng(7).multivariate_normal(mean, s, size=400_000)
    kept = draws[np.all(np.abs(draws) <= bound, axis=1)]
    mc_se = kept.std(axis=0) / np.sqrt(len(kept))
    np.testing.assert_allclose(
        truncated_normal_mean(mean, s, -bound, bound), kept.mean(axis=0), atol=4 * mc_se.max()
    )


def test_simulated_pretest_rejects_at_the_computed_power(he_wang):
    """Draw betahat ~ N(delta, sigma): the any-significant pre-test rejects at rate ``power``.

    20,000 draws: Monte Carlo standard error <= 0.0036; we allow 4 of them.
    """
    _, sigma, t = he_wang
    rng = np.random.default_rng(12)
    se = np.sqrt(np.diag(sigma))[:3]
    for delta in [np.zeros(7), 0.03 * (t + 1), 0.06 * (t + 1)]:
        res = pretrend_power(delta, sigma, n_pre=3, delta=delta)
        draws = rng.multivariate_normal(delta, sigma, size=20_000)
        rate = np.mean(np.any(np.abs(draws[:, :3]) > stats.norm.isf(0.025) * se, axis=1))
        assert rate == pytest.approx(res.power, abs=4 * np.sqrt(0.25 / 20_000))
    # size of the any-significant test with 3 correlated pre-periods, and power rising with slope
    size = pretrend_power(np.zeros(7), sigma, n_pre=3, delta=np.zeros(7)).power
    assert 0.05 < size < 1 - 0.95**3
    powers = [
        pretrend_power(np.zeros(7), sigma, n_pre=3, delta=s * (t + 1)).power
        for s in (0.02, 0.05, 0.1)
    ]
    assert powers == sorted(powers)


def test_wald_test_rejects_with_a_linear_pretrend_and_not_without(he_wang):
    """Joint Wald test on 1,500 simulated event studies per world (Monte Carlo se <= 0.013).

    Without a pre-trend it rejects at alpha = 5%; with the linear pre-trend ``0.1 * (t + 1)`` at
    the noncentral chi-square power ``P(chi2_3(lambda) > chi2_3^{-1}(0.95))``, ``lambda =
    delta_pre' sigma_pre^{-1} delta_pre`` (0.76 here). Tolerance: 4 Monte Carlo standard errors.
    """
    _, sigma, t = he_wang
    rng = np.random.default_rng(3)
    n = 1500
    trend = 0.1 * (t + 1)
    lam = trend[:3] @ np.linalg.solve(sigma[:3, :3], trend[:3])
    crit = stats.chi2.isf(0.05, 3)
    for delta, expected in [(np.zeros(7), 0.05), (trend, stats.ncx2.sf(crit, 3, lam))]:
        draws = rng.multivariate_normal(delta, sigma, size=n)
        rate = np.mean([pretrends(d, sigma, n_pre=3).p_value < 0.05 for d in draws])
        assert rate == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / n))
    assert stats.ncx2.sf(crit, 3, lam) > 0.7


def test_wald_statistic_identity(he_wang):
    beta, sigma, _ = he_wang
    res = pretrends(beta, sigma, n_pre=3)
    b = beta[:3]
    assert res.stat == pytest.approx(b @ np.linalg.inv(sigma[:3, :3]) @ b, rel=1e-12)
    assert res.df == 3
    assert res.p_value == pytest.approx(stats.chi2.sf(res.stat, 3), rel=1e-12)


class _FakeEventStudy:
    """Duck-typed event-study result: reference row included with NaN se, as in impact.did."""

    def __init__(self, beta, sigma, t):
        self.event_time = np.insert(t, 3, -1)
        self.estimate = np.insert(beta, 3, 0.0)
        self.se = np.insert(np.sqrt(np.diag(sigma)), 3, np.nan)
        self._vcov = np.insert(np.insert(sigma, 3, np.nan, axis=0), 3, np.nan, axis=1)

    def vcov(self):
        return self._vcov


class _InterfaceEventStudy:
    """impact.did's event-study interface: reference excluded, ``reference_period``."""

    def __init__(self, beta, sigma, t, reference_period=-1):
        self.event_time, self.estimate, self._sigma = t, beta, sigma
        self.se = np.sqrt(np.diag(sigma))
        self.reference_period = reference_period

    def vcov(self):
        return self._sigma


def test_accepts_event_study_result(he_wang):
    beta, sigma, t = he_wang
    result = _FakeEventStudy(beta, sigma, t)
    assert pretrends(result) == pretrends(beta, sigma, n_pre=3)
    assert pretrends(_InterfaceEventStudy(beta, sigma, t)) == pretrends(beta, sigma, n_pre=3)
    # without a reference period (varying base): pre-periods are the negative event times
    no_ref = _InterfaceEventStudy(beta, sigma, t, reference_period=None)
    assert pretrends(no_ref) == pretrends(beta, sigma, n_pre=3)
    with pytest.raises(EstimationError, match="reference period"):
        pretrend_power(no_ref, delta=np.zeros(7))
    a = pretrend_power(result, delta=0.05 * (t + 1))
    b = pretrend_power(beta, sigma, n_pre=3, delta=0.05 * (t + 1))
    assert a.power == b.power
    pd.testing.assert_frame_equal(a.table, b.table)


def test_bad_input_raises(he_wang):
    beta, sigma, _ = he_wang
    with pytest.raises(EstimationError, match="exactly one"):
        pretrend_power(beta, sigma, n_pre=3)
    with pytest.raises(EstimationError, match="sigma"):
        pretrends(beta)
    with pytest.raises(EstimationError, match="7 coefficients"):
        pretrends(beta, sigma[:6, :6], n_pre=3)
    with pytest.raises(EstimationError, match="size"):
        pretrend_power(beta, sigma, n_pre=3, target_power=0.01)
    with pytest.raises(EstimationError, match="delta has"):
        pretrend_power(beta, sigma, n_pre=3, delta=[0.1, 0.2])
    with pytest.raises(EstimationError, match="pre-period"):
        pretrends(beta, sigma, n_pre=0)
