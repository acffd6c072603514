"""The study's estimates on a department-year panel, as tidy tables (used by ``impact run``).

Primary specification (``tables/headline.csv``)
    :func:`impact.did.imputation` with both letting tools at once: a tool agreed in year g can
    first move the 1-January stock of g + 1; the untreated model has department effects, year
    effects per housing market x LBF support (what the tools were assigned on) and year-specific
    slopes on the department's composition in the panel's first year (the four stock measures);
    the effects of overlapping tools are separated by event time and market; inference is a
    cluster bootstrap over plans (helhedsplaner: the tools were agreed per plan; a department
    without a plan is its own cluster). The estimand is tool-specific: the mean effect of the
    tool over the department-years it could have moved, with the other tool at its factual path.

Contrasts, kept beside it
    Callaway-Sant'Anna ``att_gt`` (doubly robust, never-treated by that tool; unconditional and
    conditional on market and support), TWFE on the binary adoption and on the cumulative exposure
    (lettings through the tool up to t-1 per dwelling), the continuous-treatment dose response of
    flexible letting with the agreed share at adoption as the dose (predetermined), and the
    Goodman-Bacon decomposition. These ignore the other tool, and the unconditional ones the
    selection of adopters: on the default world's placebo they are biased (see the issue note).

Truth (simulated registers only)
    Every estimate is set beside the truth of its own estimand: for the primary specification the
    mean of the tool-specific true effect (factual minus the world without that tool alone) over
    exactly the department-years behind the estimate; for ``att_gt`` the same aggregation of the
    true ATT(g,t) (computed by running ``att_gt`` on the true effects, which are exactly zero for
    units and years the tool cannot have moved, so the estimator's own weights apply); income in
    the panel's fixed prices.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from impact import did
from impact.did.imputation import ImputationResult
from impact.errors import EstimationError
from impact.simulate.truth import effect_column

TOOLS = ("flexible_letting", "municipal_referral")
OUTCOMES = ("share_employed", "share_qualifying_edu", "mean_household_income", "share_non_western")
CLUSTER = "cluster_plan"
"""Cluster column the study adds: ``plan_id``, or the department itself where it has no plan."""
MIN_TREATED_CLUSTERS = 20
"""Fewer treated clusters than this and the headline says ``too few clusters``."""
PRETEST_ALPHA = 0.05


@dataclass
class StudyEstimates:
    """Tidy tables of the study's estimates."""

    headline: pd.DataFrame
    primary: pd.DataFrame
    aggregates: pd.DataFrame
    att_gt: pd.DataFrame
    twfe: pd.DataFrame
    dose_response: pd.DataFrame
    bacon: pd.DataFrame
    problems: pd.DataFrame
    placebo: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: dict[str, object] = field(default_factory=dict)


