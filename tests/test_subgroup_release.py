"""Release of the subgroup effects, the tenant composition by letting channel, the Bayesian
effects by market and the follow-up design by subgroup stratum (impact.workflow.subgroup_outputs), on the
small simulated world with crafted small cells.

One release run (module fixture) holds every table: the crafted in-movers put 2 persons in one
cell of a channel (and 40 in another year of it, so the channel's total over the years passes)
and 3 persons in a channel used nowhere else; the subgroup table has one row with 2 treated
departments. The attacker's bounds are recomputed here from the released files alone, with
every relation the tables publish (sums over years, markets and linked channels, the shared
count of the two labour-force shares, nested bases), by a linear programme of this file's own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from impact import config, subgroups
from impact.channels import composition_from_movers
from impact.diagnostics import power_design
from impact.errors import ConfigError, DisclosureError
from impact.followup import design
from impact.outputs import headline_table
from impact.report import disclosure
from impact.report.release import write_released
from impact.report.tables import read_csv
from impact.workflow.subgroup_outputs import (
    bayes_figure,
    bayes_table,
    department_labels,
    followup_subgroup_table,
    implied_effects,
    subgroup_figures,
    subgroup_table,
    tenant_figures,
    tenant_tables,
)
from tests import _small_world as world

CFG = config.load(None)
RULES = CFG.disclosure  # min_n 5, min_departments 3, min_residual_df 10
MEASURES = ("share_qualifying_edu", "share_employed", "share_non_western",
            "mean_household_income")
SMALL = ("2008", "waiting_list", "combined_letting")  # the crafted 2-person cell
LONE = ("2009", "vacancies", "public_advertising")  # a channel of 3 persons in one market
TOOLS = ("flexible_letting", "municipal_referral")


def _relabel(movers: pd.DataFrame, year: int, market: str, n: int, channel: str
             ) -> pd.DataFrame:
    """The first ``n`` waiting-list tenants of a year and market, in every measure's base,
    moved to ``channel``."""
    sel = ((movers["year"] == year) & (movers["market_type"] == market)
           & (movers["channel"] == "waiting_list") & movers[list(MEASURES)].notna().all(axis=1))
    idx = movers.index[sel][:n]
    assert len(idx) == n
    return movers.assign(channel=movers["channel"].where(~movers.index.isin(idx), channel))


@pytest.fixture(scope="module")
def movers():
    """The small world's in-movers of 2005-2010 (six years keep the tables' structure and the
    tests fast)."""
    movers = world.composition().movers
    return movers[movers["year"].between(2005, 2010)].reset_index(drop=True)


@pytest.fixture(scope="module")
def crafted(movers):
    """2 persons in combined letting in one year, 40 in another (waiting-list market)."""
    movers = _relabel(movers, 2008, "waiting_list", 2, "combined_letting")
    return composition_from_movers(_relabel(movers, 2010, "waiting_list", 40,
                                            "combined_letting"))


@pytest.fixture(scope="module")
def lone(tmp_path_factory, movers):
    """3 persons in public advertising, in one year and market only: released alone."""
    comp = composition_from_movers(_relabel(movers, 2009, "vacancies", 3, "public_advertising"))
    out = tmp_path_factory.mktemp("lone") / "release"
    return out, write_released([tenant_tables(comp)], out, CFG, formats=("csv",))


@pytest.fixture(scope="module")
def labels():
    return department_labels(world.prepared(), ("market_type", "vulnerability"))


@pytest.fixture(scope="module")
def by_market():
    """Subgroup headline by market; (vacancies, flexible_letting) crafted to 2 treated
    departments."""
    by = subgroups.headline(world.prepared(), n_boot=5, seed=0, truth=world.registers().truth,
                            outcomes=("share_employed",), subgroups=("market_type",))
    sel = (by["subgroup"] == "vacancies") & (by["tool"] == "flexible_letting")
    return by.assign(n_departments=by["n_departments"].mask(sel, 2))


@pytest.fixture(scope="module")
def followup_design(labels):
    return design(world.panel(), n_reps=0, department_factors=(1.0, 2.0, 4.0),
                  extra_years=(0, 3), subgroups=labels,
                  equal_effects={"market_type": 0.01, "vulnerability": 0.5})


def _synthetic_effects() -> pd.DataFrame:
    """An effects table as HierarchicalResult.effects (values chosen, not sampled)."""
    return pd.DataFrame({"group": ["pooled", "vacancies", "waiting_list"],
                         "mean": [0.05, 0.01, 0.15], "sd": [0.02, 0.01, 0.03],
                         "lower_90": [0.02, -0.005, 0.1], "upper_90": [0.08, 0.025, 0.2],
                         "lower_95": [0.01, -0.01, 0.09], "upper_95": [0.09, 0.03, 0.21],
                         "p_positive": [0.99, 0.8, 1.0]})


@pytest.fixture(scope="module")
def bayes_data():
    data = world.prepared()
    return data.assign(exposure_flexible_letting=data["exposure_flexible_letting"].clip(upper=1))


@pytest.fixture(scope="module")
def release(tmp_path_factory, crafted, labels, by_market, followup_design, bayes_data):
    implied = implied_effects(_synthetic_effects(), bayes_data, "exposure_flexible_letting",
                              "market_type", truth=world.registers().truth,
                              outcome="share_employed")
    tables = [tenant_tables(crafted), subgroup_table(by_market, world.panel(), labels),
              followup_subgroup_table(followup_design, world.panel(), labels),
              bayes_table(implied, _synthetic_effects(), bayes_data, "share_employed",
                          converged=True)]
    figures = [*tenant_figures(), *subgroup_figures(("market_type",), TOOLS),
               bayes_figure("share_employed")]
    out = tmp_path_factory.mktemp("release") / "release"
    result = write_released(tables, out, CFG, figures=figures, formats=("csv",))
    return out, result, figures


def released(out: Path, name: str, folder: str = "tables") -> pd.DataFrame:
    frame, _ = read_csv(out / folder / f"{name}.csv")
    return frame


def composition(out: Path) -> pd.DataFrame:
    frame = pd.concat([released(out, "tenant_composition_shares"),
                       released(out, "tenant_composition_income")], ignore_index=True)
    return frame.astype({"year": str})


# --- the attacker's bounds from the released files alone -----------------------------------------

BASES = {"share_employed": "lf", "share_qualifying_edu": "lf", "mean_household_income": "income",
         "share_non_western": "all"}


def attacker_interval(frame: pd.DataFrame, key: tuple[str, str, str], base: str,
                      what: str = "count") -> tuple[float, float]:
    """Min and max of a cell's count (or share_employed numerator) given every published cell.

    One variable per (base, year, market, channel) count and per share_employed numerator;
    published ones are fixed at their value (a numerator at value x count). Relations: the
    totals over years, over markets and over the linked channels (for each base's counts and
    for the numerators), numerator <= count, and the nested bases (the labour-force and
    income bases within all in-movers).
    """
    families: dict[tuple[str, str], dict[tuple[str, str, str], float]] = {}
    for r in frame.itertuples(index=False):
        fam = families.setdefault(("n", BASES[r.measure]), {})
        k = (r.year, r.market_type, r.channel)
        if k not in fam or not np.isnan(r.n_persons):  # the two lf shares show one count
            fam[k] = r.n_persons
        if r.measure == "share_employed":
            families.setdefault(("k", "lf"), {})[k] = r.value * r.n_persons
    names = [(*f, *k) for f, cells in families.items() for k in cells]
    pos = {n: i for i, n in enumerate(names)}
    bounds = [(v, v) if not np.isnan(v) else (0, None)
              for cells in families.values() for v in cells.values()]
    a_eq, a_ub = [], []

    def relation(rows: list, total: tuple, parts: list[tuple], sign: float = 1.0) -> None:
        if total in pos and parts:
            row = np.zeros(len(names))
            row[pos[total]] = -sign
            for q in parts:
                row[pos[q]] += sign
            rows.append(row)

    for f, cells in families.items():
        ks = list(cells)
        for y, m, ch in ks:
            if y == "all" and m != "all" and ch != "linked":  # over the years
                relation(a_eq, (*f, y, m, ch),
                         [(*f, *c) for c in ks if c[0] != "all" and c[1:] == (m, ch)])
            if y == "all" and m == "all" and ch != "linked":  # over the markets
                relation(a_eq, (*f, y, m, ch),
                         [(*f, *c) for c in ks if c[0] == "all" and c[1] != "all"
                          and c[2] == ch])
            if y == "all" and m != "all" and ch == "linked":  # over the linked channels
                relation(a_eq, (*f, y, m, ch),
                         [(*f, *c) for c in ks if c[0] == "all" and c[1] == m
                          and c[2] not in ("linked", "unlinked")])
            if (y, m, ch) == ("all", "all", "linked"):
                relation(a_eq, (*f, y, m, ch),
                         [(*f, *c) for c in ks if c[0] == "all" and c[1] != "all"
                          and c[2] == "linked"])
    for (kind, b), cells in families.items():
        for k in cells:
            if kind == "n" and b in ("lf", "income"):  # nested in all in-movers
                relation(a_ub, ("n", "all", *k), [("n", b, *k)])
            if kind == "k":  # numerator <= count
                relation(a_ub, ("n", "lf", *k), [("k", "lf", *k)])
    target = pos[("n", base, *key) if what == "count" else ("k", "lf", *key)]
    c = np.zeros(len(names))
    c[target] = 1
    kw = {"A_eq": np.array(a_eq), "b_eq": np.zeros(len(a_eq)), "A_ub": np.array(a_ub),
          "b_ub": np.zeros(len(a_ub)), "bounds": bounds, "method": "highs"}
    lo, hi = linprog(c, **kw), linprog(-c, **kw)
    assert lo.status == 0 and hi.status in (0, 3)
    return lo.fun, (np.inf if hi.status == 3 else -hi.fun)


# --- tenant composition --------------------------------------------------------------------------

def test_small_channel_cell_is_suppressed_and_not_recoverable_from_the_totals(release) -> None:
    """The 2-person cell is blanked in every measure (primary), its channel's total over the
    years is published (42 persons), so the only other cell of that total is blanked
    (secondary); from the released files the attacker's interval for the small cell's count is
    at least min_n wide in every base, and for its number employed too."""
    out, result, _ = release
    comp = composition(out)
    cell = comp.set_index(["year", "market_type", "channel", "measure"])
    for m in MEASURES:
        assert np.isnan(cell.loc[(*SMALL, m), "value"]) and np.isnan(cell.loc[(*SMALL, m),
                                                                            "n_persons"])
        assert np.isnan(cell.loc[("2010", "waiting_list", "combined_letting", m), "n_persons"])
        assert cell.loc[("all", "waiting_list", "combined_letting", m), "n_persons"] == 42
    for base in ("lf", "income", "all"):
        lo, hi = attacker_interval(comp, SMALL, base)
        assert lo <= 2 <= hi and hi - lo >= RULES.min_n, (base, lo, hi)
    lo, hi = attacker_interval(comp, SMALL, "lf", what="numerator")
    assert hi - lo >= RULES.min_n
    # the writer's own audit agrees: every protected quantity safe
    audit = result.audits["tenant_composition"]
    assert audit["safe"].all() and audit["label"].str.contains("combined_letting").any()
    log = result.log.frame()
    shares = log[log["output"] == "tenant_composition_shares"]
    assert {"threshold", "share", "secondary"} <= set(shares["rule"])


@pytest.mark.slow
def test_a_channel_total_below_min_n_hides_its_contrasts_and_a_linked_total(lone) -> None:
    """3 persons in public advertising, one year, one market: the cell, its total over the years
    and over both markets are primary; the linked channels' total of that market is published,
    so another total of the market is hidden (secondary) and the contrast rows that show it are
    blanked, not only the channel's own."""
    out, result = lone
    comp = composition(out)
    tot = comp[(comp["year"] == "all") & (comp["measure"] == "share_employed")]
    lone = tot[tot["channel"] == "public_advertising"]
    assert len(lone) == 2 and lone["n_persons"].isna().all()
    linked = tot[(tot["market_type"] == "vacancies") & (tot["channel"] == "linked")]
    assert linked["n_persons"].notna().all()
    hidden = tot[(tot["market_type"] == "vacancies") & tot["n_persons"].isna()]
    assert set(hidden["channel"]) - {"public_advertising"}, "no second total hidden"
    lo, hi = attacker_interval(comp, ("all", "vacancies", "public_advertising"), "lf")
    assert hi - lo >= RULES.min_n
    con = released(out, "tenant_channel_contrasts")
    vac = con[(con["market_type"] == "vacancies") & (con["measure"] == "share_employed")]
    blank = set(vac.loc[vac["value"].isna(), "channel"])
    assert blank == set(hidden["channel"])
    log = result.log.frame()
    rules = set(log.loc[log["output"] == "tenant_channel_contrasts", "rule"])
    assert "secondary" in rules


