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

from impact.did._cs_data import WidePanel
from impact.did._cs_estimators import ESTIMATORS, CellFailure, LogitFit, fit_logit

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
    tfac = 1 if base_period == "varying" else 0
    never = coh == 0
    cohorts_list: list[float] = []
    times: list[float] = []
    bases: list[float] = []
    atts: list[float] = []
    n_tr: list[int] = []
    n_co: list[int] = []
    columns: list[FloatArray | None] = []
    messages: list[str] = []
    fits: dict[tuple, LogitFit] = {}
    for g in panel.groups:
        base_g = _base_index(periods, g, anticipation)
        treated = coh == g
        for ti in range(n_t - tfac):
            cur = ti + tfac
            post = g <= periods[cur]
            base = ti if base_period == "varying" else base_g
            if post:
                base = base_g
            if base is None:
                continue
            cohorts_list.append(g)
            times.append(periods[cur])
            bases.append(periods[base])
            if base_period == "universal" and base == cur:
                atts.append(0.0)
                n_tr.append(int(treated.sum()))
                n_co.append(0)
                columns.append(np.zeros(n))
                continue
            if control == "never":
                ctrl = never
            else:
                cutoff = periods[max(ti, base) + tfac] + anticipation
                ctrl = never | ((coh > cutoff) & ~treated)
            keep = treated | ctrl
            n_tr.append(int(treated.sum()))
            n_co.append(int(ctrl.sum()))
            label = f"ATT({g:g},{periods[cur]:g})"
            if not ctrl.any():
                messages.append(f"{label}: no comparison units; set to NaN")
                atts.append(np.nan)
                columns.append(None)
                continue
            idx = np.flatnonzero(keep)
            d = treated[idx].astype(float)
            dy = panel.y[idx, cur] - panel.y[idx, base]
            xi = min(base, cur)
            x = panel.x_at(xi)[idx]
            w = panel.weights[idx]
            fit = None
            if method != "reg":
                key = (g, tuple(np.unique(coh[ctrl])), xi if panel.time_varying_x else -1)
                fit = fits.get(key)
                if fit is None:
                    fit = fit_logit(x, d, w)
                    fits[key] = fit
                    if not fit.converged:
                        messages.append(f"{label}: propensity score did not converge")
            try:
                with np.errstate(divide="ignore", invalid="ignore"):
                    att, inf = estimator(dy, d, x, w, fit)
            except CellFailure as exc:
                messages.append(f"{label}: {exc}; set to NaN")
                atts.append(np.nan)
                columns.append(None)
                continue
            if not np.isfinite(att):
                messages.append(f"{label}: estimate is not finite; set to NaN")
                atts.append(np.nan)
                columns.append(None)
                continue
            col = np.zeros(n)
            col[idx] = (n / idx.size) * inf
            atts.append(att)
            columns.append(col)
    for m in messages:
        warnings.warn(f"att_gt: {m}", UserWarning, stacklevel=3)
    influence = np.empty((n, len(columns)))
    for j, col in enumerate(columns):
        influence[:, j] = np.nan if col is None else col
    return CellResults(
        cohort=np.asarray(cohorts_list, dtype=float),
        time=np.asarray(times, dtype=float),
        base=np.asarray(bases, dtype=float),
        att=np.asarray(atts, dtype=float),
        n_treated=np.asarray(n_tr, dtype=np.int64),
        n_control=np.asarray(n_co, dtype=np.int64),
        influence=influence,
        messages=tuple(messages),
    )
