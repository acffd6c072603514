"""The appendix tables: the 2015 report's group descriptives, mover composition and attrition as
released aggregates (numbers equal the private ones where not suppressed; small cells suppressed,
with the cells that would reveal them from the released totals), and the effect tables as views
of released tables in every format with their notes."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from impact.errors import DisclosureError
from impact.report import disclosure, release
from impact.report.tables import read_csv
from impact.workflow import appendix
from impact.workflow.config import DisclosureConfig, StudyConfig

CFG = StudyConfig()
RULES = DisclosureConfig()


def _counts(values: list[float]) -> pd.DataFrame:
    v = np.asarray(values, dtype=float)
    return pd.DataFrame({"n_persons": v, "n_departments": np.nan, "total": np.nan,
                         "largest_1": 0.0, "largest_2": 0.0, "numerator": np.nan})


# --- secondary suppression over linked cells -------------------------------------------------

def test_a_small_group_beside_its_total_needs_a_second_suppression() -> None:
    # four groups and their total: the 3 could be read off the total minus the three others
    values = [3.0, 40.0, 60.0, 100.0, 203.0]
    eqs = [([0, 1, 2, 3], 4)]
    alone = disclosure.audit(np.array(values), np.array([True, False, False, False, False]), eqs)
    assert not alone.safe and alone.cells["width"].iloc[0] == 0.0  # recovered exactly
    p = disclosure.protect_linked(values, _counts(values), ["count"] * 5, eqs, RULES)
    assert p.reasons.tolist() == ["threshold; ", "secondary; ", "ok", "ok", "ok"]
    # the cheapest partner (40, not 60, 100 or the total), and the audit protects the 3: the
    # attacker knows only 3 + 40 = 43
    row = p.audit.iloc[0]
    assert (row["lower"], row["upper"], bool(row["safe"])) == (0.0, 43.0, True)
    assert (p.n_primary, p.n_secondary) == (1, 1)


def test_an_attrition_chain_hides_what_would_reveal_a_small_filter() -> None:
    # in0 = removed0 + out0, out0 shown again as in1 (a link), in1 = removed1 + out1
    values = [100.0, 3.0, 97.0, 97.0, 40.0, 57.0]
    eqs = [([1, 2], 0), ([4, 5], 3)]
    p = disclosure.protect_linked(values, _counts(values), ["count"] * 6, eqs, RULES,
                                  links=[(2, 3)])
    assert p.suppressed[1] and p.audit["safe"].all()
    # the removed 3 cannot be read from any two released neighbours
    released = ~p.suppressed
    assert not (released[0] and released[2])
    # a released cell keeps its value; checked independently with the audit on the final mask
    eqs_links = [*eqs, ([2], 3)]
    assert disclosure.audit(np.array(values), p.suppressed, eqs_links,
                            required=np.array([False, True, False, False, False, False])).safe


def test_one_quantity_shown_twice_is_suppressed_in_both_places() -> None:
    values = [10.0, 6.0, 4.0, 4.0, 1.0, 3.0]  # the 4 rows out are the next filter's 4 rows in
    p = disclosure.protect_linked(values, _counts(values), ["count"] * 6,
                                  [([1, 2], 0), ([4, 5], 3)], RULES, links=[(2, 3)])
    assert p.suppressed[2] and p.suppressed[3]  # 4 persons: both places
    assert p.audit["safe"].all()


def test_dominated_income_sum_is_suppressed_and_protected_by_the_magnitude_rule() -> None:
    # three groups' income sums and the total; the first is dominated by one contribution
    values = [1000.0, 5000.0, 6000.0, 12000.0]
    ev = _counts([50, 60, 70, 180]).assign(total=values, largest_1=[900.0, 500, 400, 900],
                                           largest_2=[50.0, 400, 300, 500])
    p = disclosure.protect_linked(values, ev, ["magnitude"] * 4, [([0, 1, 2], 3)], RULES)
    assert p.reasons[0] == "nk-rule; " and p.n_secondary == 1
    row = p.audit.iloc[0]
    assert row["lower"] <= 900.0 and row["upper"] >= 1100.0  # +-10% of 1000 at least


def test_no_safe_pattern_refuses_and_says_what_to_merge() -> None:
    values = [3.0, 3.0]  # the only group is its total, and the total is released elsewhere
    with pytest.raises(DisclosureError, match="merge"):
        disclosure.protect_linked(values, _counts([3.0, 10.0]), ["count"] * 2, [([0], 1)],
                                  RULES, fixed=np.array([False, True]))
    with pytest.raises(DisclosureError, match="must align"):
        disclosure.protect_linked(values, _counts([3.0]), ["count"] * 2, [], RULES)


# --- the report's tables from a panel ---------------------------------------------------------

@pytest.fixture(scope="module")
def small_panel() -> pd.DataFrame:
    from impact import panel, simulate

    return panel.build(simulate.registers(seed=3, scale="small"), validate=False).frame


def test_group_descriptives_equal_the_report_trends_and_group_sizes(tmp_path,
                                                                    small_panel) -> None:
    from impact import describe

    table = appendix.group_descriptives_table(small_panel)
    result = release.write_released([table], tmp_path / "release", CFG)
    shown = result.released["appendix_group_descriptives"]
    first, last = int(small_panel["year"].min()), int(small_panel["year"].max())
    assert sorted(shown["year"].unique()) == [first, last]
    assert result.status["appendix_group_descriptives"] == "pass"
    trends = describe.trends(small_panel)
    stock = trends[trends["population"] == "stock"]
    sizes = describe.group_sizes(small_panel)
    labels = {v: k for k, v in describe.GROUP_LABELS.items()}
    for row in shown[shown["report_group"] != appendix.ALL_GROUPS].to_dict("records"):
        group = labels[row["report_group"]]
        for measure in appendix.MEASURE_COLUMNS:
            want = stock[(stock["report_group"] == group) & (stock["year"] == row["year"])
                         & (stock["measure"] == measure)]["value"].iloc[0]
            assert row[measure] == pytest.approx(want, rel=1e-12), (group, measure)
        size = sizes[(sizes["report_group"] == group) & (sizes["year"] == row["year"])].iloc[0]
        assert (row["n_departments"], row["n_residents"]) == (size["n_departments"],
                                                              size["n_residents"])
    # the total row pools the four groups' persons
    data = small_panel[small_panel["report_group"].notna() & (small_panel["year"] == last)]
    total = shown[(shown["report_group"] == appendix.ALL_GROUPS) & (shown["year"] == last)].iloc[0]
    assert total["share_employed"] == pytest.approx(
        data["n_employed"].sum() / data["n_labour_force_18_64"].sum(), rel=1e-12)
    assert total["n_residents"] == data["n_residents"].sum()
    # every format, the LaTeX with its label and notes
    tex = (tmp_path / "release" / "tables" / "appendix_group_descriptives.tex").read_text()
    assert r"\label{tab:groups}" in tex and r"\toprule" in tex and "Qual. edu." in tex
    frame, head = read_csv(tmp_path / "release" / "tables" / "appendix_group_descriptives.csv")
    assert len(frame) == len(shown) and any("2006-2010" in line for line in head)
    for ext in ("md", "html"):
        assert (tmp_path / "release" / "tables" / f"appendix_group_descriptives.{ext}").is_file()


def _shrink_group(panel: pd.DataFrame, group: str, year: int, persons: int) -> pd.DataFrame:
    """Keep one department of ``group`` in ``year`` and give it ``persons`` residents (in the
    labour force, employed, with income), so every cell of that group-year is small."""
    panel = panel.copy()
    sel = (panel["report_group"] == group) & (panel["year"] == year)
    keep = panel[sel]["department_id"].iloc[0]
    panel = panel[~sel | (panel["department_id"] == keep)].copy()
    one = (panel["department_id"] == keep) & (panel["year"] == year)
    for col in ("n_residents", "n_18_64", "n_labour_force_18_64", "n_income_18_64"):
        panel.loc[one, col] = persons
    panel.loc[one, ["n_employed", "n_qualifying_edu", "n_non_western"]] = [1, 1, 1]
    for col in ("share_employed", "share_qualifying_edu", "share_non_western"):
        panel.loc[one, col] = 1 / persons
    return panel


def test_a_small_group_is_suppressed_and_cannot_be_recovered_from_the_total(tmp_path,
                                                                            small_panel) -> None:
    last = int(small_panel["year"].max())
    panel = _shrink_group(small_panel, "neither", last, persons=3)
    table = appendix.group_descriptives_table(panel)
    private = table.frame
    result = release.write_released([table], tmp_path / "release", CFG)
    shown = result.released["appendix_group_descriptives"]
    assert result.status["appendix_group_descriptives"] == "review"
    small = (shown["report_group"] == "Neither") & (shown["year"] == last)
    checked = ["n_departments", "n_residents", *appendix.MEASURE_COLUMNS]
    assert shown.loc[small, checked].isna().all(axis=None)
    # in each column of that year another cell is suppressed, so total - others reveals nothing
    year = shown[shown["year"] == last]
    for col in checked:
        assert year[col].isna().sum() >= 2, col
    # released cells equal the private table; the first year is untouched
    both = shown.notna() & private.notna()
    pd.testing.assert_frame_equal(shown[both.all(axis=1)], private[both.all(axis=1)],
                                  check_dtype=False)
    assert shown[shown["year"] != last].notna().all(axis=None)
    # the attacker's LP on the released pattern: every suppressed residents count has an
    # interval at least min_n wide
    cells = table.cells.reset_index(drop=True)
    hidden = np.array([np.isnan(shown.loc[r, c]) for r, c in zip(cells["row"], cells["column"],
                                                                  strict=True)])
    primary = hidden & (cells["n_persons"].to_numpy() < RULES.min_n)
    audit = disclosure.audit(cells["value"].to_numpy(), hidden, list(table.equations),
                             required=primary, kinds=np.where(cells["kind"] == "magnitude",
                                                              "magnitude", "count"))
    assert primary.any() and audit.safe
    log = pd.read_csv(tmp_path / "release" / "disclosure_log.csv")
    out = log[log["output"] == "appendix_group_descriptives"]
    assert {"threshold", "secondary"} <= set(out["rule"])


def test_mover_composition_equals_the_report_trends(tmp_path, small_panel) -> None:
    from impact import describe

    table = appendix.mover_composition_table(small_panel)
    result = release.write_released([table], tmp_path / "release", CFG)
    shown = result.released["appendix_mover_composition"]
    first = int(small_panel.loc[small_panel["n_in_movers"] > 0, "year"].min())
    assert sorted(shown["year"].unique()) == [first, int(small_panel["year"].max())]
    trends = describe.trends(small_panel)
    labels = {v: k for k, v in describe.GROUP_LABELS.items()}
    for row in shown[shown["report_group"] != appendix.ALL_GROUPS].to_dict("records"):
        pop = row["population"].replace("-", "_")
        t = trends[(trends["population"] == pop) & (trends["year"] == row["year"])
                   & (trends["report_group"] == labels[row["report_group"]])]
        for measure in appendix.MEASURE_COLUMNS:
            want = t[t["measure"] == measure]["value"].iloc[0]
            assert row[measure] == pytest.approx(want, rel=1e-12), (pop, measure)
        assert row["n_movers"] == t[t["measure"] == "share_non_western"]["n_persons"].iloc[0]
    assert set(shown["population"]) == {"in-movers", "out-movers"}


def _attrition(removed: int) -> pd.DataFrame:
    return pd.DataFrame({
        "step": ["stock", "stock", "stock", "lettings", "adoption"],
        "filter": ["person without department", "unknown department", "age 18-64",
                   "unknown department", "plan-level spells expanded to departments"],
        "rows_in": [1000, 800, 800 - removed, 500, 60],
        "rows_removed": [200, removed, 300, 0, 0],
        "rows_out": [800, 800 - removed, 500 - removed, 500, 60],
        "note": ["not in social housing", "department_id not in departments",
                 "measures (18-64)", "department_id not in departments",
                 "60 plan rows -> 217 department spells"]})


def test_attrition_released_with_a_small_filter_protected(tmp_path) -> None:
    table = appendix.attrition_table(_attrition(removed=3), n_years=1)
    result = release.write_released([table], tmp_path / "release", CFG)
    shown = result.released["appendix_attrition"]
    assert np.isnan(shown.loc[1, "rows_removed"])
    # neither rows in minus rows out of that filter nor the chain around it gives the 3 back
    row = shown.loc[1]
    assert np.isnan(row["rows_in"]) or np.isnan(row["rows_out"])
    cells = table.cells.reset_index(drop=True)
    hidden = np.array([np.isnan(shown.loc[r, c]) for r, c in zip(cells["row"], cells["column"],
                                                                  strict=True)])
    eqs = list(table.equations) + [([a], b) for g in table.links for a, b in pairwise(g)]
    required = hidden & (cells["n_persons"].to_numpy() < RULES.min_n) & \
        (cells["value"].to_numpy() > 0)
    assert required.any() and disclosure.audit(cells["value"].to_numpy(), hidden, eqs,
                                               required=required).safe
    # the cheapest safe pattern: the first filter's 200 and its rows out (shown twice) go too, so
    # only 200 + 3 = 1000 - 797 is known; later filters and other steps keep their counts
    assert shown.loc[0].isna().tolist() == [False, False, False, True, True, False]
    private = _attrition(3)
    for col in ("rows_in", "rows_removed", "rows_out"):
        assert shown.loc[2:, col].tolist() == private.loc[2:, col].tolist()
    assert shown["note"].tolist()[2:] == ["measures (18-64)", "department_id not in departments",
                                          "plan rows -> department spells"]
    assert shown["step"].tolist()[0] == "stock (person-years)"
    # a large filter is released whole, and equals the private ledger
    clean = release.write_released([appendix.attrition_table(_attrition(removed=40),
                                                             n_years=1)],
                                   tmp_path / "clean", CFG).released["appendix_attrition"]
    for col in ("rows_in", "rows_removed", "rows_out"):
        assert clean[col].tolist() == _attrition(40)[col].tolist()


def test_person_years_rest_on_fewer_persons_than_rows(tmp_path) -> None:
    # 40 person-years over 11 years may be 4 persons: below min_n, so suppressed
    table = appendix.attrition_table(_attrition(removed=40), n_years=11)
    shown = release.write_released([table], tmp_path / "release",
                                   CFG).released["appendix_attrition"]
    assert np.isnan(shown.loc[1, "rows_removed"])


# --- effect tables: views of released tables ----------------------------------------------------

def _released() -> dict[str, pd.DataFrame]:
    head = pd.DataFrame({
        "tool": ["flexible_letting", "municipal_referral"],
        "outcome": ["share_employed", "mean_household_income"],
        "estimate": [0.0123, np.nan], "se": [0.004, np.nan], "lower": [0.0045, np.nan],
        "upper": [0.0201, np.nan], "n_departments": [94, 2], "n_treated_clusters": [34, 2],
        "pretest_p_value": [0.41, 0.5], "verdict": ["credible", "too few clusters"],
        "pretrend_slope_80": [0.013, np.nan], "honest_breakdown_mbar": [0.25, np.nan],
        "mde_80": [0.0112, np.nan], "truth": [0.015, -1500.0]})
    twfe = pd.DataFrame({"term": ["in_force_flexible_letting", "exposure_flexible_letting"],
                         "estimate": [0.01, 0.1], "se": [0.01, 0.03], "lower": [-0.01, 0.03],
                         "upper": [0.03, 0.17], "n_units": [220.0, 220.0],
                         "n_clusters": [129, 129], "tool": ["flexible_letting"] * 2,
                         "outcome": ["share_employed"] * 2})
    dose = pd.DataFrame({"term": ["ATT^o", "ACR^o", "ATT^o(e=0)"],
                         "estimate": [0.0085, 0.139, 0.01], "se": [0.01, 0.048, 0.01],
                         "lower": [-0.011, 0.045, -0.01], "upper": [0.028, 0.234, 0.03],
                         "n_units": [220.0, 220.0, 200.0], "n_clusters": [129.0] * 3,
                         "tool": ["flexible_letting"] * 3, "outcome": ["share_employed"] * 3,
                         "dose_column": ["agreed_share_at_adoption_flexible_letting"] * 3,
                         "truth": [0.0147, np.nan, np.nan], "event_time": [np.nan, np.nan, 0.0]})
    bayes = pd.DataFrame({"term": ["effect"] * 3, "group": ["pooled", "101", "161"],
                          "estimate": [0.022, 0.078, np.nan], "se": [0.04, 0.029, np.nan],
                          "lower": [-0.058, 0.02, np.nan], "upper": [0.098, 0.138, np.nan],
                          "lower_90": [-0.046, 0.03, np.nan], "upper_90": [0.084, 0.128, np.nan],
                          "p_positive": [0.71, 0.996, np.nan], "n_units": [220.0, 29.0, np.nan]})
    return {"headline": head, "did_twfe": twfe, "did_dose_response": dose,
            "bayes_effects": bayes}


def test_effect_tables_show_the_released_numbers_with_notes(tmp_path) -> None:
    written = appendix.write_effect_tables(_released(), tmp_path, alpha=0.05, primary_boot=199,
                                           n_boot=999, simulated=True)
    assert set(written) == {"appendix_headline", "appendix_twfe", "appendix_dose_response",
                            "appendix_bayes"}  # no att_gt table was released
    for paths in written.values():
        assert {p.suffix for p in paths} == {".tex", ".md", ".html", ".csv"}
    # the CSV keeps the released values unrounded, a suppressed one stays empty
    head, notes = read_csv(tmp_path / "appendix_headline.csv")
    rel = _released()["headline"]
    assert head["estimate"].iloc[0] == rel["estimate"].iloc[0] and head["estimate"].isna()[1]
    assert head["mde_80"].iloc[0] == rel["mde_80"].iloc[0]
    # the text formats round once: three decimals, whole DKK for income, -- where suppressed
    md = (tmp_path / "appendix_headline.md").read_text()
    assert "| Employed | Flexible letting | 0.012 | 0.004 | 0.004 | 0.020 | 94 | 0.41 | 0.013 " \
           "| 0.25 | 0.011 | 0.015 |" in md
    assert "| Income (DKK) | Municipal referral | – | – | – | – | 2 | 0.50 | – | – | – | -1,500 |" \
        in md
    text = " ".join(notes)
    for part in ("Clusters: 129 (plans", "cluster bootstrap over plans, 199 replications",
                 "Intervals: 95% confidence intervals.", "Simulated registers"):
        assert part in text, part
    dose, notes = read_csv(tmp_path / "appendix_dose_response.csv")
    assert dose["term"].tolist() == ["overall ATT (ATT^o)", "overall ACR (ACR^o)"]
    assert dose["estimate"].tolist() == [0.0085, 0.139]
    assert "Clusters: 129 (plans" in " ".join(notes)  # a whole number, not 129.0
    bayes, notes = read_csv(tmp_path / "appendix_bayes.csv")
    assert bayes["municipality"].tolist() == ["pooled (all)", "101", "161"]
    assert np.isnan(bayes["estimate"].iloc[2])
    assert "credible intervals" in " ".join(notes)
    tex = (tmp_path / "appendix_twfe.tex").read_text()
    assert r"\label{tab:app-twfe}" in tex and "exposure" in tex and "CR1" in tex
    assert "truth" not in " ".join(read_csv(tmp_path / "appendix_twfe.csv")[1])


def test_effect_figures_are_drawn_from_the_released_rows(tmp_path) -> None:
    figs = {f.name: f for f in appendix.effect_figures(["did_dose_response", "bayes_effects"])}
    assert set(figs) == {"dose_response_event_study", "bayes_effects_forest"}
    assert appendix.effect_figures(["headline"]) == []
    rel = _released()
    fig = figs["bayes_effects_forest"].draw(rel["bayes_effects"])
    ax = fig.axes[0]
    # one released municipality (161 is suppressed), and the pooled mean as a line
    assert [t.get_text() for t in ax.get_yticklabels()] == ["municipality 101"]
    assert any(list(line.get_xdata()) == [0.022, 0.022] for line in ax.get_lines())
    fig = figs["dose_response_event_study"].draw(rel["did_dose_response"])
    points = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert [list(p.get_xdata()) for p in points] == [[0.0]]
    assert [list(p.get_ydata()) for p in points] == [[0.01]]