def test_released_composition_is_the_composition_table(release, crafted) -> None:
    """Published interior cells equal impact.channels' composition exactly; the totals equal the
    contrasts' pooled values and person counts."""
    out, _, _ = release
    comp = composition(out)
    inner = comp[comp["year"] != "all"].astype({"year": int})
    m = inner.merge(crafted.composition, on=["year", "market_type", "channel", "measure"],
                    suffixes=("", "_ref"), how="outer", validate="one_to_one")
    shown = m["value"].notna()
    assert len(m) == len(crafted.composition) and shown.sum() > 0.8 * len(m)
    np.testing.assert_allclose(m.loc[shown, "value"], m.loc[shown, "value_ref"], rtol=1e-12)
    assert (m.loc[shown, "n_persons"] == m.loc[shown, "n_persons_ref"]).all()
    con = crafted.contrasts[crafted.contrasts["comparison"] == "raw"]
    tot = comp[comp["year"] == "all"].merge(con, on=["market_type", "channel", "measure"],
                                            suffixes=("", "_c"))
    tot = tot[tot["value"].notna()]
    assert len(tot) > 20
    np.testing.assert_allclose(tot["value"], tot["value_c"], rtol=1e-12)
    assert (tot["n_persons"] == tot["n_persons_c"]).all()


