"""The synthetic register: contract, determinism, exactness of the counterfactual, mechanism, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.util import hash_pandas_object

import impact
from impact import simulate
from impact.registers import TABLES, Registers
from impact.simulate.config import FIRST_YEAR, LAST_YEAR

MEASURES = ("share_qualifying_edu", "share_employed", "mean_household_income", "share_non_western")


@pytest.fixture(scope="module")
def small() -> Registers:
    return simulate.registers(seed=0, scale="small")


@pytest.fixture(scope="module")
def report() -> Registers:
    return simulate.registers(seed=0, scale="report")


def table_hashes(reg: Registers) -> dict[str, int]:
    out = {name: int(hash_pandas_object(frame, index=False).sum() % (1 << 61))
           for name, frame in reg.tables().items()}
    out["truth"] = int(hash_pandas_object(reg.truth, index=False).sum() % (1 << 61))
    return out


def effect_columns(truth: pd.DataFrame) -> list[str]:
    return [c for c in truth.columns if c.endswith("_effect")]


def first_tool_year(truth: pd.DataFrame) -> pd.Series:
    """First calendar year any tool is in force, per truth row (9999 = never)."""
    in_force = truth["in_use_municipal_referral"] | truth["in_use_flexible_letting"]
    first = truth[in_force].groupby("department_id")["year"].min()
    return truth["department_id"].map(first).fillna(9999)


# --------------------------------------------------------------------------- contract


def test_tables_pass_spec_validation(small: Registers) -> None:
    impact.spec.validate(small)
    impact.spec.validate(small.counterfactual)


def test_tables_have_spec_columns_and_dtypes(small: Registers) -> None:
    s = impact.spec.load()
    for name in TABLES:
        frame = getattr(small, name)
        cols = [c.name for c in s.tables[name].columns if c.name in frame.columns]
        assert set(s.tables[name].required_columns) <= set(frame.columns), name
        assert list(frame.columns) == cols, name
        for c in s.tables[name].columns:
            if c.name not in frame.columns:
                continue
            dt = frame[c.name].dtype
            if c.dtype == "int":
                assert str(dt) == ("Int64" if c.nullable else "int64"), (name, c.name, dt)
            elif c.dtype == "bool":
                assert dt == np.dtype(bool), (name, c.name, dt)
            elif c.dtype == "float":
                assert dt == np.dtype("float64"), (name, c.name, dt)
            elif c.dtype == "str":
                assert pd.api.types.is_string_dtype(dt), (name, c.name, dt)


def test_data_conventions(small: Registers) -> None:
    p = small.persons
    assert p["year"].between(FIRST_YEAR, LAST_YEAR).all()
    assert not p.duplicated(["person_id", "year"]).any()
    # n_persons counts the persons of the household in that year.
    n = p.groupby(["household_id", "year"]).size().rename("n")
    hh = small.households.set_index(["household_id", "year"]).join(n)
    assert len(hh) == len(n) and (hh["n_persons"] == hh["n"]).all()
    # Every letting's tenant exists and lives in the department at 1 January of year + 1.
    lets = small.lettings
    assert lets.loc[lets["year"] == LAST_YEAR, "person_id"].isna().all()
    linked = lets[lets["person_id"].notna()]
    tenant = linked.merge(p, left_on=["person_id", "year"], right_on=["person_id", "year"],
                          how="left", suffixes=("", "_p"))
    assert len(tenant) == len(linked)
    nxt = p.assign(year=p["year"] - 1)[["person_id", "year", "department_id"]]
    lived = linked.merge(nxt, on=["person_id", "year"], suffixes=("", "_next"))
    assert len(lived) == len(linked)
    assert (lived["department_id"] == lived["department_id_next"]).all()
    # Tool adoption: exactly one unit per row.
    ta = small.tool_adoption
    assert (ta["department_id"].isna() ^ ta["plan_id"].isna()).all()
    assert (ta["source"] == "simulated").all()


def test_movers_have_rows_on_both_sides(small: Registers) -> None:
    """Leavers to elsewhere keep a row the year after; in-movers from elsewhere one the year before."""
    p = small.persons[["person_id", "year", "department_id", "age"]]
    prev = p.assign(year=p["year"] + 1).rename(columns={"department_id": "dep_prev", "age": "a"})
    cur = p.merge(prev[["person_id", "year", "dep_prev"]], on=["person_id", "year"], how="left",
                  indicator=True)
    res = cur[cur["department_id"].notna() & (cur["year"] > FIRST_YEAR)]
    new = res[res["_merge"] == "left_only"]
    share_new = len(new) / len(res)
    assert share_new < 0.03  # newborns and arrivals from abroad only
    assert (new["age"] == 0).mean() > 0.5
    moved = res[(res["_merge"] == "both") & (res["department_id"].astype("float64").fillna(-1)
                                             != res["dep_prev"].astype("float64").fillna(-1))]
    assert moved["dep_prev"].notna().mean() > 0.3  # between departments
    assert moved["dep_prev"].isna().mean() > 0.3  # from outside the sector


def test_truth_matches_tables(small: Registers) -> None:
    """The truth's factual stock and mover measures agree with what the tables say."""
    p = small.persons
    hh = small.households.set_index(["household_id", "year"])["disposable_income"]
    res = p[p["department_id"].notna()].copy()
    res["inc"] = hh.reindex(pd.MultiIndex.from_frame(res[["household_id", "year"]])).to_numpy()
    a = res["age"].between(18, 64)
    lf = res[a & res["in_labour_force"]]
    got = pd.DataFrame({
        "share_employed": lf.groupby(["department_id", "year"])["employed"].mean(),
        "share_qualifying_edu": lf["education"].between(20, 80).groupby(
            [lf["department_id"], lf["year"]]).mean(),
        "mean_household_income": res[a].groupby(["department_id", "year"])["inc"].mean(),
        "share_non_western": res.groupby(["department_id", "year"])["non_western"].mean(),
    })
    truth = small.truth.set_index(["department_id", "year"])
    for m in MEASURES:
        t = truth.loc[got.index, f"{m}_factual"].to_numpy()
        np.testing.assert_allclose(got[m].to_numpy(), t, rtol=1e-9, atol=1e-6, err_msg=m)
    # In-movers: in d at t, elsewhere (another department or none) at t - 1.
    prev = p[["person_id", "year", "department_id"]].assign(year=p["year"] + 1)
    cur = res.merge(prev, on=["person_id", "year"], suffixes=("", "_prev"))
    ins = cur[cur["department_id_prev"].astype("float64").fillna(-1)
              != cur["department_id"].astype("float64")]
    n_in = ins.groupby(["department_id", "year"]).size()
    np.testing.assert_array_equal(n_in.to_numpy(),
                                  truth.loc[n_in.index, "n_in_movers_factual"].to_numpy())
    a_in = ins[ins["age"].between(18, 64) & ins["in_labour_force"]]
    e_in = a_in.groupby(["department_id", "year"])["employed"].mean()
    np.testing.assert_allclose(e_in.to_numpy(),
                               truth.loc[e_in.index, "in_share_employed_factual"].to_numpy())
    # Out-movers: in d at t - 1, elsewhere at t, measured at t - 1.
    nxt = p[["person_id", "year", "department_id"]].assign(year=p["year"] - 1)
    cur = res.merge(nxt, on=["person_id", "year"], suffixes=("", "_next"))
    outs = cur[cur["department_id_next"].astype("float64").fillna(-1)
               != cur["department_id"].astype("float64")]
    outs = outs.assign(year=outs["year"] + 1)
    outs = outs[outs["year"] <= LAST_YEAR]
    n_out = outs.groupby(["department_id", "year"]).size()
    np.testing.assert_array_equal(n_out.to_numpy(),
                                  truth.loc[n_out.index, "n_out_movers_factual"].to_numpy())
    o_inc = outs[outs["age"].between(18, 64)].groupby(["department_id", "year"])["inc"].mean()
    np.testing.assert_allclose(o_inc.to_numpy(),
                               truth.loc[o_inc.index, "out_mean_household_income_factual"].to_numpy())


