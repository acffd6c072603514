"""The appendix tables of the paper, mirroring the 2015 report's, and the effect tables.

Descriptive tables, built from the department-year panel with their evidence and their public
relations, so that :func:`impact.report.release.write_released` checks them
(:class:`~impact.report.release.LinkedTable`: primary suppression, secondary suppression verified by
the LP audit wherever a total is released):

- :func:`group_descriptives_table`: the stock of the report's four groups (both tools, referral
  only, flexible letting only, neither) and of all four together in chosen years: departments,
  residents and the four composition measures;
- :func:`mover_composition_table`: the same measures for in-movers and out-movers;
- :func:`attrition_table`: the rows each filter of the panel build removed (rows in, removed, out).

Effect tables (:func:`write_effect_tables`) are views of tables already released (headline,
contrasts, dose response, Bayes): rows and columns selected and labelled for the paper, written by
the one export (:func:`impact.report.tables.export_table`) in every format with notes
(departments, clusters, SE type, interval level). They read only checked frames, so they cannot
show a suppressed cell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impact.report.release import LinkedTable
from impact.report.tables import FORMATS, TableNotes, export_table

__all__ = ["EFFECT_TABLES", "attrition_table", "effect_figures", "group_descriptives_table",
           "mover_composition_table", "treatment_words", "write_effect_tables"]

ALL_GROUPS = "All four groups"
MEASURE_COLUMNS = ("share_qualifying_edu", "share_employed", "mean_household_income",
                   "share_non_western")
LABELS = {"report_group": "Group", "n_departments": "Departments", "n_residents": "Residents",
          "n_movers": "Movers", "share_qualifying_edu": "Qual. edu.",
          "share_employed": "Employed", "mean_household_income": "Income (DKK)",
          "share_non_western": "Non-Western", "population": "Population", "year": "Year"}
SHARE_NOTE = ("Shares: qualifying education and employment among residents aged 18-64 in the "
              "labour force, non-Western origin among all; income: mean household disposable "
              "income of those aged 18-64 (DKK, fixed prices).")
RULE_NOTE = ("Cells from fewer than the disclosure threshold of persons (shares: numerator or "
             "complement), dominated income cells and the cells suppressed so that these cannot be "
             "recovered from the totals are blank.")


def _group_label(group: str) -> str:
    from impact.describe import GROUP_LABELS

    return GROUP_LABELS.get(group, group)


def _composition(panel: pd.DataFrame, years: Sequence[int], population: str
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows (group x year, all four groups last) and their cells for one population.

    Each cell: ``row`` (position among the returned rows), ``column``, ``kind``, ``value`` (the
    additive quantity: count, numerator, income sum) and evidence (persons = the measure's base,
    departments with such persons, numerator; for income the sum and the two largest department
    contributions).
    """
    from impact import describe
    from impact.panel import REPORT_GROUPS

    prefix, total = describe.POPULATIONS[population]
    data = panel[panel["report_group"].isin(REPORT_GROUPS) & panel["year"].isin(list(years))]
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    count_col = "n_residents" if population == "stock" else "n_movers"
    for year in years:
        at_year = data[data["year"] == year]
        for group in (*REPORT_GROUPS, ALL_GROUPS):
            part = at_year if group == ALL_GROUPS else at_year[at_year["report_group"] == group]
            r = len(rows)
            row: dict[str, Any] = {"year": int(year), "report_group": _group_label(group)}
            if population != "stock":
                row = {"year": int(year), "population": population.replace("_", "-"),
                       "report_group": _group_label(group)}
            persons = describe._count(part, prefix, total, "n_residents").fillna(0.0)
            if population == "stock":
                row["n_departments"] = int(part["department_id"].nunique())
                cells.append(_cell(r, "n_departments", "count", row["n_departments"],
                                   persons.sum(), row["n_departments"]))
            row[count_col] = int(persons.sum())
            cells.append(_cell(r, count_col, "count", persons.sum(), persons.sum(),
                               int((persons > 0).sum())))
            for measure in MEASURE_COLUMNS:
                num, base, _ = describe.MEASURES[measure]
                b = describe._count(part, prefix, total, base).fillna(0.0)
                if num is None:
                    mean = part[f"{prefix}{measure}"].astype("float64").fillna(0.0)
                    contrib = np.where(b > 0, mean * b, 0.0)
                    top = np.sort(np.abs(contrib))[::-1]
                    value = float(contrib.sum())
                    cells.append(_cell(r, measure, "magnitude", value, b.sum(),
                                       int((b > 0).sum()), total=value,
                                       largest=(top[:1].sum(), top[1:2].sum())))
                else:
                    n = describe._count(part, prefix, total, num).fillna(0.0)
                    value = float(n.sum())
                    cells.append(_cell(r, measure, "share", value, b.sum(), int((b > 0).sum()),
                                       numerator=value))
                row[measure] = value / b.sum() if b.sum() > 0 else np.nan
            rows.append(row)
    return rows, cells


