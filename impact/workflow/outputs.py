"""What ``impact run`` offers for release: checked tables built from the panel and the estimates.

Every table here carries the evidence the disclosure checks of :mod:`impact.report.disclosure`
need, computed from the department-year panel when the table is built (so the checks never read
the microdata again). Persons behind a model estimate are a lower bound computed from the panel:
on 1 January a person lives in one department, so the most persons in one year over the
department-years behind an estimate never exceeds the distinct persons behind it.

The functions return :class:`impact.report.release.CellTable` / ``ModelTable`` /
``ReleaseFigure`` objects; :func:`impact.report.release.write_released` checks and writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from impact.report.release import CellTable, ModelTable, ReleaseFigure

#: Hidden support columns of model tables (dropped from the released file).
SUPPORT = {"residual_df": "support_df", "departments": ("support_departments_treated",
                                                          "support_departments_control"),
           "persons": ("support_persons_treated", "support_persons_control")}


def person_base(outcome: str) -> str:
    """The panel's count of the persons an outcome is measured on (its base)."""
    from impact.describe import MEASURES

    return MEASURES[outcome][1] if outcome in MEASURES else "n_residents"


def persons_lower_bound(rows: pd.DataFrame, base: str) -> int:
    """Distinct persons behind department-years, bounded below: the most in one year."""
    if rows.empty:
        return 0
    return int(rows.groupby("year")[base].sum().max())


def _treated_rows(panel: pd.DataFrame, tool: str, outcome: str) -> pd.DataFrame:
    """Department-years the tool could have moved (from the year after adoption), with the outcome."""
    cohort = panel[f"cohort_{tool}"]
    sel = (cohort > 0) & (panel["year"] >= cohort + 1) & panel[outcome].notna()
    return panel[sel]


def _control_rows(panel: pd.DataFrame, tool: str, outcome: str) -> pd.DataFrame:
    """Department-years of departments that never adopted the tool, with the outcome."""
    return panel[(panel[f"cohort_{tool}"].fillna(0) <= 0) & panel[outcome].notna()]


def headline_table(headline: pd.DataFrame, panel: pd.DataFrame, *, alpha: float = 0.05
                   ) -> ModelTable:
    """The headline (primary specification) as a model table with its support.

    Support per row: departments treated = ``n_departments``; control = departments that never
    adopted the tool; persons on each side from the panel (:func:`persons_lower_bound` on the
    outcome's base); residual degrees of freedom: treated clusters - 1 (the degrees of freedom of
    the cluster bootstrap, smaller than the model's residual df, so conservative).
    """
    frame = headline.copy()
    dep_c, per_t, per_c = [], [], []
    for row in frame.itertuples(index=False):
        base = person_base(row.outcome)
        control = _control_rows(panel, row.tool, row.outcome)
        dep_c.append(int(control["department_id"].nunique()))
        per_t.append(persons_lower_bound(_treated_rows(panel, row.tool, row.outcome), base))
        per_c.append(persons_lower_bound(control, base))
    frame[SUPPORT["residual_df"]] = frame["n_treated_clusters"] - 1
    frame[SUPPORT["departments"][0]] = frame["n_departments"]
    frame[SUPPORT["departments"][1]] = dep_c
    frame[SUPPORT["persons"][0]] = per_t
    frame[SUPPORT["persons"][1]] = per_c
    level = round(100 * (1 - alpha))
    return ModelTable(
        name="headline", frame=frame, **SUPPORT,
        title="Primary specification: imputation DiD, both tools, plan clusters",
        notes=[f"{level}% intervals from a cluster bootstrap over plans (helhedsplaner).",
               "Estimand: the mean effect of the tool over the department-years it could have "
               "moved, the other tool at its factual path."])


