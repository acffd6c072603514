"""Inference at the level of assignment and the shared event-study interface of impact.did.

Clustering (``cluster=``) of att_gt (analytic and multiplier bootstrap), dose_response (block
bootstrap over clusters) and TWFE, where a missing cluster value (a department without a plan)
is its own cluster; and ``event_time``, ``estimate``, ``se``, ``vcov()``, ``reference_period``
of TWFE ``event_study``, ``att_gt(...).aggregate("dynamic")`` and ``dose_response``.

Every check is an exact identity, except the comparison of bootstrap with analytic standard
errors, whose tolerance is derived from the Monte Carlo error of a bootstrap standard error.
"""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.did import att_gt, dose_response, event_study, switchers, twfe
from impact.did.dose_response import _boot
from impact.errors import EstimationError

MPDTA = Path(__file__).resolve().parent / "data" / "mpdta.csv"
ARGS = ("lemp", "countyreal", "year", "first.treat")


@cache
def mpdta() -> pd.DataFrame:
    """R did's mpdta with cluster columns: a copy of the unit id, an all-missing column, and the
    state with the counties of every fourth state missing (own clusters)."""
    d = pd.read_csv(MPDTA)
    d["unit_copy"] = d["countyreal"] * 10  # sorted like the units: codes 0..n-1
    d["no_plan"] = np.nan
    state = d["countyreal"] // 1000
    d["plan"] = state.where(state % 4 != 0).astype(float)
    return d


