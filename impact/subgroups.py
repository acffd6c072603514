"""Effects by housing market and by pre-adoption vulnerability: the primary specification by
subgroup, with a test that the effects are equal.

Each subgroup (a set of departments) gets the primary specification of ``impact run``
(:func:`impact.estimates.primary`: imputation DiD with both tools at once, onset lag 1, strata
market x LBF support, year-specific slopes on the baseline composition, effects separated by
event time x market, plan clusters) run on its departments only, so its comparison group (the
untreated department-years that identify the untreated model) lies inside the subgroup too.
Within a market subgroup the market is constant, so it is dropped as a stratum and as the
``effect_by`` cell; everything else is as in ``primary``.

Subgroups
    ``market_type``: ``waiting_list`` (long waiting lists) vs ``vacancies`` (thin applicant
    pools). ``vulnerability``: terciles of ``baseline_share_employed`` (the department's share
    employed in the panel's first year, before any cohort the estimators use can act) over the
    departments: ``T1_low_employment`` (most vulnerable), ``T2``, ``T3_high_employment``.

Joint bootstrap and the test of equal effects
    The subgroups share clusters (a plan's departments can sit in different vulnerability
    terciles), so their estimates are not independent. Every subgroup, and the pooled sample
    (``subgroup == "all"``), is re-estimated on the *same* cluster bootstrap draws: each draw
    resamples the clusters of the whole sample with replacement (pairs bootstrap, the
    multiplicities as weights, as ``impact.did.imputation`` does), and each subgroup's estimate
    uses the multiplicities of its own clusters. The draws give the joint covariance ``V`` of
    the subgroup ATTs of a tool, and ``W = (C b)' (C V C')^-1 (C b)`` with ``C`` the differences
    from the first subgroup is referred to chi-squared with S - 1 degrees of freedom (the
    Wald test that all S subgroup effects are equal). A draw in which some subgroup has no
    treated department drawn is dropped from ``V`` and counted (``n_boot_used``).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from impact import did
from impact.did._blas import single_blas_thread
from impact.errors import EstimationError
from impact.workflow.config import PrimaryConfig
from impact.workflow.estimates import (
    CLUSTER,
    ESTIMAND,
    OUTCOMES,
    TOOLS,
    primary_options,
    primary_truth,
    verdict,
)

# the module (``impact.did.imputation`` the attribute is the function): its design and estimate
# steps, to re-estimate every subgroup on the same bootstrap draws
imp_mod = importlib.import_module("impact.did.imputation")

__all__ = ["SUBGROUPS", "SubgroupResult", "by_subgroup", "headline", "subgroup_labels"]

SUBGROUPS = ("market_type", "vulnerability")
VULNERABILITY_LABELS = ("T1_low_employment", "T2", "T3_high_employment")


@dataclass(frozen=True)
class SubgroupResult:
    """Primary-specification estimates by subgroup.

    Attributes
    ----------
    estimates
        Tidy: ``subgroup_variable, subgroup`` (``all`` = pooled), ``tool, term`` (``att``,
        ``event_time``, ``cohort``), ``event_time, cohort, estimate, se, lower, upper, n_obs,
        n_units_treated, n_obs_treated, n_departments, n_clusters, cluster, outcome`` and
        ``truth`` when a truth table was given.
    overall
        The ``att`` rows with ``pretest_p_value`` (BJS test of the leads within the subgroup),
        ``n_treated_clusters`` and the headline's ``verdict``
        (:func:`impact.estimates.verdict`).
    tests
        ``tool, subgroup_variable, outcome, n_subgroups, stat, df, p_value, n_boot_used``: the
        Wald test that the tool's ATT is the same in every subgroup.
    draws
        Joint bootstrap draws of the ATTs: one column per ``(subgroup, tool)``.
    """

    estimates: pd.DataFrame
    overall: pd.DataFrame
    tests: pd.DataFrame
    draws: pd.DataFrame


def subgroup_labels(data: pd.DataFrame, subgroup: str) -> pd.Series:
    """The subgroup of every row of a prepared panel (department-level labels).

    ``vulnerability`` is the tercile of ``baseline_share_employed`` over departments (cut at
    its 1/3 and 2/3 quantiles; NaN baseline = no subgroup); any other name is a
    department-constant column of ``data`` (e.g. ``market_type``).
    """
    if subgroup == "vulnerability":
        if "baseline_share_employed" not in data:
            raise EstimationError("by_subgroup: vulnerability needs baseline_share_employed "
                                  "(run impact.estimates.prepare first)")
        dept = data.groupby("department_id")["baseline_share_employed"].first()
        cuts = dept.quantile([1 / 3, 2 / 3]).to_numpy()
        lab = pd.cut(dept, [-np.inf, cuts[0], cuts[1], np.inf], labels=VULNERABILITY_LABELS)
        return data["department_id"].map(lab.astype(object))
    if subgroup not in data:
        raise EstimationError(f"by_subgroup: no column {subgroup!r} in the data")
    n = data.groupby("department_id")[subgroup].nunique(dropna=False)
    if (n > 1).any():
        raise EstimationError(f"by_subgroup: {subgroup!r} varies within departments")
    return data[subgroup].astype(object)


def _options(data: pd.DataFrame, tools: tuple[str, ...], within_market: bool,
             spec: PrimaryConfig | None = None) -> dict:
    """The options of the primary specification (:func:`impact.estimates.primary_options`),
    less the market inside a market."""
    opts = primary_options(data, spec, tools)
    if within_market:
        opts["strata"] = [c for c in opts["strata"] if c != "market_type"]  # type: ignore[union-attr]
        opts["effect_by"] = None if opts["effect_by"] == "market_type" else opts["effect_by"]
    return opts


def _fit(sub: pd.DataFrame, outcome: str, opts: dict) -> tuple[object, object, dict, pd.DataFrame,
                                                                 np.ndarray]:
    """Public fit (point estimates, rows, pre-test) and the private design for the bootstrap."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = did.imputation(sub, outcome, n_boot=0, **opts)
        d, df, _ = imp_mod._design(sub, outcome, cohorts=opts["cohorts"], unit=opts["unit"],
                                   time=opts["time"], onset_lag=opts["onset_lag"],
                                   strata=opts["strata"], covariates=opts["covariates"],
                                   cluster=opts["cluster"], effect_by=opts["effect_by"],
                                   event_bins=5, n_leads=3)
    layout = imp_mod._layout(d, opts["cohorts"])
    est = imp_mod._estimate(d, np.ones(d.y.size), opts["cohorts"], layout)
    return res, d, layout, df, est