def event_study_table(primary: pd.DataFrame, panel: pd.DataFrame) -> ModelTable:
    """Event-time coefficients of the primary specification with their support.

    Event time e = year - cohort - 1 (the first year the stock can respond is 0). Treated side: the
    department-years at e (one per department); control: departments that never adopted the tool.
    """
    dyn = primary[primary["term"] == "event_time"].copy()
    cols = [c for c in ("tool", "outcome", "event_time", "estimate", "se", "lower", "upper",
                        "truth") if c in dyn]
    dyn = dyn[cols].reset_index(drop=True)
    dep_t, dep_c, per_t, per_c = [], [], [], []
    for row in dyn.itertuples(index=False):
        base = person_base(row.outcome)
        cohort = panel[f"cohort_{row.tool}"]
        at = panel[(cohort > 0) & (panel["year"] - cohort - 1 == row.event_time)
                   & panel[row.outcome].notna()]
        control = _control_rows(panel, row.tool, row.outcome)
        dep_t.append(int(at["department_id"].nunique()))
        dep_c.append(int(control["department_id"].nunique()))
        per_t.append(persons_lower_bound(at, base))
        per_c.append(persons_lower_bound(control, base))
    dyn[SUPPORT["departments"][0]] = dep_t
    dyn[SUPPORT["departments"][1]] = dep_c
    dyn[SUPPORT["persons"][0]] = per_t
    dyn[SUPPORT["persons"][1]] = per_c
    dyn["n_departments"] = dep_t
    return ModelTable(name="primary_event_study", frame=dyn,
                      **{**SUPPORT, "residual_df": None},
                      title="Primary specification by event time",
                      notes=["Event time 0: the first year the 1-January stock can respond."])


def event_study_figures(tools: Sequence[str], outcome: str = "share_employed"
                        ) -> list[ReleaseFigure]:
    """Event-study plots drawn from the checked event-time table."""

    def draw(frame: pd.DataFrame, tool: str) -> Any:
        from matplotlib.figure import Figure

        dyn = frame[(frame["tool"] == tool) & (frame["outcome"] == outcome)
                    & frame["estimate"].notna()]
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.axhline(0, color="grey", lw=0.8)
        ax.errorbar(dyn["event_time"], dyn["estimate"],
                    yerr=[dyn["estimate"] - dyn["lower"], dyn["upper"] - dyn["estimate"]],
                    fmt="o", capsize=3, label="estimate and interval")
        if "truth" in dyn:
            ax.plot(dyn["event_time"], dyn["truth"], "x", color="black", label="truth")
        ax.set_xlabel("years since the first year the stock could respond")
        ax.set_ylabel(outcome)
        ax.set_title(f"{outcome}: {tool.replace('_', ' ')} (imputation, both tools)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return [ReleaseFigure(f"event_study_primary_{tool}_{outcome}", "primary_event_study",
                          lambda frame, tool=tool: draw(frame, tool)) for tool in tools]


def report_trend_tables(panel: pd.DataFrame) -> tuple[list[CellTable], list[ReleaseFigure]]:
    """The 2015 report's figures 7.1-7.12 as two checked tables (shares; income) and 12 figures.

    Evidence per cell (report group x year x measure x population): persons = the base count,
    departments with at least one such person, the numerator of a share; for the income mean the
    sum and the two largest department contributions (a person's income is at most their
    department's sum, so the dominance rule on departments is stricter than on persons).
    """
    from impact import describe

    tidy = describe.trends(panel)
    ev = _trend_evidence(panel)
    keys = ["figure", "report_group", "year"]
    merged = tidy.merge(ev, on=keys, how="left", validate="one_to_one")
    if merged["ev_n_persons"].ne(merged["n_persons"]).any():
        raise AssertionError("report trends: evidence does not match the table")
    tables, figures = [], []
    for name, kind, sel in (("report_trends_shares", "share",
                             merged["measure"] != "mean_household_income"),
                            ("report_trends_income", "magnitude",
                             merged["measure"] == "mean_household_income")):
        part = merged[sel].reset_index(drop=True)
        evidence = pd.DataFrame({
            "n_persons": part["n_persons"], "n_departments": part["n_departments"],
            "total": part["ev_total"], "largest_1": part["ev_largest_1"],
            "largest_2": part["ev_largest_2"],
            "numerator": part["ev_total"] if kind == "share" else np.nan})
        tables.append(CellTable(
            name=name, frame=part[list(tidy.columns)], evidence=evidence, kind=kind,
            value_columns=("value",),
            title=("The 2015 report's figures 7.1-7.12: "
                   + ("shares" if kind == "share" else "household income (DKK, fixed prices)")),
            notes=["Persons pooled within each report group (groups by use of the tools in "
                   "2006-2010)."]))
        for fig in part["figure"].drop_duplicates():
            figures.append(ReleaseFigure(f"figure_{fig.replace('.', '_')}", name,
                                         lambda frame, fig=fig: _draw_trend(frame, fig)))
    return tables, figures


def _draw_trend(frame: pd.DataFrame, figure: str) -> Any:
    from impact import describe

    shown = frame[frame["value"].notna()]
    if (shown["figure"] == figure).any():
        return describe.plot_figure(shown, figure)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    fig.subplots().set_title(f"Figure {figure}: every cell suppressed by disclosure control")
    return fig