def _cell(row: int, column: str, kind: str, value: float, persons: float, departments: int, *,
          total: float = np.nan, largest: tuple[float, float] = (0.0, 0.0),
          numerator: float = np.nan) -> dict[str, Any]:
    return {"row": row, "column": column, "kind": kind, "value": float(value),
            "n_persons": float(persons), "n_departments": float(departments), "total": total,
            "largest_1": float(largest[0]), "largest_2": float(largest[1]), "numerator": numerator}


def _total_equations(rows: list[dict[str, Any]], cells: list[dict[str, Any]], keys: Sequence[str]
                     ) -> tuple[tuple[tuple[int, ...], int], ...]:
    """Per column and key (year, population): the four groups' cells add up to the total's."""
    where = {(c["row"], c["column"]): i for i, c in enumerate(cells)}
    eqs = []
    label = _group_label(ALL_GROUPS)
    for r, row in enumerate(rows):
        if row["report_group"] != label:
            continue
        members = [q for q, other in enumerate(rows) if other["report_group"] != label
                   and all(other[k] == row[k] for k in keys)]
        for column in {c["column"] for c in cells if c["row"] == r}:
            eqs.append((tuple(where[(q, column)] for q in members), where[(r, column)]))
    return tuple(eqs)


def group_descriptives_table(panel: pd.DataFrame, years: Sequence[int] | None = None,
                             *, name: str = "appendix_group_descriptives") -> LinkedTable:
    """The stock of the report's groups in ``years`` (default the panel's first and last year).

    One row per year and group and one for all four groups together: departments, residents and
    the four composition measures, persons pooled within the group (as the report's figures).
    Relations released: in each year and column the four groups add up to the total row (for a
    share, its numerator; for income, the sum; counted as public even where the base is not
    released, which is conservative).
    """
    years = _years(panel, years, "n_residents")
    rows, cells = _composition(panel, years, "stock")
    return LinkedTable(
        name=name, frame=pd.DataFrame(rows), cells=pd.DataFrame(cells),
        equations=_total_equations(rows, cells, ("year",)),
        title="The report's groups: stock of residents",
        notes=["Supported departments by use of the tools in 2006-2010 (the 2015 report's "
               "groups); residents at 1 January.", SHARE_NOTE, RULE_NOTE],
        export={"labels": LABELS, "group": "year", "label": "tab:groups",
                "digits": {**dict.fromkeys(MEASURE_COLUMNS, 3), "mean_household_income": 0}})