def fit(**kw):
    kw.setdefault("n_boot", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return att_gt(mpdta(), *ARGS, **kw)


def own_clusters(units: np.ndarray, values: pd.Series) -> np.ndarray:
    """Cluster labels written out independently: the value, or the unit for a missing value."""
    return np.array([f"u{u}" if pd.isna(v) else f"c{v}" for u, v in zip(units, values,
                                                                       strict=True)])


# ------------------------------------------------------------------ att_gt: clusters


@pytest.mark.parametrize("column", ["unit_copy", "no_plan"])
@pytest.mark.parametrize("n_boot", [0, 199])
def test_att_gt_unit_level_clusters_equal_no_clustering(column: str, n_boot: int) -> None:
    """Every unit its own cluster (a distinct or a missing value each) is the unclustered
    estimator, bootstrap draw for draw."""
    base = fit(n_boot=n_boot, seed=3)
    cl = fit(n_boot=n_boot, seed=3, cluster=column)
    pd.testing.assert_frame_equal(cl.att_gt, base.att_gt)
    assert cl.n_clusters == base.n_units == 500
    for kind in ("simple", "dynamic", "group"):
        a, b = base.aggregate(kind), cl.aggregate(kind)
        pd.testing.assert_frame_equal(a.by, b.by)
        assert a.overall == b.overall
    assert set(cl.tidy()["cluster"]) == {column} and set(base.tidy()["cluster"]) == {"countyreal"}


def test_att_gt_missing_cluster_is_own_cluster_analytic() -> None:
    """Analytic cluster-robust variance = sum over clusters of squared influence sums / n^2, with
    each county of a state without a 'plan' its own cluster."""
    res = fit(cluster="plan")
    units = mpdta().drop_duplicates("countyreal").set_index("countyreal")
    labels = own_clusters(res.unit_ids, units.loc[res.unit_ids, "plan"])
    n_missing = int(units["plan"].isna().sum())
    assert 0 < n_missing < 500
    assert res.n_clusters == len(set(labels)) == units["plan"].nunique() + n_missing
    assert res.settings["cluster_variable"] == "plan"
    sums = pd.DataFrame(res.influence).groupby(labels).sum().to_numpy()
    np.testing.assert_allclose(res.att_gt["se"], np.sqrt((sums**2).sum(0)) / 500, rtol=1e-12)
    np.testing.assert_allclose(res.vcov, sums.T @ sums / 500**2, rtol=1e-12, atol=1e-18)
    dyn = res.aggregate("dynamic")
    s = pd.DataFrame(dyn.influence[:, 1:]).groupby(labels).sum().to_numpy()
    np.testing.assert_allclose(dyn.vcov(), s.T @ s / 500**2, rtol=1e-12, atol=1e-18)
    tidy = dyn.tidy()
    assert set(tidy["cluster"]) == {"plan"} and set(tidy["n_clusters"]) == {res.n_clusters}
    # differs from unit clustering, and from dropping the missing ones into one cluster
    assert np.max(np.abs(res.att_gt["se"] / fit().att_gt["se"] - 1)) > 0.02
    lumped = mpdta().assign(plan=mpdta()["plan"].fillna(-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = att_gt(lumped, *ARGS, n_boot=0, cluster="plan")
    assert one.n_clusters == units["plan"].nunique() + 1
    assert np.max(np.abs(one.att_gt["se"] / res.att_gt["se"] - 1)) > 0.02


def test_att_gt_cluster_errors() -> None:
    d = mpdta().assign(one=1.0)
    with pytest.raises(EstimationError, match="at least two clusters"):
        att_gt(d, *ARGS, n_boot=0, cluster="one")
    d = mpdta().copy()
    d.loc[d.index[0], "plan"] = 999.0  # one year of one county in another plan
    with pytest.raises(EstimationError, match="varies over time"):
        att_gt(d, *ARGS, n_boot=0, cluster="plan")


# ------------------------------------------------------------------ simulated plans


def plan_panel(seed: int, n_plans: int = 120, per_plan: int = 4, n_single: int = 60
               ) -> pd.DataFrame:
    """Departments in plans that adopt together, with plan x year shocks; some without a plan.

    y_it = a_i + 0.1 t + u_{p(i),t} + e_it + 0.5 D_it with u ~ N(0, 0.6^2) shared by the plan's
    departments (a department without a plan has its own u), e ~ N(0, 0.4^2). The cohort is
    drawn per plan, so the within-plan correlation of the DiD errors is 0.6^2 / (0.6^2 + 0.4^2)
    and unit-level inference understates the variance by about sqrt(1 + 3 * 0.69) ~ 1.75.
    """
    rng = np.random.default_rng(seed)
    years = np.arange(2008, 2016)
    plan = np.r_[np.repeat(np.arange(n_plans), per_plan), np.full(n_single, -1)]
    n = plan.size
    group = np.where(plan >= 0, plan, n_plans + np.arange(n))  # shock group
    g_group = rng.choice([0, 2011, 2013], size=n_plans + n, p=[0.4, 0.3, 0.3])
    g = g_group[group]
    dose = np.where(g > 0, rng.uniform(0.2, 1.0, n), 0.0)
    shock = rng.normal(scale=0.6, size=(n_plans + n, years.size))[group]
    y = (rng.normal(size=(n, 1)) + 0.1 * (years - 2008) + shock
         + rng.normal(scale=0.4, size=(n, years.size))
         + 0.5 * ((years[None, :] >= g[:, None]) & (g[:, None] > 0)))
    return pd.DataFrame({
        "department_id": np.repeat(np.arange(n), years.size),
        "year": np.tile(years, n),
        "y": y.ravel(),
        "cohort": np.repeat(g, years.size),
        "dose": np.repeat(dose, years.size),
        "plan_id": np.repeat(np.where(plan >= 0, plan, np.nan), years.size),
    })


def test_block_bootstrap_over_plans_matches_analytic_cluster_robust_se() -> None:
    """dose_response's ATT^o equals att_gt's simple ATT (both: cohort-size weighted 2x2 DiDs,
    not-yet-treated comparison, no covariates). Its block bootstrap SE over plans is close to
    att_gt's analytic plan-clustered SE and well above the unit-level SE.

    Tolerance: a bootstrap SE from B draws has relative Monte Carlo sd about 1 / sqrt(2 (B - 1))
    (chi-square), 0.035 for B = 400: 4 sd = 0.14; the bootstrap of G = 180 clusters differs from
    the influence-function variance by O(1/G) (0.006), so |ratio - 1| < 0.15. The multiplier
    bootstrap's IQR-based SE has relative sd 1.166 / sqrt(B) (B = 999: 4 sd = 0.15).
    """
    df = plan_panel(4)
    n_clusters = 120 + 60
    cs = att_gt(df, "y", "department_id", "year", "cohort", control="not_yet", method="reg",
                n_boot=0, cluster="plan_id")
    simple = cs.aggregate("simple").overall
    unit_se = att_gt(df, "y", "department_id", "year", "cohort", control="not_yet",
                     method="reg", n_boot=0).aggregate("simple").overall.se
    assert cs.n_clusters == n_clusters
    b = 400
    dr = dose_response(df, "y", dose="dose", cohort="cohort", n_boot=b, seed=1,
                       cluster="plan_id", grid=[0.5])
    ov = dr.overall.set_index("term").loc["ATT^o"]
    assert ov["estimate"] == pytest.approx(simple.att, abs=1e-12)
    assert dr.n_clusters == n_clusters and dr.cluster_variable == "plan_id"
    assert set(dr.tidy()["cluster"]) == {"plan_id"}
    assert abs(ov["se"] / simple.se - 1) < 4 / np.sqrt(2 * (b - 1)) + 0.01
    assert simple.se / unit_se > 1.3  # the clustering matters in this design
    boot = att_gt(df, "y", "department_id", "year", "cohort", control="not_yet", method="reg",
                  n_boot=999, seed=2, cluster="plan_id").aggregate("simple").overall
    assert abs(boot.se / simple.se - 1) < 4 * 1.166 / np.sqrt(999) + 0.01


def test_dose_response_unit_level_clusters_equal_unit_bootstrap() -> None:
    df = plan_panel(5, n_plans=30, n_single=20)
    df["copy"] = df["department_id"] + 0.5
    df["none"] = np.nan
    for estimator, kw in ((dose_response, {"cohort": "cohort", "grid": [0.5]}),
                          (switchers, {"effects": 2, "placebo": 1})):
        dose = "dose" if estimator is dose_response else "treated_dose"
        data = df.assign(treated_dose=df["dose"] * (df["year"] >= df["cohort"]) *
                         (df["cohort"] > 0))
        base = estimator(data, "y", dose=dose, n_boot=15, seed=8, **kw)
        for column in ("copy", "none", "department_id"):
            cl = estimator(data, "y", dose=dose, n_boot=15, seed=8, cluster=column, **kw)
            cols = [c for c in base.tidy().columns if c != "cluster"]
            pd.testing.assert_frame_equal(cl.tidy()[cols], base.tidy()[cols])
            assert cl.n_clusters == base.n_clusters == df["department_id"].nunique()
        grouped = estimator(data, "y", dose=dose, n_boot=15, seed=8, cluster="plan_id", **kw)
        assert grouped.n_clusters == 30 + 20
        assert not np.allclose(grouped.tidy()["se"], base.tidy()["se"], equal_nan=True)


def test_block_bootstrap_weights_are_cluster_counts() -> None:
    codes = np.array([0, 0, 1, 2, 2, 2, 3])
    draws = _boot(lambda des, wt: wt, {}, codes, 50, 3)
    for wt in draws:
        per_cluster = np.array([wt[codes == c][0] for c in range(4)])
        np.testing.assert_array_equal(wt, per_cluster[codes])  # a block moves as one
        assert per_cluster.sum() == 4  # G clusters drawn with replacement
    assert draws.std(axis=0).min() > 0


def test_dose_response_cluster_errors() -> None:
    df = plan_panel(6, n_plans=10, n_single=5)
    bad = df.copy()
    bad.loc[0, "plan_id"] = 99.0  # varies within department 0
    with pytest.raises(EstimationError, match="varies within"):
        dose_response(bad, "y", dose="dose", cohort="cohort", n_boot=2, cluster="plan_id")
    with pytest.raises(EstimationError, match="at least two clusters"):
        dose_response(df.assign(c=1), "y", dose="dose", cohort="cohort", n_boot=2, cluster="c")
    with pytest.raises(EstimationError, match="not in the data"):
        dose_response(df, "y", dose="dose", cohort="cohort", n_boot=2, cluster="nope")


# ------------------------------------------------------------------ event-study interface


def assert_psd(v: np.ndarray) -> None:
    assert np.array_equal(v, v.T)
    eig = np.linalg.eigvalsh(v)
    assert eig.min() >= -1e-12 * eig.max()


@pytest.mark.parametrize("cluster", [None, "plan"])
def test_att_gt_dynamic_vcov(cluster: str | None) -> None:
    res = fit(cluster=cluster)
    dyn = res.aggregate("dynamic")
    assert dyn.reference_period is None
    np.testing.assert_array_equal(dyn.event_time, [-3, -2, -1, 0, 1, 2, 3])
    np.testing.assert_array_equal(dyn.estimate, dyn.by["att"])
    v = dyn.vcov()
    assert v.shape == (7, 7)
    assert_psd(v)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), dyn.se, rtol=1e-13)
    # a linear combination: the overall effect is the mean over e >= 0; its variance from its
    # own influence function (computed separately in aggregate) equals a' V a
    a = np.where(dyn.event_time >= 0, 0.25, 0.0)
    assert a @ v @ a == pytest.approx(dyn.overall.se**2, rel=1e-12)
    # pre minus post contrast, against the influence functions written out by hand
    c = np.r_[1.0, 0, 0, -1.0, 0, 0, 0]
    ic = dyn.influence[:, 1:] @ c
    if cluster is not None:
        units = mpdta().drop_duplicates("countyreal").set_index("countyreal")
        ic = pd.Series(ic).groupby(own_clusters(res.unit_ids, units.loc[res.unit_ids, cluster])
                                   ).sum().to_numpy()
    assert c @ v @ c == pytest.approx(np.sum(ic**2) / 500**2, rel=1e-12)
    # bootstrapped: se from the bootstrap, vcov still analytic (the same influence functions)
    boot = fit(cluster=cluster, n_boot=199, seed=1).aggregate("dynamic")
    np.testing.assert_array_equal(boot.vcov(), v)
    assert not np.allclose(boot.se, dyn.se)
    assert fit().aggregate("group").vcov().shape == (3, 3)
    with pytest.raises(EstimationError, match="no event time"):
        _ = fit().aggregate("group").event_time
    with pytest.raises(EstimationError, match="simple"):
        fit().aggregate("simple").vcov()


def test_att_gt_dynamic_universal_base_reference() -> None:
    dyn = fit(base_period="universal").aggregate("dynamic")
    assert dyn.reference_period == -1
    assert -1 not in dyn.event_time and dyn.event_time.size == len(dyn.by) - 1
    assert dyn.by.set_index("event_time").loc[-1.0, "att"] == 0.0
    v = dyn.vcov()
    assert_psd(v)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), dyn.se, rtol=1e-13)
    assert np.all(np.isfinite(dyn.se))