def _trend_evidence(panel: pd.DataFrame) -> pd.DataFrame:
    """Per trend cell: base persons, numerator (or income sum), two largest department parts."""
    from impact import describe

    data = panel[panel["report_group"].isin(describe.REPORT_GROUPS)]
    rows = []
    for pop, (prefix, total) in describe.POPULATIONS.items():
        for measure, (num, base, _) in describe.MEASURES.items():
            b = describe._count(data, prefix, total, base).fillna(0.0)
            if num is None:
                mean = data[f"{prefix}{measure}"].astype("float64").fillna(0.0)
                n = np.where(b > 0, mean * b, 0.0)
            else:
                n = describe._count(data, prefix, total, num).fillna(0.0).to_numpy()
            part = pd.DataFrame({"report_group": data["report_group"].to_numpy(),
                                 "year": data["year"].to_numpy(), "num": n, "base": b.to_numpy()})
            for (group, year), g in part.groupby(["report_group", "year"], sort=True):
                if g["base"].sum() <= 0:
                    continue
                top = np.sort(np.abs(g["num"].to_numpy()))[::-1]
                rows.append({"figure": describe.FIGURE_NUMBERS[(measure, pop)],
                             "report_group": group, "year": int(year),
                             "ev_n_persons": int(g["base"].sum()), "ev_total": g["num"].sum(),
                             "ev_largest_1": top[0] if top.size else 0.0,
                             "ev_largest_2": top[1] if top.size > 1 else 0.0})
    return pd.DataFrame(rows)


def group_sizes_table(panel: pd.DataFrame) -> CellTable:
    """Departments and residents per report group and year (the N behind the figures)."""
    from impact import describe

    sizes = describe.group_sizes(panel)
    evidence = pd.DataFrame({"n_persons": sizes["n_residents"],
                             "n_departments": sizes["n_departments"]})
    return CellTable(name="group_sizes", frame=sizes, evidence=evidence, kind="count",
                     value_columns=("n_residents",),
                     title="Departments and residents per report group and year")


def followup_tables(design: Any, panel: pd.DataFrame) -> list[CellTable | ModelTable]:
    """The follow-up design's tables with their evidence (written to ``release/followup/``).

    Every table but ``strata`` is computed from the whole panel (design-level numbers, noise-model
    parameters, simulated power): its evidence is the panel's persons and departments. ``strata``
    describes departments per housing-market type x intensity of use: it obeys the model rules
    (at least ``min_departments`` departments and ``min_n`` persons per stratum).
    """
    from impact.diagnostics import power_design
    from impact.followup import render
    from impact.followup.study_design import _department_table

    s = design.settings
    base = person_base(s["outcome"])
    persons, departments = persons_lower_bound(panel, base), int(panel["department_id"].nunique())
    out: list[CellTable | ModelTable] = []
    for key, frame in {**render.tables(design), "curves": design.curves}.items():
        frame = frame.reset_index(drop=True)
        title = f"Follow-up design: {render.TABLES.get(key, ('Power curves', []))[0]}"
        if key == "by_subgroup":  # support per stratum
            from impact.workflow.subgroup_outputs import followup_subgroup_table

            out.append(followup_subgroup_table(design, panel, design.subgroup_labels))
            continue
        if key == "strata":
            layout = power_design(panel, outcome=s["outcome"], tool=s["tool"],
                                  effect_lag=s["effect_lag"])
            deps = _department_table(panel, layout, s["tool"])
            members = panel[["department_id", "year", base]].merge(
                deps[["department_id", "market_type", "intensity"]], on="department_id")
            per = {k: (persons_lower_bound(g, base), int(g["department_id"].nunique()))
                   for k, g in members.groupby(["market_type", "intensity"])}
            ev = np.array([per.get((r.market_type, r.intensity), (0, 0))
                           for r in frame.itertuples()]).reshape(-1, 2)
            if not (ev[:, 1] == frame["n_departments_panel"].to_numpy()).all():
                raise AssertionError("followup strata: evidence does not match the table")
            frame = frame.assign(support_persons=ev[:, 0], support_departments=ev[:, 1])
            out.append(ModelTable(name=f"followup_{key}", frame=frame,
                                  value_columns=("n_departments_panel", "share", "mean_intensity",
                                                 "n_to_follow"),
                                  residual_df=None, departments=("support_departments",),
                                  persons=("support_persons",), title=title, folder="followup"))
            continue
        evidence = pd.DataFrame({"n_persons": [persons] * len(frame),
                                 "n_departments": [departments] * len(frame)})
        values = tuple(c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
                       and not pd.api.types.is_bool_dtype(frame[c])) or (str(frame.columns[0]),)
        out.append(CellTable(name=f"followup_{key}", frame=frame, evidence=evidence,
                             kind="count", value_columns=values, title=title, folder="followup"))
    return out