def test_every_suppressed_cell_is_in_the_log(release) -> None:
    out, result, _ = release
    log = result.log.frame()
    for name, folder in (("tenant_composition_shares", "tables"),
                         ("tenant_composition_income", "tables"),
                         ("tenant_channel_contrasts", "tables"), ("did_subgroups", "tables"),
                         ("followup_by_subgroup", "followup"), ("bayes_implied_att", "tables")):
        frame = released(out, name, folder)
        col = {"tenant_channel_contrasts": "difference", "did_subgroups": "estimate",
               "followup_by_subgroup": "mde", "bayes_implied_att": "implied_att_mean"}.get(
            name, "value")
        blank = set(np.flatnonzero(frame[col].isna().to_numpy()))
        logged = set(log.loc[(log["output"] == name) & (log["column"] == col), "row"])
        assert blank <= logged, (name, sorted(blank - logged))
        assert result.status[name] in ("pass", "review")


def test_no_identifiers_leave(release) -> None:
    out, _, _ = release
    for path in sorted(out.rglob("*.csv")):
        if path.name == "disclosure_log.csv":
            continue
        frame, _ = read_csv(path)
        assert not disclosure.check_columns(frame), path.name
        assert not [c for c in frame.columns if re.search(r"(_id|^id)$", c)], path.name
        assert not [c for c in frame.columns if c.startswith("support_")], path.name