def mover_composition_table(panel: pd.DataFrame, years: Sequence[int] | None = None,
                            *, name: str = "appendix_mover_composition") -> LinkedTable:
    """In-movers and out-movers of the report's groups in ``years`` (default the first year with
    movers and the panel's last year): their number and the four composition measures.

    In-movers are described at the year they arrive, out-movers at the year before they leave
    (:mod:`impact.panel`). Relations released: per year, population and column the groups add up
    to the total row.
    """
    years = _years(panel, years, "n_in_movers")
    rows, cells = [], []
    for population in ("in_movers", "out_movers"):
        r, c = _composition(panel, years, population)
        for cell in c:
            cell["row"] += len(rows)
        rows += r
        cells += c
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["year"], rows[i]["population"], i))
    new = {old: k for k, old in enumerate(order)}
    rows = [rows[i] for i in order]
    for cell in cells:
        cell["row"] = new[cell["row"]]
    cells.sort(key=lambda x: (x["row"], x["column"]))
    return LinkedTable(
        name=name, frame=pd.DataFrame(rows), cells=pd.DataFrame(cells),
        equations=_total_equations(rows, cells, ("year", "population")),
        title="The report's groups: composition of in-movers and out-movers",
        notes=["A move inside one department is not a move; in-movers described at arrival, "
               "out-movers in the year before they left.", SHARE_NOTE, RULE_NOTE],
        export={"labels": LABELS, "group": "year", "label": "tab:movers",
                "digits": {**dict.fromkeys(MEASURE_COLUMNS, 3), "mean_household_income": 0}})


def _years(panel: pd.DataFrame, years: Sequence[int] | None, count: str) -> list[int]:
    """The requested years, or the first year with ``count`` and the panel's last year."""
    if years is not None:
        return [int(y) for y in years]
    by_year = panel.groupby("year")[count].sum()
    present = by_year[by_year > 0].index
    return sorted({int(present.min()), int(present.max())})


#: What one row of an attrition step counts.
ATTRITION_UNITS = {"stock": "person-years", "in_movers": "person-years", "lettings": "lettings",
                   "adoption": "tool spells"}
#: A count in free text: a number followed by what it counts ("60 plan rows").
_COUNT = re.compile(r"(?<![\w.,-])\d[\d,.]*\s+(?=[A-Za-z])")


def attrition_table(attrition: pd.DataFrame, *, n_years: int,
                    name: str = "appendix_attrition") -> LinkedTable:
    """The panel's attrition ledger: rows in, removed and out per filter.

    Parameters
    ----------
    attrition
        ``Panel.attrition`` (``step, filter, rows_in, rows_removed, rows_out, note``).
    n_years
        Years of the person-years: a person is at most one row a year, so a person-year count
        ``k`` rests on at least ``ceil(k / n_years)`` persons (the evidence; lettings and tool
        spells count as units).

    Notes
    -----
    Relations released: rows in = rows removed + rows out per filter, and every rows-in or rows-out
    cell equal to another is taken to show the same quantity (a filter starts from the previous
    filter's rows out), which is conservative. Counts in the ledger's free-text notes ("60 plan
    rows -> 217 department spells") are dropped, since free text escapes the checks.
    """
    att = attrition.reset_index(drop=True)
    units = att["step"].map(ATTRITION_UNITS).fillna("rows")
    frame = pd.DataFrame({
        "step": [s.replace("_", "-") if s == u else f"{s.replace('_', '-')} ({u})"
                 for s, u in zip(att["step"], units, strict=True)],
        "filter": att["filter"],
        "rows_in": att["rows_in"].astype("int64"),
        "rows_removed": att["rows_removed"].astype("int64"),
        "rows_out": att["rows_out"].astype("int64"),
        "note": [_drop_counts(str(x)) if pd.notna(x) else "" for x in att["note"]]})
    cells = []
    for r, row in frame.iterrows():
        per_person = units.iloc[int(r)] == "person-years"
        for col in ("rows_in", "rows_removed", "rows_out"):
            v = float(row[col])
            persons = math.ceil(v / max(1, n_years)) if per_person else v
            cells.append(_cell(int(r), col, "count", v, persons, 0))
    where = {(c["row"], c["column"]): i for i, c in enumerate(cells)}
    eqs = tuple(((where[(r, "rows_removed")], where[(r, "rows_out")]), where[(r, "rows_in")])
                for r in range(len(frame)))
    by_value: dict[float, list[int]] = {}
    for i, c in enumerate(cells):
        if c["column"] != "rows_removed":
            by_value.setdefault(c["value"], []).append(i)
    links = tuple(tuple(v) for v in by_value.values() if len(v) > 1)
    return LinkedTable(
        name=name, frame=frame, cells=pd.DataFrame(cells), equations=eqs, links=links,
        title="Attrition: rows each filter of the panel build removed",
        notes=["Person-years of the persons register (1 January), lettings and tool spells; a "
               "filter of the stock that defines a measure's population (age, labour force) "
               "removes rows from that measure only.",
               "Counts from fewer than the disclosure threshold of persons, and the cells that "
               "would reveal them, are blank."],
        export={"labels": {"step": "Step", "filter": "Filter", "rows_in": "Rows in",
                           "rows_removed": "Removed", "rows_out": "Rows out",
                           "note": "Note"},
                "group": "step", "label": "tab:attrition"})