#: Support columns of a result's ``tidy()`` and the hidden names a released model table uses.
TIDY_SUPPORT = {"df_resid": SUPPORT["residual_df"],
                "n_units_treated": SUPPORT["departments"][0],
                "n_units_control": SUPPORT["departments"][1],
                "n_persons_treated": SUPPORT["persons"][0],
                "n_persons_control": SUPPORT["persons"][1]}


def model_table(name: str, rows: pd.DataFrame, *, keys: Sequence[str], title: str,
                notes: Sequence[str] = (), folder: str = "tables") -> ModelTable:
    """Rows of results' ``tidy()`` (with their support columns) as a checked model table.

    The support columns become the hidden ``support_*`` columns the checks read (residual df,
    departments and persons on each side; a missing count fails its rule, so a row whose support
    is unknown is suppressed); ``n_persons`` (a lower bound, not an exact count) is not released.
    Every numeric column but ``keys`` is blanked in a suppressed row, ``n_units`` (departments
    behind the row) included.

    Raises
    ------
    impact.DisclosureError
        (when checked) a support column is missing: the rows cannot be checked.
    """
    frame = rows.drop(columns=["n_persons"], errors="ignore").rename(columns=TIDY_SUPPORT)
    frame = frame.reset_index(drop=True)
    hidden = set(TIDY_SUPPORT.values())
    for col in [c for c in frame.columns if c in hidden or c == "n_units"]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)  # <NA> -> NaN
    values = tuple(c for c in frame.columns
                   if c not in hidden and c not in keys
                   and pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c]))
    return ModelTable(name=name, frame=frame, value_columns=values, **SUPPORT, title=title,
                      notes=list(notes), folder=folder)


def contrast_tables(estimates: Any) -> list[ModelTable]:
    """The contrasts of ``impact run`` as checked model tables: the ``att_gt`` aggregations,
    TWFE on adoption and exposure, and the dose response's ATT^o, ACR^o and event studies.

    Each row carries the support of its result (``tidy()``): residual df, departments and persons
    on each side. The dose curve's rows are left out: they are evaluated at quantiles of the
    departments' doses (order statistics of department values).
    """
    rule = ("Rows with fewer than the disclosure thresholds (residual df, departments or persons "
            "on a side) are blank.")
    out = []
    if len(estimates.aggregates):
        out.append(model_table(
            "did_att_gt_aggregates", estimates.aggregates, keys=(),
            title="Contrast: Callaway-Sant'Anna ATT aggregations (ignores the other tool)",
            notes=["Doubly robust att_gt, never-treated controls, plan-cluster multiplier "
                   "bootstrap; covariates 'none' or market and support.", rule]))
    if len(estimates.twfe):
        out.append(model_table(
            "did_twfe", estimates.twfe, keys=(),
            title="Contrast: TWFE on adoption and on exposure (ignores the other tool)",
            notes=["PanelOLS with department and year effects, CR1 plan-cluster SEs.", rule]))
    dose = estimates.dose_response
    if len(dose):
        keep = dose["term"].astype(str).str.match(r"^(ATT|ACR)\^o")
        out.append(model_table(
            "did_dose_response", dose[keep].drop(columns=["dose"], errors="ignore"),
            keys=("event_time",),
            title="Contrast: dose response of flexible letting (agreed share at adoption)",
            notes=["ATT^o and ACR^o overall and by event time (CGS 2024), plan-cluster "
                   "bootstrap; the dose curve is not released (it is evaluated at quantiles of "
                   "the departments' doses).", rule]))
    return out


def bayes_effects_table(tidy: pd.DataFrame, *, name: str = "bayes_effects") -> ModelTable:
    """The Bayesian model's effects (``HierarchicalResult.tidy()``) as a checked model table."""
    keys = ("event_time",)
    return model_table(
        name, tidy.drop(columns=["config_hash"], errors="ignore"), keys=keys, folder="tables",
        title="Bayesian hierarchical DiD: effects (posterior mean, sd, 95% and 90% intervals)",
        notes=["estimate = posterior mean, se = posterior sd, lower/upper = 95% equal-tailed "
               "interval.", "Groups with fewer than the disclosure thresholds (residual df, "
               "departments or persons on a side) are blank."])