def _lines(fig) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    return [(ax.get_title(), line.get_label(), np.asarray(line.get_xdata(), dtype=float),
             np.asarray(line.get_ydata(), dtype=float))
            for ax in fig.axes for line in ax.get_lines()]


def test_figures_show_exactly_the_released_tables(release) -> None:
    """Each figure is redrawn from its released CSV: the plotted points are the table's cells,
    suppressed ones absent (a gap), and the PNG was written."""
    out, result, figures = release
    by_name = {f.name: f for f in figures}
    shares = released(out, "tenant_composition_shares")
    fig = by_name["tenants_by_channel_share_employed"].draw(shares)
    lines = _lines(fig)
    part = shares[(shares["measure"] == "share_employed") & (shares["year"].astype(str) != "all")
                  & (shares["market_type"] != "all")]
    assert len(lines) == part.groupby(["market_type", "channel"]).ngroups
    for title, label, x, y in lines:
        market = title.removesuffix(" market").replace(" ", "_")
        ref = part[(part["market_type"] == market)
                   & (part["channel"] == label.replace(" ", "_"))]
        ref = ref.assign(year=ref["year"].astype(int)).sort_values("year")
        np.testing.assert_array_equal(x, ref["year"].to_numpy(dtype=float))
        np.testing.assert_array_equal(y, ref["value"].to_numpy(dtype=float))
        if (market, label.replace(" ", "_")) == SMALL[1:]:
            assert np.isnan(y[list(x).index(2008)])
    sub = released(out, "did_subgroups")
    fig = by_name["did_subgroups_market_type_share_employed"].draw(sub)
    for ax, tool in zip(fig.axes, TOOLS, strict=True):
        rows = sub[sub["tool"] == tool]
        marks = ax.containers[0].lines[0]  # the errorbar's points
        np.testing.assert_array_equal(np.sort(marks.get_xdata()),
                                      np.sort(rows["estimate"].dropna().to_numpy()))
    bayes = released(out, "bayes_implied_att")
    fig = by_name["bayes_implied_att_share_employed"].draw(bayes)
    np.testing.assert_array_equal(fig.axes[0].containers[0].lines[0].get_xdata(),
                                  bayes["implied_att_mean"].to_numpy())
    for f in figures:
        assert (out / "figures" / f"{f.name}.png").is_file()
        assert result.status[f.name] == "pass"


