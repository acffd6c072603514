"""The tables `impact run` offers for release (impact.outputs): their evidence and the checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact import config, outputs
from impact.report import release

CFG = config.load(None)


def test_persons_lower_bound_is_the_most_in_one_year() -> None:
    rows = pd.DataFrame({"department_id": [1, 2, 1, 2, 3], "year": [2010, 2010, 2011, 2011, 2011],
                         "n_residents": [10, 20, 12, 5, 4]})
    # 2010: 30, 2011: 21 -> at least 30 distinct persons (one department per person on 1 January)
    assert outputs.persons_lower_bound(rows, "n_residents") == 30
    assert outputs.persons_lower_bound(rows.iloc[0:0], "n_residents") == 0


def _panel() -> pd.DataFrame:
    """Six departments over 2008-2012: 1-2 adopt the tool in 2009, 3 in 2010, 4-6 never."""
    rows = []
    for d in range(1, 7):
        for y in range(2008, 2013):
            cohort = {1: 2009, 2: 2009, 3: 2010}.get(d, 0)
            rows.append({"department_id": d, "year": y, "cohort_flexible_letting": cohort,
                         "share_employed": 0.5, "n_labour_force_18_64": 10 * d})
    return pd.DataFrame(rows)


def _headline(n_departments: int = 3, clusters: int = 30) -> pd.DataFrame:
    return pd.DataFrame([{"tool": "flexible_letting", "outcome": "share_employed",
                          "estimand": "ATT", "estimate": 0.01, "se": 0.005, "lower": 0.0,
                          "upper": 0.02, "n_departments": n_departments, "n_department_years": 9,
                          "n_treated_clusters": clusters, "cluster": "plan_id",
                          "pretest_p_value": 0.5, "verdict": "credible"}])


def test_headline_support_from_the_panel() -> None:
    table = outputs.headline_table(_headline(), _panel())
    row = table.frame.iloc[0]
    # treated from the year after adoption: 2010-12 for departments 1, 2 and 2011-12 for 3;
    # most persons in one year: 10 + 20 + 30 = 60 (2011); control: departments 4-6, 40+50+60
    assert row["support_persons_treated"] == 60
    assert row["support_departments_control"] == 3
    assert row["support_persons_control"] == 150
    assert row["support_df"] == 29


@pytest.mark.parametrize(("n_departments", "clusters", "released"), [
    (3, 30, True), (2, 30, False), (3, 10, False), (3, 11, True)])
def test_headline_suppressed_below_the_model_rules(tmp_path, n_departments: int, clusters: int,
                                                   released: bool) -> None:
    table = outputs.headline_table(_headline(n_departments, clusters), _panel())
    result = release.write_released([table], tmp_path / "release", CFG)
    frame = result.released["headline"]
    assert frame["estimate"].notna().all() == released
    assert not [c for c in frame.columns if c.startswith("support_")]
    assert result.status["headline"] == ("pass" if released else "review")


def test_event_study_support_by_event_time(tmp_path) -> None:
    primary = pd.DataFrame({"tool": "flexible_letting", "outcome": "share_employed",
                            "term": "event_time", "event_time": [0.0, 1.0, 2.0],
                            "estimate": [0.01, 0.02, 0.03], "se": 0.01, "lower": -0.01,
                            "upper": 0.05})
    table = outputs.event_study_table(primary, _panel())
    # e = year - cohort - 1: e=0 -> 2010 for departments 1-2 and 2011 for 3 (3 departments);
    # e=2 -> 2012 for departments 1-2 only (2 departments: below min_departments)
    assert table.frame["support_departments_treated"].tolist() == [3, 3, 2]
    result = release.write_released([table], tmp_path / "release", CFG)
    est = result.released["primary_event_study"]["estimate"]
    assert est.notna().tolist() == [True, True, False]


@pytest.fixture(scope="module")
def small_panel() -> pd.DataFrame:
    from impact import panel, simulate

    return panel.build(simulate.registers(seed=3, scale="small"), validate=False).frame


def test_report_trend_evidence_matches_the_table(small_panel: pd.DataFrame) -> None:
    tables, figures = outputs.report_trend_tables(small_panel)
    shares, income = tables
    assert shares.kind == "share" and income.kind == "magnitude"
    assert len(figures) == 12
    # a share's numerator over its persons is the released value (exact up to rounding)
    np.testing.assert_allclose(shares.evidence["numerator"] / shares.evidence["n_persons"],
                               shares.frame["value"], rtol=1e-12)
    np.testing.assert_allclose(income.evidence["total"] / income.evidence["n_persons"],
                               income.frame["value"], rtol=1e-9)
    assert (income.evidence["largest_1"] >= income.evidence["largest_2"]).all()
    assert (income.evidence["largest_1"] <= income.evidence["total"].abs() + 1e-6).all()


def test_small_trend_cell_is_suppressed_and_left_out_of_its_figure(
        small_panel: pd.DataFrame, tmp_path) -> None:
    # a group with one department in one year: every cell of it has its few persons
    panel = small_panel.copy()
    first = panel["department_id"].iloc[0]
    keep = (panel["department_id"] != first) | (panel["year"] == panel["year"].min())
    panel = panel[keep]
    sel = panel["department_id"] == first
    panel.loc[sel, "report_group"] = "neither"
    others = (panel["report_group"] == "neither") & ~sel
    panel = panel[~others]
    for col in ("n_residents", "n_labour_force_18_64", "n_employed"):
        panel.loc[sel, col] = np.minimum(panel.loc[sel, col], 3)
    tables, figures = outputs.report_trend_tables(panel)
    result = release.write_released(tables[:1], tmp_path / "release", CFG, formats=("csv",))
    shares = result.released["report_trends_shares"]
    neither = shares[shares["report_group"] == "neither"]
    assert len(neither) and neither["value"].isna().all()
    assert result.status["report_trends_shares"] == "review"
    log = pd.read_csv(tmp_path / "release" / "disclosure_log.csv")
    assert (log["output"] == "report_trends_shares").any()
    # the figure drawn from the checked table shows the other groups and not the suppressed one
    fig7_4 = next(f for f in figures if f.name == "figure_7_4")
    labels = [line.get_label() for line in fig7_4.draw(shares).axes[0].get_lines()]
    assert labels and not any(label.startswith("Neither") for label in labels)


# --- contrasts: a result's tidy() rows with their support go through the model rules ----------

def _hand_results() -> tuple:
    import warnings

    from impact import did
    from tests.test_result_protocol import hand_panel

    panel = hand_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = did.event_study(panel, "y", cohort="cohort", window=(-2, 2), persons="persons")
        dyn = did.att_gt(panel, "y", "department_id", "year", "cohort", n_boot=0,
                         persons="persons").aggregate("dynamic")
    return es, dyn


def test_contrast_row_with_too_few_departments_is_suppressed(tmp_path) -> None:
    es, _ = _hand_results()
    tidy = es.tidy().assign(tool="flexible_letting")
    table = outputs.model_table("contrast_event_study", tidy, keys=("event_time",),
                                title="event study")
    result = release.write_released([table], tmp_path / "release", CFG)
    frame = result.released["contrast_event_study"]
    # e<=-2 rests on 2 treated departments (cohort 2010 in 2008): below min_departments = 3;
    # every other row has 5 treated and 10 control departments, >= 90 persons a side and 32 df
    bad = frame["event_time"] == -2
    assert frame.loc[bad, ["estimate", "se", "lower", "upper", "n_units"]].isna().all(axis=None)
    assert frame.loc[~bad & ~frame["reference"], "estimate"].notna().all()
    assert not [c for c in frame.columns if c.startswith("support_") or c == "n_persons"]
    log = result.log.frame()
    mine = log[log["output"] == "contrast_event_study"]
    assert set(mine["rule"]) == {"departments"}
    assert set(mine["row"]) == {int(np.flatnonzero(bad)[0])}
    assert "fewer than 3 departments" in mine["reason"].iloc[0]
    assert result.status["contrast_event_study"] == "review"


def test_contrast_rows_below_the_residual_df_or_without_persons_are_suppressed(tmp_path) -> None:
    _, dyn = _hand_results()
    tidy = dyn.tidy()
    # every 2x2 cell of the hand panel has at most 3 + 5 - 2 = 6 residual df (< 10)
    assert (tidy["df_resid"] < 10).all()
    no_persons = tidy.assign(n_persons_treated=pd.NA, df_resid=99)
    tables = [outputs.model_table("dyn", tidy, keys=(), title="t"),
              outputs.model_table("dyn_no_persons", no_persons, keys=(), title="t")]
    result = release.write_released(tables, tmp_path / "release", CFG)
    assert result.released["dyn"]["estimate"].isna().all()
    assert result.released["dyn_no_persons"]["estimate"].isna().all()
    log = result.log.frame()
    dof = log[(log["output"] == "dyn") & (log["rule"] == "dof")]
    assert set(dof["row"]) == set(range(len(tidy)))  # every row, for its residual df
    unknown = log[(log["output"] == "dyn_no_persons") & (log["rule"] == "threshold")]
    assert set(unknown["row"]) == set(range(len(tidy)))  # persons unknown: every row
    assert "dof" not in set(log.loc[log["output"] == "dyn_no_persons", "rule"])


def test_contrast_without_support_columns_is_withheld(tmp_path) -> None:
    es, _ = _hand_results()
    tidy = es.tidy().drop(columns=["n_units_treated"])
    table = outputs.model_table("no_support", tidy, keys=("event_time",), title="t")
    result = release.write_released([table], tmp_path / "release", CFG)
    assert result.status["no_support"] == "fail" and "no_support" not in result.released
