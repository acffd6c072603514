"""Tests of impact.diagnostics.power: size, analytic agreement, backends, progress, the MDE.

Monte Carlo tolerances: a rejection rate estimated from n replications has standard error
sqrt(p (1 - p) / n); assertions allow 3.5 of them (a correct implementation fails about 1 time in
2,000 draws of the seed; the seeds are fixed, so the tests are deterministic).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import impact
from impact import diagnostics
from impact.diagnostics import (
    PowerResult,
    att_gt_estimator,
    fit_outcome_model,
    power,
    power_design,
)
from impact.errors import EstimationError

TOOL = "flexible_letting"
OUTCOME = "share_employed"
MC_SES = 3.5


@cache
def small_panel() -> pd.DataFrame:
    """Department-year panel of the simulator at scale "small" (220 departments, 2003-2013)."""
    return impact.panel.build(impact.simulate.registers(0, "small")).frame


def two_period_panel(n: int = 400, sigma: float = 0.05, seed: int = 1) -> pd.DataFrame:
    """Two years, iid normal outcome, every department its own municipality, no plans;
    the first half adopts in the second year."""
    rng = np.random.default_rng(seed)
    dept = np.repeat(np.arange(n), 2)
    return pd.DataFrame({
        "department_id": dept,
        "year": np.tile([2010, 2011], n),
        "municipality_id": dept,
        "plan_id": pd.array([None] * (2 * n), dtype="Int64"),
        f"cohort_{TOOL}": np.where(dept < n // 2, 2011, 0),
        OUTCOME: 0.6 + sigma * rng.standard_normal(2 * n),
    })


def within_mc(observed: float, expected: float, n: int) -> bool:
    se = np.sqrt(expected * (1 - expected) / n)
    return abs(observed - expected) <= MC_SES * se


def test_function_not_module():
    assert callable(diagnostics.power)
    assert diagnostics.power is power


def test_design_estimator_equals_att_gt_simple():
    """Exact identity: the closed-form estimator's point estimate is att_gt's simple ATT
    (never-treated controls, no covariates: the doubly robust ATT(g, t) is a plain DiD)."""
    panel = small_panel()
    design = power_design(panel, outcome=OUTCOME, tool=TOOL)
    y = panel.sort_values(["department_id", "year"])[OUTCOME].to_numpy().reshape(
        design.layout.n, -1)
    est, _ = design.design_estimate(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = impact.did.att_gt(panel, OUTCOME, "department_id", "year", f"cohort_{TOOL}",
                                n_boot=0).aggregate("simple").overall.att
    assert est == pytest.approx(ref, abs=1e-12)


def test_outcome_model_recovers_known_components():
    """Draw outcomes from known components on the small panel's real layout, refit: the mean
    estimate over 20 draws is within 4 standard errors (their spread / sqrt(20)) of the truth."""
    panel = small_panel()
    base = power_design(panel, outcome=OUTCOME, tool=TOOL, heteroskedastic=False)
    truth = dict(sigma2_municipality=2e-4, sigma2_plan=3e-4, sigma2_department=3e-3, rho=0.5)
    known = base.__class__(layout=base.layout, baseline=base.baseline, treated=base.treated,
                           model=base.model.__class__(outcome=OUTCOME, **truth,
                                                      noise_scale=np.ones(base.layout.n),
                                                      moments=base.model.moments))
    frame = panel.sort_values(["department_id", "year"]).reset_index(drop=True)
    fits = []
    for ss in np.random.SeedSequence(5).spawn(20):
        f = frame.assign(**{OUTCOME: (known.baseline + known.noise(np.random.default_rng(ss)))
                            .ravel()})
        m = fit_outcome_model(f, outcome=OUTCOME, tool=TOOL, heteroskedastic=False)
        fits.append([m.sigma2_municipality, m.sigma2_plan, m.sigma2_department, m.rho])
    fits = np.array(fits)
    mean, se = fits.mean(axis=0), fits.std(axis=0, ddof=1) / np.sqrt(len(fits))
    for value, m, s in zip(truth.values(), mean, se, strict=True):
        assert abs(m - value) <= 4 * s, (value, m, s)


def test_size_and_power_with_known_sd_on_real_design():
    """With the estimator's exact sd under the model as its se, the rejection rate at effect 0 is
    alpha and at effect d the analytic normal power, within Monte Carlo error; power rises."""
    panel = small_panel()
    design = power_design(panel, outcome=OUTCOME, tool=TOOL)
    w, sd = design.weights(), design.analytic_sd()

    def oracle(frame: pd.DataFrame, outcome: str, tool: str) -> tuple[float, float]:
        return float((w.ravel() * frame[outcome].to_numpy()).sum()), sd

    effects = [0.0, 0.015, 0.03]
    n = 1500
    res = power(panel, outcome=OUTCOME, tool=TOOL, effects=effects, n_reps=n,
                estimator=oracle, progress=False)
    expected = design.analytic_power(effects)["power"].to_numpy()
    for observed, exp in zip(res.table["power"], expected, strict=True):
        assert within_mc(observed, exp, n), (observed, exp)
    assert np.all(np.diff(res.table["power"]) > 0)
    # the sd of the estimates over replications is the analytic sd (chi-square 99.9% band)
    lo, hi = np.sqrt(stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1))
    assert lo * sd <= res.table["sd_estimate"].iloc[0] <= hi * sd


def test_two_period_iid_att_gt_matches_normal_approximation():
    """Two periods, iid outcome: the DiD's sd is sqrt(2 sigma^2 (1/N1 + 1/N0)) with the model's
    sigma^2; att_gt's simulated rejection rate (its own analytic SEs) is alpha at effect 0 and
    the normal approximation's power at the other effects."""
    panel = two_period_panel()
    res = power(panel, outcome=OUTCOME, tool=TOOL, effects=[0.0, 0.011], n_reps=300,
                estimator=att_gt_estimator(), effect_lag=0, heteroskedastic=False, progress=False)
    model = res.model
    assert model.sigma2_municipality == 0 and model.sigma2_plan == 0 and model.rho == 0
    # one residual per department and year, variance sigma^2 / 2 after demeaning two years
    assert model.sigma2_department == pytest.approx(0.05**2, rel=0.25)
    sd = np.sqrt(2 * model.sigma2_department * (1 / 200 + 1 / 200))
    z = stats.norm.ppf(0.975)
    for effect, observed in zip(res.table["effect"], res.table["power"], strict=True):
        expected = stats.norm.cdf(effect / sd - z) + stats.norm.cdf(-effect / sd - z)
        assert within_mc(observed, expected, 300), (effect, observed, expected)
    assert res.design.analytic_sd() == pytest.approx(sd, rel=1e-10)


