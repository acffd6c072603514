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
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from impact import did
from impact.did.imputation import ImputationResult
from impact.errors import EstimationError
from impact.simulate.truth import effect_column
from impact.workflow.config import OUTCOMES, TOOLS, PrimaryConfig, StudyConfig

CLUSTER = "cluster_plan"
"""Cluster column the study adds: ``[study].cluster`` (``plan_id``), or the department itself
where it has none."""
MIN_TREATED_CLUSTERS = PrimaryConfig().min_treated_clusters
"""Fewer treated clusters than this and the headline says ``too few clusters``
(``[did.primary].min_treated_clusters``)."""
PRETEST_ALPHA = PrimaryConfig().pretest_alpha
#: The parts of :func:`estimate_all` (``impact run`` runs them as the DiD, intensity and
#: diagnostics steps).
PARTS = ("primary", "att_gt", "twfe", "bacon", "dose_response", "placebo")


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


def prepare(panel: pd.DataFrame, *, cluster: str = "plan_id",
            baselines: Collection[str] = OUTCOMES) -> pd.DataFrame:
    """The panel with the study's derived columns.

    Adds ``cluster_plan`` (the ``cluster`` column's value, by default the plan, or the
    department's own cluster where it has none), ``baseline_<measure>`` for each of
    ``baselines`` (the department's stock measures in the panel's first year: pre-adoption for
    every cohort the estimators use), ``waiting_list_market`` and ``supported_department`` (0/1),
    and ``exposure_<tool>`` filled with 0 where missing.
    """
    data = panel.copy()
    plan = data[cluster]
    data[CLUSTER] = np.where(plan.isna(), "department:" + data["department_id"].astype(str),
                             cluster.removesuffix("_id") + ":" + plan.astype(str))
    first = data[data["year"] == data["year"].min()].set_index("department_id")
    for outcome in baselines:
        data[f"baseline_{outcome}"] = data["department_id"].map(first[outcome])
    if "market_type" in data and data["market_type"].notna().all():
        data["waiting_list_market"] = (data["market_type"] == "waiting_list").astype(float)
    data["supported_department"] = data["supported"].astype(float)
    for tool in TOOLS:
        if f"exposure_{tool}" in data:
            data[f"exposure_{tool}"] = data[f"exposure_{tool}"].fillna(0.0)
    return data


def primary_options(data: pd.DataFrame, spec: PrimaryConfig | None = None,
                    tools: tuple[str, ...] = TOOLS) -> dict[str, object]:
    """The options of :func:`impact.did.imputation` behind the primary specification.

    From ``spec`` (``[did.primary]``, default :class:`~impact.workflow.config.PrimaryConfig`): a
    stratum or ``effect_by`` column that is absent or has missing values is left out with a
    warning (e.g. ``market_type`` on registers without it).
    """
    spec = spec or PrimaryConfig()

    def usable(column: str) -> bool:
        ok = column in data and bool(data[column].notna().all())
        if not ok:
            warnings.warn(f"primary specification: {column!r} is missing or incomplete in the "
                          "panel and is left out of the design", UserWarning, stacklevel=3)
        return ok

    return {"cohorts": [f"cohort_{t}" for t in tools], "unit": "department_id", "time": "year",
            "onset_lag": spec.onset_lag, "strata": [c for c in spec.strata if usable(c)],
            "covariates": [f"baseline_{m}" for m in spec.baselines],
            "effect_by": spec.effect_by if spec.effect_by and usable(spec.effect_by) else None,
            "cluster": CLUSTER}


def primary(data: pd.DataFrame, outcome: str, *, n_boot: int, seed: int,
            tools: tuple[str, ...] = TOOLS, spec: PrimaryConfig | None = None,
            alpha: float = 0.05) -> ImputationResult:
    """The primary specification for one outcome (every tool at once); see the module docstring.

    ``spec`` is ``[did.primary]`` (default :class:`~impact.workflow.config.PrimaryConfig`).
    """
    return did.imputation(data, outcome, **primary_options(data, spec, tools),  # type: ignore[arg-type]
                          n_boot=n_boot, seed=seed, alpha=alpha,
                          persons=persons_of(data, outcome))


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


def verdict(*, estimate: float, pretest_p_value: float, n_treated_clusters: int,
            min_treated_clusters: int = MIN_TREATED_CLUSTERS,
            pretest_alpha: float = PRETEST_ALPHA) -> str:
    """A word a reader can act on: ``credible``, ``pre-trends rejected``, ``too few clusters``,
    ``not estimable`` (thresholds: ``[did.primary]``)."""
    if not np.isfinite(estimate):
        return "not estimable"
    if n_treated_clusters < min_treated_clusters:
        return "too few clusters"
    if np.isfinite(pretest_p_value) and pretest_p_value < pretest_alpha:
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


