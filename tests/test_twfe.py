"""TWFE and event study: equal to a hand-built LSDV regression with a hand-computed CR1 sandwich."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from impact.did import event_study, twfe
from impact.did._results import DroppedRowsWarning
from impact.errors import EstimationError


def make_panel(seed: int = 1, n_units: int = 60, years: range = range(2005, 2015)) -> pd.DataFrame:
    """Staggered adoption panel: cohorts 0 (never), 2008, 2010, 2012; plans with null plan_id."""
    rng = np.random.default_rng(seed)
    units = np.arange(1, n_units + 1)
    cohort = rng.choice([0, 2008, 2010, 2012], size=n_units, p=[0.3, 0.25, 0.25, 0.2])
    plan = np.where(rng.random(n_units) < 0.3, np.nan, rng.integers(1, 12, n_units)).astype(float)
    muni = rng.integers(1, 9, n_units)
    rows = []
    for i, u in enumerate(units):
        a_i = rng.normal()
        for t in years:
            treated = cohort[i] > 0 and t >= cohort[i]
            intensity = rng.uniform(0.2, 1.0) if treated else 0.0
            x = rng.normal()
            y = a_i + 0.1 * (t - 2005) + 0.5 * treated + 0.3 * x + rng.normal(scale=0.5)
            rows.append((u, t, y, float(treated), intensity, x, cohort[i], plan[i], muni[i],
                         rng.uniform(0.5, 2.0)))
    cols = ["department_id", "year", "y", "d", "intensity", "x", "cohort", "plan_id",
            "municipality_id", "w"]
    return pd.DataFrame(rows, columns=cols)


def lsdv(df: pd.DataFrame, y: str, regressors: list[str], cluster: np.ndarray | None,
         w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OLS with intercept, unit and time dummies; CR1 (Stata regress, vce(cluster)) or HC1 SEs."""
    unit = pd.get_dummies(df["department_id"], drop_first=True, dtype=float).to_numpy()
    year = pd.get_dummies(df["year"], drop_first=True, dtype=float).to_numpy()
    k = len(regressors)
    X = np.column_stack([df[regressors].to_numpy(float), np.ones(len(df)), unit, year])
    Y = df[y].to_numpy(float)
    if w is not None:
        X, Y = X * np.sqrt(w)[:, None], Y * np.sqrt(w)
    beta = np.linalg.lstsq(X, Y, rcond=None)[0]
    e = Y - X @ beta
    n, K = X.shape
    bread = np.linalg.inv(X.T @ X)
    if cluster is None:
        meat = (X * e[:, None]).T @ (X * e[:, None])
        factor = n / (n - K)
    else:
        meat = np.zeros((K, K))
        for g in np.unique(cluster):
            s = (X[cluster == g] * e[cluster == g, None]).sum(axis=0)
            meat += np.outer(s, s)
        G = np.unique(cluster).size
        factor = G / (G - 1) * (n - 1) / (n - K)
    V = factor * bread @ meat @ bread
    return beta[:k], np.sqrt(np.diag(V)[:k])


def plan_clusters(df: pd.DataFrame) -> np.ndarray:
    """Plan clusters; a department without a plan is its own cluster."""
    key = np.where(df["plan_id"].isna(), "u" + df["department_id"].astype(str),
                   "p" + df["plan_id"].astype(str))
    return pd.factorize(key)[0]


@pytest.mark.parametrize("cluster", ["department_id", "plan_id", "municipality_id", None])
def test_twfe_equals_lsdv_cr1(cluster: str | None) -> None:
    df = make_panel()
    res = twfe(df, "y", "d", cluster=cluster, covariates=["x"])
    cl = {"department_id": df["department_id"].to_numpy(), "plan_id": plan_clusters(df),
          "municipality_id": df["municipality_id"].to_numpy(), None: None}[cluster]
    b, se = lsdv(df, "y", ["d", "x"], cl)
    np.testing.assert_allclose(res.tidy()["estimate"], b, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.tidy()["se"], se, rtol=0, atol=1e-8)
    # the simulated effect is 0.5; within 4 SE
    assert abs(res.estimate - 0.5) < 4 * res.se
    if cluster == "plan_id":
        n_null = df.loc[df["plan_id"].isna(), "department_id"].nunique()
        assert res.n_clusters == df["plan_id"].nunique() + n_null


def test_twfe_intensity_weights_unbalanced() -> None:
    df = make_panel(seed=2).sample(frac=0.9, random_state=3).sort_index()
    res = twfe(df, "y", "intensity", cluster="department_id", weights="w")
    b, se = lsdv(df, "y", ["intensity"], df["department_id"].to_numpy(), w=df["w"].to_numpy())
    np.testing.assert_allclose([res.estimate, res.se], [b[0], se[0]], rtol=0, atol=1e-8)
    assert res.n_obs == len(df)


def test_twfe_missing_rows_are_counted() -> None:
    df = make_panel()
    df.loc[[3, 17, 40], "y"] = np.nan
    with pytest.warns(DroppedRowsWarning, match="3 of 600"):
        res = twfe(df, "y", "d")
    assert res.n_dropped == 3 and res.n_obs == 597
    assert "rows dropped (missing) = 3" in str(res.summary())