def test_twfe_event_study_interface_and_cluster_columns() -> None:
    df = plan_panel(7, n_plans=40, n_single=20)
    es = event_study(df, "y", cohort="cohort", window=(-3, 3), cluster="plan_id")
    assert es.reference_period == -1
    np.testing.assert_array_equal(es.event_time, [-3, -2, 0, 1, 2, 3])
    tab = es.coefficients.set_index("event_time")
    np.testing.assert_array_equal(es.estimate, tab.loc[es.event_time, "estimate"])
    v = es.vcov()
    assert_psd(v)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), es.se, rtol=1e-14)
    tidy = es.tidy()
    assert set(tidy["cluster"]) == {"plan_id"} and set(tidy["n_clusters"]) == {40 + 20}
    tw = twfe(df.assign(d=(df["year"] >= df["cohort"]) & (df["cohort"] > 0)), "y", "d",
              cluster="plan_id")
    assert tw.tidy()["n_clusters"].iloc[0] == 60 and tw.tidy()["cluster"].iloc[0] == "plan_id"
    assert tw.vcov()[0, 0] == pytest.approx(tw.se**2, rel=1e-14)
    robust = twfe(df.assign(d=(df["year"] >= df["cohort"]) & (df["cohort"] > 0)), "y", "d",
                  cluster=None).tidy()
    assert robust["cluster"].iloc[0] is None and robust["n_clusters"].isna().all()