def estimate_all(panel: pd.DataFrame, config: StudyConfig | None = None, *,
                 truth: pd.DataFrame | None = None, parts: Collection[str] = PARTS
                 ) -> StudyEstimates:
    """Run the study's estimators with the choices of ``config``.

    Parameters
    ----------
    panel
        ``Panel.frame`` from :func:`impact.panel.build`.
    config
        The study configuration (default :class:`~impact.workflow.config.StudyConfig`): tools,
        outcomes, covariates, cluster and level from ``[study]``, each estimator's options from
        its ``[did.*]`` table, the bootstrap sizes and seed from ``[run]``.
    truth
        The simulator's truth table (adds ``truth`` columns).
    parts
        Which of :data:`PARTS` to run: ``primary`` (the headline), the contrasts ``att_gt``,
        ``twfe``, ``bacon``, ``dose_response``, and ``placebo`` (placebo in time of the primary
        specification, :func:`impact.diagnostics.placebo_time`). The tables of parts not run
        are empty.

    Returns
    -------
    StudyEstimates
        An estimator that cannot run on the data is listed in ``problems`` with its message, never
        silently skipped.
    """
    cfg = config or StudyConfig()
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise EstimationError(f"estimate_all: unknown part(s) {unknown}; choose from {PARTS}")
    study, d, seed = cfg.study, cfg.did, cfg.seed
    tools, outcomes = tuple(study.tools), tuple(study.outcomes)
    uses_primary = bool({"primary", "placebo"} & set(parts))
    data = prepare(panel, cluster=study.cluster,
                   baselines=d.primary.baselines if uses_primary else OUTCOMES)
    heads, prim, aggs, cells, twfes, doses, bacons, problems = [], [], [], [], [], [], [], []
    figures: dict[str, object] = {}
    if "primary" in parts:
        for outcome in outcomes:
            _primary(data, outcome, tools, truth=truth, config=cfg, heads=heads, prim=prim,
                     problems=problems, figures=figures)
    specs: list[tuple[str, list[str] | None]] = [("none", None)]
    if "att_gt" in parts and study.covariates:
        absent = [c for c in study.covariates if c not in data]
        if absent:
            problems.append({"tool": "all", "outcome": "all", "estimator": "att_gt",
                             "kind": "not run",
                             "message": f"conditional specification: {', '.join(absent)} not in "
                                        "the prepared panel"})
        else:
            specs.append(("+".join(study.covariates), list(study.covariates)))
    for tool in tools:
        for outcome in outcomes:
            key = {"tool": tool, "outcome": outcome}
            if "att_gt" in parts:
                for spec_name, covariates in specs:
                    _att_gt(data, outcome, tool, covariates, {**key, "covariates": spec_name},
                            truth=truth, config=cfg, aggs=aggs, cells=cells, problems=problems,
                            figures=figures if spec_name == "none" else None)
            if "twfe" in parts:
                _twfe(data, outcome, tool, key, twfes, problems, config=cfg)
            if "dose_response" in parts and tool in d.dose_response.tools:
                _dose(data, outcome, tool, key, truth=truth, config=cfg, doses=doses,
                      problems=problems)
        if "bacon" in parts:
            for outcome in d.bacon.outcomes:
                try:
                    bacons.append(did.bacon(data, outcome, f"in_force_{tool}",
                                              persons=persons_of(data, outcome)).tidy()
                                  .assign(tool=tool, outcome=outcome))
                except EstimationError as err:
                    problems.append({"tool": tool, "outcome": outcome, "estimator": "bacon",
                                     "kind": "error", "message": str(err)})

    def cat(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    placebo = pd.DataFrame()
    if "placebo" in parts and d.primary.placebo_shifts:
        from impact.diagnostics import placebo_time

        def estimator(sub: pd.DataFrame, outcome: str) -> ImputationResult:
            return primary(sub, outcome, n_boot=cfg.primary_boot, seed=seed, tools=tools,
                           spec=d.primary, alpha=study.alpha)

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                placebo = placebo_time(data, list(outcomes), shifts=d.primary.placebo_shifts,
                                       tools=tools, onset_lag=d.primary.onset_lag,
                                       estimator=estimator, n_boot=cfg.primary_boot, seed=seed)
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
             truth: pd.DataFrame | None, config: StudyConfig, heads: list[dict],
             prim: list[pd.DataFrame], problems: list[dict], figures: dict[str, object]) -> None:
    spec, cluster = config.did.primary, config.study.cluster
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = primary(data, outcome, n_boot=config.primary_boot, seed=config.seed,
                          tools=tools, spec=spec, alpha=config.study.alpha)
        problems += [{"tool": "all", "outcome": outcome, "estimator": "imputation",
                      "kind": "warning", "message": str(w.message)} for w in caught]
    except EstimationError as err:
        problems.append({"tool": "all", "outcome": outcome, "estimator": "imputation",
                         "kind": "error", "message": str(err)})
        return
    tidy = res.tidy().assign(outcome=outcome, cluster=cluster,
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
                "n_treated_clusters": n_cl, "cluster": cluster, "pretest_p_value": p,
                "verdict": verdict(estimate=row.estimate, pretest_p_value=p,
                                   n_treated_clusters=n_cl,
                                   min_treated_clusters=spec.min_treated_clusters,
                                   pretest_alpha=spec.pretest_alpha),
                **diag, "mde_80": MDE_FACTOR * row.se}
        if truth is not None:
            sel = (tidy["tool"] == row.tool) & (tidy["term"] == "att")
            head["truth"] = float(tidy.loc[sel, "truth"].iloc[0])
        heads.append(head)
    if outcome in config.study.event_study_figures:
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
          twfes: list[pd.DataFrame], problems: list[dict], *, config: StudyConfig) -> None:
    for treatment in (f"{t}_{tool}" for t in config.did.twfe.treatments):
        try:
            tw = did.twfe(data, outcome, treatment, cluster=CLUSTER, alpha=config.study.alpha,
                          persons=persons_of(data, outcome))
            twfes.append(tw.tidy().assign(**key, treatment=treatment,
                                          cluster=config.study.cluster))
        except EstimationError as err:
            problems.append({**key, "estimator": "twfe", "kind": "error", "message": str(err)})


