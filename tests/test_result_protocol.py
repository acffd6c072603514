"""The result protocol (impact.results): every result's tidy() has term, estimate, se, lower, upper,
n_units, n_persons with the same types; the support counts equal a hand count on a small panel;
summary() is one type; plot(ax=None) returns the figure and draws the rows of tidy()."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import impact
from impact import did
from impact.results import COUNT_COLUMNS, SUPPORT_COLUMNS, TIDY_COLUMNS, Result, Summary

YEARS = range(2008, 2013)
COHORT = {1: 2009, 2: 2009, 3: 2009, 4: 2010, 5: 2010}  # 6-10 never adopt
DOSE = {1: 0.2, 2: 0.5, 3: 0.8, 4: 0.3, 5: 0.9}


def hand_panel() -> pd.DataFrame:
    """Ten departments over 2008-2012: 1-3 adopt in 2009, 4-5 in 2010, 6-10 never.

    Department d has 10 * d persons every year, so the persons of a set of departments in one
    year are 10 x the sum of their numbers: cohort 2009 60, cohort 2010 90, never 400, all 550.
    """
    rng = np.random.default_rng(7)
    rows = []
    for d in range(1, 11):
        g = COHORT.get(d, 0)
        for y in YEARS:
            on = g > 0 and y >= g
            rows.append({"department_id": d, "year": y, "cohort": g, "in_force": float(on),
                         "intensity": DOSE[d] if on else 0.0, "dose": DOSE.get(d, 0.0),
                         "persons": 10 * d, "municipality_id": 1 if d <= 4 else 2,
                         "y": 0.1 * d + 0.05 * (y - 2008) + 0.3 * on * DOSE.get(d, 0.0)
                         + rng.normal(scale=0.05)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    panel = hand_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: dict[str, Result] = {
            "twfe": did.twfe(panel, "y", "in_force", persons="persons"),
            "event_study": did.event_study(panel, "y", cohort="cohort", window=(-2, 2),
                                           persons="persons"),
        }
        gt = did.att_gt(panel, "y", "department_id", "year", "cohort", n_boot=0,
                        persons="persons")
        out["att_gt"] = gt
        out["dynamic"] = gt.aggregate("dynamic")
        out["simple"] = gt.aggregate("simple")
        out["dose_response"] = did.dose_response(panel, "y", dose="dose", cohort="cohort",
                                                 control="never", n_boot=9, seed=1,
                                                 persons="persons")
        out["switchers"] = did.switchers(panel, "y", dose="intensity", effects=1, n_boot=9,
                                         seed=1, persons="persons")
        out["imputation"] = did.imputation(panel, "y", cohorts=["cohort"], n_boot=9, seed=1,
                                           persons="persons")
        out["bacon"] = did.bacon(panel, "y", "in_force", persons="persons")
    return out


def row(tidy: pd.DataFrame, term: str, **keys: float) -> pd.Series:
    sel = tidy["term"] == term
    for k, v in keys.items():
        sel &= tidy[k] == v
    assert sel.sum() == 1, (term, keys)
    return tidy[sel].iloc[0]


def support(r: pd.Series) -> dict[str, int]:
    return {c: int(r[c]) for c in COUNT_COLUMNS if c in r.index and not pd.isna(r[c])}


def test_every_result_has_the_protocol(results: dict[str, Result]) -> None:
    for name, res in results.items():
        tidy = res.tidy()
        assert list(tidy.columns[:7]) == [*TIDY_COLUMNS, *SUPPORT_COLUMNS], name
        assert all(tidy[c].dtype == np.float64 for c in TIDY_COLUMNS[1:]), name
        assert pd.api.types.is_string_dtype(tidy["term"]), name
        assert all(str(tidy[c].dtype) == "Int64" for c in COUNT_COLUMNS if c in tidy), name
        assert tidy["n_units"].notna().all() and tidy["n_persons"].notna().all(), name
        summary = res.summary()
        assert isinstance(summary, Summary), name
        assert list(summary.frame.columns[:5]) == list(TIDY_COLUMNS), name
        assert summary.title in str(summary) and "<table" in summary._repr_html_()
        assert isinstance(res.plot(), Figure), name
        fig = Figure()
        ax = fig.add_subplot()
        assert res.plot(ax=ax) is fig, name


def test_support_counts_equal_a_hand_count(results: dict[str, Result]) -> None:
    # TWFE: treated = department-years in force (1-3 from 2009, 4-5 from 2010: at most
    # 60 + 90 = 150 persons in one year), control = the never adopters 6-10 (400 persons);
    # df = 50 rows - (1 treatment + 10 department + 4 year effects) = 35
    tw = row(results["twfe"].tidy(), "in_force")
    assert support(tw) == {"n_units": 10, "n_persons": 550, "n_units_treated": 5,
                           "n_units_control": 5, "n_persons_treated": 150,
                           "n_persons_control": 400, "df_resid": 35}
    # event study: e=-2 is cohort 2010 in 2008 only (2 departments, 90 persons); the binned
    # e>=2 is cohort 2009 in 2011-12 and cohort 2010 in 2012 (150 persons in 2012); control =
    # department-years without an indicator: 6-10 always and the reference year (2008 for
    # cohort 2009, 2009 for cohort 2010): 400 + 90 = 490 in 2009; df = 50 - (4 + 10 + 4)
    es = results["event_study"].tidy()
    assert support(row(es, "event_time[<=-2]")) == {
        "n_units": 10, "n_persons": 550, "n_units_treated": 2, "n_units_control": 10,
        "n_persons_treated": 90, "n_persons_control": 490, "df_resid": 32}
    assert support(row(es, "event_time[>=2]"))["n_persons_treated"] == 150
    assert support(row(es, "event_time[0]"))["n_persons_treated"] == 90
    # att_gt cell (2009, 2011): cohort 2009 (3, 60 persons) against the never treated (5, 400)
    # at 2011 and its base 2008; df = 3 + 5 - 2; cell (2010, 2009): cohort 2010 (2, 90)
    cells = results["att_gt"].tidy()
    assert support(row(cells, "ATT(2009,2011)")) == {
        "n_units": 8, "n_persons": 460, "n_units_treated": 3, "n_units_control": 5,
        "n_persons_treated": 60, "n_persons_control": 400, "df_resid": 6}
    assert support(row(cells, "ATT(2010,2009)"))["n_units_treated"] == 2
    assert support(row(cells, "ATT(2010,2009)"))["df_resid"] == 5
    # dynamic e=0: cells (2009, 2009) and (2010, 2010): both cohorts, 2009 holds 60 + 90; df =
    # the smaller cell's
    dyn = results["dynamic"].tidy()
    assert support(row(dyn, "event_time=0")) == {
        "n_units": 10, "n_persons": 550, "n_units_treated": 5, "n_units_control": 5,
        "n_persons_treated": 150, "n_persons_control": 400, "df_resid": 5}
    assert support(row(dyn, "event_time=-1"))["n_units_treated"] == 2  # only cohort 2010
    assert support(row(results["simple"].tidy(), "overall"))["n_units_treated"] == 5
    # dose response, never-treated controls: ATT^o rests on all post cells; df = the smallest
    # cell's 2 + 5 units - 2 dose basis - 1 intercept = 4; ATT^o(e=-1) only on cohort 2010
    dr = results["dose_response"].tidy()
    assert support(row(dr, "ATT^o")) == {
        "n_units": 10, "n_persons": 550, "n_units_treated": 5, "n_units_control": 5,
        "n_persons_treated": 150, "n_persons_control": 400, "df_resid": 4}
    assert support(row(dr, "ATT^o(e=-1)"))["n_persons_treated"] == 90
    # switchers, effect 1: cohort 2009 switches in 2009 (compared over 2008-09 with 4-10, not
    # yet switched: 90 + 400), cohort 2010 in 2010 (over 2009-10 with 6-10); 4-5 on both sides
    sw = results["switchers"].tidy()
    assert support(row(sw, "effect_1")) == {
        "n_units": 10, "n_persons": 550, "n_units_treated": 5, "n_units_control": 7,
        "n_persons_treated": 150, "n_persons_control": 490}
    assert support(row(sw, "DID_M"))["n_units_control"] == 7
    # imputation (onset one year after adoption): treated 2010-12 (cohort 2009) and 2011-12
    # (cohort 2010), untreated = the rest (37 rows); df = 37 - 10 departments - 4 year effects
    imp = results["imputation"].tidy()
    assert support(row(imp, "att")) == {
        "n_units": 10, "n_persons": 550, "n_units_treated": 5, "n_units_control": 10,
        "n_persons_treated": 150, "n_persons_control": 550, "df_resid": 23}
    assert support(row(imp, "event_time", event_time=0.0))["n_persons_treated"] == 90
    # Bacon: 2009 vs 2010 (earlier vs later) uses 2008-09 only
    bac = results["bacon"].tidy()
    assert support(row(bac, "2009 vs 2010"))["n_persons_control"] == 90
    assert support(row(bac, "2009 vs never"))["n_units"] == 8


def test_bayes_support_from_the_design() -> None:
    from impact.bayes.design import ModelConfig, prepare
    from impact.bayes.effects import support_table

    panel = hand_panel()
    cfg = ModelConfig(outcome="y", treatment="in_force", levels=("municipality_id",))
    tab = support_table(prepare(panel, cfg), "effects", panel["persons"].to_numpy(float))
    # pooled: treated department-years of 1-5 (150 persons in a year), untreated ones of all 10;
    # municipality 1 (departments 1-4, all adopters): 100 persons; municipality 2: only 5 adopts
    assert tab.iloc[0][["n_units_treated", "n_units_control", "n_persons_treated",
                        "n_persons_control"]].tolist() == [5, 10, 150, 550]
    assert tab.iloc[1][["n_units", "n_units_treated", "n_persons_treated"]].tolist() == [4, 4, 100]
    assert tab.iloc[2][["n_units", "n_units_treated", "n_persons_treated"]].tolist() == [6, 1, 50]
    # df: 50 - (10 departments + 4 years + 2 groups)
    assert (tab["df_resid"] == 34).all()


def test_persons_unknown_are_missing_not_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tidy = did.twfe(hand_panel(), "y", "in_force").tidy()
    assert tidy["n_persons"].isna().all() and (tidy["n_units"] == 10).all()


def test_persons_column_is_checked() -> None:
    panel = hand_panel().assign(persons=lambda d: -d["persons"])
    with pytest.raises(impact.EstimationError, match="negative"):
        did.twfe(panel, "y", "in_force", persons="persons")
    with pytest.raises(impact.EstimationError, match="not in the data"):
        did.att_gt(hand_panel(), "y", "department_id", "year", "cohort", n_boot=0,
                   persons="nope")


def test_errors_and_warnings_live_in_impact_errors() -> None:
    from impact import errors

    for name in ("ImpactError", "EstimationError", "DataSpecError", "ConfigError",
                 "DisclosureError", "ImpactWarning", "EstimationWarning", "DroppedRowsWarning",
                 "ConvergenceWarning"):
        assert getattr(impact, name) is getattr(errors, name)
    assert issubclass(impact.DroppedRowsWarning, UserWarning)
    from impact.bayes import ConvergenceWarning
    from impact.did._results import DroppedRowsWarning

    assert ConvergenceWarning is impact.ConvergenceWarning
    assert DroppedRowsWarning is impact.DroppedRowsWarning
    with pytest.warns(impact.EstimationWarning, match="never-treated"):
        did.event_study(hand_panel()[lambda d: d["cohort"] > 0], "y", cohort="cohort",
                        window=(-1, 1))


# --- plots show the rows of tidy() ----------------------------------------------------------

def errorbar_points(fig: Figure) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) of the data line of every errorbar in the figure, axes by axes."""
    out = []
    for ax in fig.axes:
        for c in ax.containers:
            line = c.lines[0]
            out.append((np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)))
    return out