def test_dose_response_event_study_vcov_is_bootstrap_covariance() -> None:
    df = plan_panel(8, n_plans=40, n_single=20)
    res = dose_response(df, "y", dose="dose", cohort="cohort", n_boot=60, seed=2,
                        cluster="plan_id", grid=[0.5])
    np.testing.assert_array_equal(res.event_time, res.event_study["event_time"])
    assert res.reference_period is None
    for parameter, se in (("att", res.se), ("acr", res.event_study["acr_se"].to_numpy())):
        v = res.vcov(parameter)
        assert v.shape == (len(res.event_time),) * 2
        assert_psd(v)
        np.testing.assert_allclose(np.sqrt(np.diag(v)), se, rtol=1e-12)
    uni = dose_response(df, "y", dose="dose", cohort="cohort", n_boot=5, seed=2, grid=[0.5],
                        base_period="universal")
    assert uni.reference_period == -1 and -1 not in uni.event_time
    assert np.isnan(dose_response(df, "y", dose="dose", cohort="cohort", n_boot=0,
                                  grid=[0.5]).vcov()).all()
    sw = switchers(df.assign(dd=df["dose"] * (df["year"] >= df["cohort"])), "y", dose="dd",
                   effects=2, placebo=2, n_boot=40, seed=3)
    np.testing.assert_array_equal(sw.event_time, [-2, -1, 1, 2])
    assert sw.reference_period == 0
    np.testing.assert_allclose(np.sqrt(np.diag(sw.vcov())), sw.se, rtol=1e-12)


