"""Callaway & Sant'Anna (2021) group-time average treatment effects, at parity with R's ``did``.

:func:`att_gt` estimates ATT(g,t) for every treated cohort ``g`` (first period of treatment; 0,
NaN or inf = never treated) and period ``t`` from a balanced panel, by a 2x2 DiD per cell (doubly
robust, IPW or outcome regression, see :mod:`impact.did.callaway_santanna._estimators`). Inference uses the
influence functions: analytic standard errors (``n_boot=0``) or the multiplier bootstrap with
Rademacher weights and sup-t uniform bands (``n_boot>0``), optionally clustered on a unit-level
variable (e.g. ``plan_id`` or ``municipality_id`` for department-level panels; a unit with a
missing value is its own cluster).
:meth:`AttGtResult.aggregate` forms the simple, event-study (dynamic), cohort (group) and calendar
summaries (the dynamic one with the event-study interface ``event_time``, ``estimate``, ``se``,
``vcov()``, ``reference_period``); :attr:`AttGtResult.pretest` is the Wald pre-test of parallel
trends.

Checked against published R ``did`` 2.x output on ``mpdta`` (see ``tests/reference/``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from impact.did._blas import single_blas_thread
from impact.did.callaway_santanna._bootstrap import analytic_se, analytic_vcov, multiplier_bootstrap
from impact.did.callaway_santanna._cells import estimate_cells
from impact.did.callaway_santanna._data import prepare_panel
from impact.did.callaway_santanna._results import (
    AggregateResult,
    AttGtResult,
    OverallEffect,
    PreTest,
    SeedLike,
    _check_choice,
    _critical_value,
    _entropy,
    _rng,
)
from impact.errors import EstimationError, EstimationWarning
from impact.results import persons_column

__all__ = ["AggregateResult", "AttGtResult", "OverallEffect", "PreTest", "att_gt"]

FloatArray = NDArray[np.float64]


def _pretest(
    att: FloatArray,
    cohort: FloatArray,
    time: FloatArray,
    vcov_n: FloatArray,
    se: FloatArray,
    n: int,
    n_treated: FloatArray | None = None,
) -> PreTest | None:
    pre = np.flatnonzero((cohort > time) & np.isfinite(se))
    if pre.size == 0:
        return None
    v = vcov_n[np.ix_(pre, pre)]
    if not np.all(np.isfinite(v)) or 1.0 / np.linalg.cond(v, 1) <= np.finfo(float).eps:
        return None
    b = att[pre]
    stat = float(n * b @ np.linalg.solve(v, b))
    # A cohort with no more treated units than pre-period cells has a (near) singular covariance
    # block estimated from a handful of units: R's statistic is then unreliable. Say so.
    small = [
        int(g) for g in np.unique(cohort[pre])
        if n_treated is not None
        and np.nanmax(n_treated[pre][cohort[pre] == g]) <= np.count_nonzero(cohort[pre] == g)
    ]
    if small:
        warnings.warn(
            f"att_gt pre-test: cohort(s) {small} have no more treated units than pre-period cells; "
            "their covariance block is nearly singular and can inflate the Wald statistic. "
            "Look at the pre-period ATT(g,t) themselves, or drop those cohorts.",
            EstimationWarning, stacklevel=3)
    return PreTest(stat=stat, df=int(pre.size), p_value=float(stats.chi2.sf(stat, pre.size)))


def att_gt(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    *,
    covariates: str | Sequence[str] | None = None,
    control: Literal["never", "not_yet"] = "never",
    method: Literal["dr", "ipw", "reg"] = "dr",
    anticipation: int = 0,
    base_period: Literal["varying", "universal"] = "varying",
    n_boot: int = 999,
    cluster: str | None = None,
    alpha: float = 0.05,
    seed: SeedLike = None,
    weights: str | None = None,
    cband: bool = True,
    unbalanced: Literal["error", "drop"] = "error",
    persons: str | None = None,
) -> AttGtResult:
    """Callaway & Sant'Anna (2021) group-time average treatment effects ATT(g,t).

    Parameters
    ----------
    data
        Long panel, one row per unit and period.
    outcome, unit, time, cohort
        Column names; ``cohort`` is the first treated period (0, NaN or inf = never treated),
        e.g. ``cohort_flexible_letting`` of the department panel.
    covariates
        Pre-treatment covariates for conditional parallel trends (values of the earlier period of
        each 2x2 comparison are used, as in R).
    control
        Comparison units: ``"never"`` treated, or ``"not_yet"`` treated by ``t`` (+ anticipation).
    method
        ``"dr"`` doubly robust (R's default, ``DRDID::drdid_panel``), ``"ipw"`` normalised inverse
        probability weighting, ``"reg"`` outcome regression.
    anticipation
        Periods before ``g`` in which units may already react.
    base_period
        ``"varying"`` (pre-treatment cells compare ``t`` with ``t - 1``) or ``"universal"``
        (all cells compare with ``g - anticipation - 1``, whose cell is normalised to 0).
    n_boot
        Multiplier-bootstrap draws; 0 gives analytic (influence-function) standard errors.
    cluster
        Unit-level column to cluster on (constant within unit), e.g. ``"plan_id"``: the level at
        which the tools are assigned. A missing value (a department without a plan) makes that
        unit its own cluster, for the analytic standard errors and for the bootstrap (one
        multiplier per cluster). ``None``: each unit is its own cluster. The clustering is
        recorded in ``settings["cluster_variable"]`` (the column, or ``unit`` when None) and
        ``settings["n_clusters"]``, and in the ``cluster`` and ``n_clusters`` columns of
        :meth:`AttGtResult.tidy` and :meth:`AggregateResult.tidy`.
    alpha
        1 - confidence level.
    seed
        Seed (int, SeedSequence or Generator) for the bootstrap.
    weights
        Unit-level sampling weights column (constant within unit).
    cband
        With ``n_boot > 0``, use sup-t uniform bands for the ATT(g,t) (else pointwise).
    unbalanced
        ``"error"`` (default) refuses units missing in some periods, naming them; ``"drop"`` drops
        them with a warning (R's behaviour).
    persons
        Optional column with the number of persons behind each unit-period (e.g.
        ``n_residents``, or the outcome's base): gives the ``n_persons`` support columns of
        :meth:`AttGtResult.tidy` and :meth:`AggregateResult.tidy` (a missing count counts as 0).

    Returns
    -------
    AttGtResult

    Raises
    ------
    impact.EstimationError
        For unusable input (see :func:`impact.did.callaway_santanna._data.prepare_panel`) or settings.
    """
    _check_choice("control", control, ("never", "not_yet"))
    _check_choice("method", method, ("dr", "ipw", "reg"))
    _check_choice("base_period", base_period, ("varying", "universal"))
    _check_choice("unbalanced", unbalanced, ("error", "drop"))
    if isinstance(anticipation, bool) or int(anticipation) != anticipation or anticipation < 0:
        raise EstimationError(
            f"att_gt: anticipation must be a non-negative integer, got {anticipation!r}"
        )
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 0:
        raise EstimationError(f"att_gt: n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise EstimationError(f"att_gt: alpha must be in (0, 1), got {alpha!r}")
    covs = [covariates] if isinstance(covariates, str) else list(covariates or [])
    entropy = _entropy(seed)
    panel = prepare_panel(
        data,
        outcome=outcome,
        unit=unit,
        time=time,
        cohort=cohort,
        covariates=covs,
        weights=weights,
        cluster=cluster,
        control=control,
        anticipation=int(anticipation),
        unbalanced=unbalanced,
    )
    with single_blas_thread():
        cells = estimate_cells(
            panel,
            method=method,
            control=control,
            anticipation=int(anticipation),
            base_period=base_period,
        )
    inf = cells.influence
    n = inf.shape[0]
    vcov_n = analytic_vcov(inf, panel.cluster)
    se_analytic = analytic_se(inf, panel.cluster)
    se = se_analytic.copy()
    z = float(stats.norm.ppf(1 - alpha / 2))
    crit = z
    use_band = bool(cband) and panel.periods.size > 2
    if n_boot > 0:
        boot = multiplier_bootstrap(inf, panel.cluster, int(n_boot), alpha, _rng(entropy, 0))
        se = np.where(np.isfinite(se_analytic), boot.se, np.nan)
        se[se <= np.sqrt(np.finfo(float).eps) * 10] = np.nan
        if use_band:
            crit = _critical_value(boot.crit_value, alpha, "att_gt")
    pretest = _pretest(cells.att, cells.cohort, cells.time, vcov_n, se_analytic, n,
                       np.asarray(cells.n_treated, dtype=float))
    table = pd.DataFrame(
        {
            "cohort": cells.cohort,
            "time": cells.time,
            "event_time": cells.time - cells.cohort,
            "base_period": cells.base,
            "post": cells.time >= cells.cohort,
            "att": cells.att,
            "se": se,
            "lower": cells.att - crit * se,
            "upper": cells.att + crit * se,
            "n_treated": cells.n_treated,
            "n_control": cells.n_control,
        }
    )
    settings = MappingProxyType(
        {
            "outcome": outcome,
            "unit": unit,
            "time": time,
            "cohort": cohort,
            "covariates": tuple(covs),
            "control": control,
            "method": method,
            "anticipation": int(anticipation),
            "base_period": base_period,
            "n_boot": int(n_boot),
            "cluster": cluster,
            "cluster_variable": cluster if cluster is not None else unit,
            "n_clusters": n if panel.cluster is None else int(panel.cluster.max()) + 1,
            "alpha": float(alpha),
            "cband": use_band,
            "weights": weights,
            "entropy": entropy,
            "n_units": n,
        }
    )
    cohorts = np.unique(panel.cohort)
    cohort_persons = None
    if persons is not None:
        p = persons_column(data, persons, what="att_gt")
        key = pd.MultiIndex.from_arrays([data[unit].to_numpy(),
                                         data[time].to_numpy(dtype=float)])
        grid = pd.MultiIndex.from_product([panel.unit_ids, panel.periods])
        wide = pd.Series(p, index=key).groupby(level=[0, 1]).sum().reindex(grid).fillna(0.0)
        wide_p = wide.to_numpy(dtype=float).reshape(panel.unit_ids.size, panel.periods.size)
        cohort_persons = np.vstack([wide_p[panel.cohort == c].sum(axis=0) for c in cohorts])
    return AttGtResult(
        att_gt=table,
        pretest=pretest,
        crit_value=crit,
        vcov=vcov_n / n,
        influence=inf,
        unit_ids=panel.unit_ids,
        unit_weights=panel.weights,
        unit_cohort=panel.cohort,
        cluster_codes=panel.cluster,
        periods=panel.periods,
        settings=settings,
        n_rows_dropped=panel.n_rows_dropped,
        notes=panel.notes + cells.messages,
        cell_comparison=cells.comparison,
        cohort_persons=cohort_persons,
    )
