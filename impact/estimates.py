"""The study's estimates on a department-year panel, as tidy tables (used by ``impact run``).

For each letting tool (flexible letting, municipal referral) and each stock composition measure:

- Callaway-Sant'Anna group-time ATTs (doubly robust, never-treated controls) with their simple,
  dynamic and group aggregations and the pre-test of parallel trends, unconditional and, where the
  departments carry ``market_type``, conditional on the housing market and on LBF support
  (``covariates`` column: ``none`` / ``market+supported``): tools were not adopted at random;
- TWFE with the binary adoption and with the intensity of use (share of lettings through the tool);
- the continuous-treatment dose response (ATT of the intensity, CGBS 2024) for flexible letting;
- the Goodman-Bacon decomposition of the binary TWFE estimate.

With simulated registers, every simple ATT is set beside its true value: the mean true effect over the
treated department-years from adoption on (:func:`true_simple_att`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from impact import did
from impact.errors import EstimationError

TOOLS = ("flexible_letting", "municipal_referral")
OUTCOMES = ("share_employed", "share_qualifying_edu", "mean_household_income", "share_non_western")


@dataclass
class StudyEstimates:
    """Tidy tables of the study's DiD estimates."""

    aggregates: pd.DataFrame
    att_gt: pd.DataFrame
    twfe: pd.DataFrame
    dose_response: pd.DataFrame
    bacon: pd.DataFrame
    problems: pd.DataFrame
    figures: dict[str, object] = field(default_factory=dict)


def true_simple_att(panel: pd.DataFrame, truth: pd.DataFrame, outcome: str, tool: str) -> float:
    """Mean true effect over treated department-years from adoption on (cohorts inside the data)."""
    cohort_col = f"cohort_{tool}"
    first = int(panel["year"].min())
    m = truth.merge(panel[["department_id", "year", cohort_col]], on=["department_id", "year"])
    cohort = m[cohort_col]
    sel = (cohort > first) & (m["year"] >= cohort)
    return float(m.loc[sel, f"{outcome}_effect"].mean()) if sel.any() else float("nan")


def estimate_all(panel: pd.DataFrame, *, truth: pd.DataFrame | None = None, n_boot: int = 999,
                 seed: int = 0, tools: tuple[str, ...] = TOOLS,
                 outcomes: tuple[str, ...] = OUTCOMES) -> StudyEstimates:
    """Run every DiD estimator of the study.

    Parameters
    ----------
    panel
        ``Panel.frame`` from :func:`impact.panel.build`.
    truth
        The simulator's truth table (adds a ``truth`` column to the simple ATTs).
    n_boot
        Multiplier-bootstrap draws for ``att_gt`` (0 = analytic SEs).
    seed
        Seed of every bootstrap.

    Returns
    -------
    StudyEstimates
        An estimator that cannot run on the data is listed in ``problems`` with its message, never
        silently skipped.
    """
    aggs, cells, twfes, doses, bacons, problems = [], [], [], [], [], []
    figures: dict[str, object] = {}
    data = panel.copy()
    specs: list[tuple[str, list[str] | None]] = [("none", None)]
    if "market_type" in data and data["market_type"].notna().all():
        data["waiting_list_market"] = (data["market_type"] == "waiting_list").astype(float)
        data["supported_department"] = data["supported"].astype(float)
        specs.append(("market+supported", ["waiting_list_market", "supported_department"]))
    for tool in tools:
        data[f"intensity_{tool}_filled"] = data[f"intensity_{tool}"].fillna(0.0)
        for outcome in outcomes:
            key = {"tool": tool, "outcome": outcome}
            for spec_name, covariates in specs:
                _att_gt(data, outcome, tool, covariates, {**key, "covariates": spec_name},
                        truth=truth, n_boot=n_boot, seed=seed, aggs=aggs, cells=cells,
                        problems=problems, figures=figures if spec_name == "none" else None)
            for treatment in (f"in_force_{tool}", f"intensity_{tool}_filled"):
                try:
                    tw = did.twfe(data, outcome, treatment)
                    twfes.append(tw.tidy().assign(**key, treatment=treatment))
                except EstimationError as err:
                    problems.append({**key, "estimator": "twfe", "kind": "error",
                                     "message": str(err)})
            if tool == "flexible_letting":
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        dr = did.dose_response(data, outcome, dose=f"intensity_{tool}",
                                               cohort=f"cohort_{tool}", n_boot=199, seed=seed)
                    doses.append(dr.tidy().assign(**key))
                except EstimationError as err:
                    problems.append({**key, "estimator": "dose_response", "kind": "error",
                                     "message": str(err)})
        try:
            bacons.append(did.bacon(data, "share_employed", f"in_force_{tool}").tidy()
                          .assign(tool=tool, outcome="share_employed"))
        except EstimationError as err:
            problems.append({"tool": tool, "outcome": "share_employed", "estimator": "bacon",
                             "kind": "error", "message": str(err)})

    def cat(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    return StudyEstimates(
        aggregates=pd.DataFrame(aggs), att_gt=cat(cells), twfe=cat(twfes),
        dose_response=cat(doses), bacon=cat(bacons),
        problems=pd.DataFrame(problems, columns=["tool", "outcome", "estimator", "kind", "message"]),
        figures=figures,
    )


def _att_gt(data: pd.DataFrame, outcome: str, tool: str, covariates: list[str] | None,
            key: dict[str, str], *, truth: pd.DataFrame | None, n_boot: int, seed: int,
            aggs: list[dict], cells: list[pd.DataFrame], problems: list[dict],
            figures: dict[str, object] | None) -> None:
    """One att_gt fit with its aggregations appended to the running tables."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = did.att_gt(data, outcome, "department_id", "year", f"cohort_{tool}",
                             covariates=covariates, n_boot=n_boot, seed=seed, unbalanced="drop")
        problems += [{**key, "estimator": "att_gt", "kind": "warning", "message": str(w.message)}
                     for w in caught]
    except EstimationError as err:
        problems.append({**key, "estimator": "att_gt", "kind": "error", "message": str(err)})
        return
    cells.append(res.att_gt.assign(**key))
    for kind in ("simple", "dynamic", "group"):
        agg = res.aggregate(kind, na_rm=True)
        o = agg.overall
        row = {**key, "aggregation": kind, "key": "overall", "att": o.att, "se": o.se,
               "lower": float(o.lower), "upper": float(o.upper)}
        if kind == "simple":
            row["pretest_p_value"] = res.pretest.p_value if res.pretest else np.nan
            if truth is not None:
                row["truth"] = true_simple_att(data, truth, outcome, tool)
        aggs.append(row)
        if agg.by is not None:
            by = agg.by.rename(columns={agg.by.columns[0]: "key"})
            by["key"] = by["key"].astype(str)
            aggs += [{**key, "aggregation": kind, **r} for r in by.to_dict("records")]
    if figures is not None and outcome == "share_employed":
        fig = res.aggregate("dynamic", na_rm=True).plot()
        fig.axes[0].set_title(f"{outcome} by years since adoption of {tool.replace('_', ' ')} "
                              "(att_gt, dr, never-treated controls)", fontsize=9)
        figures[f"event_study_{tool}_{outcome}"] = fig