def test_truth_effect_is_factual_minus_counterfactual(small: Registers) -> None:
    t = small.truth
    assert not t.duplicated(["department_id", "year"]).any()
    assert len(t) == len(small.departments) * (LAST_YEAR - FIRST_YEAR + 1)
    for col in effect_columns(t):
        base = col.removesuffix("_effect")
        np.testing.assert_array_equal(t[col].to_numpy(),
                                      (t[f"{base}_factual"] - t[f"{base}_counterfactual"]).to_numpy())
    assert len(effect_columns(t)) == 15  # 4 measures x (stock, in, out) + 3 in fixed prices
    for prefix in ("", "in_", "out_"):
        for m in MEASURES:
            assert f"{prefix}{m}_effect" in t.columns
            for tool in ("flexible_letting", "municipal_referral"):
                assert f"{prefix}{m}_effect_{tool}" in t.columns
    # Fixed prices: the nominal effect times the contract's deflator of the year.
    from impact import spec

    factor = spec.deflator(t["year"])
    np.testing.assert_allclose(t["mean_household_income_real_effect"],
                               t["mean_household_income_effect"] * factor, rtol=1e-12, atol=1e-6)


def test_tool_specific_truth_is_zero_where_the_tool_cannot_act(small: Registers) -> None:
    """factual - world without one tool: exactly 0 for departments that never had the tool and
    up to its first year in force (SUTVA: departments are simulated on their own streams)."""
    t = small.truth
    adoption = small.tool_adoption
    plans = small.departments.set_index("department_id")["plan_id"]
    for tool in ("flexible_letting", "municipal_referral"):
        spells = adoption[adoption["tool"] == tool]
        direct = spells.dropna(subset=["department_id"]).groupby("department_id")["start_year"].min()
        by_plan = spells.dropna(subset=["plan_id"]).groupby("plan_id")["start_year"].min()
        first = pd.Series(plans.map(by_plan).to_numpy(dtype=float), index=plans.index)
        first = first.combine(direct.astype(float).reindex(plans.index), np.fmin)
        fy = t["department_id"].map(first)
        cannot = fy.isna() | (t["year"] <= fy)
        col = t[f"share_employed_effect_{tool}"]
        assert cannot.any() and (~cannot).any()
        assert (col[cannot].fillna(0.0) == 0.0).all()
        assert col[~cannot].abs().max() > 0.005
    for c in ("n_lettings", "intensity_flexible_letting", "intensity_municipal_referral",
              "n_in_movers_factual", "n_out_movers_counterfactual", "n_labour_force_factual"):
        assert c in t.columns