def _drop_counts(text: str) -> str:
    """Free text without the counts in it (a number followed by a word); years and ranges
    ("2003:", "18-64") stay."""
    return re.sub(r"\s{2,}", " ", _COUNT.sub("", text)).strip()


# --- effect tables: views of released tables ------------------------------------------------------

#: Effect tables written by :func:`write_effect_tables`: name -> the released table it shows.
EFFECT_TABLES = {"appendix_headline": "headline", "appendix_att_gt": "did_att_gt_aggregates",
                 "appendix_twfe": "did_twfe", "appendix_dose_response": "did_dose_response",
                 "appendix_bayes": "bayes_effects"}
OUTCOME_LABELS = {"share_employed": "Employed", "share_qualifying_edu": "Qual. edu.",
                  "mean_household_income": "Income (DKK)", "share_non_western": "Non-Western"}
TOOL_LABELS = {"flexible_letting": "Flexible letting", "municipal_referral": "Municipal referral"}
#: Outcomes in running text.
OUTCOME_WORDS = {"share_employed": "the employment share",
                 "share_qualifying_edu": "the share with a qualifying education",
                 "mean_household_income": "mean household income",
                 "share_non_western": "the share of non-Western origin"}


def _digits(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[int]]:
    """Decimals per row of effect columns: whole DKK for income, three decimals otherwise."""
    income = (frame["outcome"].eq("mean_household_income").to_numpy() if "outcome" in frame
              else np.zeros(len(frame), dtype=bool))
    return {c: [0 if inc else 3 for inc in income] for c in columns}