def test_plots_draw_the_estimates(results: dict[str, Result]) -> None:
    tw = results["twfe"]
    (x, y), = errorbar_points(tw.plot())
    np.testing.assert_array_equal(x, tw.coefficients["estimate"])  # horizontal: x = estimate

    es = results["event_study"]
    (x, y), = errorbar_points(es.plot())
    est = es.tidy().query("not reference")
    np.testing.assert_array_equal(x, est["event_time"])
    np.testing.assert_array_equal(y, est["estimate"])

    gt = results["att_gt"]
    fig = gt.plot()
    assert len(fig.axes) == 2  # one panel per cohort
    shown = np.sort(np.concatenate([y for _, y in errorbar_points(fig)]))
    np.testing.assert_array_equal(shown, np.sort(gt.att_gt["att"].to_numpy()))
    ax = Figure().add_subplot()
    gt.plot(ax=ax)  # all cohorts on one axes, by event time
    assert sum(len(y) for _, y in errorbar_points(ax.figure)) == len(gt.att_gt)

    dyn = results["dynamic"]
    shown = np.concatenate([y for _, y in errorbar_points(dyn.plot())])
    np.testing.assert_array_equal(np.sort(shown), np.sort(dyn.by["att"].to_numpy()))
    (x, y), = errorbar_points(results["simple"].plot())
    assert y[0] == results["simple"].overall.att

    dr = results["dose_response"]
    fig = dr.plot()
    for ax, par in zip(fig.axes, ("att", "acr"), strict=True):
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), dr.dose_curve[par])
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), dr.dose_curve["dose"])

    sw = results["switchers"]
    (x, y), = errorbar_points(sw.plot())
    np.testing.assert_array_equal(y, sw.effects["estimate"])

    imp = results["imputation"]
    (x, y), = errorbar_points(imp.plot())
    tidy = imp.tidy()
    rows = tidy[tidy["term"].isin(["lead", "event_time"])].sort_values("event_time")
    np.testing.assert_array_equal(y, rows["estimate"])
    np.testing.assert_array_equal(x, rows["event_time"])

    bac = results["bacon"]
    ax = bac.plot().axes[0]
    points = np.vstack([c.get_offsets() for c in ax.collections])
    want = bac.comparisons[["weight", "estimate"]].to_numpy()
    np.testing.assert_allclose(np.sort(points, axis=0), np.sort(want, axis=0))