def test_twfe_errors() -> None:
    df = make_panel()
    with pytest.raises(EstimationError, match="not in the data"):
        twfe(df, "y", "nope")
    df["const_in_unit"] = df["department_id"] % 2
    with pytest.raises(EstimationError, match="collinear"):
        twfe(df, "y", "const_in_unit")
    with pytest.raises(EstimationError, match="more than one row"):
        twfe(pd.concat([df, df.head(2)]), "y", "d")


def event_dummies(df: pd.DataFrame, lo: int, hi: int, ref: int, scale: str | None = None
                  ) -> tuple[pd.DataFrame, list[str]]:
    out = df.copy()
    e = np.where(df["cohort"] > 0, np.clip(df["year"] - df["cohort"], lo, hi), np.nan)
    names = []
    for k in range(lo, hi + 1):
        if k != ref:
            s = 1.0 if scale is None else df[scale].to_numpy()
            out[f"e{k}"] = np.where(e == k, s, 0.0)
            names.append(f"e{k}")
    return out, names


@pytest.mark.parametrize("cluster", ["department_id", "plan_id"])
def test_event_study_equals_lsdv(cluster: str) -> None:
    df = make_panel()
    res = event_study(df, "y", cohort="cohort", window=(-3, 3), cluster=cluster)
    dd, names = event_dummies(df, -3, 3, -1)
    cl = df["department_id"].to_numpy() if cluster == "department_id" else plan_clusters(df)
    b, se = lsdv(dd, "y", names, cl)
    est = res.tidy().query("not reference")
    np.testing.assert_allclose(est["estimate"], b, rtol=0, atol=1e-8)
    np.testing.assert_allclose(est["se"], se, rtol=0, atol=1e-8)
    tab = res.tidy()
    assert tab.loc[tab["reference"], "estimate"].item() == 0.0
    assert list(tab["event_time"]) == [-3, -2, -1, 0, 1, 2, 3]
    assert tab["term"].iloc[0] == "event_time[<=-3]"
    # true dynamic effect: 0 before, 0.5 after adoption (within 4 SE)
    truth = np.where(est["event_time"] >= 0, 0.5, 0.0)
    assert np.all(np.abs(est["estimate"] - truth) < 4 * est["se"])


def test_event_study_intensity_and_trimmed_window() -> None:
    df = make_panel(seed=4)
    # a unit-level dose (mean post-adoption intensity) scales leads and lags alike
    post = df["year"] >= df["cohort"]
    dose = df[post & (df["cohort"] > 0)].groupby("department_id")["intensity"].mean()
    df["dose"] = df["department_id"].map(dose).fillna(0.0)
    res = event_study(df, "y", cohort="cohort", window=(-2, 2), treatment_intensity="dose")
    dd, names = event_dummies(df, -2, 2, -1, scale="dose")
    b, se = lsdv(dd, "y", names, df["department_id"].to_numpy())
    est = res.tidy().query("not reference")
    np.testing.assert_allclose(est["estimate"], b, rtol=0, atol=1e-8)
    np.testing.assert_allclose(est["se"], se, rtol=0, atol=1e-8)

    with pytest.warns(DroppedRowsWarning, match="outside the window"):
        trimmed = event_study(df, "y", cohort="cohort", window=(-2, 2), bin_endpoints=False)
    e = df["year"] - df["cohort"]
    outside = (df["cohort"] > 0) & ((e < -2) | (e > 2))
    assert trimmed.n_outside_window == int(outside.sum())
    assert trimmed.n_obs == len(df) - int(outside.sum())
    dd, names = event_dummies(df[~outside], -2, 2, -1)
    b, _ = lsdv(dd, "y", names, df.loc[~outside, "department_id"].to_numpy())
    np.testing.assert_allclose(trimmed.tidy().query("not reference")["estimate"], b, atol=1e-8)


def test_results_render() -> None:
    df = make_panel()
    res = event_study(df, "y", cohort="cohort")
    assert "reference -1" in str(res.summary())
    fig = res.plot()
    assert len(fig.axes) == 1
    fig2 = twfe(df, "y", ["d"], covariates=["x"]).plot()
    assert fig2.axes
    with pytest.raises(EstimationError, match="reference"):
        event_study(df, "y", cohort="cohort", window=(0, 3))


def test_event_study_without_never_treated() -> None:
    df = make_panel()
    df = df[df["cohort"] > 0]
    with pytest.warns(UserWarning, match="no never-treated"):
        event_study(df, "y", cohort="cohort", window=(-3, 3))
    with pytest.warns(UserWarning), pytest.raises(EstimationError, match="collinear"):
        event_study(df, "y", cohort="cohort", window=(-3, 3), bin_endpoints=False)


def test_public_names_are_the_functions() -> None:
    import impact.did
    import impact.did.fixed_effects

    assert impact.did.twfe is impact.did.fixed_effects.twfe
    res = impact.did.twfe(make_panel(), "y", "d")
    assert isinstance(res, impact.did.fixed_effects.TWFEResult)
