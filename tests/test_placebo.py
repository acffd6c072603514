"""Tests of impact.diagnostics.placebo: placebos in time, in space and on outcomes.

Tolerances. A placebo estimate with standard error ``se`` is asserted within 3.5 ``se`` of 0
(a correct estimator fails one check in about 2,000). Under random assignment within the
permutation blocks Fisher's permutation p-value with ``n`` permutations is discrete-uniform on
``{1, ..., n + 1} / (n + 1)`` (ties only make it larger), so the mean of ``R`` independent
p-values has mean ``1/2 + 1/(2(n + 1))`` and SD at most ``sqrt(1/12/R)``; the share of
p-values <= ``a`` has mean at most ``a`` and SD ``sqrt(a (1 - a) / R)``. Assertions allow 3.5 of
those SDs, one-sided (the concern is a test that rejects too often). Seeds are fixed, so every
test is deterministic.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

import impact
from impact import diagnostics
from impact.diagnostics import placebo as placebo_module  # the function (bound after the module)
from impact.diagnostics.placebo import COLUMNS, PlaceboFit, truncate_untreated
from impact.errors import EstimationError
from impact.estimates import prepare, primary

TOOL = "flexible_letting"
OUTCOME = "share_employed"
SDS = 3.5


@cache
def _registers() -> impact.registers.Registers:
    return impact.simulate.registers(0, "small")


@cache
def placebo_world() -> pd.DataFrame:
    """Prepared panel of the placebo world (no effect anywhere, the real selected adoption) of the
    simulator at scale "small" (220 departments in 39 plans and 20 municipalities, 2003-2013)."""
    reg = impact.simulate.placebo(_registers())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(impact.panel.build(reg, validate=False).frame)


def twfe_estimator(tool: str = TOOL, onset_lag: int = 1):
    """A fast estimator for the permutation tests: the two-way fixed-effects coefficient of the
    tool's in-force dummy (``year >= cohort + onset_lag``) on a balanced panel, by two-way
    demeaning (exact for a balanced panel). Point estimate only."""
    def estimator(data: pd.DataFrame, outcome: str) -> PlaceboFit:
        g = data[f"cohort_{tool}"].to_numpy(dtype=float)
        t = data["year"].to_numpy(dtype=float)
        d = ((g > 0) & (t >= g + onset_lag)).astype(float)
        unit = pd.factorize(data["department_id"])[0]
        year = pd.factorize(data["year"])[0]

        def demean(x: np.ndarray) -> np.ndarray:
            by_unit = np.bincount(unit, x) / np.bincount(unit)
            by_year = np.bincount(year, x) / np.bincount(year)
            return x - by_unit[unit] - by_year[year] + x.mean()

        dd, yy = demean(d), demean(data[outcome].to_numpy(dtype=float))
        est = float(dd @ yy / (dd @ dd))
        return PlaceboFit(pd.DataFrame([{"tool": tool, "estimate": est, "se": np.nan}]))
    return estimator


def test_function_not_module_and_the_study_constants() -> None:
    from impact.diagnostics.placebo import _OUTCOMES, _TOOLS
    from impact.estimates import OUTCOMES, TOOLS

    assert callable(placebo_module)
    assert diagnostics.placebo_time.__module__ == "impact.diagnostics.placebo"
    assert (_TOOLS, _OUTCOMES) == (TOOLS, OUTCOMES)


def test_truncation_keeps_only_untreated_years() -> None:
    data = placebo_world()
    kept = truncate_untreated(data)
    onset = np.fmin(*(np.where(kept[f"cohort_{t}"] > 0, kept[f"cohort_{t}"] + 1, np.nan)
                      for t in ("flexible_letting", "municipal_referral")))
    assert not (kept["year"].to_numpy() >= onset).any()
    # the rows dropped are exactly those some tool could have moved
    dropped = data.drop(index=kept.index)
    g = dropped[["cohort_flexible_letting", "cohort_municipal_referral"]].to_numpy()
    moved = ((g > 0) & (dropped["year"].to_numpy()[:, None] >= g + 1)).any(axis=1)
    assert moved.all()


def test_time_placebo_is_the_estimator_on_shifted_truncated_data_only() -> None:
    """Exact identity: the placebo equals the primary estimate on hand-made data (cohorts - 2,
    real post years dropped), and outcomes of the dropped years do not matter."""
    data = placebo_world()
    garbage = data.copy()
    onset = np.fmin(*(np.where(data[f"cohort_{t}"] > 0, data[f"cohort_{t}"] + 1, np.inf)
                      for t in ("flexible_letting", "municipal_referral")))
    post = data["year"].to_numpy() >= onset
    garbage.loc[post, OUTCOME] = 1e6 * np.random.default_rng(1).standard_normal(int(post.sum()))
    got = diagnostics.placebo_time(garbage, OUTCOME, shifts=[2], n_boot=0)
    manual = data.loc[~post].copy()
    for t in ("flexible_letting", "municipal_referral"):
        c = manual[f"cohort_{t}"]
        manual[f"cohort_{t}"] = np.where(c > 0, c - 2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = primary(manual, OUTCOME, n_boot=0, seed=0).overall
    assert list(got.columns) == list(COLUMNS)
    assert got["tool"].tolist() == want["tool"].tolist()
    np.testing.assert_allclose(got["estimate"], want["estimate"], rtol=0, atol=1e-12)
    assert (got["n_department_years"].to_numpy() == want["n_obs_treated"].to_numpy()).all()
    assert (got["placebo"] == "time").all() and (got["shift"] == 2).all()
    # each fake adopter is fake-treated for at most 2 years
    assert (got["n_department_years"] <= 2 * got["n_departments"]).all()


def test_time_placebo_on_the_placebo_world_is_null() -> None:
    """No effect anywhere: every time placebo within 3.5 bootstrap SEs of 0."""
    out = diagnostics.placebo_time(placebo_world(), OUTCOME, shifts=[2], n_boot=49, seed=3)
    assert len(out) == 2 and out["se"].gt(0).all()
    assert (out["estimate"].abs() <= SDS * out["se"]).all(), out
    # the interval is the estimator's (estimate +- 1.96 se)
    np.testing.assert_allclose(out["upper"] - out["estimate"], 1.959964 * out["se"], rtol=1e-6)


def test_time_placebo_is_identical_on_the_factual_and_the_placebo_world() -> None:
    """The simulator's effects are exactly zero until a tool can act, so the truly untreated
    years of the factual world are those of its placebo world: identical time placebos prove
    that no treated year is left (a leak would add the true effect to one of them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        factual = prepare(impact.panel.build(_registers(), validate=False).frame)
    args = {"outcomes": [OUTCOME, "mean_household_income"], "shifts": [3], "n_boot": 0}
    a = diagnostics.placebo_time(factual, **args)
    b = diagnostics.placebo_time(placebo_world(), **args)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10, atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = primary(factual, OUTCOME, n_boot=0, seed=0).overall["estimate"]
        none = primary(placebo_world(), OUTCOME, n_boot=0, seed=0).overall["estimate"]
    assert (real - none).abs().max() > 1e-3  # the full samples do differ (real effects)


def test_time_placebo_refuses_a_zero_shift() -> None:
    with pytest.raises(EstimationError, match="shift"):
        diagnostics.placebo_time(placebo_world(), OUTCOME, shifts=[0])


def test_permutations_keep_the_assignment_structure() -> None:
    data = placebo_world()
    dept = data.groupby("department_id")[["plan_id", "municipality_id", f"cohort_{TOOL}"]].first()
    perms = diagnostics.permuted_cohorts(data, TOOL, n_perm=20, seed=5)
    assert perms.shape == (len(dept), 20)
    assert perms.index.equals(dept.index)
    has_plan = dept["plan_id"].notna()
    for r in perms.columns:
        new = perms[r]
        # every plan's departments adopt together
        assert (new[has_plan].groupby(dept.loc[has_plan, "plan_id"]).nunique() == 1).all()
        # the adoption years per municipality are those of the real assignment, separately for
        # plans (one per plan) and for plan-less departments
        for pool, frame in (("plans", dept[has_plan].assign(new=new[has_plan])
                             .drop_duplicates("plan_id")),
                            ("plan-less", dept[~has_plan].assign(new=new[~has_plan]))):
            for _, m in frame.groupby("municipality_id"):
                assert sorted(m["new"]) == sorted(m[f"cohort_{TOOL}"]), pool
    # something moves, deterministically
    assert (perms.ne(dept[f"cohort_{TOOL}"], axis=0)).any().all()
    assert perms.equals(diagnostics.permuted_cohorts(data, TOOL, n_perm=20, seed=5))
    assert not perms.equals(diagnostics.permuted_cohorts(data, TOOL, n_perm=20, seed=6))


def test_permutation_of_departments_within_plan_is_refused() -> None:
    data = placebo_world().copy()
    sizes = data.groupby("plan_id")["department_id"].nunique()
    big_plan = sizes.index[sizes > 1][0]
    one = data["department_id"] == data.loc[data["plan_id"] == big_plan, "department_id"].min()
    data.loc[one, f"cohort_{TOOL}"] = 2011
    # auto: cohorts no longer shared within plans -> departments are permuted
    perms = diagnostics.permuted_cohorts(data, TOOL, n_perm=5, seed=0)
    assert perms.shape[1] == 5 and perms.attrs["assignment"] == "departments"
    assert diagnostics.permuted_cohorts(placebo_world(), TOOL, n_perm=1).attrs[
        "assignment"] == "plans"
    with pytest.raises(EstimationError, match="varies within 1 plan"):
        diagnostics.permuted_cohorts(data, TOOL, n_perm=5, seed=0, by_plan=True)


def test_identity_permutations_give_the_actual_estimate() -> None:
    """Blocks of one plan (or one plan-less department) each: every permutation maps every plan
    to itself, so every permuted estimate is the actual one and the p-value is exactly 1."""
    data = placebo_world()
    out = diagnostics.placebo_space(data, OUTCOME, tools=[TOOL], n_perm=2,
                                    within=("municipality_id", "cluster_plan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = primary(data, OUTCOME, n_boot=0, seed=0).overall.set_index("tool")
    perms = out.attrs["permutations"]
    np.testing.assert_array_equal(perms["estimate"], actual.loc[TOOL, "estimate"])
    assert out["estimate"].iloc[0] == actual.loc[TOOL, "estimate"]
    assert out["p_value"].iloc[0] == 1.0 and out["n_perm"].iloc[0] == 2
    assert out["se"].iloc[0] == 0.0
    assert out["inference"].iloc[0] == "permutation of plans"


def _random_assignment_p_values(n_rep: int, n_perm: int, estimator=None) -> np.ndarray:
    """Permutation p-values on ``n_rep`` panels whose flexible-letting adoption is itself a random
    within-block permutation of the real one (outcomes of the placebo world)."""
    data = placebo_world()
    assignments = diagnostics.permuted_cohorts(data, TOOL, n_perm=n_rep, seed=2026)
    where = assignments.index.get_indexer(data["department_id"])
    ps = []
    for r in range(n_rep):
        panel = data.copy()
        panel[f"cohort_{TOOL}"] = assignments.to_numpy()[where, r]
        out = diagnostics.placebo_space(panel, OUTCOME, tools=[TOOL], n_perm=n_perm, seed=r,
                                        estimator=estimator)
        ps.append(float(out["p_value"].iloc[0]))
    return np.asarray(ps)


def test_permutation_p_value_is_not_small_under_random_assignment() -> None:
    """R = 30 panels with random adoption, 19 permutations each (fast TWFE statistic: the test is
    exact for any statistic): the p-values are not systematically small (bounds: module
    docstring)."""
    n_rep, n_perm = 30, 19
    ps = _random_assignment_p_values(n_rep, n_perm, twfe_estimator())
    assert ps.min() >= 1 / (n_perm + 1)
    assert ps.mean() >= 0.5 - SDS * np.sqrt(1 / 12 / n_rep), ps
    assert np.mean(ps <= 0.1) <= 0.1 + SDS * np.sqrt(0.1 * 0.9 / n_rep), ps


@pytest.mark.slow
def test_permutation_p_value_of_the_primary_estimator_under_random_assignment() -> None:
    """The same with the primary specification: R = 12 panels, 9 permutations each."""
    n_rep, n_perm = 12, 9
    ps = _random_assignment_p_values(n_rep, n_perm)
    assert ps.mean() >= 0.5 - SDS * np.sqrt(1 / 12 / n_rep), ps
    assert np.mean(ps <= 0.2) <= 0.2 + SDS * np.sqrt(0.2 * 0.8 / n_rep), ps


def test_permutation_p_value_is_minimal_with_a_large_true_effect() -> None:
    """+0.10 share employed injected into flexible letting's treated department-years of the
    placebo world (12 x the SD of the permutation distribution there): the actual estimate moves by
    exactly 0.10 (the estimator is linear and the injection is spanned by the tool's effect
    indicators) and no permutation reaches it (p = 1 / (n_perm + 1))."""
    data = placebo_world().copy()
    g = data[f"cohort_{TOOL}"].to_numpy()
    treated = (g > 0) & (data["year"].to_numpy() >= g + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = primary(data, OUTCOME, n_boot=0, seed=0).overall.set_index("tool")
    data[OUTCOME] = data[OUTCOME] + 0.10 * treated
    n_perm = 5
    out = diagnostics.placebo_space(data, OUTCOME, tools=[TOOL], n_perm=n_perm, seed=1)
    row = out.iloc[0]
    assert row["estimate"] == pytest.approx(base.loc[TOOL, "estimate"] + 0.10, abs=1e-10)
    assert row["p_value"] == 1 / (n_perm + 1)
    assert out.attrs["permutations"]["estimate"].abs().max() < 0.8 * abs(row["estimate"])


def test_placebo_outcome_and_the_combined_table() -> None:
    """An outcome that is constant within department (its size) cannot move: exactly 0. The
    combined table stacks the three placebos with the same columns (fast estimator)."""
    data = placebo_world()
    out = diagnostics.placebo_outcome(data, ["n_dwellings"], n_boot=0)
    assert (out["placebo"] == "outcome").all() and len(out) == 2
    np.testing.assert_allclose(out["estimate"], 0.0, atol=1e-9)
    both = diagnostics.placebo(data, OUTCOME, placebo_outcomes=["n_dwellings"], shifts=[2],
                               n_perm=3, tools=[TOOL], estimator=twfe_estimator())
    assert list(both.columns) == list(COLUMNS)
    assert both["placebo"].tolist() == ["time", "space", "outcome"]
    space = both[both["placebo"] == "space"].iloc[0]
    assert space["p_value"] in {k / 4 for k in range(1, 5)} and space["n_perm"] == 3
    with pytest.raises(EstimationError, match="missing"):
        diagnostics.placebo_outcome(data, ["share_aged_65_plus"])
    assert diagnostics.placebo_outcome(data, []).empty


def test_att_gt_adapter_in_space() -> None:
    """att_gt (one tool) as the estimator: the actual estimate is att_gt's simple ATT."""
    data = placebo_world()
    est = diagnostics.att_gt_overall(TOOL)
    out = diagnostics.placebo_space(data, OUTCOME, tools=[TOOL], n_perm=3, estimator=est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = impact.did.att_gt(data, OUTCOME, "department_id", "year", f"cohort_{TOOL}",
                                 n_boot=0, unbalanced="drop", cluster="cluster_plan"
                                 ).aggregate("simple").overall.att
    assert out["estimate"].iloc[0] == pytest.approx(want, abs=1e-12)
    assert out.attrs["permutations"]["estimate"].notna().all()


def test_time_placebo_of_one_tool_uses_years_untreated_by_every_tool() -> None:
    """Testing one tool, the estimator still sees only years no real tool can have moved, with
    that tool's cohort moved 3 years earlier and the other tool's unchanged."""
    data = placebo_world()
    seen: list[pd.DataFrame] = []

    def spy(frame: pd.DataFrame, outcome: str) -> PlaceboFit:
        seen.append(frame)
        return twfe_estimator()(frame, outcome)

    out = diagnostics.placebo_time(data, OUTCOME, shifts=[3], tools=[TOOL], estimator=spy)
    assert len(seen) == 1 and out["tool"].tolist() == [TOOL]
    frame = seen[0]
    assert frame.index.equals(truncate_untreated(data).index)
    real = data.loc[frame.index]
    other = "cohort_municipal_referral"
    assert (frame[other] == real[other]).all()
    g = real[f"cohort_{TOOL}"]
    assert (frame[f"cohort_{TOOL}"] == np.where(g > 0, g - 3, 0)).all()


def test_att_gt_time_placebo_is_reported_not_estimable() -> None:
    out = diagnostics.placebo_time(placebo_world(), OUTCOME, shifts=[2], tools=[TOOL],
                                   estimator=diagnostics.att_gt_overall(TOOL))
    assert out["estimate"].isna().all() and out["note"].str.startswith("not estimable").all()
