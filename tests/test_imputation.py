"""Imputation DiD with several tools: exact identities and recovery of known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact.did import imputation
from impact.errors import EstimationError


def _panel(seed: int, n_units: int = 40, years: range = range(2003, 2011), noise: float = 1.0,
           two_tools: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), len(years))
    year = np.tile(np.array(years), n_units)
    g1 = rng.choice([0, 2005, 2006, 2008], size=n_units)
    g2 = rng.choice([0, 2004, 2007], size=n_units) if two_tools else np.zeros(n_units, int)
    stratum = rng.integers(0, 2, n_units)
    x = rng.normal(size=n_units)
    df = pd.DataFrame({"unit": unit, "year": year, "g1": g1[unit], "g2": g2[unit],
                       "stratum": stratum[unit], "x": x[unit],
                       "cluster": (np.arange(n_units) // 2)[unit].astype(float)})
    t = year - 2003
    y = (rng.normal(size=n_units)[unit] + 0.3 * t + 0.2 * t * stratum[unit] + 0.1 * t * x[unit]
         + noise * rng.normal(size=unit.size))
    df["y0"] = y
    return df


def test_single_tool_equals_saturated_dummy_regression() -> None:
    """BJS (2024, Thm 2): tau_it are the coefficients of one dummy per treated observation in an
    OLS of Y on unit and year dummies; ATT = their mean, event-time estimates their means by e."""
    df = _panel(1)
    onset = df["g1"] + 1
    treated = (df["g1"] > 0) & (df["year"] >= onset)
    df["y"] = df["y0"] + np.where(treated, 0.5 + 0.1 * (df["year"] - onset), 0.0)
    res = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", n_boot=0)
    units = pd.get_dummies(df["unit"]).to_numpy(float)
    years = pd.get_dummies(df["year"]).to_numpy(float)[:, 1:]
    idx = np.flatnonzero(treated)
    obs = np.zeros((len(df), idx.size))
    obs[idx, np.arange(idx.size)] = 1.0
    coef = np.linalg.lstsq(np.column_stack([units, years, obs]), df["y"].to_numpy(), rcond=None)[0]
    tau = coef[-idx.size:]
    assert res.overall["estimate"].iloc[0] == pytest.approx(tau.mean(), abs=1e-10)
    ev = (df["year"] - onset).to_numpy()[idx]
    by_e = pd.Series(tau).groupby(ev).mean()
    got = res.dynamic.set_index("event_time")["estimate"]
    np.testing.assert_allclose(got.loc[by_e.index].to_numpy(), by_e.to_numpy(), atol=1e-10)
    assert res.overall["n_obs_treated"].iloc[0] == idx.size


def test_two_additive_tools_recovered_exactly_without_noise() -> None:
    """Trends differ by stratum and covariate; two tools with event-time profiles; no noise:
    each tool-specific ATT equals the mean of its own effect over its treated years exactly."""
    df = _panel(2, n_units=80, two_tools=True, noise=0.0)
    e1 = df["year"] - df["g1"] - 1
    e2 = df["year"] - df["g2"] - 1
    d1 = (df["g1"] > 0) & (e1 >= 0)
    d2 = (df["g2"] > 0) & (e2 >= 0)
    eff1 = np.where(d1, 1.0 + 0.5 * np.minimum(e1, 2), 0.0)   # constant from the last bin on
    eff2 = np.where(d2, -2.0 - 0.25 * np.minimum(e2, 2), 0.0)
    df["y"] = df["y0"] + eff1 + eff2
    res = imputation(df, "y", cohorts=["g1", "g2"], unit="unit", time="year", strata=["stratum"],
                     covariates=["x"], event_bins=3, n_boot=0)
    est = res.overall.set_index("tool")["estimate"]
    df["eff1"], df["eff2"] = eff1, eff2
    for tool, col in (("g1", "eff1"), ("g2", "eff2")):
        used = res.rows[res.rows["tool"] == tool].merge(df, on=["unit", "year"])
        assert est[tool] == pytest.approx(used[col].mean(), abs=1e-9)
    # Late years have a single untreated unit per stratum: their covariate slopes are not
    # identified, so those treated rows are left out (and said), not imputed arbitrarily.
    assert any("not identified" in n for n in res.notes)
    assert len(res.rows[res.rows["tool"] == "g1"]) < d1.sum()
    # Ignoring the other tool is biased (the check can fail):
    alone = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", strata=["stratum"],
                       covariates=["x"], n_boot=0)
    used = alone.rows.merge(df, on=["unit", "year"])
    assert abs(alone.overall["estimate"].iloc[0] - used["eff1"].mean()) > 0.01


def test_bootstrap_clusters_and_determinism() -> None:
    df = _panel(3)
    df["y"] = df["y0"]
    df.loc[df["unit"] % 5 == 0, "cluster"] = np.nan   # own clusters
    a = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", cluster="cluster",
                   n_boot=49, seed=7)
    b = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", cluster="cluster",
                   n_boot=49, seed=7)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    n_own = df.loc[df["cluster"].isna(), "unit"].nunique()
    n_pairs = df["cluster"].dropna().nunique()
    assert a.settings["n_clusters"] == n_own + n_pairs
    assert a.settings["cluster"] == "cluster"
    es = a.event_study("g1")
    assert np.allclose(np.sqrt(np.diag(es.vcov())), es.se)


def test_bootstrap_se_tracks_sampling_sd() -> None:
    """Across 60 panels the bootstrap SE (mean) is within 20% of the SD of the estimates: the
    Monte Carlo SE of an SD from 60 draws is about 9%, of a mean SE (B = 99) about 2%."""
    est, se = [], []
    for seed in range(60):
        df = _panel(100 + seed, n_units=60)
        df["y"] = df["y0"]
        r = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", n_boot=99, seed=seed)
        est.append(r.overall["estimate"].iloc[0])
        se.append(r.overall["se"].iloc[0])
    ratio = np.mean(se) / np.std(est, ddof=1)
    assert 0.8 < ratio < 1.25, ratio


def test_pretest_detects_anticipation() -> None:
    df = _panel(4, n_units=120, noise=0.3)
    e = df["year"] - df["g1"] - 1
    df["y"] = df["y0"] + np.where((df["g1"] > 0) & (e == -1), 0.6, 0.0)
    with_lead = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", n_boot=0)
    df["y"] = df["y0"]
    without = imputation(df, "y", cohorts=["g1"], unit="unit", time="year", n_boot=0)
    assert with_lead.pretest["p_value"].iloc[0] < 1e-6
    assert without.pretest["p_value"].iloc[0] > 0.01


def test_time_varying_covariate_refused() -> None:
    df = _panel(5)
    df["y"] = df["y0"]
    df["x"] = df["x"] + df["year"]
    with pytest.raises(EstimationError, match="constant within unit"):
        imputation(df, "y", cohorts=["g1"], unit="unit", time="year", covariates=["x"])


def test_event_study_is_normalised_to_the_first_year_in_force() -> None:
    """Two tools: the event study of each tool is its own leads and dynamic effects minus its
    lead -1, and its covariance is that of the same bootstrap draws."""
    df = _panel(6, n_units=80, two_tools=True)
    df["y"] = df["y0"]
    res = imputation(df, "y", cohorts=["g1", "g2"], unit="unit", time="year", n_boot=29, seed=1)
    for tool in ("g1", "g2"):
        es = res.event_study(tool)
        leads = res.leads[res.leads["tool"] == tool].set_index("event_time")["estimate"]
        dyn = res.dynamic[res.dynamic["tool"] == tool].set_index("event_time")["estimate"]
        want = pd.concat([leads.drop(index=-1), dyn]) - leads[-1]
        np.testing.assert_allclose(es.estimate, want.to_numpy(), atol=1e-12)
        np.testing.assert_array_equal(es.event_time, want.index.to_numpy(dtype=float))
        assert es.reference_period == -1
        assert np.allclose(np.sqrt(np.diag(es.vcov())), es.se)