# --------------------------------------------------------------------------- determinism, exactness


def test_same_seed_same_bytes(small: Registers) -> None:
    again = simulate.registers(seed=0, scale="small")
    assert table_hashes(again) == table_hashes(small)
    other = simulate.registers(seed=1, scale="small")
    assert table_hashes(other)["persons"] != table_hashes(small)["persons"]


def test_counterfactual_equals_factual_where_no_tool(small: Registers) -> None:
    t = small.truth
    pre = t["year"] <= first_tool_year(t)
    eff = t.loc[pre, effect_columns(t)].to_numpy()
    assert np.all(np.isnan(eff) | (eff == 0.0))
    assert (~pre).sum() > 0
    # ... and the effects are not all zero where tools have been in force.
    post = t.loc[~pre, "share_employed_effect"].dropna()
    assert (post != 0).mean() > 0.3
    # Byte-identical tables before any tool is in force anywhere.
    y0 = int(first_tool_year(t).min())
    for name in ("persons", "households", "lettings"):
        f = getattr(small, name)
        c = getattr(small.counterfactual, name)
        f, c = f[f["year"] < y0].reset_index(drop=True), c[c["year"] < y0].reset_index(drop=True)
        assert len(f) > 0
        pd.testing.assert_frame_equal(f, c)
    assert small.counterfactual.tool_adoption.empty
    assert small.counterfactual.truth is None


def test_effect_scale_zero_means_no_effect() -> None:
    reg = simulate.registers(seed=0, scale="small", effect_scale=0.0)
    eff = reg.truth[effect_columns(reg.truth)].to_numpy()
    assert np.all(np.isnan(eff) | (eff == 0.0))
    pd.testing.assert_frame_equal(reg.persons, reg.counterfactual.persons)
    pd.testing.assert_frame_equal(reg.households, reg.counterfactual.households)