def prepare(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel with the study's derived columns.

    Adds ``cluster_plan`` (plan, or the department's own cluster), ``baseline_<measure>`` (the
    department's stock measures in the panel's first year: pre-adoption for every cohort the
    estimators use), ``waiting_list_market`` and ``supported_department`` (0/1), and
    ``exposure_<tool>`` filled with 0 where missing.
    """
    data = panel.copy()
    plan = data["plan_id"]
    data[CLUSTER] = np.where(plan.isna(), "department:" + data["department_id"].astype(str),
                             "plan:" + plan.astype(str))
    first = data[data["year"] == data["year"].min()].set_index("department_id")
    for outcome in OUTCOMES:
        data[f"baseline_{outcome}"] = data["department_id"].map(first[outcome])
    if "market_type" in data and data["market_type"].notna().all():
        data["waiting_list_market"] = (data["market_type"] == "waiting_list").astype(float)
    data["supported_department"] = data["supported"].astype(float)
    for tool in TOOLS:
        if f"exposure_{tool}" in data:
            data[f"exposure_{tool}"] = data[f"exposure_{tool}"].fillna(0.0)
    return data


def _strata(data: pd.DataFrame) -> list[str]:
    return (["market_type", "supported_department"] if "waiting_list_market" in data
            else ["supported_department"])


def primary(data: pd.DataFrame, outcome: str, *, n_boot: int, seed: int,
            tools: tuple[str, ...] = TOOLS) -> ImputationResult:
    """The primary specification for one outcome (every tool at once); see the module docstring."""
    return did.imputation(
        data, outcome, cohorts=[f"cohort_{t}" for t in tools], unit="department_id",
        time="year", onset_lag=1, strata=_strata(data),
        covariates=[f"baseline_{o}" for o in OUTCOMES], effect_by=(
            "market_type" if "waiting_list_market" in data else None),
        cluster=CLUSTER, n_boot=n_boot, seed=seed, persons=persons_of(data, outcome))


def primary_truth(result: ImputationResult, truth: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Truth of every primary estimate: mean tool-specific effect over its department-years.

    Returns ``tool, term, event_time, cohort, truth`` aligned with ``result.tidy()``.
    """
    rows = result.rows
    out = []
    for tool, sub in rows.groupby("tool", sort=False):
        col = effect_column(outcome, str(tool))
        m = sub.merge(truth[["department_id", "year", col]], on=["department_id", "year"],
                      how="left")
        out.append({"tool": tool, "term": "att", "truth": float(m[col].mean())})
        out += [{"tool": tool, "term": "event_time", "event_time": int(e), "truth": float(v)}
                for e, v in m.groupby("event_time")[col].mean().items()]
        out += [{"tool": tool, "term": "cohort", "cohort": int(g), "truth": float(v)}
                for g, v in m.groupby("cohort")[col].mean().items()]
    return pd.DataFrame(out)


def att_gt_truth(data: pd.DataFrame, truth: pd.DataFrame, outcome: str, tool: str, *,
                 covariates: list[str] | None = None) -> dict[str, object]:
    """Truth of ``att_gt``'s aggregations: ``att_gt`` run on the true tool-specific effects.

    The true effect of a tool is exactly zero before it can act and for units that never had it,
    so in every post-treatment cell the 2x2 comparison returns the mean true effect of the
    cohort's units, and the aggregations use the estimator's own weights. The effect is set to
    missing where the outcome is, so the same units are used.
    """
    col = effect_column(outcome, tool)
    m = data.merge(truth[["department_id", "year", col]], on=["department_id", "year"],
                   how="left")
    m["true_effect__"] = m[col].where(m[outcome].notna())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = did.att_gt(m, "true_effect__", "department_id", "year", f"cohort_{tool}",
                         covariates=covariates, method="reg", n_boot=0, unbalanced="drop")
    out: dict[str, object] = {}
    for kind in ("simple", "dynamic", "group"):
        agg = res.aggregate(kind, na_rm=True)
        out[kind] = agg.overall.att
        if agg.by is not None and kind != "simple":
            by = agg.by.rename(columns={agg.by.columns[0]: "key"})
            out[f"{kind}_by"] = dict(zip(by["key"].astype(str), by["att"], strict=True))
    return out


def true_simple_att(panel: pd.DataFrame, truth: pd.DataFrame, outcome: str, tool: str) -> float:
    """Truth of ``att_gt``'s simple aggregation for ``tool`` (see :func:`att_gt_truth`)."""
    return float(att_gt_truth(panel, truth, outcome, tool)["simple"])  # type: ignore[arg-type]


def verdict(*, estimate: float, pretest_p_value: float, n_treated_clusters: int) -> str:
    """A word a reader can act on: ``credible``, ``pre-trends rejected``, ``too few clusters``,
    ``not estimable``."""
    if not np.isfinite(estimate):
        return "not estimable"
    if n_treated_clusters < MIN_TREATED_CLUSTERS:
        return "too few clusters"
    if np.isfinite(pretest_p_value) and pretest_p_value < PRETEST_ALPHA:
        return "pre-trends rejected"
    return "credible"


MDE_FACTOR = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))
"""Minimum detectable effect (80% power, 5% two-sided test) = 2.80 x the standard error."""
HONEST_GRID = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))