def by_subgroup(data: pd.DataFrame, outcome: str, subgroup: str, *, n_boot: int, seed: int,
                truth: pd.DataFrame | None = None, tools: tuple[str, ...] = TOOLS,
                alpha: float = 0.05, spec: PrimaryConfig | None = None) -> SubgroupResult:
    """The primary specification within each subgroup, and a Wald test of equal effects.

    Parameters
    ----------
    data
        Prepared panel (:func:`impact.estimates.prepare`).
    outcome
        Outcome column.
    subgroup
        ``market_type``, ``vulnerability`` or another department-constant column.
    n_boot
        Joint cluster-bootstrap draws (>= 2).
    seed
        Seed of the bootstrap.
    truth
        The simulator's truth table: adds the truth of each subgroup's own estimand
        (:func:`impact.estimates.primary_truth` on the subgroup's department-years).
    tools
        Tools estimated at once.
    alpha
        1 - confidence level.
    spec
        ``[did.primary]`` (default :class:`~impact.workflow.config.PrimaryConfig`): the design
        and the verdict's thresholds.

    Returns
    -------
    SubgroupResult

    Raises
    ------
    EstimationError
        Bad arguments, or a subgroup where the primary specification cannot be estimated.
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 2:
        raise EstimationError(f"by_subgroup: n_boot must be an integer >= 2, got {n_boot!r}")
    missing = [c for c in (CLUSTER, *(f"baseline_{o}" for o in OUTCOMES)) if c not in data]
    if missing:
        raise EstimationError(f"by_subgroup: column(s) {', '.join(missing)} missing: pass the "
                              "panel through impact.estimates.prepare first")
    labels = subgroup_labels(data, subgroup)
    levels = sorted(pd.unique(labels.dropna()))
    if len(levels) < 2:
        raise EstimationError(f"by_subgroup: {subgroup!r} has fewer than two subgroups: {levels}")
    within_market = subgroup == "market_type"
    clusters = pd.Index(sorted(pd.unique(data[CLUSTER].astype(str))))
    spec = spec or PrimaryConfig()
    groups = [("all", data, _options(data, tools, False, spec))]
    groups += [(str(v), data[(labels == v).to_numpy()], _options(data, tools, within_market, spec))
               for v in levels]
    fits = []
    with single_blas_thread():
        for name, sub, opts in groups:
            try:
                res, d, layout, df, est = _fit(sub, outcome, opts)
            except EstimationError as err:
                raise EstimationError(f"by_subgroup: {subgroup}={name}: {err}") from err
            code = clusters.get_indexer(df[CLUSTER].astype(str))
            fits.append((name, sub, opts, res, d, layout, est, code))
    rng = np.random.default_rng(seed)
    g = clusters.size
    draws = [np.empty((int(n_boot), f[6].size)) for f in fits]
    with warnings.catch_warnings(), single_blas_thread():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(int(n_boot)):
            mult = np.bincount(rng.integers(0, g, g), minlength=g).astype(float)
            for k, (_, _, opts, _, d, layout, _, code) in enumerate(fits):
                draws[k][b] = imp_mod._estimate(d, mult[code], opts["cohorts"], layout)
    z = float(stats.norm.ppf(1 - alpha / 2))
    parts, att_draws = [], {}
    for (name, sub, opts, res, _, layout, est, _), dr in zip(fits, draws, strict=True):
        tidy = _tidy(res, layout, opts["cohorts"], est, dr, z)
        if truth is not None:
            tidy = tidy.merge(primary_truth(res, truth, outcome),
                              on=["tool", "term", "event_time", "cohort"], how="left")
        tidy = tidy.assign(subgroup_variable=subgroup, subgroup=name, outcome=outcome,
                           n_departments=int(sub["department_id"].nunique()),
                           n_clusters=int(res.settings["n_clusters"]), cluster="plan_id")
        pre = res.pretest.set_index("tool")["p_value"]
        tidy["pretest_p_value"] = np.where(tidy["term"] == "att", tidy["tool"].map(pre), np.nan)
        dept_cluster = sub.groupby("department_id")[CLUSTER].first()
        rows = res.rows  # type: ignore[attr-defined]
        n_cl = rows.assign(c=rows["department_id"].map(dept_cluster)).groupby("tool")["c"].nunique()
        tidy["n_treated_clusters"] = np.where(tidy["term"] == "att", tidy["tool"].map(n_cl),
                                              np.nan)
        parts.append(tidy)
        for k, c in enumerate(opts["cohorts"]):
            att_draws[(name, c.removeprefix("cohort_"))] = dr[:, _offsets(layout, opts["cohorts"])[k]]
    estimates = pd.concat(parts, ignore_index=True)
    front = ["subgroup_variable", "subgroup", "outcome", "tool", "term", "event_time", "cohort",
             "estimate", "se", "lower", "upper"]
    estimates = estimates[front + [c for c in estimates.columns if c not in front]]
    draws_frame = pd.DataFrame({f"{s}:{t}": v for (s, t), v in att_draws.items()})
    tests = [_wald(estimates, att_draws, [str(v) for v in levels], tool, subgroup, outcome)
             for tool in tools]
    overall = estimates[estimates["term"] == "att"].drop(
        columns=["term", "event_time", "cohort"]).reset_index(drop=True)
    overall["n_treated_clusters"] = overall["n_treated_clusters"].astype(int)
    overall["verdict"] = [verdict(estimate=r.estimate, pretest_p_value=r.pretest_p_value,
                                  n_treated_clusters=r.n_treated_clusters,
                                  min_treated_clusters=spec.min_treated_clusters,
                                  pretest_alpha=spec.pretest_alpha)
                          for r in overall.itertuples(index=False)]
    return SubgroupResult(estimates=estimates, overall=overall, tests=pd.DataFrame(tests),
                          draws=draws_frame)


def _offsets(layout: dict, cohorts: list[str]) -> list[int]:
    """Position of each tool's overall estimate in the estimate vector (per tool: overall,
    event times, cohorts, leads)."""
    out, i = [], 0
    for c in cohorts:
        out.append(i)
        i += (1 + layout[c]["event_time"].size + layout[c]["cohort"].size
              + layout[c].get("lead", np.zeros(0)).size)
    return out


def _tidy(res: object, layout: dict, cohorts: list[str], est: np.ndarray, dr: np.ndarray,
          z: float) -> pd.DataFrame:
    """``res.tidy()`` with the joint-bootstrap SEs (the estimate vector mapped to its rows
    through ``res.draw_keys``, which describes the estimate vector column by column)."""
    tidy = res.tidy()  # type: ignore[attr-defined]
    keys = res.draw_keys.reset_index(drop=True)  # type: ignore[attr-defined]
    index = {(r.term, r.tool, None if pd.isna(r.event_time) else int(r.event_time),
              None if pd.isna(r.cohort) else int(r.cohort)): i
             for i, r in enumerate(keys.itertuples(index=False))}
    pos = np.array([index.get((r.term, r.tool,
                               None if pd.isna(getattr(r, "event_time", np.nan))
                               else int(r.event_time),
                               None if pd.isna(getattr(r, "cohort", np.nan)) else int(r.cohort)),
                              -1)
                    for r in tidy.itertuples(index=False)], dtype=np.int64)
    if (pos < 0).any() or not np.allclose(tidy["estimate"].to_numpy(dtype=float), est[pos],
                                          rtol=1e-9, atol=1e-9, equal_nan=True):
        raise EstimationError("by_subgroup: the imputation estimator's internal layout changed; "
                              "impact.subgroups must follow impact.did.imputation")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(dr, axis=0, ddof=1)[pos]
    tidy["se"] = se
    tidy["lower"] = tidy["estimate"] - z * se
    tidy["upper"] = tidy["estimate"] + z * se
    return tidy


def _wald(estimates: pd.DataFrame, att_draws: dict, levels: list[str], tool: str,
          subgroup: str, outcome: str) -> dict[str, object]:
    att = estimates[(estimates["term"] == "att") & (estimates["tool"] == tool)].set_index(
        "subgroup")["estimate"]
    b = att.reindex(levels).to_numpy(dtype=float)
    dr = np.column_stack([att_draws[(s, tool)] for s in levels])
    ok = np.isfinite(dr).all(axis=1)
    row: dict[str, object] = {"tool": tool, "subgroup_variable": subgroup, "outcome": outcome,
                              "n_subgroups": len(levels), "df": len(levels) - 1,
                              "n_boot_used": int(ok.sum())}
    if not np.isfinite(b).all() or ok.sum() < len(levels) + 1:
        return row | {"stat": np.nan, "p_value": np.nan}
    c = np.column_stack([-np.ones(len(levels) - 1), np.eye(len(levels) - 1)])
    v = np.cov(dr[ok], rowvar=False, ddof=1)
    diff = c @ b
    try:
        stat = float(diff @ np.linalg.solve(c @ v @ c.T, diff))
    except np.linalg.LinAlgError:
        return row | {"stat": np.nan, "p_value": np.nan}
    return row | {"stat": stat, "p_value": float(stats.chi2.sf(stat, len(levels) - 1))}


def headline(data: pd.DataFrame, *, n_boot: int, seed: int, truth: pd.DataFrame | None = None,
             outcomes: tuple[str, ...] = OUTCOMES, subgroups: tuple[str, ...] = SUBGROUPS,
             tools: tuple[str, ...] = TOOLS, spec: PrimaryConfig | None = None,
             alpha: float = 0.05) -> pd.DataFrame:
    """Headline rows by subgroup: one per subgroup variable x subgroup x tool x outcome.

    Columns as ``tables/headline.csv`` (``tool, outcome, estimand, estimate, se, lower, upper,
    n_departments`` (treated), ``n_department_years, n_treated_clusters, cluster,
    pretest_p_value, verdict``, ``truth`` when simulated) plus ``subgroup_variable``,
    ``n_departments_in_subgroup``, ``n_clusters_in_subgroup``, ``subgroup`` (``all`` = pooled; its
    estimates equal the primary's, its SEs come from the joint bootstrap) and
    ``equal_effects_p_value`` (the Wald test of the subgroup variable, same on every row of it).
    ``spec`` and ``alpha`` as in :func:`by_subgroup`.
    """
    out = []
    for subgroup in subgroups:
        for outcome in outcomes:
            res = by_subgroup(data, outcome, subgroup, n_boot=n_boot, seed=seed, truth=truth,
                              tools=tools, spec=spec, alpha=alpha)
            o = res.overall.rename(columns={"n_departments": "n_departments_in_subgroup",
                                            "n_clusters": "n_clusters_in_subgroup"}).rename(
                columns={"n_units_treated": "n_departments",
                         "n_obs_treated": "n_department_years"})
            p = res.tests.set_index("tool")["p_value"]
            out.append(o.assign(estimand=ESTIMAND, equal_effects_p_value=o["tool"].map(p)))
    cols = ["subgroup_variable", "subgroup", "tool", "outcome", "estimand", "estimate", "se",
            "lower", "upper", "n_departments", "n_department_years", "n_treated_clusters",
            "n_departments_in_subgroup", "n_clusters_in_subgroup", "cluster", "pretest_p_value",
            "verdict",
            "equal_effects_p_value"] + (["truth"] if truth is not None else [])
    return pd.concat(out, ignore_index=True)[cols]
