"""The group-time loop of Callaway & Sant'Anna: one 2x2 DiD per (cohort g, period t).

Cell construction follows R's ``did::compute.att_gt2`` (the default ``faster_mode``): the base
period is ``t - 1`` for pre-treatment cells under ``base_period="varying"`` and the last period
before ``g - anticipation`` otherwise; comparison units are the never treated, or under
``control="not_yet"`` also units whose cohort is after ``max(t, base) + anticipation`` (never the
cohort itself); covariates and weights are taken in the earlier of the two periods; the
influence function of the cell is scaled by ``n / n_cell`` so that all columns share the full
sample of ``n`` units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from impact.did.callaway_santanna._data import WidePanel
from impact.did.callaway_santanna._estimators import ESTIMATORS, CellFailure, fit_logit
from impact.errors import EstimationWarning

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CellResults:
    """All ATT(g,t) of one run: per-cell arrays (length K) and the n x K influence matrix."""

    cohort: FloatArray
    time: FloatArray
    base: FloatArray
    att: FloatArray
    n_treated: NDArray[np.int64]
    n_control: NDArray[np.int64]
    influence: FloatArray
    messages: tuple[str, ...]
    #: the comparison cohorts of each cell (0.0 = never treated), for the support counts
    comparison: tuple[tuple[float, ...], ...] = ()


def _base_index(periods: FloatArray, g: float, anticipation: int) -> int | None:
    idx = np.flatnonzero(periods + anticipation < g)
    return int(idx[-1]) if idx.size else None


def estimate_cells(
    panel: WidePanel,
    *,
    method: str,
    control: str,
    anticipation: int,
    base_period: str,
) -> CellResults:
    """Estimate every ATT(g,t) and its influence function.

    Cells that share their units, covariates and weights (a cohort's periods with the same
    comparison cohorts and, for time-varying covariates, the same covariate period) are
    estimated together: the propensity score, the outcome-regression design and every other
    unit-level piece are computed once and applied to all their outcome changes at once.

    Parameters
    ----------
    panel
        Prepared balanced panel.
    method
        ``"dr"``, ``"ipw"`` or ``"reg"``.
    control
        ``"never"`` or ``"not_yet"``.
    anticipation
        Number of periods of anticipation.
    base_period
        ``"varying"`` or ``"universal"``.

    Returns
    -------
    CellResults
    """
    estimator = ESTIMATORS[method]
    periods = panel.periods
    n, n_t = panel.y.shape
    coh = panel.cohort
    cohort_values, cohort_sizes = np.unique(coh, return_counts=True)
    size_of = dict(zip(cohort_values.tolist(), cohort_sizes.tolist(), strict=True))
    tfac = 1 if base_period == "varying" else 0
    cohorts_list: list[float] = []
    times: list[float] = []
    bases: list[float] = []
    n_tr: list[int] = []
    n_co: list[int] = []
    comps: list[tuple[float, ...]] = []
    atts: list[float] = []
    labels: list[str] = []
    notes: list[tuple[int, str]] = []  # (cell, message), reported in cell order
    failed: set[int] = set()
    batches: dict[tuple, list[tuple[int, int, int]]] = {}  # key -> [(cell, cur, base)]
    for g in panel.groups:
        base_g = _base_index(periods, g, anticipation)
        n_treated = size_of.get(float(g), 0)
        for ti in range(n_t - tfac):
            cur = ti + tfac
            base = ti if base_period == "varying" else base_g
            if g <= periods[cur]:
                base = base_g
            if base is None:
                continue
            j = len(atts)
            cohorts_list.append(g)
            times.append(periods[cur])
            bases.append(periods[base])
            labels.append(f"ATT({g:g},{periods[cur]:g})")
            atts.append(np.nan)
            n_tr.append(n_treated)
            if base_period == "universal" and base == cur:
                atts[j] = 0.0
                n_co.append(0)
                comps.append(())
                continue
            if control == "never":
                comparison = (0.0,) if 0.0 in cohort_values else ()
            else:
                cutoff = periods[max(ti, base) + tfac] + anticipation
                comparison = tuple(
                    float(c) for c in cohort_values if c == 0 or (c > cutoff and c != g)
                )
            n_co.append(sum(size_of[c] for c in comparison))
            comps.append(comparison)
            if not comparison:
                notes.append((j, f"{labels[j]}: no comparison units; set to NaN"))
                failed.add(j)
                continue
            xi = min(base, cur)
            key = (g, comparison, xi if panel.time_varying_x else -1)
            batches.setdefault(key, []).append((j, cur, base))
    influence = np.zeros((n, len(atts)))
    for (g, comparison, xi_key), cells in batches.items():
        cols = np.array([c[0] for c in cells])
        treated = coh == g
        idx = np.flatnonzero(treated | np.isin(coh, comparison))
        d = treated[idx].astype(float)
        y = panel.y[idx]
        dy = y[:, [c[1] for c in cells]] - y[:, [c[2] for c in cells]]
        xi = xi_key if xi_key >= 0 else min(cells[0][1], cells[0][2])
        x = panel.x_at(xi)[idx]
        w = panel.weights[idx]
        fit = None
        if method != "reg":
            fit = fit_logit(x, d, w)
            if not fit.converged:
                notes.append((int(cols[0]), f"{labels[cols[0]]}: propensity score did not converge"))
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                att, inf = estimator(dy, d, x, w, fit)
        except CellFailure as exc:
            for j in cols:
                notes.append((int(j), f"{labels[j]}: {exc}; set to NaN"))
            failed.update(int(j) for j in cols)
            continue
        finite = np.isfinite(att)
        for j in cols[~finite]:
            notes.append((int(j), f"{labels[j]}: estimate is not finite; set to NaN"))
            failed.add(int(j))
        for j, a in zip(cols[finite], att[finite], strict=True):
            atts[j] = float(a)
        keep = cols[finite]
        if keep.size and np.all(np.diff(keep) == 1):  # a column range: faster than np.ix_
            influence[idx, keep[0] : keep[-1] + 1] = (n / idx.size) * inf[:, finite]
        else:
            influence[np.ix_(idx, keep)] = (n / idx.size) * inf[:, finite]
    for j in failed:
        influence[:, j] = np.nan
    notes.sort(key=lambda item: item[0])  # stable: a cell's notes keep their order
    messages = [m for _, m in notes]
    for m in messages:
        warnings.warn(f"att_gt: {m}", EstimationWarning, stacklevel=3)
    return CellResults(
        cohort=np.asarray(cohorts_list, dtype=float),
        time=np.asarray(times, dtype=float),
        base=np.asarray(bases, dtype=float),
        att=np.asarray(atts, dtype=float),
        n_treated=np.asarray(n_tr, dtype=np.int64),
        n_control=np.asarray(n_co, dtype=np.int64),
        influence=influence,
        messages=tuple(messages),
        comparison=tuple(comps),
    )
