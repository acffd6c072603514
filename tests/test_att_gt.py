"""Tests of impact.did.att_gt: parity with R's did on mpdta, inference, input handling."""

from __future__ import annotations

import dataclasses
import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import impact
from impact.did.callaway_santanna import AttGtResult, att_gt
from impact.did.callaway_santanna._bootstrap import quantile_type1
from impact.did.callaway_santanna._estimators import fit_logit
from impact.errors import EstimationError

HERE = Path(__file__).resolve().parent
REF = HERE / "reference"
MPDTA = HERE / "data" / "mpdta.csv"
ARGS = ("lemp", "countyreal", "year", "first.treat")

R_CONFIGS = {
    "reg_never_nocov": {"method": "reg"},
    "dr_never_nocov_basics": {},
    "dr_never_nocov": {},
    "dr_never_lpop": {"covariates": "lpop"},
    "dr_notyet_lpop": {"covariates": "lpop", "control": "not_yet"},
}
_MD_ID = re.compile(
    r"^(never|not_yet)_(dr|ipw|reg)_(nocov|lpop)_(varying|universal)_ant(\d+)_(unweighted|w)$"
)


@cache
def mpdta() -> pd.DataFrame:
    d = pd.read_csv(MPDTA)
    d["w"] = 1.0 + (d["countyreal"] % 3)
    d["state"] = d["countyreal"] // 1000
    return d


def data() -> pd.DataFrame:
    return mpdta().copy()