# --------------------------------------------------------------------------- mechanism


def _designed_adoption(reg: Registers) -> pd.DataFrame:
    """Flexible letting from 2006 at 100% or 25% in alternate departments of both markets."""
    deps = reg.departments.reset_index(drop=True)
    share = np.where(np.arange(len(deps)) % 3 == 0, 1.0, np.where(np.arange(len(deps)) % 3 == 1,
                                                                   0.25, 0.0))
    rows = deps.loc[share > 0, ["department_id"]].assign(
        tool="flexible_letting", start_year=2006, end_year=None, agreed_share=share[share > 0])
    return rows


def test_flexible_letting_works_where_waiting_lists_are_strong(small: Registers) -> None:
    """FU raises employment in waiting-list markets, more at high intensity; little in vacancy markets."""
    adoption = _designed_adoption(small)
    reg = simulate.registers(seed=0, scale="small", adoption=adoption)
    assert set(reg.tool_adoption["source"]) == {"user"}
    t = reg.truth[reg.truth["year"] >= 2011].copy()
    t["market"] = t["department_id"].map(reg.departments.set_index("department_id")["market_type"])
    eff = t.groupby(["market", "effective_share_flexible_letting"])["share_employed_effect"].mean()
    sd = t.groupby(["market", "effective_share_flexible_letting"])["share_employed_effect"].std()
    n = t.groupby(["market", "effective_share_flexible_letting"]).size()
    se = (sd / np.sqrt(n / 3)).fillna(0)  # three years per department
    wl_hi, wl_lo = eff[("waiting_list", 1.0)], eff[("waiting_list", 0.25)]
    vac_hi = eff[("vacancies", 1.0)]
    assert eff[("waiting_list", 0.0)] == 0 and eff[("vacancies", 0.0)] == 0
    assert wl_hi > 0.02
    assert wl_hi - wl_lo > 2 * np.hypot(se[("waiting_list", 1.0)], se[("waiting_list", 0.25)])
    assert wl_lo > 0
    assert wl_hi - vac_hi > 2 * np.hypot(se[("waiting_list", 1.0)], se[("vacancies", 1.0)])
    assert abs(vac_hi) < wl_hi / 2
    # Realised intensity follows the agreement.
    hi = t[t["effective_share_flexible_letting"] == 1.0]
    assert np.average(hi["intensity_flexible_letting"].fillna(0), weights=hi["n_lettings"]) > 0.95


def test_referral_brings_in_weaker_tenants(small: Registers) -> None:
    deps = small.departments
    adoption = pd.DataFrame({"department_id": deps["department_id"].iloc[::2],
                             "tool": "municipal_referral", "start_year": 2005,
                             "agreed_share": 1.0})
    reg = simulate.registers(seed=0, scale="small", adoption=adoption)
    t = reg.truth[(reg.truth["year"] >= 2008) & reg.truth["in_use_municipal_referral"]]
    assert t["in_share_employed_effect"].mean() < -0.02
    assert t["in_mean_household_income_effect"].mean() < 0
    assert t["share_non_western_effect"].mean() > 0
    untouched = reg.truth[~reg.truth["department_id"].isin(adoption["department_id"])]
    assert (untouched[effect_columns(reg.truth)].fillna(0) == 0).all().all()


def test_report_groups_differ_little(report: Registers) -> None:
    """Averaged over the report's binary groups the effects are small, as the report found."""
    from impact.simulate.calibration import _groups

    t = report.truth[report.truth["year"] == LAST_YEAR].copy()
    t["group"] = t["department_id"].map(_groups(report))
    effect = t.groupby("group")["share_employed_effect"].mean()
    assert effect["neither"] == 0
    assert abs(effect["both"]) < 0.03
    assert abs(effect["referral_only"]) < 0.04
    assert abs(effect["flexible_only"]) < 0.06
    change = (report.truth.pivot_table(index="department_id", columns="year",
                                       values="share_employed_factual")
              .pipe(lambda f: f[LAST_YEAR] - f[2004]))
    by_group = change.groupby(change.index.map(_groups(report))).mean()
    assert (by_group - by_group["neither"]).abs().max() < 0.08