# --- effects by subgroup -------------------------------------------------------------------------

def test_subgroup_row_with_too_few_departments_is_suppressed(release, by_market) -> None:
    """2 treated departments (< min_departments): the row's estimate, interval, pre-test and
    truth are blanked, and the test of equal effects on every row of its tool (it rests on that
    subgroup); the other tool keeps everything."""
    out, result, _ = release
    sub = released(out, "did_subgroups").set_index(["subgroup", "tool"])
    row = sub.loc[("vacancies", "flexible_letting")]
    assert row[["estimate", "se", "lower", "upper", "pretest_p_value", "truth"]].isna().all()
    assert sub.xs("flexible_letting", level="tool")["equal_effects_p_value"].isna().all()
    assert sub.loc[("waiting_list", "flexible_letting"), ["estimate", "se"]].notna().all()
    other = sub.xs("municipal_referral", level="tool")
    assert other[["estimate", "equal_effects_p_value"]].notna().all().all()
    log = result.log.frame()
    mine = log[log["output"] == "did_subgroups"]
    assert set(mine.loc[mine["column"] == "estimate", "rule"]) == {"departments"}
    assert set(mine.loc[mine["column"] == "equal_effects_p_value", "rule"]) == {"secondary"}
    ref = by_market.set_index(["subgroup", "tool"])
    np.testing.assert_allclose(
        other["estimate"], ref.xs("municipal_referral", level="tool")["estimate"], rtol=1e-12)


def test_subgroup_support_counts(by_market, labels) -> None:
    """Support per row from the panel: comparison departments are the subgroup's never-adopters;
    the pooled row's support is the headline table's."""
    panel = world.panel()
    t = subgroup_table(by_market, panel, labels).frame.set_index(["subgroup", "tool"])
    for market in ("vacancies", "waiting_list"):
        deps = panel[panel["market_type"] == market].groupby("department_id").first()
        for tool in TOOLS:
            assert t.loc[(market, tool), "support_departments_control"] == \
                int((deps[f"cohort_{tool}"] == 0).sum())
    head = by_market[by_market["subgroup"] == "all"].rename(
        columns={"n_departments": "n_departments"})
    ref = headline_table(head, panel).frame.set_index("tool")
    for col in ("support_df", "support_departments_treated", "support_departments_control",
                "support_persons_treated", "support_persons_control"):
        for tool in TOOLS:
            assert t.loc[("all", tool), col] == ref.loc[tool, col], col


# --- follow-up design by subgroup ----------------------------------------------------------------

def test_followup_strata_have_their_own_design(followup_design, labels) -> None:
    """Each stratum's panel MDE is power_design on the stratum's departments (its own noise
    model), exactly; the stratum's follow-up is the cheapest grid design reaching the target;
    effects_differ where the test rejects at alpha."""
    panel = world.panel()
    by = followup_design.by_subgroup.set_index(["subgroup_variable", "stratum"])
    assert list(by.index.get_level_values(1)) == ["vacancies", "waiting_list",
                                                  "T1_low_employment", "T2",
                                                  "T3_high_employment"]
    for (variable, stratum), row in by.iterrows():
        sub = panel[panel["department_id"].map(labels[variable]) == stratum]
        base = power_design(sub, outcome="share_employed", tool="flexible_letting")
        assert row["n_departments_panel"] == base.layout.n == sub["department_id"].nunique()
        assert row["mde_panel"] == pytest.approx(base.analytic_mde(), rel=1e-12)
        grid = [(d.layout.n * d.layout.n_years, d.analytic_power([0.02])["power"].iloc[0],
                 d.layout.n) for f in (1.0, 2.0, 4.0) for e in (0, 3)
                for d in [base.resized(f, extra_years=e, seed=0)]]
        ok = sorted(g for g in grid if g[1] >= 0.8)
        want = ok[0] if ok else max(grid)
        assert (row["department_years"], row["n_departments"]) == (want[0], want[2])
        assert row["reaches_target"] == bool(ok)
        assert row["effects_differ"] == (variable == "market_type")
    md = followup_design.markdown
    assert "Power and sample size by subgroup stratum" in md
    assert "| market_type | vacancies |" in md