@cache
def fitted(**kwargs) -> AttGtResult:
    kwargs.setdefault("n_boot", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return att_gt(mpdta(), *ARGS, **kwargs)


def md_kwargs(config: str) -> dict:
    control, method, cov, base, ant, w = _MD_ID.match(config).groups()
    return {
        "control": control,
        "method": method,
        "covariates": None if cov == "nocov" else cov,
        "base_period": base,
        "anticipation": int(ant),
        "weights": None if w == "unweighted" else w,
    }


def printed_tol(text: str) -> float:
    """Half a unit in the last printed digit (compare at the published precision)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals + 1e-12


# --------------------------------------------------------------------------- R parity (published)


@pytest.mark.parametrize("config", list(R_CONFIGS))
def test_attgt_matches_published_r(config):
    ref = pd.read_csv(REF / "r_did_attgt_mpdta.csv", dtype={"att": str})
    ref = ref[ref.config == config].reset_index(drop=True)
    res = fitted(**R_CONFIGS[config]).att_gt
    assert list(zip(res.cohort, res.time, strict=True)) == list(
        zip(ref.cohort.astype(float), ref.time.astype(float), strict=True)
    )
    for est, text in zip(res.att, ref.att, strict=True):
        assert abs(est - float(text)) <= printed_tol(text), (est, text)
    # R prints bootstrap SEs only (B = 1000, Monte Carlo rel. sd ~3.7%): compare analytic SEs at 15%
    np.testing.assert_allclose(res.se, ref.se_boot, rtol=0.15)


@pytest.mark.parametrize(
    "config", ["reg_never_nocov", "dr_never_nocov", "dr_never_lpop", "dr_notyet_lpop"]
)
def test_pretest_matches_published_r(config):
    ref = pd.read_csv(REF / "r_did_pretest_mpdta.csv").set_index("config")
    pre = fitted(**R_CONFIGS[config]).pretest
    assert pre is not None and pre.df == 5
    assert round(pre.p_value, 5) == pytest.approx(ref.loc[config, "p_value"], abs=1e-12)


def test_aggregations_match_published_r():
    ref = pd.read_csv(REF / "r_did_aggte_mpdta.csv", dtype={"att": str, "key": str})
    n_checked = 0
    for (config, kind, balance), grp in ref.groupby(
        ["config", "aggregation", "balance_e"], dropna=False
    ):
        agg = fitted(**R_CONFIGS[config]).aggregate(
            kind, balance_e=None if np.isnan(balance) else int(balance)
        )
        est = np.r_[agg.overall.att, agg.by["att"].to_numpy()]
        se = np.r_[agg.overall.se, agg.by["se"].to_numpy()]
        keys = (
            ["overall"] + [f"{k:g}" for k in agg.by.iloc[:, 0]] if kind != "simple" else ["overall"]
        )
        assert keys == list(grp.key), (config, kind)
        for e, text in zip(est, grp.att, strict=True):
            assert abs(e - float(text)) <= printed_tol(text), (config, kind, e, text)
        np.testing.assert_allclose(se, grp.se_boot, rtol=0.15)
        n_checked += len(grp)
    assert n_checked == len(ref) == 43


# ------------------------------------------------------------- moderndid-generated, to 1e-8


@cache
def md_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return tuple(
        pd.read_csv(REF / f"moderndid_mpdta_{n}.csv") for n in ("cells", "aggte", "pretest")
    )


MD_CONFIGS = sorted(pd.read_csv(REF / "moderndid_mpdta_pretest.csv")["config"])


@pytest.mark.parametrize("config", MD_CONFIGS)
def test_all_configurations_match_moderndid_reference(config):
    cells, aggs, pre = md_tables()
    res = fitted(**md_kwargs(config))
    ref = cells[cells.config == config]
    tab = res.att_gt
    np.testing.assert_array_equal(tab.cohort, ref.cohort)
    np.testing.assert_array_equal(tab.time, ref.time)
    np.testing.assert_allclose(tab.att, ref.att, rtol=0, atol=1e-8)
    np.testing.assert_allclose(tab.se, ref.se, rtol=0, atol=1e-8)  # NaN where both NaN
    p_ref = pre.set_index("config").loc[config, "p_value"]
    assert res.pretest.p_value == pytest.approx(p_ref, abs=1e-5)
    ra = aggs[aggs.config == config].fillna({"options": ""})
    for (kind, opts), grp in ra.groupby(["aggregation", "options"], sort=False):
        kw = {k: int(v) for k, v in (o.split("=") for o in opts.split(",") if o)}
        agg = res.aggregate(kind, **kw)
        est = np.r_[agg.overall.att, agg.by["att"].to_numpy()]
        se = np.r_[agg.overall.se, agg.by["se"].to_numpy()]
        np.testing.assert_allclose(est, grp.att, rtol=0, atol=1e-8, err_msg=f"{kind} {opts}")
        np.testing.assert_allclose(se, grp.se, rtol=0, atol=1e-8, err_msg=f"{kind} {opts}")
        if kind != "simple":
            np.testing.assert_allclose(agg.by.iloc[:, 0], grp.key.iloc[1:].astype(float))


# ----------------------------------------------------------------------------------- inference


def test_bootstrap_se_close_to_analytic():
    analytic = fitted()
    boot = fitted(n_boot=4999, seed=11)
    np.testing.assert_array_equal(boot.att_gt.att, analytic.att_gt.att)
    # IQR-based bootstrap scale: Monte Carlo rel. sd 1.166 / sqrt(4999) = 1.65% for normal draws;
    # allow 4 sd plus 3.5% for the non-normality of sums dominated by the 20 units of cohort 2004
    rtol = 4 * 1.166 / np.sqrt(4999) + 0.035
    np.testing.assert_allclose(boot.att_gt.se, analytic.att_gt.se, rtol=rtol)
    k = len(analytic.att_gt)
    z = stats.norm.ppf(0.975)
    assert (
        z < boot.crit_value < stats.norm.ppf(1 - 0.025 / k)
    )  # sup-t between pointwise and Bonferroni
    width = boot.att_gt.upper - boot.att_gt.lower
    np.testing.assert_allclose(width, 2 * boot.crit_value * boot.att_gt.se)
    agg = boot.aggregate("dynamic")
    np.testing.assert_allclose(agg.by.se, analytic.aggregate("dynamic").by.se, rtol=rtol)
    assert agg.crit_value > z


def test_bootstrap_is_deterministic_for_a_seed():
    a, b = fitted(n_boot=199, seed=3), fitted(n_boot=199, seed=4)
    again = att_gt(mpdta(), *ARGS, n_boot=199, seed=3)
    pd.testing.assert_frame_equal(a.att_gt, again.att_gt)
    assert a.crit_value == again.crit_value
    assert not np.allclose(a.att_gt.se, b.att_gt.se)
    ga, gb = a.aggregate("group"), again.aggregate("group")
    pd.testing.assert_frame_equal(ga.by, gb.by)
    assert ga.overall == gb.overall
    gen = att_gt(mpdta(), *ARGS, n_boot=199, seed=np.random.default_rng(5))
    gen2 = att_gt(mpdta(), *ARGS, n_boot=199, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(gen.att_gt, gen2.att_gt)


def test_quantile_type1_matches_r_definition():
    x = np.array([3.0, 1.0, 2.0, 4.0])
    assert quantile_type1(x, 0.25) == 1.0  # n p = 1 exactly: x_(1)
    assert quantile_type1(x, 0.26) == 2.0
    assert quantile_type1(x, 0.75) == 3.0
    assert quantile_type1(x, 1.0) == 4.0


def test_cluster_robust_se():
    base = fitted()
    own = fitted(cluster="countyreal")  # clustering on the unit itself changes nothing
    pd.testing.assert_frame_equal(own.att_gt, base.att_gt)
    cl = fitted(cluster="state")
    np.testing.assert_array_equal(cl.att_gt.att, base.att_gt.att)
    states = mpdta().drop_duplicates("countyreal").set_index("countyreal").loc[cl.unit_ids, "state"]
    sums = pd.DataFrame(cl.influence).groupby(states.to_numpy()).sum().to_numpy()
    manual = np.sqrt((sums**2).sum(axis=0)) / cl.n_units
    np.testing.assert_allclose(cl.att_gt.se, manual, rtol=1e-12)
    assert np.max(np.abs(cl.att_gt.se / base.att_gt.se - 1)) > 0.05
    boot = fitted(cluster="state", n_boot=2999, seed=2)
    n_states = states.nunique()
    assert n_states == 29
    # few clusters: Rademacher sums are far from normal, so allow 4 Monte Carlo sd plus 10%
    np.testing.assert_allclose(boot.att_gt.se, manual, rtol=0.1 + 4 * 1.166 / np.sqrt(2999))
    agg = cl.aggregate("simple")
    inf = agg.influence[:, 0]
    s = pd.Series(inf).groupby(states.to_numpy()).sum().to_numpy()
    assert agg.overall.se == pytest.approx(np.sqrt((s**2).sum()) / cl.n_units, rel=1e-12)


def test_integer_weights_equal_duplicated_units():
    d = data()
    rows = []
    for k in (1, 2, 3):
        part = d[d.w == k]
        for copy in range(k):
            rows.append(part.assign(countyreal=part.countyreal + 100_000 * copy))
    dup = pd.concat(rows, ignore_index=True)
    for method in ("dr", "ipw", "reg"):
        kw = {"covariates": "lpop", "method": method, "n_boot": 0}
        weighted = att_gt(d, *ARGS, weights="w", **kw)
        copies = att_gt(dup, *ARGS, **kw)
        np.testing.assert_allclose(weighted.att_gt.att, copies.att_gt.att, rtol=0, atol=1e-10)
        for kind in ("simple", "dynamic", "group", "calendar"):
            a, b = weighted.aggregate(kind), copies.aggregate(kind)
            assert a.overall.att == pytest.approx(b.overall.att, abs=1e-10)
            np.testing.assert_allclose(a.by.att, b.by.att, rtol=0, atol=1e-10)
    assert not np.allclose(fitted(weights="w").att_gt.att, fitted().att_gt.att)


def test_anticipation_shifts_base_period_and_drops_early_cohort():
    with pytest.warns(UserWarning, match="already treated in the first period"):
        res = att_gt(mpdta(), *ARGS, anticipation=1, n_boot=0)
    tab = res.att_gt
    assert set(tab.cohort) == {2006.0, 2007.0}
    post = tab[tab.post]
    assert set(post[post.cohort == 2007].base_period) == {2005.0}
    assert set(post[post.cohort == 2006].base_period) == {2004.0}
    assert res.n_units == 480


def test_universal_base_period_normalises_reference_cell():
    tab = fitted(base_period="universal").att_gt
    ref = tab[tab.time == tab.cohort - 1]
    assert len(ref) == 3 and (ref.att == 0).all() and ref.se.isna().all()
    assert len(tab) == 15


def test_never_treated_codes_nan_and_inf_equal_zero():
    base = fitted()
    for code in (np.nan, np.inf):
        d = data().astype({"first.treat": float})
        d.loc[d["first.treat"] == 0, "first.treat"] = code
        res = att_gt(d, *ARGS, n_boot=0)
        pd.testing.assert_frame_equal(res.att_gt, base.att_gt)


def test_logit_reaches_glm_precision():
    d = mpdta()
    first = d[d.year == 2003]
    x = np.column_stack([np.ones(len(first)), first.lpop])
    treated = (first["first.treat"] == 2007).to_numpy(float)
    keep = (first["first.treat"].isin([0, 2007])).to_numpy()
    w = np.ones(keep.sum())
    fit = fit_logit(x[keep], treated[keep], w)
    grad = x[keep].T @ (w * (treated[keep] - fit.fitted))
    assert fit.converged and np.max(np.abs(grad)) < 1e-9


def test_logit_newton_agrees_with_sklearn_and_halves_overshooting_steps():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    n = 400
    z = rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 2.5 * z)))).astype(float)
    w = rng.uniform(0.5, 2.0, n)
    # a badly scaled covariate: a full Newton step from zero overshoots and must be halved
    for scale in (1.0, 40.0):
        x = np.column_stack([np.ones(n), scale * z])
        fit = fit_logit(x, d, w)
        sk = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
        sk.fit(x, d, sample_weight=w)
        grad = x.T @ (w * (d - fit.fitted))
        assert fit.converged and fit.solver == "newton"
        assert np.max(np.abs(grad)) < 1e-9
        np.testing.assert_allclose(fit.coef, sk.coef_.ravel(), rtol=1e-5)


def test_missing_outcomes_are_reported_not_silently_dropped():
    d = data()
    d.loc[(d.countyreal == 8001) & (d.year == 2005), "lemp"] = np.nan
    with pytest.raises(EstimationError, match="8001"):
        with pytest.warns(UserWarning, match="dropped 1 row"):
            att_gt(d, *ARGS, n_boot=0)
    with pytest.warns(UserWarning) as record:
        res = att_gt(d, *ARGS, n_boot=0, unbalanced="drop")
    messages = [str(r.message) for r in record]
    assert any("dropped 1 row(s) with missing" in m for m in messages)
    assert any("dropped 1 unit(s) not observed in all 5 periods" in m for m in messages)
    assert res.n_rows_dropped == 1 and res.n_units == 499
    assert any("8001" in n for n in res.notes)
    assert "Rows dropped for missing data: 1" in str(res.summary())


def test_not_yet_without_never_treated_follows_r():
    d = data()
    d = d[d["first.treat"] > 0]
    with pytest.raises(EstimationError, match="no never-treated units"):
        att_gt(d, *ARGS, n_boot=0)
    with pytest.warns(UserWarning, match="no never-treated units"):
        res = att_gt(d, *ARGS, control="not_yet", n_boot=0)
    assert set(res.att_gt.cohort) == {2004.0, 2006.0}
    assert res.att_gt.time.max() == 2006.0


@pytest.mark.parametrize(
    ("mutate", "kwargs", "pattern"),
    [
        (lambda d: d.drop(columns="lemp"), {}, "not in data"),
        (lambda d: pd.concat([d, d.iloc[:1]]), {}, "share a"),
        (
            lambda d: d.assign(**{"first.treat": np.where(d.year == 2003, 2004, d["first.treat"])}),
            {},
            "varies within unit",
        ),
        (lambda d: d.assign(**{"first.treat": -d["first.treat"]}), {}, "negative"),
        (lambda d: d[~((d.countyreal == 8019) & (d.year == 2004))], {}, "unbalanced panel.*8019"),
        (lambda d: d.assign(lpop=d.lpop.astype(str)), {"covariates": "lpop"}, "must be numeric"),
        (
            lambda d: d.assign(state=d.state + (d.year == 2004)),
            {"cluster": "state"},
            "varies over time",
        ),
        (lambda d: d.assign(w=-d.w), {"weights": "w"}, "non-negative"),
        (lambda d: d, {"method": "ols"}, "method must be one of"),
        (lambda d: d, {"control": "nevertreated"}, "control must be one of"),
        (lambda d: d, {"anticipation": -1}, "anticipation"),
        (lambda d: d, {"n_boot": 1.5}, "n_boot"),
        (lambda d: d, {"alpha": 1.5}, "alpha"),
        (lambda d: d.assign(**{"first.treat": 0}), {}, "no treated cohort"),
    ],
)
def test_clear_errors(mutate, kwargs, pattern):
    with pytest.raises(EstimationError, match=pattern), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        att_gt(mutate(data()), *ARGS, **{"n_boot": 0, **kwargs})


def test_small_cohorts_warn_and_tiny_never_treated_group_refused():
    d = data()
    never = d.loc[d["first.treat"] == 0, "countyreal"].unique()
    few = d[(d["first.treat"] > 0) | d.countyreal.isin(never[:3])]
    with pytest.raises(EstimationError, match="only 3 never-treated"):
        att_gt(few, *ARGS, n_boot=0)
    with pytest.warns(UserWarning, match=r"very few units \(cohort: units\) 0: 3"):
        res = att_gt(few, *ARGS, n_boot=0, control="not_yet")
    assert res.n_units == 194


def test_keyword_only_arguments():
    with pytest.raises(TypeError):
        att_gt(mpdta(), *ARGS, "lpop")  # type: ignore[misc]


def test_aggregate_errors_and_na_handling():
    res = fitted()
    with pytest.raises(EstimationError, match=r"kind must be one of"):
        res.aggregate("cohort")  # type: ignore[arg-type]
    with pytest.raises(EstimationError, match="no event times"):
        res.aggregate("dynamic", min_e=10)
    broken = dataclasses.replace(
        res, att_gt=res.att_gt.assign(att=res.att_gt.att.where(res.att_gt.index != 1))
    )
    with pytest.raises(EstimationError, match=r"\(2004,2005\)"):
        broken.aggregate("simple")
    dyn = broken.aggregate("dynamic", na_rm=True)
    assert 1.0 in set(dyn.by.event_time)
    grp = broken.aggregate("group", na_rm=True)
    assert list(grp.by.cohort) == [2006.0, 2007.0]


def test_dynamic_window_and_balance():
    res = fitted()
    win = res.aggregate("dynamic", min_e=-1, max_e=1)
    assert list(win.by.event_time) == [-1.0, 0.0, 1.0]
    assert win.overall.att == pytest.approx(win.by.att.iloc[1:].mean())
    bal = res.aggregate("dynamic", balance_e=1)
    assert list(bal.by.event_time) == [-2.0, -1.0, 0.0, 1.0]


def test_result_api_tidy_summary_plot():
    res = fitted()
    assert isinstance(impact.did.att_gt(mpdta(), *ARGS, n_boot=0), AttGtResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.crit_value = 1.0  # type: ignore[misc]
    tidy = res.tidy()
    assert list(tidy.columns[:7]) == ["term", "estimate", "se", "lower", "upper", "n_units",
                                      "n_persons"]
    assert {"cohort", "time", "event_time"} <= set(tidy.columns)
    assert tidy.term.iloc[0] == "ATT(2004,2004)"
    np.testing.assert_allclose(
        tidy.pointwise_upper - tidy.estimate, stats.norm.ppf(0.975) * tidy.se
    )
    text = str(res.summary())
    assert "0.16812" in text and "-0.0105" in text
    fig = res.plot()
    assert len(fig.axes) == 3
    agg = res.aggregate("dynamic")
    assert len(agg.plot().axes) == 1
    assert "overall" in agg.tidy().term.iloc[0]
    assert "event_time" in str(agg.summary())
    assert agg.overall.to_series().index.tolist() == ["att", "se", "lower", "upper"]


def test_pretest_warns_when_a_cohort_is_smaller_than_its_pre_periods() -> None:
    data = mpdta()
    # keep 3 counties of the 2007 cohort: 3 units for 3 pre-period cells
    keep = data[data["first.treat"] == 2007]["countyreal"].unique()[:3]
    small = data[(data["first.treat"] != 2007) | data["countyreal"].isin(keep)]
    with pytest.warns(UserWarning, match=r"cohort\(s\) \[2007\]"):
        att_gt(small, *ARGS, n_boot=0)


def test_block_sparse_bootstrap_equals_dense_product_for_any_thread_count(monkeypatch):
    import impact.did.callaway_santanna._bootstrap as cb

    rng = np.random.default_rng(3)
    n, k, n_boot = 3000, 12, 300
    s = np.zeros((n, k))
    cohort = rng.integers(0, 4, n)  # 0 = comparison units: non-zero in every cell
    for g in range(1, 4):
        s[cohort == g, (g - 1) * 4 : g * 4] = rng.normal(size=((cohort == g).sum(), 4))
    s[cohort == 0] = rng.normal(size=((cohort == 0).sum(), k))
    order, blocks = cb._blocks(s)
    assert len(blocks) == 4  # the sparse path is taken
    raw = np.concatenate(list(cb.rademacher_bytes(np.random.default_rng(9), n, n_boot, 64)))
    bits = np.unpackbits(raw, axis=1, count=n).astype(float)
    expected = bits @ s[order]  # bit i belongs to the i-th row in grouped order
    results = []
    for workers in (1, 3):
        monkeypatch.setattr(cb, "_WORKERS", workers)
        monkeypatch.setattr(cb, "_FLOPS_PER_WORKER", 1.0)
        monkeypatch.setattr(cb, "_CHUNK", 64)
        results.append(cb._bit_products(s, n_boot, np.random.default_rng(9)))
    np.testing.assert_allclose(results[0], expected, rtol=0, atol=1e-10)
    assert np.array_equal(results[0], results[1])