# ------------------------------------------------------------------ lagged exposure


def test_twfe_and_switchers_take_a_lagged_exposure() -> None:
    """An outcome moved by last year's intensity: TWFE on the lagged column recovers the effect,
    same-year intensity does not; the first year of each unit (no lag) is left out and counted."""
    rng = np.random.default_rng(11)
    n, years = 300, np.arange(2008, 2016)
    g = rng.choice([0, 2010, 2012], n)
    share = np.where((years[None, :] >= g[:, None]) & (g[:, None] > 0),
                     rng.uniform(0.2, 1.0, (n, years.size)), 0.0)
    lag = np.c_[np.full(n, np.nan), share[:, :-1]]
    y = (rng.normal(size=(n, 1)) + 0.1 * (years - 2008) + np.nan_to_num(lag)
         + rng.normal(scale=0.3, size=(n, years.size)))
    df = pd.DataFrame({"department_id": np.repeat(np.arange(n), years.size),
                       "year": np.tile(years, n), "y": y.ravel(),
                       "intensity": share.ravel()})
    df["intensity_lag"] = df.groupby("department_id")["intensity"].shift(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lagged = twfe(df, "y", "intensity_lag")
        same = twfe(df, "y", "intensity")
    assert lagged.n_dropped == n
    assert abs(lagged.estimate - 1.0) < 4 * lagged.se
    # same-year shares are independent of last year's given adoption, so only the adoption
    # indicator they share carries the effect: far below 1 (measured 0.36, se 0.04)
    assert same.estimate < 1.0 - 6 * same.se
    sw = switchers(df.dropna(subset=["intensity_lag"]), "y", dose="intensity_lag", effects=1,
                   n_boot=30, seed=1)
    assert abs(sw.estimate[0] - 1.0) < 4 * sw.se[0]


@pytest.mark.slow
def test_plan_clustered_intervals_cover_at_the_nominal_rate() -> None:
    """Over 100 simulated plan panels (true ATT 0.5), 95% intervals from the block bootstrap over
    plans (dose_response ATT^o) and from att_gt's analytic plan-clustered SE cover the truth in
    87-100 of 100 (P(Binomial(100, 0.95) < 87) < 0.001); unit-level intervals, whose SE is
    about 1/1.7 too small here, cover about P(|Z| < 1.96 / 1.7) ~ 75% (sd 4.3): below 87."""
    reps, hits = 100, {"block": 0, "analytic": 0, "unit": 0}
    for r in range(reps):
        df = plan_panel(100 + r, n_plans=80, n_single=40)
        kw = {"control": "not_yet", "method": "reg", "n_boot": 0}
        cl = att_gt(df, "y", "department_id", "year", "cohort", cluster="plan_id", **kw)
        un = att_gt(df, "y", "department_id", "year", "cohort", **kw)
        for key, res in (("analytic", cl), ("unit", un)):
            o = res.aggregate("simple").overall
            hits[key] += o.lower <= 0.5 <= o.upper
        dr = dose_response(df, "y", dose="dose", cohort="cohort", n_boot=99, seed=r,
                           cluster="plan_id", grid=[0.5]).overall.set_index("term")
        hits["block"] += dr.loc["ATT^o", "lower"] <= 0.5 <= dr.loc["ATT^o", "upper"]
    assert 87 <= hits["block"] <= 100 and 87 <= hits["analytic"] <= 100, hits
    assert hits["unit"] < 87, hits