def test_dask_equals_sequential():
    distributed = pytest.importorskip("distributed")
    panel = small_panel()
    kw = dict(outcome=OUTCOME, tool=TOOL, effects=[0.0, 0.02], n_reps=6, progress=False,
              seed=11, chunk_size=2)
    seq = power(panel, **kw)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        given = power(panel, backend="dask", client=client, **kw)
    own = power(panel, backend="dask", **kw)
    for other in (given, own):
        pd.testing.assert_frame_equal(seq.table, other.table)
        pd.testing.assert_frame_equal(seq.replications, other.replications)


@pytest.mark.slow
def test_loky_equals_sequential():
    panel = small_panel()
    kw = dict(outcome=OUTCOME, tool=TOOL, effects=[0.0, 0.02], n_reps=6, progress=False,
              seed=11, estimator="design")
    pd.testing.assert_frame_equal(power(panel, **kw).replications,
                                  power(panel, backend="loky", n_jobs=2, **kw).replications)


def test_progress_bar_only_when_asked(capsys):
    panel = small_panel()
    kw = dict(outcome=OUTCOME, tool=TOOL, effects=[0.0], n_reps=5, estimator="design")
    power(panel, progress=False, **kw)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    power(panel, progress=True, **kw)
    loud = capsys.readouterr()
    assert "5/5" in loud.err and loud.out == ""


def test_mde_interpolates_the_curve():
    panel = small_panel()
    res = power(panel, outcome=OUTCOME, tool=TOOL, effects=[0.0], n_reps=2, estimator="design",
                progress=False)
    table = pd.DataFrame({"effect": [0.0, 0.01, 0.02, 0.03], "power": [0.05, 0.3, 0.7, 0.9]})
    fake = PowerResult(table=table, replications=res.replications, design=res.design,
                       settings={**res.settings, "n_reps": 400})
    mde = fake.mde(0.8)
    assert mde.effect == pytest.approx(0.025)
    # delta method: sqrt(0.8 * 0.2 / 400) / slope, slope = 0.2 / 0.01
    assert mde.mc_se == pytest.approx(0.02 / 20)
    assert np.isnan(fake.mde(0.95).effect)


def test_power_result_follows_the_result_protocol():
    """tidy(): power as the estimate, its Monte Carlo SE as se; the design's departments as
    support; the plot draws the power curve."""
    panel = small_panel()
    res = power(panel, outcome=OUTCOME, tool=TOOL, effects=[0.0, 0.05], n_reps=4,
                estimator="design", progress=False)
    tidy = res.tidy()
    assert list(tidy.columns[:7]) == ["term", "estimate", "se", "lower", "upper", "n_units",
                                      "n_persons"]
    np.testing.assert_array_equal(tidy["estimate"], res.table["power"])
    np.testing.assert_array_equal(tidy["se"], res.table["mc_se"])
    assert (tidy["n_units"] == res.design.layout.department_id.size).all()
    assert (tidy["n_units_treated"] == (res.design.layout.cohort > 0).sum()).all()
    line = res.plot().axes[0].containers[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), res.table["power"])
    mde = PowerResult(table=pd.DataFrame({"effect": [0.0, 0.01, 0.02], "power": [0.05, 0.5, 0.9],
                                          "mc_se": 0.01}),
                      replications=res.replications, design=res.design,
                      settings={**res.settings, "n_reps": 400}).mde(0.8)
    row = mde.tidy().iloc[0]
    assert (row["term"], row["estimate"], row["se"]) == ("mde(power=0.8)", mde.effect, mde.mc_se)
    assert str(mde.summary()).startswith("Minimum detectable effect")


def test_bad_input_raises():
    panel = small_panel()
    with pytest.raises(EstimationError, match="lacks column"):
        power(panel.drop(columns="plan_id"), outcome=OUTCOME, tool=TOOL, effects=[0.0])
    with pytest.raises(EstimationError, match="backend"):
        power(panel, outcome=OUTCOME, tool=TOOL, effects=[0.0], n_reps=1, backend="spark",
              progress=False)
    with pytest.raises(EstimationError, match="effects"):
        power(panel, outcome=OUTCOME, tool=TOOL, effects=[], n_reps=1)