def test_followup_by_subgroup_is_released_with_its_support(release) -> None:
    out, result, _ = release
    frame = released(out, "followup_by_subgroup", "followup")
    assert result.status["followup_by_subgroup"] == "pass"
    assert len(frame) == 5 and frame["mde_panel"].notna().all()
    assert (frame.loc[frame["subgroup_variable"] == "market_type", "equal_effects_p_value"]
            == 0.01).all()


def test_followup_stratum_below_the_rules_is_suppressed(tmp_path, followup_design,
                                                        labels) -> None:
    """A stratum of 2 adopting departments: blanked, and the test on the other strata of its
    variable too."""
    panel = world.panel()
    deps = panel.groupby("department_id")["cohort_flexible_letting"].first()
    few = deps[deps > 0].index[:2].tolist() + deps[deps == 0].index[:40].tolist()
    lab = pd.Series(np.where(deps.index.isin(few), "few", "rest"), index=deps.index)
    d = design(panel, n_reps=0, department_factors=(1.0,), extra_years=(0,),
               subgroups={"crafted": lab}, equal_effects={"crafted": 0.2})
    table = followup_subgroup_table(d, panel, {"crafted": lab})
    res = write_released([table], tmp_path / "rel", CFG, formats=("csv",))
    frame = res.released["followup_by_subgroup"].set_index("stratum")
    assert frame.loc["few", ["n_departments_panel", "mde", "mde_panel"]].isna().all()
    assert frame["equal_effects_p_value"].isna().all()
    assert frame.loc["rest", "mde"] > 0


# --- Bayesian effects by group -------------------------------------------------------------------

def test_implied_effects_per_group_are_the_pooled_formula_within_the_group(bayes_data) -> None:
    """Every group as the pooled row: effect x mean exposure over the group's department-years
    from the year after adoption, truth the mean tool-specific effect over the same rows."""
    truth = world.registers().truth
    eff = _synthetic_effects()
    imp = implied_effects(eff, bayes_data, "exposure_flexible_letting", "market_type",
                          truth=truth, outcome="share_employed").set_index("group")
    cohort = bayes_data["cohort_flexible_letting"]
    treated = bayes_data[(cohort > 0) & (bayes_data["year"] >= cohort + 1)]
    t = treated.merge(truth, on=["department_id", "year"])
    for group, rows in [("pooled", t), *t.groupby("market_type")]:
        e = eff.set_index("group").loc[group]
        assert imp.loc[group, "n_department_years"] == len(rows)
        x = rows["exposure_flexible_letting"].mean()
        for col in ("mean", "lower_90", "upper_95"):
            assert imp.loc[group, f"implied_att_{col}"] == pytest.approx(e[col] * x, rel=1e-12)
        assert imp.loc[group, "truth"] == pytest.approx(
            rows["share_employed_effect_flexible_letting"].mean(), rel=1e-12)
    # the simulated mechanism: the waiting-list markets' truth is the larger
    assert imp.loc["waiting_list", "truth"] > 2 * imp.loc["vacancies", "truth"] > 0


