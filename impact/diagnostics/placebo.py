"""Placebo tests of the study's estimates: in time, in space and on outcomes the tools cannot move.

Every function re-runs an *estimator* on altered data and returns a tidy table with one row per
placebo x tool x outcome::

    placebo, shift, tool, outcome, estimate, se, lower, upper, p_value, inference,
    n_departments, n_department_years, n_perm, note

An estimator is a callable ``(data, outcome) -> result`` whose ``result.overall`` is a DataFrame
with one row per tool (``tool, estimate, se`` and, where it has them, ``lower, upper,
n_units_treated, n_obs_treated``), e.g. an :class:`impact.did.imputation.ImputationResult`. The
default is the study's primary specification (:func:`impact.estimates.primary`: imputation DiD
with both tools at once, strata, baseline covariates, plan-cluster bootstrap);
:func:`att_gt_overall` adapts Callaway-Sant'Anna's ``att_gt`` (one tool). The data are the
study's prepared panel (:func:`impact.estimates.prepare`; prepared here if ``cluster_plan`` is
missing and the default estimator is used).

In time (:func:`placebo_time`)
    Every tool's adoption is moved ``k`` years earlier (``cohort_<tool>`` - k) and every
    department-year that a real tool could have moved (from ``cohort + onset_lag`` of the
    earliest tool of the department on) is dropped, so that only truly untreated years are left.
    The fake adoption then "acts" on the k years before the real one could: under the
    identifying assumption (conditional parallel trends, no anticipation) the estimates are 0
    up to sampling error (interval of the estimator's own inference).

In space (:func:`placebo_space`)
    One tool's cohort column is permuted (the other tools keep their real adoption) and the
    point estimate (``n_boot=0``) is recomputed ``n_perm`` times. The permutation keeps the
    assignment structure: where the tool was agreed per plan (helhedsplan; every department of a
    plan has the same cohort), whole plans are permuted among the plans of the same municipality
    and, separately, the plan-less departments among the plan-less departments of the
    municipality; so a permuted assignment has as many adopting plans per municipality, the same
    adoption years, and every plan's departments still adopt together. (Were departments permuted
    one by one, a plan's departments would be split between adopters and non-adopters, which the
    real assignment never does, and the null distribution would be that of a different design.)
    ``within`` adds strata to the blocks (e.g. ``market_type``); a block's strata must be constant
    within every plan. The permutation p-value is ``(1 + #{|perm| >= |actual|}) / (1 + n_perm)``
    (Fisher's randomisation test with the actual assignment counted once: exact, i.e. never
    below its level, when assignment is random within blocks). A block with one unit keeps its
    assignment in every permutation.

On outcomes (:func:`placebo_outcome`)
    The estimator on outcomes that the letting tools should not move: columns given by the
    caller. A demographic margin that a letting channel cannot select on is the classic one (the
    report's tools target employment, education and ethnicity, not age: e.g. the share of
    residents aged 65 or over; the panel has no such column yet). Beware that an outcome which
    the selected tenants differ on mechanically (the employed are younger, so flexible letting
    that prefers the employed does lower the share aged 65+) is not a placebo.

:func:`placebo` runs all three and stacks them in one table. Only the ``cohort_<tool>`` columns
are changed, so an estimator must read the adoption from them (not from ``in_force_<tool>`` or
``exposure_<tool>``, which keep their real values).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from impact.did._results import DroppedRowsWarning
from impact.errors import EstimationError

__all__ = [
    "COLUMNS",
    "PlaceboFit",
    "att_gt_overall",
    "permuted_cohorts",
    "placebo",
    "placebo_outcome",
    "placebo_space",
    "placebo_time",
    "primary_estimator",
    "truncate_untreated",
]

Estimator = Callable[[pd.DataFrame, str], Any]

COLUMNS = ("placebo", "shift", "tool", "outcome", "estimate", "se", "lower", "upper", "p_value",
           "inference", "n_departments", "n_department_years", "n_perm", "note")
"""Columns of every placebo table (``shift``: years moved earlier, in time only; ``n_perm``: in
space only)."""

_TOOLS = ("flexible_letting", "municipal_referral")
_OUTCOMES = ("share_employed", "share_qualifying_edu", "mean_household_income", "share_non_western")
"""The study's tools and outcomes (``impact.estimates.TOOLS``, ``OUTCOMES``; not imported, to
keep ``import impact.diagnostics`` free of the simulator)."""


@dataclass(frozen=True)
class PlaceboFit:
    """A minimal estimator result: ``overall`` with ``tool, estimate, se, lower, upper,
    n_units_treated, n_obs_treated``."""

    overall: pd.DataFrame


def primary_estimator(*, n_boot: int = 0, seed: int = 0,
                      tools: Sequence[str] = _TOOLS) -> Estimator:
    """The study's primary specification as an estimator ``(data, outcome) -> ImputationResult``.

    Parameters
    ----------
    n_boot
        Plan-cluster bootstrap replications (0 = point estimates only, no standard errors).
    seed
        Seed of the bootstrap.
    tools
        The tools estimated at once.
    """
    from impact.workflow.estimates import primary

    def estimator(data: pd.DataFrame, outcome: str) -> Any:
        return primary(data, outcome, n_boot=n_boot, seed=seed, tools=tuple(tools))

    return estimator


def att_gt_overall(tool: str, *, aggregation: str = "simple",
                   covariates: Sequence[str] | None = None, n_boot: int = 0, seed: int = 0,
                   cluster: str | None = "cluster_plan",
                   unit: str = "department_id", time: str = "year", **kwargs: Any) -> Estimator:
    """Callaway-Sant'Anna ``att_gt`` (one tool, never-treated controls) as an estimator.

    Parameters
    ----------
    tool
        The tool; its cohort column is ``cohort_<tool>`` (first year in force = first treated
        period, as in the study's contrasts).
    aggregation
        Aggregation of ATT(g,t) whose overall effect is reported (``"simple"``, ``"dynamic"``,
        ``"group"``).
    covariates, n_boot, seed, cluster, unit, time, kwargs
        Passed to :func:`impact.did.att_gt` (``n_boot=0``: analytic standard errors;
        ``unbalanced="drop"`` unless given).

    Returns
    -------
    callable
        ``(data, outcome) -> PlaceboFit``.
    """
    from impact import did

    options = {"unbalanced": "drop", **kwargs}

    def estimator(data: pd.DataFrame, outcome: str) -> PlaceboFit:
        res = did.att_gt(data, outcome, unit, time, f"cohort_{tool}",
                         covariates=None if covariates is None else list(covariates),
                         n_boot=n_boot, seed=seed, cluster=cluster, **options)
        o = res.aggregate(aggregation, na_rm=True).overall
        g = pd.to_numeric(data[f"cohort_{tool}"], errors="coerce").fillna(0).to_numpy()
        treated = (g > 0) & (data[time].to_numpy() >= g) & data[outcome].notna().to_numpy()
        return PlaceboFit(pd.DataFrame([{
            "tool": tool, "estimate": o.att, "se": o.se, "lower": float(o.lower),
            "upper": float(o.upper),
            "n_units_treated": int(data.loc[treated, unit].nunique()),
            "n_obs_treated": int(treated.sum())}]))

    return estimator


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _outcomes(outcomes: str | Sequence[str]) -> list[str]:
    return [outcomes] if isinstance(outcomes, str) else list(outcomes)


def _ready(data: pd.DataFrame, estimator: Estimator | None, outcomes: Sequence[str],
           columns: Sequence[str]) -> pd.DataFrame:
    """Check the columns; prepare the panel for the default estimator if it is not yet."""
    if not isinstance(data, pd.DataFrame):
        raise EstimationError(f"placebo: data must be a DataFrame, got {type(data).__name__}")
    missing = [c for c in dict.fromkeys([*outcomes, *columns]) if c not in data.columns]
    if missing:
        raise EstimationError(f"placebo: columns missing from the data: {missing}")
    if estimator is None and "cluster_plan" not in data.columns:
        from impact.workflow.estimates import prepare

        return prepare(data)
    return data


def _fit(estimator: Estimator, data: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The estimator's overall table (``tool, estimate, se, lower, upper, n_...``)."""
    with warnings.catch_warnings():
        # placebo samples drop rows by construction (truncated years, unimputable cells)
        warnings.simplefilter("ignore", DroppedRowsWarning)
        result = estimator(data, outcome)
    overall = getattr(result, "overall", result)
    if not isinstance(overall, pd.DataFrame) or not {"tool", "estimate", "se"} <= set(overall):
        raise EstimationError("placebo: the estimator must return a result whose .overall is a "
                              "DataFrame with columns tool, estimate, se")
    out = overall.copy()
    for col in ("lower", "upper", "n_units_treated", "n_obs_treated"):
        if col not in out:
            out[col] = np.nan
    return out


def _normal_p(estimate: np.ndarray, se: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(np.asarray(estimate, dtype=float) / np.asarray(se, dtype=float))
    return np.where(np.isfinite(z), 2 * stats.norm.sf(z), np.nan)


def _rows(overall: pd.DataFrame, *, placebo: str, outcome: str, inference: str,
          **extra: Any) -> pd.DataFrame:
    est = overall["estimate"].to_numpy(dtype=float)
    se = overall["se"].to_numpy(dtype=float)
    out = pd.DataFrame({
        "placebo": placebo, "tool": overall["tool"].astype(str).to_numpy(), "outcome": outcome,
        "estimate": est, "se": se, "lower": overall["lower"].to_numpy(dtype=float),
        "upper": overall["upper"].to_numpy(dtype=float), "p_value": _normal_p(est, se),
        "inference": inference,
        "n_departments": overall["n_units_treated"].to_numpy(dtype=float),
        "n_department_years": overall["n_obs_treated"].to_numpy(dtype=float)})
    for key, value in extra.items():
        out[key] = value
    return _tidy(out)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in COLUMNS:
        if col not in out:
            out[col] = "" if col == "note" else np.nan
    out["shift"] = out["shift"].astype("Int64")
    out["n_perm"] = out["n_perm"].astype("Int64")
    for col in ("n_departments", "n_department_years"):
        out[col] = pd.to_numeric(out[col]).round().astype("Int64")
    return out[list(COLUMNS)].reset_index(drop=True)


def _failed(tools: Sequence[str], err: Exception, **keys: Any) -> pd.DataFrame:
    return _tidy(pd.DataFrame([{"tool": t, **keys, "note": f"not estimable: {err}"}
                               for t in tools]))


def _positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise EstimationError(f"placebo: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# in time
# --------------------------------------------------------------------------------------------
def truncate_untreated(data: pd.DataFrame, *, tools: Sequence[str] = _TOOLS, onset_lag: int = 1,
                       time: str = "year") -> pd.DataFrame:
    """The department-years no real tool can have moved: ``year < cohort + onset_lag`` of every
    tool of the department (all years of a department without any tool)."""
    t = data[time].to_numpy(dtype=float)
    first = np.full(len(data), np.inf)
    for tool in tools:
        g = pd.to_numeric(data[f"cohort_{tool}"], errors="coerce").fillna(0).to_numpy(dtype=float)
        first = np.minimum(first, np.where(g > 0, g + onset_lag, np.inf))
    return data.loc[t < first]


def placebo_time(
        data: pd.DataFrame, outcomes: str | Sequence[str] = _OUTCOMES, *,
        shifts: Sequence[int] = (2, 3), tools: Sequence[str] = _TOOLS, onset_lag: int = 1,
        estimator: Estimator | None = None, n_boot: int = 199, seed: int = 0,
        time: str = "year") -> pd.DataFrame:
    """Placebo in time: adoption moved ``k`` years earlier on the truly untreated years.

    For each ``k`` in ``shifts``, every tested tool's cohort becomes ``cohort - k`` (never stays
    never) and every department-year from the first year a real tool (any of the study's) could
    have moved the stock on (``cohort + onset_lag``, earliest tool) is dropped
    (:func:`truncate_untreated`); the estimator is re-run. The fake tool "acts" on up to ``k``
    years before the real one could; departments whose fake adoption precedes the panel have no
    untreated year left and drop out. ``att_gt`` needs a balanced panel and drops every
    truncated department, so its time placebo is not estimable (a row with a ``note``).

    Parameters
    ----------
    data
        The study's prepared panel (:func:`impact.estimates.prepare`).
    outcomes
        Outcome column(s).
    shifts
        Years the adoption is moved earlier (integers >= 1; 0 would leave no treated year).
    tools
        Tools whose adoption is moved (and estimated by the default estimator). The data are
        truncated at the real onset of these and of every other tool of the study in the data
        (``cohort_flexible_letting``, ``cohort_municipal_referral``), so that the years left are
        untreated by any tool also when only one tool is tested.
    onset_lag
        Years between a tool's first year in force and the first stock it can move (1: lettings
        of year g house tenants counted at 1 January g + 1).
    estimator
        ``(data, outcome) -> result`` (see the module docstring); default the primary
        specification with ``n_boot`` and ``seed``.
    n_boot, seed
        Bootstrap of the default estimator.
    time
        Period column.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, ``placebo = "time"``, one row per shift x outcome x tool; ``p_value``
        is two-sided normal (``estimate / se``); a shift without a treated observation gives a
        row with NaN and a ``note``.
    """
    outcomes = _outcomes(outcomes)
    shifts = [_positive_int(k, "every shift") for k in shifts]
    onset_lag = _positive_int(onset_lag, "onset_lag", minimum=0)
    cohorts = [f"cohort_{t}" for t in tools]
    data = _ready(data, estimator, outcomes, [*cohorts, time])
    est = estimator or primary_estimator(n_boot=n_boot, seed=seed, tools=tools)
    real_tools = list(dict.fromkeys([*tools, *(t for t in _TOOLS if f"cohort_{t}" in data)]))
    base = truncate_untreated(data, tools=real_tools, onset_lag=onset_lag, time=time).copy()
    real = {c: pd.to_numeric(base[c], errors="coerce").fillna(0).to_numpy(dtype=float)
            for c in cohorts}
    parts = []
    for k in shifts:
        shifted = base.copy()
        for c in cohorts:
            shifted[c] = np.where(real[c] > 0, real[c] - k, 0).astype("int64")
        for outcome in outcomes:
            try:
                ov = _fit(est, shifted, outcome)
            except EstimationError as err:
                parts.append(_failed(tools, err, placebo="time", outcome=outcome, shift=k))
                continue
            parts.append(_rows(ov, placebo="time", outcome=outcome, inference="estimator",
                               shift=k))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# in space
# --------------------------------------------------------------------------------------------
def _constant(dept: pd.DataFrame, group: pd.Series, cols: Sequence[str], what: str) -> None:
    for col in cols:
        n = dept.groupby(group, dropna=True)[col].nunique(dropna=False)
        if (n > 1).any():
            raise EstimationError(
                f"placebo_space: {col!r} varies within {int((n > 1).sum())} {what}(s), e.g. "
                f"{n.index[n > 1][:3].tolist()}; it must be constant within each")


def _assignment_units(data: pd.DataFrame, cohort: str, *, unit: str, plan: str | None,
                      within: Sequence[str], by_plan: bool | None) -> pd.DataFrame:
    """One row per department: ``department`` (index), ``key`` (its assignment unit), ``block``,
    ``cohort``."""
    cols = [cohort, *within] + ([plan] if plan is not None else [])
    dept = data.groupby(unit, sort=True)[cols].first()
    _constant(data, data[unit], cols, "department")
    g = pd.to_numeric(dept[cohort], errors="coerce").fillna(0).to_numpy(dtype=float)
    dept = dept.assign(**{cohort: g})
    has_plan = (dept[plan].notna().to_numpy() if plan is not None
                else np.zeros(len(dept), dtype=bool))
    if by_plan is None:
        by_plan = bool(has_plan.any()) and bool(
            (dept[has_plan].groupby(plan)[cohort].nunique() <= 1).all())
    if by_plan:
        if plan is None:
            raise EstimationError("placebo_space: by_plan=True needs a plan column")
        _constant(dept[has_plan], dept.loc[has_plan, plan], [cohort, *within], "plan")
    else:
        has_plan = np.zeros(len(dept), dtype=bool)
    plan_key = ("plan:" + dept[plan].astype(str)).to_numpy(dtype=object) if plan else ""
    key = np.where(has_plan, plan_key,
                   ("department:" + dept.index.astype(str)).to_numpy(dtype=object))
    block_cols = [dept[c].astype(str).to_numpy() for c in within]
    block = pd.Series(list(zip(*block_cols, np.where(has_plan, "plans", "plan-less"),
                               strict=True)), index=dept.index).astype(str)
    return pd.DataFrame({"key": key, "block": block.to_numpy(), "cohort": g}, index=dept.index)


def permuted_cohorts(data: pd.DataFrame, tool: str, *, n_perm: int, seed: int = 0,
                     unit: str = "department_id", plan: str | None = "plan_id",
                     within: Sequence[str] = ("municipality_id",),
                     by_plan: bool | None = None) -> pd.DataFrame:
    """Permuted adoption years of one tool (see :func:`placebo_space`).

    Returns
    -------
    pandas.DataFrame
        Departments x ``n_perm`` (index: the departments, sorted; columns 0..n_perm-1): the
        cohort of the tool under each permutation (0 = never). Permutation ``r`` uses
        ``numpy.random.default_rng(SeedSequence(seed).spawn(n_perm)[r])``.
        ``.attrs["assignment"]``: ``"plans"`` (whole plans permuted) or ``"departments"``.
    """
    n_perm = _positive_int(n_perm, "n_perm")
    units = _assignment_units(data, f"cohort_{tool}", unit=unit, plan=plan,
                              within=list(within), by_plan=by_plan)
    assign = units.groupby("key", sort=True).agg(block=("block", "first"),
                                                 cohort=("cohort", "first"))
    blocks = [np.flatnonzero(assign["block"].to_numpy() == b)
              for b in np.unique(assign["block"].to_numpy())]
    blocks = [b for b in blocks if b.size > 1]
    cohort = assign["cohort"].to_numpy()
    where = assign.index.get_indexer(units["key"])
    out = np.empty((len(units), n_perm))
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(n_perm)):
        rng = np.random.default_rng(child)
        new = cohort.copy()
        for b in blocks:
            new[b] = cohort[b[rng.permutation(b.size)]]
        out[:, r] = new[where]
    result = pd.DataFrame(out.astype("int64"), index=units.index)
    result.attrs["assignment"] = ("plans" if units["key"].str.startswith("plan:").any()
                                  else "departments")
    return result


def placebo_space(
        data: pd.DataFrame, outcomes: str | Sequence[str] = _OUTCOMES, *,
        tools: Sequence[str] = _TOOLS, n_perm: int = 99, seed: int = 0,
        estimator: Estimator | None = None, unit: str = "department_id",
        plan: str | None = "plan_id", within: Sequence[str] = ("municipality_id",),
        by_plan: bool | None = None) -> pd.DataFrame:
    """Placebo in space: a tool's adoption permuted within municipality; permutation p-value.

    For each tool, its ``cohort_<tool>`` is permuted ``n_perm`` times (:func:`permuted_cohorts`;
    the other tools keep their real adoption) and the estimator re-run; the tool's actual
    estimate is compared with the permutation distribution of its estimate. See the module
    docstring for why whole plans are permuted.

    Parameters
    ----------
    data
        The study's prepared panel (:func:`impact.estimates.prepare`).
    outcomes
        Outcome column(s).
    tools
        Tools tested, one after the other (each with its own permutations: tool ``i`` uses
        ``SeedSequence(seed).spawn(len(tools))[i]``; every outcome uses the same permutations).
        The default estimator estimates every tool of the study at once whichever are tested.
    n_perm
        Permutations per tool.
    seed
        Seed of the permutations.
    estimator
        ``(data, outcome) -> result``; default the primary specification without bootstrap
        (point estimates are all a permutation test needs).
    unit, plan
        Department and plan columns (a missing plan = a plan-less department).
    within
        Columns whose cells are the permutation blocks (default: municipality); e.g.
        ``("municipality_id", "market_type")`` to permute within municipality x housing market.
        Each must be constant within department and within plan.
    by_plan
        Permute whole plans (True), departments (False), or plans where every plan's
        departments share the tool's cohort and departments otherwise (None).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, ``placebo = "space"``, one row per outcome x tool: ``estimate`` the
        actual estimate, ``se`` the SD of the permutation estimates, ``lower, upper`` their 2.5%
        and 97.5% quantiles, ``p_value`` the permutation p-value
        ``(1 + #{|perm| >= |actual|}) / (1 + n_valid)`` over the permutations that gave an
        estimate (``n_perm`` of them); ``inference`` ``"permutation of plans"`` or ``"...of
        departments"``. The permutation estimates are in ``.attrs["permutations"]`` (``tool,
        outcome, permutation, estimate``).
    """
    outcomes = _outcomes(outcomes)
    n_perm = _positive_int(n_perm, "n_perm")
    cols = [f"cohort_{t}" for t in tools] + [unit, *within] + ([plan] if plan else [])
    data = _ready(data, estimator, outcomes, cols)
    est = estimator or primary_estimator(n_boot=0, seed=seed)
    actual = {o: _fit(est, data, o).set_index("tool") for o in outcomes}
    parts, draws = [], []
    for tool, child in zip(tools, np.random.SeedSequence(seed).spawn(len(tools)), strict=True):
        perms = permuted_cohorts(data, tool, n_perm=n_perm,
                                 seed=int(child.generate_state(1)[0]), unit=unit, plan=plan,
                                 within=within, by_plan=by_plan)
        where = perms.index.get_indexer(data[unit])
        values = np.full((len(outcomes), n_perm), np.nan)
        permuted = data.copy()
        for r in range(n_perm):
            permuted[f"cohort_{tool}"] = perms.to_numpy()[where, r]
            for i, outcome in enumerate(outcomes):
                try:
                    ov = _fit(est, permuted, outcome).set_index("tool")
                except EstimationError:
                    continue
                if tool in ov.index:
                    values[i, r] = float(ov.loc[tool, "estimate"])
        for i, outcome in enumerate(outcomes):
            row = actual[outcome].loc[tool] if tool in actual[outcome].index else None
            a = np.nan if row is None else float(row["estimate"])
            v = values[i][np.isfinite(values[i])]
            draws.append(pd.DataFrame({"tool": tool, "outcome": outcome,
                                       "permutation": np.arange(n_perm), "estimate": values[i]}))
            p = ((1 + np.sum(np.abs(v) >= np.abs(a) * (1 - 1e-12))) / (1 + v.size)
                 if np.isfinite(a) and v.size else np.nan)
            parts.append({
                "placebo": "space", "tool": tool, "outcome": outcome, "estimate": a,
                "se": float(np.std(v, ddof=1)) if v.size > 1 else np.nan,
                "lower": float(np.quantile(v, 0.025)) if v.size else np.nan,
                "upper": float(np.quantile(v, 0.975)) if v.size else np.nan,
                "p_value": p, "inference": f"permutation of {perms.attrs['assignment']}",
                "n_departments": np.nan if row is None else row["n_units_treated"],
                "n_department_years": np.nan if row is None else row["n_obs_treated"],
                "n_perm": int(v.size),
                "note": ("" if v.size == n_perm
                         else f"{n_perm - v.size} permutations not estimable")})
    out = _tidy(pd.DataFrame(parts))
    out.attrs["permutations"] = pd.concat(draws, ignore_index=True)
    return out


# --------------------------------------------------------------------------------------------
# on outcomes
# --------------------------------------------------------------------------------------------
def placebo_outcome(data: pd.DataFrame, outcomes: str | Sequence[str], *,
                    estimator: Estimator | None = None, n_boot: int = 199, seed: int = 0,
                    tools: Sequence[str] = _TOOLS) -> pd.DataFrame:
    """Placebo outcomes: the estimator on outcomes the letting tools should not move.

    Parameters
    ----------
    data
        The study's prepared panel (:func:`impact.estimates.prepare`).
    outcomes
        Outcome column(s) chosen by the caller, e.g. the share of residents aged 65 or over (not
        in the panel yet; see the module docstring for what makes a good placebo outcome).
    estimator
        ``(data, outcome) -> result``; default the primary specification.
    n_boot, seed
        Bootstrap of the default estimator.
    tools
        Tools of the default estimator.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, ``placebo = "outcome"``, one row per outcome x tool (two-sided normal
        ``p_value``); empty (with the columns) for no outcomes.
    """
    outcomes = _outcomes(outcomes)
    if not outcomes:
        return _tidy(pd.DataFrame(columns=list(COLUMNS)))
    data = _ready(data, estimator, outcomes, [])
    est = estimator or primary_estimator(n_boot=n_boot, seed=seed, tools=tools)
    parts = []
    for outcome in outcomes:
        try:
            ov = _fit(est, data, outcome)
        except EstimationError as err:
            parts.append(_failed(tools, err, placebo="outcome", outcome=outcome))
            continue
        parts.append(_rows(ov, placebo="outcome", outcome=outcome, inference="estimator"))
    return pd.concat(parts, ignore_index=True)


def placebo(
        data: pd.DataFrame, outcomes: str | Sequence[str] = _OUTCOMES, *,
        placebo_outcomes: Sequence[str] = (), shifts: Sequence[int] = (2, 3),
        n_perm: int = 99, n_boot: int = 199, seed: int = 0, tools: Sequence[str] = _TOOLS,
        estimator: Estimator | None = None, space_estimator: Estimator | None = None,
        within: Sequence[str] = ("municipality_id",)) -> pd.DataFrame:
    """All three placebos in one tidy table (:data:`COLUMNS`).

    Parameters
    ----------
    data
        The study's prepared panel (:func:`impact.estimates.prepare`).
    outcomes
        Outcomes of the time and space placebos.
    placebo_outcomes
        Outcomes the tools should not move (:func:`placebo_outcome`); none by default.
    shifts
        Years moved earlier (:func:`placebo_time`).
    n_perm
        Permutations per tool (:func:`placebo_space`).
    n_boot, seed
        Bootstrap of the default estimator (time and outcome placebos) and seed of everything.
    tools
        The tools.
    estimator
        ``(data, outcome) -> result`` for the time and outcome placebos; default the primary
        specification with ``n_boot``.
    space_estimator
        Estimator of the permutations; default ``estimator`` if given, else the primary
        specification without bootstrap.
    within
        Permutation blocks (:func:`placebo_space`).

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`placebo_time`, :func:`placebo_space` and :func:`placebo_outcome`.
    """
    parts = [placebo_time(data, outcomes, shifts=shifts, tools=tools, estimator=estimator,
                          n_boot=n_boot, seed=seed),
             placebo_space(data, outcomes, tools=tools, n_perm=n_perm, seed=seed,
                           estimator=space_estimator or estimator, within=within)]
    if placebo_outcomes:
        parts.append(placebo_outcome(data, placebo_outcomes, estimator=estimator, n_boot=n_boot,
                                     seed=seed, tools=tools))
    return pd.concat(parts, ignore_index=True)