def event_study_diagnostics(result: ImputationResult, tool: str) -> dict[str, float]:
    """Pre-test power and HonestDiD breakdown of a primary estimate.

    On the tool's event study normalised to event time -1 (:meth:`ImputationResult.event_study`):
    ``pretrend_slope_80``, the slope of a linear pre-trend that the pre-test (no lead
    significant at 5%) detects with 80% probability (Roth 2022); ``honest_breakdown_mbar``, the
    smallest relative-magnitude bound Mbar (grid 0, 0.25, ..., 2) at which the 95% robust
    interval (Rambachan & Roth 2023, conditional least-favourable hybrid) of the average post
    effect (weights: department-years per event time) includes zero; NaN where not computable.
    """
    from impact import diagnostics

    out = {"pretrend_slope_80": np.nan, "honest_breakdown_mbar": np.nan}
    try:
        es = result.event_study(tool)
        if int((es.event_time < 0).sum()) < 1 or not np.all(np.isfinite(es.vcov())):
            return out
        out["pretrend_slope_80"] = float(diagnostics.pretrend_power(es, target_power=0.8).slope)
        dyn = result.dynamic[result.dynamic["tool"] == tool]
        w = dyn["n_obs"].to_numpy(dtype=float)
        bounds = diagnostics.honest(es, restriction="relative_magnitudes", grid=list(HONEST_GRID),
                                    l_vec=w / w.sum())
        breakdown = bounds.attrs.get("breakdown")
        out["honest_breakdown_mbar"] = np.nan if breakdown is None else float(breakdown)
    except (EstimationError, np.linalg.LinAlgError, ValueError):
        pass
    return out


ESTIMAND = ("ATT over department-years from the year after adoption, tool-specific (other tool at "
            "its factual path)")