def _label_keys(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "tool" in out:
        out["tool"] = out["tool"].map(lambda t: TOOL_LABELS.get(t, t))
    if "outcome" in out:
        out["outcome"] = out["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o))
    return out


def treatment_words(treatment: str) -> str:
    """``exposure_flexible_letting`` -> ``exposure to flexible letting``."""
    if treatment.startswith("exposure_"):
        return "exposure to " + treatment.removeprefix("exposure_").replace("_", " ")
    return treatment.replace("_", " ")


def _one(frame: pd.DataFrame, col: str) -> Any:
    vals = frame[col].dropna().unique() if col in frame else []
    if len(vals) != 1:
        return None
    v = vals[0]
    return int(v) if isinstance(v, (int, float, np.number)) and float(v).is_integer() else v


def write_effect_tables(released: Mapping[str, pd.DataFrame], folder: str | Path, *,
                        alpha: float, primary_boot: int, n_boot: int,
                        n_clusters: int | None = None, simulated: bool = False,
                        bayes_outcome: str = "share_employed",
                        bayes_treatment: str = "exposure_flexible_letting",
                        formats: Sequence[str] = FORMATS) -> dict[str, list[Path]]:
    """The effect tables of the appendix from released (checked) frames.

    Parameters
    ----------
    released
        Released frames by output name (suppressed cells NaN).
    folder
        ``release/tables``.
    alpha
        1 - interval level.
    primary_boot, n_boot
        Bootstrap replications of the primary specification and draws of att_gt.
    n_clusters
        Clusters of the standard errors, for the notes (default: the ``n_clusters`` of the
        released contrasts, where it is one number).
    simulated
        The registers are simulated: the notes say so, and the truth is shown.
    bayes_outcome, bayes_treatment
        Outcome and treatment of the Bayesian model (``[bayes]``), for its table's notes.

    Returns
    -------
    dict
        Table name -> written paths (tables whose source is not released are skipped).
    """
    folder = Path(folder)
    level = 1 - alpha
    sim = ("Simulated registers (the simulator's default world).",) if simulated else ()
    sim_truth = ("Simulated registers (the simulator's default world); 'truth' is the "
                 "simulated effect.",) if simulated else ()
    out: dict[str, list[Path]] = {}
    if n_clusters is None:
        found = [_one(f, "n_clusters") for f in released.values() if "n_clusters" in f]
        found = [int(x) for x in found if x is not None]
        n_clusters = found[0] if found and len(set(found)) == 1 else None
    cluster = "plans; a department outside any plan is its own cluster"

    def write(name: str, frame: pd.DataFrame, title: str, notes: TableNotes, **kw: Any) -> None:
        kw["labels"] = {"lower": "Lower", "upper": "Upper", **kw.get("labels", {})}
        paths = export_table(frame, folder / name, title=title, notes=notes, formats=formats,
                             label=f"tab:app-{name.removeprefix('appendix_').replace('_', '-')}",
                             **kw)
        out[name] = list(paths.values())

    head = released.get("headline")
    if head is not None:
        cols = ["outcome", "tool", "estimate", "se", "lower", "upper", "n_departments",
                "pretest_p_value", "pretrend_slope_80", "honest_breakdown_mbar", "mde_80"]
        cols += ["truth"] if simulated and "truth" in head else []
        cols = [c for c in cols if c in head]
        digits = _digits(head[cols], [c for c in ("estimate", "se", "lower", "upper",
                                                   "pretrend_slope_80", "mde_80", "truth")
                                      if c in cols])
        shown = _label_keys(head[cols])
        write("appendix_headline", shown, "Primary specification and its diagnostics",
              TableNotes(n_departments=None, n_clusters=n_clusters, cluster=cluster,
                         se_type=f"cluster bootstrap over plans, {primary_boot} replications",
                         interval_level=level, extra=(
                             "Imputation DiD with both tools; departments: treated departments "
                             "behind the estimate.",
                             "Pre-test p: joint test of the pre-period coefficients; slope: the "
                             "linear pre-trend a pre-test would detect with 80% power; Mbar: "
                             "HonestDiD breakdown of the relative-magnitudes bound (0: the "
                             "interval includes 0 already without a violation); MDE: minimum "
                             "detectable effect at 80% power.", *sim_truth)),
              labels={"outcome": "Outcome", "tool": "Tool", "estimate": "ATT", "se": "SE",
                      "n_departments": "Dep.", "pretest_p_value": "Pre-test p",
                      "pretrend_slope_80": "Slope 80%", "honest_breakdown_mbar": "Mbar",
                      "mde_80": "MDE", "truth": "Truth"},
              digits={**digits, "pretest_p_value": 2, "honest_breakdown_mbar": 2})
    agg = released.get("did_att_gt_aggregates")
    if agg is not None:
        sel = agg[agg["aggregation"].eq("simple")]
        cols = [c for c in ("outcome", "tool", "covariates", "estimate", "se", "lower", "upper",
                            "n_units") + (("truth",) if simulated else ()) if c in sel]
        digits = _digits(sel[cols], [c for c in ("estimate", "se", "lower", "upper", "truth")
                                     if c in cols])
        shown = _label_keys(sel[cols])
        write("appendix_att_gt", shown,
              "Contrast: Callaway-Sant'Anna overall ATT (one tool at a time)",
              TableNotes(n_clusters=n_clusters, cluster=cluster,
                         se_type=f"multiplier bootstrap, {n_boot} draws, clustered by plan",
                         interval_level=level, interval_type="uniform confidence bands",
                         extra=("Doubly robust, never-treated controls; covariates: none, or "
                                "housing market and support status; units: departments.",
                                *sim_truth)),
              labels={"outcome": "Outcome", "tool": "Tool", "covariates": "Covariates",
                      "estimate": "ATT", "se": "SE", "n_units": "Dep.", "truth": "Truth"},
              digits=digits)
    twfe = released.get("did_twfe")
    if twfe is not None:
        shown = twfe.assign(treatment=np.where(twfe["term"].str.startswith("exposure_"),
                                               "exposure", "adoption"))
        cols = [c for c in ("outcome", "tool", "treatment", "estimate", "se", "lower", "upper",
                            "n_units") if c in shown]
        digits = _digits(shown[cols], ["estimate", "se", "lower", "upper"])
        shown = _label_keys(shown[cols])
        write("appendix_twfe", shown, "Contrast: two-way fixed effects (one tool at a time)",
              TableNotes(n_clusters=_one(twfe, "n_clusters") or n_clusters, cluster=cluster,
                         se_type="cluster-robust (CR1)", interval_level=level,
                         extra=("Department and year effects; adoption: the tool in force; "
                                "exposure: lettings through the tool up to t-1 per dwelling.",
                                *sim)),
              labels={"outcome": "Outcome", "tool": "Tool", "treatment": "Treatment",
                      "estimate": "Effect", "se": "SE", "n_units": "Dep."}, digits=digits)
    dose = released.get("did_dose_response")
    if dose is not None:
        sel = dose[dose["term"].isin(["ATT^o", "ACR^o"])]
        cols = [c for c in ("outcome", "term", "estimate", "se", "lower", "upper", "n_units")
                + (("truth",) if simulated else ()) if c in sel]
        shown = sel[cols].assign(term=sel["term"].map({"ATT^o": "overall ATT (ATT^o)",
                                                       "ACR^o": "overall ACR (ACR^o)"}))
        digits = _digits(shown, [c for c in ("estimate", "se", "lower", "upper", "truth")
                                 if c in cols])
        shown = _label_keys(shown)
        tool = TOOL_LABELS.get(_one(sel, "tool"), "the tool").lower()
        dose_of = str(_one(sel, "dose_column") or "")
        what = "agreed share at adoption" if dose_of.startswith("agreed_share_at_adoption") \
            else dose_of.replace("_", " ")
        write("appendix_dose_response", shown,
              f"Intensity: dose response of {tool} (dose: {what})",
              TableNotes(n_clusters=_one(dose, "n_clusters") or n_clusters, cluster=cluster,
                         se_type="cluster bootstrap over plans",
                         interval_level=level, extra=(
                             "Callaway, Goodman-Bacon and Sant'Anna (2024): ATT^o averages the "
                             "effect of the dose over treated departments, ACR^o the average "
                             "causal response (effect per unit of dose); truth only for the "
                             "overall ATT.", *sim_truth)),
              labels={"outcome": "Outcome", "term": "Parameter", "estimate": "Estimate",
                      "se": "SE", "n_units": "Dep.", "truth": "Truth"}, digits=digits)
    bayes = released.get("bayes_effects")
    if bayes is not None:
        cols = [c for c in ("group", "estimate", "se", "lower", "upper", "lower_90", "upper_90",
                            "p_positive", "n_units") if c in bayes]
        shown = bayes[cols].copy()
        shown["group"] = shown["group"].astype(str).replace({"pooled": "pooled (all)"})
        shown = shown.rename(columns={"group": "municipality"})
        write("appendix_bayes", shown,
              f"Bayesian hierarchical DiD: effect of {treatment_words(bayes_treatment)} on "
              f"{OUTCOME_WORDS.get(bayes_outcome, bayes_outcome)}, by municipality",
              TableNotes(se_type="posterior standard deviation", interval_level=0.95,
                         interval_type="equal-tailed credible intervals (90% in the last pair)",
                         extra=("Effect of one unit of the treatment"
                                + (" (lettings through the tool up to t-1 per dwelling)"
                                   if bayes_treatment.startswith("exposure_") else "")
                                + ", partially pooled across municipalities; units: "
                                "departments.", *sim)),
              labels={"municipality": "Municipality", "estimate": "Mean", "se": "SD",
                      "lower": "2.5%", "upper": "97.5%", "lower_90": "5%", "upper_90": "95%",
                      "p_positive": "P(>0)", "n_units": "Dep."},
              digits=3)
    return out


# --- figures drawn from the released effect tables ------------------------------------------------

def effect_figures(tables: Sequence[str]) -> list[Any]:
    """Figures of the intensity and Bayesian sections, each drawn only from its checked table.

    ``dose_response_event_study`` (ATT^o by event time, from ``did_dose_response``) and
    ``bayes_effects_forest`` (the pooled and municipal effects, from ``bayes_effects``), offered
    only when their table is among ``tables`` (the names offered for release).
    """
    from impact.report.release import ReleaseFigure

    out = []
    if "did_dose_response" in tables:
        out.append(ReleaseFigure("dose_response_event_study", "did_dose_response",
                                 _draw_dose_event_study))
    if "bayes_effects" in tables:
        out.append(ReleaseFigure("bayes_effects_forest", "bayes_effects", _draw_bayes_forest))
    return out


def _draw_dose_event_study(frame: pd.DataFrame) -> Any:
    """ATT^o(e) by event time, one panel per outcome, from the released rows only."""
    from matplotlib.figure import Figure

    dyn = frame[frame["term"].astype(str).str.startswith("ATT^o(e=")]
    outcomes = list(dict.fromkeys(dyn["outcome"]))
    fig = Figure(figsize=(7.5, 2.4 * max(1, (len(outcomes) + 1) // 2)))
    axes = fig.subplots(max(1, (len(outcomes) + 1) // 2), 2 if len(outcomes) > 1 else 1,
                        squeeze=False).ravel()
    for ax, outcome in zip(axes, outcomes, strict=False):
        g = dyn[(dyn["outcome"] == outcome) & dyn["estimate"].notna()]
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(-0.5, color="grey", lw=0.5, ls=":")
        ax.errorbar(g["event_time"].astype(float), g["estimate"],
                    yerr=[g["estimate"] - g["lower"], g["upper"] - g["estimate"]], fmt="o",
                    ms=3, capsize=2)
        ax.set_title(OUTCOME_LABELS.get(outcome, outcome), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(outcomes):]:
        ax.set_visible(False)
    fig.supxlabel("event time (0: the first year the stock can respond)", fontsize=8)
    fig.supylabel("ATT$^o$(e)", fontsize=8)
    fig.tight_layout()
    return fig


def _draw_bayes_forest(frame: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    shown = frame[frame["estimate"].notna()].copy()
    shown["label"] = shown["group"].astype(str)
    groups = shown[shown["label"] != "pooled"].sort_values("estimate")
    pooled = shown[shown["label"] == "pooled"]
    fig = Figure(figsize=(6.5, max(2.5, 0.28 * (len(groups) + 2))))
    ax = fig.subplots()
    y = np.arange(len(groups))
    ax.errorbar(groups["estimate"], y, xerr=[groups["estimate"] - groups["lower"],
                                             groups["upper"] - groups["estimate"]],
                fmt="o", capsize=2, label="municipality (95% interval)")
    if len(pooled):
        p = pooled.iloc[0]
        ax.axvspan(p["lower"], p["upper"], color="tab:orange", alpha=0.2,
                   label="pooled 95% interval")
        ax.axvline(p["estimate"], color="tab:orange", label="pooled mean")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, [f"municipality {g}" for g in groups["label"]], fontsize=7)
    ax.set_xlabel("effect of one unit of the treatment (posterior)")
    ax.set_title("Bayesian hierarchical DiD: released municipal effects", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