def test_pooled_implied_att_from_draws_is_the_department_year_mean_of_the_groups(bayes_data
                                                                                  ) -> None:
    """With the effect draws the pooled implied ATT is, draw by draw, the mean over the treated
    department-years of their group's effect times their exposure: its mean is exactly the
    department-year-weighted mean of the groups' implied ATTs (linearity), its interval the
    draws' equal-tailed quantiles, and the groups' rows do not change."""
    import xarray as xr

    rng = np.random.default_rng(7)
    groups = ["vacancies", "waiting_list"]
    values = rng.normal([0.01, 0.15], [0.01, 0.03], size=(2, 400, 2))
    draws = xr.DataArray(values, dims=("chain", "draw", "effect_group"),
                         coords={"effect_group": groups})
    mean = values.reshape(-1, 2).mean(axis=0)
    eff = _synthetic_effects()
    eff.loc[1:, "mean"] = mean
    plain = implied_effects(eff, bayes_data, "exposure_flexible_letting", "market_type")
    imp = implied_effects(eff, bayes_data, "exposure_flexible_letting", "market_type",
                          effect_draws=draws)
    pd.testing.assert_frame_equal(imp.iloc[1:], plain.iloc[1:])
    n = plain.set_index("group")["n_department_years"]
    want = (plain.set_index("group")["implied_att_mean"][groups] * n[groups]).sum() / n["pooled"]
    assert imp.loc[0, "implied_att_mean"] == pytest.approx(want, rel=1e-12)
    cohort = bayes_data["cohort_flexible_letting"]
    treated = bayes_data[(cohort > 0) & (bayes_data["year"] >= cohort + 1)]
    w = np.array([treated.loc[treated["market_type"] == g, "exposure_flexible_letting"].sum()
                  for g in groups]) / len(treated)
    per_draw = values.reshape(-1, 2) @ w
    assert imp.loc[0, "implied_att_lower_90"] == pytest.approx(np.quantile(per_draw, 0.05),
                                                               rel=1e-9)
    assert imp.loc[0, "implied_att_upper_95"] == pytest.approx(np.quantile(per_draw, 0.975),
                                                               rel=1e-9)
    # the effects' prior mean times the mean exposure is not that quantity
    assert abs(plain.loc[0, "implied_att_mean"] - want) > 1e-3


def test_bayes_groups_with_too_little_support_are_suppressed(tmp_path, bayes_data) -> None:
    """By municipality: a row is released exactly when its group has >= 3 treated and >= 3
    comparison departments, >= min_n persons on each side and >= 11 treated clusters."""
    munis = sorted(bayes_data["municipality_id"].astype(str).unique())
    eff = pd.DataFrame({"group": ["pooled", *munis]}).assign(
        mean=0.05, sd=0.02, lower_90=0.02, upper_90=0.08, lower_95=0.01, upper_95=0.09)
    data = bayes_data.assign(municipality_id=bayes_data["municipality_id"].astype(str))
    imp = implied_effects(eff, data, "exposure_flexible_letting", "municipality_id")
    table = bayes_table(imp, eff, data, "share_employed", converged=True)
    res = write_released([table], tmp_path / "rel", CFG, formats=("csv",))
    frame = res.released["bayes_implied_att"]
    s = table.frame
    ok = ((s["support_df"] >= 10) & (s["support_departments_treated"] >= 3)
          & (s["support_departments_control"] >= 3) & (s["support_persons_treated"] >= 5)
          & (s["support_persons_control"] >= 5)).to_numpy()
    assert ok[0] and not ok.all()
    np.testing.assert_array_equal(frame["implied_att_mean"].notna().to_numpy(), ok)
    assert frame.loc[~ok, ["mean_exposure", "effect_mean"]].isna().all().all()


# --- the protector on small systems (exact bounds) -----------------------------------------------

def _units(counts: list[float], labels: list[str], **extra) -> pd.DataFrame:
    return pd.DataFrame({"n_persons": counts, "kind": "count", "label": labels, **extra})


def test_protect_cells_hides_the_cheapest_partner_and_respects_inequalities() -> None:
    """Cells a = 3, b = 10, c = 7 with a + b + c = T published: a is primary; hiding c (the
    cheapest) gives a in [0, 10]. With the inequality y <= c (y = 6 published, the slack never
    released), c >= 6 and a would be in [0, 4]: y is hidden as well, and a is in [0, 10]."""
    units = _units([3, 10, 7, 20], ["a", "b", "c", "T"], margin=[False, False, False, True])
    var = pd.DataFrame({"unit": [0, 1, 2, 3], "role": "count", "value": [3.0, 10, 7, 20]})
    sys1 = disclosure.CellSystem(units, var, (((0, 1, 2), 3),))
    p = disclosure.protect_cells(sys1, RULES)
    assert list(p.status) == ["threshold; ", "ok", "secondary; ", "ok"]
    a = p.audit.set_index("label").loc["a"]
    assert (a["lower"], a["upper"]) == (0.0, 10.0)
    units2 = pd.concat([units, _units([6], ["y"], margin=[False])], ignore_index=True)
    var2 = pd.concat([var, pd.DataFrame({"unit": [4, -1], "role": "count", "value": [6.0, 1.0]})],
                     ignore_index=True)
    sys2 = disclosure.CellSystem(units2, var2, (((0, 1, 2), 3), ((4, 5), 2)))
    p2 = disclosure.protect_cells(sys2, RULES)
    assert list(p2.status) == ["threshold; ", "ok", "secondary; ", "ok", "secondary; "]
    a2 = p2.audit.set_index("label").loc["a"]
    assert (a2["lower"], a2["upper"]) == (0.0, 10.0)