def estimate_all(panel: pd.DataFrame, *, truth: pd.DataFrame | None = None, n_boot: int = 999,
                 seed: int = 0, tools: tuple[str, ...] = TOOLS,
                 outcomes: tuple[str, ...] = OUTCOMES, primary_boot: int = 199,
                 contrasts: bool = True, placebo_shifts: tuple[int, ...] = (2,)
                 ) -> StudyEstimates:
    """Run every estimator of the study.

    Parameters
    ----------
    panel
        ``Panel.frame`` from :func:`impact.panel.build`.
    truth
        The simulator's truth table (adds ``truth`` columns).
    n_boot
        Multiplier-bootstrap draws for ``att_gt`` (0 = analytic SEs).
    seed
        Seed of every bootstrap.
    primary_boot
        Cluster-bootstrap replications of the primary specification.
    contrasts
        Also run the contrast estimators (att_gt, TWFE, dose response, Bacon).
    placebo_shifts
        Placebo in time of the primary specification: adoption moved this many years earlier
        on the truly untreated years (:func:`impact.diagnostics.placebo_time`); () = none.

    Returns
    -------
    StudyEstimates
        An estimator that cannot run on the data is listed in ``problems`` with its message, never
        silently skipped.
    """
    data = prepare(panel)
    heads, prim, aggs, cells, twfes, doses, bacons, problems = [], [], [], [], [], [], [], []
    figures: dict[str, object] = {}
    for outcome in outcomes:
        _primary(data, outcome, tools, truth=truth, n_boot=primary_boot, seed=seed, heads=heads,
                 prim=prim, problems=problems, figures=figures)
    if contrasts:
        specs: list[tuple[str, list[str] | None]] = [("none", None)]
        if "waiting_list_market" in data:
            specs.append(("market+supported", ["waiting_list_market", "supported_department"]))
        for tool in tools:
            for outcome in outcomes:
                key = {"tool": tool, "outcome": outcome}
                for spec_name, covariates in specs:
                    _att_gt(data, outcome, tool, covariates, {**key, "covariates": spec_name},
                            truth=truth, n_boot=n_boot, seed=seed, aggs=aggs, cells=cells,
                            problems=problems,
                            figures=figures if spec_name == "none" else None)
                _twfe(data, outcome, tool, key, twfes, problems)
                if tool == "flexible_letting":
                    _dose(data, outcome, tool, key, truth=truth, seed=seed, doses=doses,
                          problems=problems)
            try:
                bacons.append(did.bacon(data, "share_employed", f"in_force_{tool}",
                                        persons=persons_of(data, "share_employed")).tidy()
                              .assign(tool=tool, outcome="share_employed"))
            except EstimationError as err:
                problems.append({"tool": tool, "outcome": "share_employed", "estimator": "bacon",
                                 "kind": "error", "message": str(err)})

    def cat(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    placebo = pd.DataFrame()
    if placebo_shifts:
        from impact.diagnostics import placebo_time

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                placebo = placebo_time(data, list(outcomes), shifts=placebo_shifts,
                                       tools=tools, n_boot=primary_boot, seed=seed)
            problems += [{"tool": "all", "outcome": "all", "estimator": "placebo_time",
                          "kind": "warning", "message": str(w.message)} for w in caught]
        except EstimationError as err:
            problems.append({"tool": "all", "outcome": "all", "estimator": "placebo_time",
                             "kind": "error", "message": str(err)})
    headline = pd.DataFrame(heads)
    if truth is None and "truth" in headline:
        headline = headline.drop(columns="truth")
    return StudyEstimates(
        headline=headline, primary=cat(prim), aggregates=pd.DataFrame(aggs), att_gt=cat(cells),
        twfe=cat(twfes), dose_response=cat(doses), bacon=cat(bacons),
        problems=pd.DataFrame(problems, columns=["tool", "outcome", "estimator", "kind", "message"]),
        placebo=placebo, figures=figures,
    )


def _primary(data: pd.DataFrame, outcome: str, tools: tuple[str, ...], *,
             truth: pd.DataFrame | None, n_boot: int, seed: int, heads: list[dict],
             prim: list[pd.DataFrame], problems: list[dict], figures: dict[str, object]) -> None:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = primary(data, outcome, n_boot=n_boot, seed=seed, tools=tools)
        problems += [{"tool": "all", "outcome": outcome, "estimator": "imputation",
                      "kind": "warning", "message": str(w.message)} for w in caught]
    except EstimationError as err:
        problems.append({"tool": "all", "outcome": outcome, "estimator": "imputation",
                         "kind": "error", "message": str(err)})
        return
    tidy = res.tidy().assign(outcome=outcome, cluster="plan_id",
                             n_clusters=res.settings["n_clusters"])
    if truth is not None:
        tidy = tidy.merge(primary_truth(res, truth, outcome),
                          on=["tool", "term", "event_time", "cohort"], how="left")
    prim.append(tidy)
    pre = res.pretest.set_index("tool")
    cluster_of = data.groupby("department_id")[CLUSTER].first()  # constant within department
    for row in res.overall.itertuples(index=False):
        rows = res.rows[res.rows["tool"] == row.tool]
        n_cl = int(rows["department_id"].map(cluster_of).nunique())
        p = float(pre.loc[row.tool, "p_value"])
        diag = event_study_diagnostics(res, str(row.tool))
        head = {"tool": row.tool, "outcome": outcome, "subgroup": "all", "estimand": ESTIMAND,
                "estimate": row.estimate, "se": row.se, "lower": row.lower, "upper": row.upper,
                "n_departments": int(row.n_units_treated), "n_department_years": int(row.n_obs_treated),
                "n_treated_clusters": n_cl, "cluster": "plan_id", "pretest_p_value": p,
                "verdict": verdict(estimate=row.estimate, pretest_p_value=p,
                                   n_treated_clusters=n_cl),
                **diag, "mde_80": MDE_FACTOR * row.se}
        if truth is not None:
            sel = (tidy["tool"] == row.tool) & (tidy["term"] == "att")
            head["truth"] = float(tidy.loc[sel, "truth"].iloc[0])
        heads.append(head)
    if outcome == "share_employed":
        for tool in tools:
            figures[f"event_study_primary_{tool}_{outcome}"] = _event_plot(
                tidy[(tidy["tool"] == tool) & (tidy["term"] == "event_time")], tool, outcome)


def _event_plot(dyn: pd.DataFrame, tool: str, outcome: str) -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.axhline(0, color="grey", lw=0.8)
    ax.errorbar(dyn["event_time"], dyn["estimate"], yerr=1.96 * dyn["se"], fmt="o", capsize=3,
                label="estimate, 95% CI")
    if "truth" in dyn:
        ax.plot(dyn["event_time"], dyn["truth"], "x", color="black", label="truth")
    ax.set_xlabel("years since the first year the stock could respond")
    ax.set_ylabel(outcome)
    ax.set_title(f"{outcome}: {tool.replace('_', ' ')} (imputation, both tools, plan clusters)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def persons_of(data: pd.DataFrame, outcome: str) -> str | None:
    """The panel's count of the persons behind ``outcome`` (its base), for the support counts
    of the results (``persons=``); None when the panel lacks that column."""
    from impact.workflow.outputs import person_base

    base = person_base(outcome)
    return base if base in data else None


def _twfe(data: pd.DataFrame, outcome: str, tool: str, key: dict[str, str],
          twfes: list[pd.DataFrame], problems: list[dict]) -> None:
    for treatment in (f"in_force_{tool}", f"exposure_{tool}"):
        try:
            tw = did.twfe(data, outcome, treatment, cluster=CLUSTER,
                          persons=persons_of(data, outcome))
            twfes.append(tw.tidy().assign(**key, treatment=treatment, cluster="plan_id"))
        except EstimationError as err:
            problems.append({**key, "estimator": "twfe", "kind": "error", "message": str(err)})


def _dose(data: pd.DataFrame, outcome: str, tool: str, key: dict[str, str], *,
          truth: pd.DataFrame | None, seed: int, doses: list[pd.DataFrame],
          problems: list[dict]) -> None:
    """Dose response with the agreed share at adoption as the dose (fixed when the plan was agreed;
    the realised intensity responds to vacancies and referral, i.e. to post-treatment events)."""
    dose = f"agreed_share_at_adoption_{tool}"
    sub = data.copy()
    sub["dose__"] = sub[dose].fillna(0.0).where(sub[f"cohort_{tool}"] > 0, 0.0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dr = did.dose_response(sub, outcome, dose="dose__", cohort=f"cohort_{tool}",
                                   n_boot=199, seed=seed, cluster=CLUSTER,
                                   persons=persons_of(sub, outcome))
        problems += [{**key, "estimator": "dose_response", "kind": "warning",
                      "message": str(w.message)} for w in caught]
    except EstimationError as err:
        problems.append({**key, "estimator": "dose_response", "kind": "error",
                         "message": str(err)})
        return
    tidy = dr.tidy().assign(**key, dose_column=dose)
    if truth is not None:
        att_o = float(att_gt_truth(sub, truth, outcome, tool)["simple"])  # type: ignore[arg-type]
        tidy["truth"] = np.where(tidy["term"].astype(str).str.upper() == "ATT^O", att_o, np.nan)
    doses.append(tidy)


def _att_gt(data: pd.DataFrame, outcome: str, tool: str, covariates: list[str] | None,
            key: dict[str, str], *, truth: pd.DataFrame | None, n_boot: int, seed: int,
            aggs: list[dict], cells: list[pd.DataFrame], problems: list[dict],
            figures: dict[str, object] | None) -> None:
    """One att_gt fit with its aggregations appended to the running tables."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = did.att_gt(data, outcome, "department_id", "year", f"cohort_{tool}",
                             covariates=covariates, n_boot=n_boot, seed=seed, unbalanced="drop",
                             cluster=CLUSTER, persons=persons_of(data, outcome))
        problems += [{**key, "estimator": "att_gt", "kind": "warning", "message": str(w.message)}
                     for w in caught]
    except EstimationError as err:
        problems.append({**key, "estimator": "att_gt", "kind": "error", "message": str(err)})
        return
    true = att_gt_truth(data, truth, outcome, tool, covariates=covariates) if truth is not None else {}
    cells.append(res.att_gt.assign(**key, cluster="plan_id"))
    support = ["n_units", "n_persons", "n_units_treated", "n_units_control",
               "n_persons_treated", "n_persons_control", "df_resid"]
    for kind in ("simple", "dynamic", "group"):
        tidy = res.aggregate(kind, na_rm=True).tidy()
        by_truth = true.get(f"{kind}_by", {})
        for r in tidy.to_dict("records"):
            overall = r["term"] == "overall"
            row = {**key, "aggregation": kind,
                   "key": "overall" if overall else str(float(r["key"])),
                   **{c: r[c] for c in ("estimate", "se", "lower", "upper", *support)},
                   "cluster": "plan_id"}
            if kind == "simple":
                row["pretest_p_value"] = res.pretest.p_value if res.pretest else np.nan
            if truth is not None:
                row["truth"] = (true.get(kind, np.nan) if overall
                                else by_truth.get(row["key"], np.nan))
            aggs.append(row)
    if figures is not None and outcome == "share_employed":
        fig = res.aggregate("dynamic", na_rm=True).plot()
        fig.axes[0].set_title(f"{outcome} by years since adoption of {tool.replace('_', ' ')} "
                              "(att_gt, dr, never-treated controls: naive contrast)", fontsize=9)
        figures[f"event_study_{tool}_{outcome}"] = fig