# --------------------------------------------------------------------------- calibration


def test_calibration_within_targets(report: Registers) -> None:
    table = simulate.calibration(report)
    assert list(table.columns[:5]) == ["figure", "value", "target_low", "target_high", "ok"]
    bad = table[~table["ok"]]
    assert bad.empty, "\n" + simulate.format_calibration(bad)
    assert "figure" in simulate.format_calibration(table)


def test_report_scale_sizes(report: Registers) -> None:
    supported = report.departments["plan_id"].notna().sum()
    assert supported == 498
    assert 200 <= report.departments["plan_id"].isna().sum() <= 600
    assert set(report.departments["market_type"]) == {"waiting_list", "vacancies"}
    assert report.tool_adoption["start_year"].between(2004, 2011).all()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="scale"):
        simulate.registers(scale="galactic")
    with pytest.raises(ValueError, match="exactly one"):
        simulate.registers(scale="small", adoption=pd.DataFrame(
            {"department_id": [1], "plan_id": [1], "tool": ["flexible_letting"], "start_year": [2006]}))


@pytest.mark.slow
def test_national_scale() -> None:
    reg = simulate.registers(seed=0, scale="national")
    assert len(reg.persons) >= 12_000_000
    assert len(reg.departments) >= 6_500
    residents = reg.persons[reg.persons["department_id"].notna() & (reg.persons["year"] == 2013)]
    assert len(residents) >= 1_000_000


def test_placebo_world_keeps_adoption_and_passes_the_contract(small: Registers) -> None:
    """The placebo world: counterfactual persons, factual adoption and lettings, zero truth."""
    from impact import spec

    plac = simulate.placebo(small)
    spec.validate(plac)  # raises on any contract violation
    pd.testing.assert_frame_equal(plac.tool_adoption, small.tool_adoption)
    assert plac.persons is small.counterfactual.persons
    np.testing.assert_array_equal(plac.lettings["channel"], small.lettings["channel"])
    effects = [c for c in plac.truth.columns if "_effect" in c]
    assert effects and (plac.truth[effects].fillna(0.0) == 0.0).all().all()
    unknown = ~small.lettings["person_id"].isin(small.counterfactual.persons["person_id"])
    assert unknown.any() and plac.lettings.loc[unknown, "person_id"].isna().all()


def test_a_world_is_a_pure_function_of_its_schedules() -> None:
    """``registers`` reuses the factual (or no-tool) summary as the world without a tool that was
    never used; exact only because a world depends on nothing but its schedules (keyed streams).
    Simulated twice from fresh ``Streams`` with the schedule of "flexible letting only" reached two
    ways (the factual one, and the factual one with referral's spells removed), every summary
    array is identical; and the truth of a one-tool world attributes the whole effect to it."""
    from impact.simulate.dynamics import simulate_world
    from impact.simulate.rng import Streams
    from impact.simulate.truth import world_summary
    from impact.simulate.world import build_world, schedule

    cfg = simulate.config_for_scale("small")
    world = build_world(3, cfg)
    fu_only = world.tool_adoption[world.tool_adoption["tool"] == "flexible_letting"]
    ka, fu = schedule(world, fu_only)
    ka2, fu2 = schedule(world, fu_only[fu_only["tool"] != "municipal_referral"])
    a = world_summary(simulate_world(world, cfg, Streams(3), ka, fu, 1.0), world.n)
    b = world_summary(simulate_world(world, cfg, Streams(3), ka2, fu2, 1.0), world.n)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    from impact.simulate.truth import effect_column

    truth = simulate.registers(seed=3, scale="small", adoption=fu_only).truth
    for outcome in ("share_employed", "share_non_western", "mean_household_income"):
        total = truth[effect_column(outcome)]
        assert total.abs().sum() > 0, outcome
        # the fixed-price conversion of the two columns rounds in a different order: differences
        # of DKK amounts near 1e5 agree to a few ulps (1e5 x 2.2e-16 x 100 = 2e-9 DKK)
        np.testing.assert_allclose(truth[effect_column(outcome, "flexible_letting")], total,
                                   rtol=0, atol=2e-9)
        assert (truth[effect_column(outcome, "municipal_referral")].fillna(0) == 0).all()