def _dose(data: pd.DataFrame, outcome: str, tool: str, key: dict[str, str], *,
          truth: pd.DataFrame | None, config: StudyConfig, doses: list[pd.DataFrame],
          problems: list[dict]) -> None:
    """Dose response (``[did.dose_response]``); the default dose, the agreed share at adoption, is
    fixed when the plan was agreed (the realised intensity responds to vacancies and referral,
    i.e. to post-treatment events)."""
    opts = config.did.dose_response
    dose = f"{opts.dose}_{tool}"
    if dose not in data:
        problems.append({**key, "estimator": "dose_response", "kind": "error",
                         "message": f"dose column {dose!r} not in the panel"})
        return
    sub = data.copy()
    sub["dose__"] = sub[dose].fillna(0.0).where(sub[f"cohort_{tool}"] > 0, 0.0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dr = did.dose_response(sub, outcome, dose="dose__", cohort=f"cohort_{tool}",
                                   method=opts.method, degree=opts.degree,
                                   num_knots=opts.num_knots, bins=opts.bins,
                                   control=opts.control, n_boot=opts.n_boot, seed=config.seed,
                                   alpha=config.study.alpha, cluster=CLUSTER,
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
            key: dict[str, str], *, truth: pd.DataFrame | None, config: StudyConfig,
            aggs: list[dict], cells: list[pd.DataFrame], problems: list[dict],
            figures: dict[str, object] | None) -> None:
    """One att_gt fit (``[did.att_gt]``) with its aggregations appended to the running tables."""
    o, cluster = config.did.att_gt, config.study.cluster
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = did.att_gt(data, outcome, "department_id", "year", f"cohort_{tool}",
                             covariates=covariates, control=o.control,  # type: ignore[arg-type]
                             method=o.method, anticipation=o.anticipation,  # type: ignore[arg-type]
                             base_period=o.base_period,  # type: ignore[arg-type]
                             n_boot=config.n_boot, seed=config.seed, alpha=config.study.alpha,
                             cband=o.cband, unbalanced=o.unbalanced,  # type: ignore[arg-type]
                             cluster=CLUSTER, persons=persons_of(data, outcome))
        problems += [{**key, "estimator": "att_gt", "kind": "warning", "message": str(w.message)}
                     for w in caught]
    except EstimationError as err:
        problems.append({**key, "estimator": "att_gt", "kind": "error", "message": str(err)})
        return
    true = att_gt_truth(data, truth, outcome, tool, covariates=covariates) if truth is not None else {}
    cells.append(res.att_gt.assign(**key, cluster=cluster))
    support = ["n_units", "n_persons", "n_units_treated", "n_units_control",
               "n_persons_treated", "n_persons_control", "df_resid"]
    for kind in o.aggregations:
        tidy = res.aggregate(kind, na_rm=True).tidy()
        by_truth = true.get(f"{kind}_by", {})
        for r in tidy.to_dict("records"):
            overall = r["term"] == "overall"
            row = {**key, "aggregation": kind,
                   "key": "overall" if overall else str(float(r["key"])),
                   **{c: r[c] for c in ("estimate", "se", "lower", "upper", *support)},
                   "cluster": cluster}
            if kind == "simple":
                row["pretest_p_value"] = res.pretest.p_value if res.pretest else np.nan
            if truth is not None:
                row["truth"] = (true.get(kind, np.nan) if overall
                                else by_truth.get(row["key"], np.nan))
            aggs.append(row)
    if figures is not None and outcome in config.study.event_study_figures:
        fig = res.aggregate("dynamic", na_rm=True).plot()
        controls = o.control.replace("_", "-")
        fig.axes[0].set_title(f"{outcome} by years since adoption of {tool.replace('_', ' ')} "
                              f"(att_gt, {o.method}, {controls}-treated controls: naive "
                              "contrast)", fontsize=9)
        figures[f"event_study_{tool}_{outcome}"] = fig


def treatment_tool(treatment: str) -> str:
    """The tool of a ``<kind>_<tool>`` treatment column (``exposure_flexible_letting``,
    ``in_force_municipal_referral``), or ``""`` when it names none."""
    return next((t for t in TOOLS if treatment.endswith(f"_{t}")), "")


def bayes_inputs(panel: pd.DataFrame, config: StudyConfig
                 ) -> tuple[pd.DataFrame, dict[str, object], list[dict[str, object]]]:
    """The data and the :func:`impact.bayes.hierarchical` options of ``[bayes]``.

    The department-years with the outcome's base (residents 18-64 in the labour force for the
    shares of the labour force), the exposure capped at 1 (a dwelling let twice), and, with
    ``[bayes].untreated = "primary"``, the primary DiD's untreated model: year effects per
    ``[did.primary].strata`` cell, year slopes of the ``baseline_<measure>`` columns and the other
    tools' exposures as controls. Every row left out and every value capped is a problem row
    (``step = "bayes"``), never silent.

    Returns
    -------
    tuple
        The data, the keyword options (model and sampling, without ``seed``) and the problems.
    """
    b = config.bayes_model
    problems: list[dict[str, object]] = []
    key = {"step": "bayes", "tool": "", "outcome": b.outcome, "estimator": "hierarchical"}
    frame = prepare(panel, baselines=config.did.primary.baselines)
    base = "n_labour_force_18_64" if b.outcome in ("share_employed", "share_qualifying_edu") \
        else None
    data = frame[frame[base] > 0].copy() if base else frame[frame[b.outcome].notna()].copy()
    dropped = len(frame) - len(data)
    if dropped:
        problems.append({**key, "kind": "dropped rows",
                         "message": f"{dropped} department-years without {b.outcome} left out"})
    treatments = [b.treatment]
    options: dict[str, object] = {}
    if b.untreated == "primary":
        spec = primary_options(data, config.did.primary, config.study.tools)
        tool = treatment_tool(b.treatment)
        kind = b.treatment.removesuffix(f"_{tool}") if tool else ""
        controls = [f"{kind}_{t}" for t in config.study.tools
                    if tool and t != tool and f"{kind}_{t}" in data]
        options.update(time_by=spec["strata"], covariates=spec["covariates"], controls=controls)
        treatments += controls
    for col in treatments:
        if col.startswith("exposure_"):
            # a treatment in [0, 1]: more lettings through the tool than dwellings (a dwelling
            # let twice) counts as fully exposed
            over = int((data[col] > 1).sum())
            if over:
                problems.append({**key, "kind": "capped",
                                 "message": f"{over} department-years with {col} above 1 "
                                            "capped at 1"})
            data[col] = data[col].clip(upper=1.0)
        data[col] = data[col].fillna(0.0)
    tool = treatment_tool(b.treatment)
    if b.effect_profile and tool:
        # years since adoption of the treatment's tool, null for departments that never adopt
        cohort = data[f"cohort_{tool}"]
        data[f"years_since_{tool}"] = (data["year"] - cohort).where(cohort > 0)
        options["effect_profile"] = f"years_since_{tool}"
    weights = persons_of(data, b.outcome) if b.weighted and b.likelihood == "normal" else None
    options.update(likelihood=b.likelihood, trials=b.trials or None, draws=b.draws, tune=b.tune,
                   chains=b.chains, threshold=b.threshold, target_accept=b.target_accept,
                   sampler=b.sampler, persons=persons_of(data, b.outcome),
                   effect_by=b.effect_by, errors=b.errors if b.likelihood == "normal" else "iid",
                   effect_mean_by=b.effect_mean_by if b.effect_mean_by not in ("", b.effect_by)
                   else None,
                   unit_effects=b.unit_effects, weights=weights)
    return data, options, problems