def test_protect_cells_hides_groups_together_and_refuses_when_nothing_protects() -> None:
    units = _units([3, 10, 13], ["a", "b", "T"], group=["g1", "g2", "g1"])
    var = pd.DataFrame({"unit": [0, 1, 2], "role": "count", "value": [3.0, 10, 13]})
    p = disclosure.protect_cells(disclosure.CellSystem(units, var, (((0, 1), 2),)), RULES)
    assert list(p.status) == ["threshold; ", "ok", "secondary; "]
    fixed = _units([3, 10, 13], ["a", "b", "T"], fixed=[False, True, True])
    with pytest.raises(DisclosureError, match="cell a"):
        disclosure.protect_cells(disclosure.CellSystem(fixed, var, (((0, 1), 2),)), RULES)
    bad = var.assign(value=[3.0, 10, 14])
    with pytest.raises(DisclosureError, match="does not hold"):
        disclosure.protect_cells(disclosure.CellSystem(units, bad, (((0, 1), 2),)), RULES)


# --- configuration -------------------------------------------------------------------------------

def test_config_keys_are_validated() -> None:
    cfg = config.from_dict({"bayes": {"effect_by": "market_type"},
                            "followup": {"subgroups": ["market_type"]}})
    assert cfg.bayes_model.effect_by == "market_type"
    assert cfg.followup.subgroups == ("market_type",)
    with pytest.raises(ConfigError, match=r"\[bayes\]\.effect_by"):
        config.from_dict({"bayes": {"effect_by": "plan"}})
    with pytest.raises(ConfigError, match=r"\[followup\]\.subgroups"):
        config.from_dict({"followup": {"subgroups": ["age"]}})


@pytest.mark.slow
def test_bayes_effect_by_market_in_the_run(tmp_path) -> None:
    """``[bayes] effect_by = "market_type"`` through the run's Bayes step (short chains, about
    30 s): pooled and per-market implied ATTs with the same columns, each beside the truth of its
    own estimand, and the market rows released. The waiting-list markets' effect (truth 0.036)
    lies above the vacancy markets' (0.005): their 95% intervals do not overlap."""
    import impact.panel
    from impact import pipeline

    cfg = config.from_dict({"run": {"scale": "small"}, "bayes": {
        "effect_by": "market_type", "draws": 100, "tune": 100, "chains": 2}})
    state = {"panel": impact.panel.build(world.registers()), "release": [], "figures": [],
             "problems": [], "closing": []}
    (tmp_path / "private").mkdir()
    pipeline._bayes(world.registers(), tmp_path, cfg, state)
    implied = pd.read_csv(tmp_path / "private" / "bayes" /
                          "implied_att_exposure_flexible_letting_share_employed.csv")
    assert list(implied["group"]) == ["pooled", "vacancies", "waiting_list"]
    assert {"treatment", "n_department_years", "mean_exposure", "implied_att_mean",
            "implied_att_lower_95", "implied_att_upper_95", "truth"} <= set(implied.columns)
    frame = state["panel"].frame
    data = frame[frame["n_labour_force_18_64"] > 0]  # the rows the step fits on
    cohort = data["cohort_flexible_letting"]
    treated = data[(cohort > 0) & (data["year"] >= cohort + 1)].merge(
        world.registers().truth, on=["department_id", "year"])
    col = "share_employed_effect_flexible_letting"
    want = [treated[col].mean(), *treated.groupby("market_type")[col].mean()]
    np.testing.assert_allclose(implied["truth"], want, rtol=1e-12)
    assert list(implied["n_department_years"]) == [
        len(treated), *treated.groupby("market_type").size()]
    m = implied.set_index("group")
    assert m.loc["waiting_list", "implied_att_lower_95"] > m.loc["vacancies",
                                                                 "implied_att_upper_95"]
    assert m.loc["waiting_list", "truth"] > m.loc["vacancies", "truth"]
    res = write_released(state["release"], tmp_path / "release", CFG, figures=state["figures"],
                         formats=("csv",))
    frame = res.released["bayes_implied_att"]
    assert frame["implied_att_mean"].notna().all()
    assert (tmp_path / "release" / "figures" / "bayes_implied_att_share_employed.png").is_file()
