"""Dose response: recovery of simulated truth (CGS staggered continuous dose; dCDH switchers)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from impact.did import dose_response, switchers
from impact.did._results import DroppedRowsWarning
from impact.errors import EstimationError

YEARS = np.arange(2006, 2016)


def linear_att(d: np.ndarray) -> np.ndarray:
    return 2.0 * d


def quadratic_att(d: np.ndarray) -> np.ndarray:
    return d + 1.5 * d**2


def staggered_panel(seed: int, att=linear_att, n_units: int = 600, x_trend: float = 0.0,
                    drop_share: float = 0.0) -> pd.DataFrame:
    """Staggered adoption with a unit dose d ~ U(0.1, 1]; effect ATT(d) from adoption on.

    Y_it = a_i + 0.1 (t - 2006) + x_trend * x_i * (t - 2006) + 1[t >= g_i] ATT(d_i) + e_it.
    With ``x_trend`` != 0 the trend depends on x_i, and x_i is higher for treated units, so only a
    covariate-adjusted estimator recovers ATT(d). The intensity column is the realised share of
    lettings: d_i +- noise after adoption (mean d_i), 0 before.
    """
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 2009, 2011, 2013], size=n_units, p=[0.3, 0.25, 0.25, 0.2])
    d = np.where(g > 0, rng.uniform(0.1, 1.0, n_units), 0.0)
    x = rng.normal(size=n_units) + 0.8 * (g > 0)
    rows = []
    for i in range(n_units):
        a = rng.normal()
        eff = att(np.array([d[i]]))[0]
        for t in YEARS:
            on = g[i] > 0 and t >= g[i]
            y = a + 0.1 * (t - 2006) + x_trend * x[i] * (t - 2006) + on * eff
            y += rng.normal(scale=0.5)
            share = d[i] + rng.uniform(-0.05, 0.05) if on else 0.0
            rows.append((i, t, y, g[i], share, x[i], d[i]))
    df = pd.DataFrame(rows, columns=["department_id", "year", "y", "cohort",
                                     "intensity", "x", "dose_true"])
    if drop_share:
        df = df.sample(frac=1 - drop_share, random_state=seed).sort_index()
    return df


def within(est: pd.Series, se: pd.Series, truth: np.ndarray, k: float = 4.0) -> None:
    err = np.abs(est.to_numpy() - truth)
    assert np.all(err < k * se.to_numpy()), (err / se.to_numpy()).max()


def test_linear_dose_response_recovered() -> None:
    df = staggered_panel(1)
    res = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=99, seed=7)
    c = res.dose_curve
    within(c["att"], c["att_se"], linear_att(c["dose"].to_numpy()))
    within(c["acr"], c["acr_se"], np.full(len(c), 2.0))
    ov = res.overall.set_index("term")
    treated_d = df.groupby("department_id")["dose_true"].first()
    assert abs(ov.loc["ACR^o", "estimate"] - 2.0) < 4 * ov.loc["ACR^o", "se"]
    # ATT^o: cohort-size-weighted mean of ATT(d) over post cells; E[2 d] = 1.1
    assert abs(ov.loc["ATT^o", "estimate"] - 2 * treated_d[treated_d > 0].mean()) < \
        4 * ov.loc["ATT^o", "se"]
    es = res.event_study
    within(es["att"], es["att_se"], np.where(es["event_time"] >= 0, 1.1, 0.0), k=4.5)
    # SEs are sane: ACR^o se close to the OLS-theory value (0.5 * sqrt(2) / sd(d) / sqrt(n))
    assert 0.02 < ov.loc["ACR^o", "se"] < 0.2
    assert res.tidy().shape[0] == 2 + 2 * len(c) + 2 * len(es)
    assert "ATT^o" in str(res.summary())
    assert len(res.plot().axes) == 2


def test_quadratic_spline_and_bins() -> None:
    df = staggered_panel(2, att=quadratic_att)
    res = dose_response(df, "y", dose="dose_true", cohort="cohort", degree=2, control="never",
                        n_boot=99, seed=3)
    c = res.dose_curve
    d = c["dose"].to_numpy()
    within(c["att"], c["att_se"], quadratic_att(d))
    within(c["acr"], c["acr_se"], 1 + 3 * d)
    # a linear fit cannot follow the curvature: its ACR is flat
    lin = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=0)
    assert np.ptp(lin.dose_curve["acr"]) < 1e-10

    binned = dose_response(df, "y", dose="dose_true", cohort="cohort", method="binned", bins=4,
                           n_boot=99, seed=3)
    b = binned.dose_curve
    # truth per bin: ATT of the bin's doses averaged like the estimator (post cells, cohort weights)
    unit = df.groupby("department_id").first()
    tr = unit[unit["cohort"] > 0]
    edges = np.quantile(tr["dose_true"], np.linspace(0, 1, 5))
    tr = tr.assign(bin=np.clip(np.searchsorted(edges, tr["dose_true"], "right") - 1, 0, 3))
    n_post = {g: int((YEARS >= g).sum()) for g in tr["cohort"].unique()}
    wg = tr.groupby("cohort").size() * pd.Series(n_post)
    cell = tr.assign(a=quadratic_att(tr["dose_true"].to_numpy())).groupby(["bin", "cohort"])["a"]
    truth = [(cell.mean().loc[k] * wg / wg.sum()).sum() for k in range(4)]
    within(b["att"], b["att_se"], np.array(truth))
    assert b["att"].is_monotonic_increasing
    assert np.isnan(binned.overall.set_index("term").loc["ACR^o", "estimate"])


def test_time_varying_intensity_unbalanced_and_missing() -> None:
    df = staggered_panel(3, drop_share=0.05)
    df.loc[df.index[:4], "y"] = np.nan
    with pytest.warns(DroppedRowsWarning, match="4 of"):
        res = dose_response(df, "y", dose="intensity", cohort="cohort", n_boot=49, seed=1)
    assert res.n_dropped == 4
    ov = res.overall.set_index("term")
    assert abs(ov.loc["ACR^o", "estimate"] - 2.0) < 4 * ov.loc["ACR^o", "se"]


def test_covariate_adjustment_removes_trend_bias() -> None:
    df = staggered_panel(4, x_trend=0.15)
    naive = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=0)
    adj = dose_response(df, "y", dose="dose_true", cohort="cohort", covariates=["x"],
                        n_boot=99, seed=2)
    true_att_o = 2 * df.loc[df["cohort"] > 0].groupby("department_id")["dose_true"].first().mean()
    o_naive = naive.overall.set_index("term").loc["ATT^o", "estimate"]
    o_adj = adj.overall.set_index("term").loc["ATT^o"]
    # x_i is 0.8 higher for treated units: the unadjusted trend gap is 0.12 per year
    assert o_naive - true_att_o > 0.2
    assert abs(o_adj["estimate"] - true_att_o) < 4 * o_adj["se"]


def test_bootstrap_is_seeded() -> None:
    df = staggered_panel(5, n_units=200)
    a = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=20, seed=11)
    b = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=20, seed=11)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())


def test_cells_equal_hand_computation_and_att_gt() -> None:
    """Each (g,t) cell: ATT^o = treated minus comparison mean long difference (= CS ATT(g,t)
    by regression adjustment), ACR with degree 1 = OLS slope of the long difference on dose."""
    df = staggered_panel(9, n_units=240)
    res = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=0)
    wide = df.pivot(index="department_id", columns="year", values="y")
    unit = df.groupby("department_id")[["cohort", "dose_true"]].first()
    for row in res.group_time.itertuples():
        dy = wide[row.time] - wide[row.base]
        tr = unit["cohort"] == row.cohort
        co = (unit["cohort"] == 0) | (unit["cohort"] > row.time)
        att = dy[tr].mean() - dy[co & ~tr].mean()
        slope = np.polyfit(unit.loc[tr, "dose_true"], dy[tr], 1)[0]
        assert abs(row.att - att) < 1e-12 and abs(row.acr - slope) < 1e-10
    from impact.did import att_gt

    cs = att_gt(df, "y", "department_id", "year", "cohort", control="not_yet", method="reg",
                n_boot=0).att_gt
    both = res.group_time.merge(cs, on=["cohort", "time"], suffixes=("", "_cs"))
    assert len(both) == len(res.group_time)
    np.testing.assert_allclose(both["att"], both["att_cs"], rtol=0, atol=1e-10)


def test_switchers_unbalanced_binned_baselines() -> None:
    df = switchers_panel(10)
    # baselines 0.5 drift a little: exact matching loses them, bins keep them
    at_half = df["intensity"] == 0.5
    df.loc[at_half, "intensity"] = 0.5 + 1e-5 * df.loc[at_half, "department_id"]
    truth = switcher_truth(df, 1.0, 0.0, 2)  # of the complete panel; ~equal for the rest
    df = df.drop(index=df.sample(frac=0.03, random_state=1).index)
    exact = switchers(df, "y", dose="intensity", effects=2, n_boot=0)
    binned = switchers(df, "y", dose="intensity", effects=2,
                       baseline_bins=[0.25, 0.75], n_boot=99, seed=4)
    assert exact.n_gap_units > 0 and binned.n_gap_units == exact.n_gap_units
    assert exact.effects["n_unmatched"].sum() > binned.effects["n_unmatched"].sum()
    assert binned.effects["n_switchers"].min() > exact.effects["n_switchers"].min()
    e = binned.effects.set_index("horizon")
    within(e["estimate"], e["se"], truth, k=4.5)


def switchers_panel(seed: int, beta0: float = 1.0, beta1: float = 0.0, n_units: int = 500,
                    x_trend: float = 0.0) -> pd.DataFrame:
    """Intensity that switches from 0 at F_i to a dose path; Y = b0 D_t + b1 D_{t-1} + FE + e.

    A quarter of the units start at intensity 0.5 and some of them move later, so baselines
    differ; never-switchers at each baseline serve as controls.
    """
    rng = np.random.default_rng(seed)
    T = len(YEARS)
    rows = []
    for i in range(n_units):
        base = 0.5 if rng.random() < 0.25 else 0.0
        F = rng.choice([3, 4, 5, 6, 7, T + 5])
        level = rng.uniform(0.2, 1.0)
        path = np.full(T, base)
        if F < T:
            path[F:] = np.clip(base + level + rng.uniform(-0.1, 0.1, T - F), 0, 2)
        a, x = rng.normal(), rng.normal() + 0.5 * (F < T)
        for k, t in enumerate(YEARS):
            lagged = path[k - 1] if k > 0 else base
            y = a + 0.1 * k + beta0 * path[k] + beta1 * lagged + x_trend * x * k
            rows.append((i, t, y + rng.normal(scale=0.3), path[k], x * k))
    return pd.DataFrame(rows, columns=["department_id", "year", "y", "intensity", "xk"])


def switcher_truth(df: pd.DataFrame, beta0: float, beta1: float, L: int) -> np.ndarray:
    """Expected normalised DID_l computed from the realised intensity paths."""
    D = df.pivot(index="department_id", columns="year", values="intensity").to_numpy()
    T = D.shape[1]
    out = []
    for ell in range(1, L + 1):
        num = den = 0.0
        for row in D:
            moved = np.flatnonzero(np.abs(row - row[0]) > 0)
            if not len(moved) or moved[0] - 1 + ell >= T:
                continue
            f = moved[0]
            lagged = np.r_[row[0], row[:-1]]
            te = f - 1 + ell
            num += beta0 * (row[te] - row[f - 1]) + beta1 * (lagged[te] - lagged[f - 1])
            den += (row[f:f + ell] - row[0]).sum()
        out.append(num / den)
    return np.array(out)


def test_switchers_static_effect() -> None:
    df = switchers_panel(6)
    res = switchers(df, "y", dose="intensity", effects=3, placebo=2,
                    n_boot=99, seed=5)
    e = res.effects.set_index("horizon")
    within(e.loc[[1, 2, 3], "estimate"], e.loc[[1, 2, 3], "se"], switcher_truth(df, 1.0, 0.0, 3))
    within(e.loc[[-1, -2], "estimate"], e.loc[[-1, -2], "se"], np.zeros(2))
    # DID_M with a static linear effect is the slope itself
    m = res.did_m.iloc[0]
    assert abs(m["estimate"] - 1.0) < 4 * m["se"]
    assert (e["n_unmatched"] == 0).all()
    assert {"effect_1", "placebo_2", "DID_M"} <= set(res.tidy()["term"])
    assert res.plot().axes and "DID_M" in str(res.summary())


def test_switchers_dynamic_effect_and_covariates() -> None:
    df = switchers_panel(7, beta0=0.6, beta1=0.8, x_trend=0.3)
    truth = switcher_truth(df, 0.6, 0.8, 3)
    res = switchers(df, "y", dose="intensity", effects=3,
                    covariates=["xk"], n_boot=99, seed=5)
    e = res.effects.set_index("horizon")
    within(e["estimate"], e["se"], truth)
    naive = switchers(df, "y", dose="intensity", effects=3, n_boot=0)
    assert np.all(np.abs(naive.effects["estimate"].to_numpy() - truth) > 0.1)


def test_input_errors() -> None:
    df = staggered_panel(8, n_units=100)
    with pytest.raises(EstimationError, match="cohort"):
        dose_response(df, "y", dose="dose_true")
    with pytest.raises(EstimationError, match="design"):
        dose_response(df, "y", dose="dose_true", cohort="cohort", design="other")
    with pytest.raises(EstimationError, match="never-treated"):
        dose_response(df[df["cohort"] > 0], "y", dose="dose_true", cohort="cohort",
                      control="never")
    with pytest.raises(EstimationError, match="not in the data"):
        dose_response(df, "y", dose="nope", cohort="cohort")


@pytest.mark.slow
def test_bootstrap_coverage() -> None:
    """95% intervals cover the truth in about 95% of 100 replications (binomial 99.9% band)."""
    reps, hits_acr, hits_att, hits_sw = 100, 0, 0, 0
    for r in range(reps):
        df = staggered_panel(1000 + r, n_units=300)
        res = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=99, seed=r,
                            grid=[0.5])
        ov = res.overall.set_index("term").loc["ACR^o"]
        hits_acr += ov["lower"] <= 2.0 <= ov["upper"]
        c = res.dose_curve.iloc[0]
        hits_att += c["att_lower"] <= 1.0 <= c["att_upper"]
        sw = switchers_panel(2000 + r, n_units=300)
        e = switchers(sw, "y", dose="intensity", effects=1, n_boot=99,
                      seed=r).effects.iloc[0]
        hits_sw += e["lower"] <= 1.0 <= e["upper"]
    # P(Binomial(100, 0.95) < 87) < 0.001
    for hits in (hits_acr, hits_att, hits_sw):
        assert 87 <= hits <= 100, (hits_acr, hits_att, hits_sw)


def test_late_cohorts_are_controls_and_doseless_units_are_reported() -> None:
    df = staggered_panel(12, n_units=300)
    base = dose_response(df, "y", dose="dose_true", cohort="cohort", n_boot=0)
    late = df.copy()
    never = late.loc[late["cohort"] == 0, "department_id"].unique()[:20]
    late.loc[late["department_id"].isin(never), "cohort"] = 2030  # adopts after the panel
    res = dose_response(late, "y", dose="dose_true", cohort="cohort", n_boot=0)
    assert res.n_treated == base.n_treated and res.n_dropped_units == 0
    # not-yet-treated comparison units: the same cells, same estimates
    pd.testing.assert_frame_equal(res.group_time, base.group_time)
    nodose = df.copy()
    first = nodose.loc[nodose["cohort"] > 0, "department_id"].iloc[0]
    nodose.loc[nodose["department_id"] == first, "dose_true"] = 0.0
    with pytest.warns(DroppedRowsWarning, match="without a positive"):
        res = dose_response(nodose, "y", dose="dose_true", cohort="cohort", n_boot=0)
    assert res.n_dropped_units == 1 and res.n_treated == base.n_treated - 1
