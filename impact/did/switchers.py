"""Effects of a time-varying intensity of use: switchers (de Chaisemartin & D'Haultfoeuille).

:func:`switchers` follows ``did_multiplegt_dyn``.
The intensity varies over time. Switchers are units whose intensity departs from its baseline
(first observed value). ``effects``: for horizon l = 1..L, the change of the outcome of units
that first switched at F, between F-1 and F-1+l, minus that of units with the *same baseline*
that have not switched by F-1+l, signed by the direction of the switch (DID_l); normalised by
the switchers' cumulative intensity change sum_{k=0}^{l-1}(D_{F+k} - D_1) (delta^D_l), the
estimate is an effect per unit of intensity and period of exposure. ``placebo`` horizons use
Y_{F-1-l} - Y_{F-1}. ``DID_M`` (instantaneous, every switch, not only the first): the change of
the outcome between t-1 and t of units whose intensity changes, minus that of units with a
stable intensity equal to the switcher's D_{t-1}, summed and divided by the sum of the
absolute intensity changes (a weighted average of slopes).
Baselines are matched exactly (values rounded to 1e-9); ``baseline_bins`` (an int: zero plus
quantile bins of positive values, or explicit edges) matches on bins of the baseline instead.
Switchers without a matching control are left out and counted (``n_unmatched``).

Covariates
    As in ``did_multiplegt_dyn``'s ``controls``: theta from a regression of first differences of
    the outcome on first differences of the covariates, within period x baseline cells, on
    not-yet-switched units; the estimator then runs on Y - X'theta.

Unbalanced panels, inference, timing of the exposure
    As in :mod:`impact.did.dose_response` (the same unit x period arrays and cluster bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from impact.did._results import (
    SwitchersResult,
    as_frame,
    boot_summary,
    drop_missing,
    require_columns,
)
from impact.did.dose_response import _SUPPORT, _boot, _clusters, _persons_wide, _wide, _wls
from impact.errors import EstimationError
from impact.results import wide_sides

__all__ = ["SwitchersResult", "switchers"]


def _codes(values: np.ndarray, bins: int | Sequence[float] | None) -> np.ndarray:
    """Baseline groups: exact values, or zero plus quantile bins of positive values, or edges."""
    v = np.asarray(values, float)
    if bins is None:
        codes = pd.factorize(np.round(v, 9))[0]  # NaN -> -1: a group of its own
        return np.where(codes < 0, codes.max() + 1, codes)
    if np.isscalar(bins):
        pos = v[v > 0]
        edges = np.unique(np.quantile(pos, np.linspace(0, 1, int(bins) + 1)[1:-1])) if len(pos) \
            else np.array([])
        return np.where(v > 0, 1 + np.searchsorted(edges, v, side="right"), 0)
    return np.searchsorted(np.asarray(bins, float), v, side="right")


def _switchers_prepare(data: pd.DataFrame, outcome: str, *, dose: str, unit: str, time: str,
                       covariates: list[str], effects: int, placebo: int,
                       baseline_bins: int | Sequence[float] | None, tol: float
                       ) -> dict[str, Any]:
    units, periods, w = _wide(data, unit, time, [outcome, dose, *covariates], what="switchers")
    D, T = w[dose], len(periods)
    first_obs = np.argmax(~np.isnan(D), axis=1)
    d1 = D[np.arange(len(units)), first_obs]
    moved = np.abs(D - d1[:, None]) > tol
    has = moved.any(axis=1)
    F = np.where(has, np.argmax(moved, axis=1), T + 10**6)
    # the path must be observed from the first observation up to the first switch
    gap = np.array([np.isnan(D[i, first_obs[i]:min(F[i], T)]).any() for i in range(len(units))])
    return dict(units=units, Y=w[outcome], D=D, X=[w[c] for c in covariates], F=F, d1=d1,
                S=np.sign(D[np.arange(len(units)), np.minimum(F, T - 1)] - d1),
                base=_codes(d1, baseline_bins), gap=gap, L=effects, P=placebo, tol=tol,
                bins=baseline_bins)


def _theta(des: dict[str, Any], wt: np.ndarray) -> np.ndarray | None:
    """Covariate coefficients from first differences on not-yet-switched units (within t x base)."""
    if not des["X"]:
        return None
    Y, T = des["Y"], des["Y"].shape[1]
    dy = np.diff(Y, axis=1)
    dx = np.stack([np.diff(x, axis=1) for x in des["X"]], axis=-1)
    stable = np.arange(1, T)[None, :] < des["F"][:, None]
    ok = stable & ~np.isnan(dy) & ~np.isnan(dx).any(-1) & (wt[:, None] > 0)
    cell = (np.arange(1, T)[None, :] * (des["base"].max() + 1) + des["base"][:, None])[ok]
    ww = np.broadcast_to(wt[:, None], ok.shape)[ok]
    yv, xv = dy[ok], dx[ok]
    codes = pd.factorize(cell)[0]
    def demean(a: np.ndarray) -> np.ndarray:
        s = np.bincount(codes, ww, minlength=codes.max() + 1)
        if a.ndim == 1:
            return a - (np.bincount(codes, ww * a) / s)[codes]
        return a - np.column_stack([np.bincount(codes, ww * a[:, j]) / s
                                    for j in range(a.shape[1])])[codes]
    return _wls(demean(xv), demean(yv), ww)


def _switchers_estimate(des: dict[str, Any], wt: np.ndarray) -> np.ndarray:
    """Normalised effects, DID_l, delta^D_l, counts, placebos, then DID_M, for weights ``wt``."""
    Y, D, F, S = des["Y"], des["D"], des["F"], des["S"]
    th = _theta(des, wt)
    if th is not None:
        Y = Y - np.tensordot(np.stack(des["X"], -1), th, axes=([2], [0]))
    T = Y.shape[1]
    ok_unit = ~des["gap"] & (wt > 0)
    nb = des["base"].max() + 1
    out = []
    for h in [*range(1, des["L"] + 1), *(-p for p in range(1, des["P"] + 1))]:
        num = den = dose = nsw = nun = 0.0
        lag = abs(h)
        for f in range(1, T):
            t_end, t_ref = f - 1 + lag, f - 1
            t_out = t_end if h > 0 else f - 1 - lag
            if t_end >= T or t_out < 0:
                continue
            dy = Y[:, t_out] - Y[:, t_ref]
            okay = ok_unit & ~np.isnan(dy)
            sw = okay & (F == f)
            if not sw.any():
                continue
            co = okay & (F > t_end)
            sc = np.bincount(des["base"][co], wt[co], minlength=nb)
            sy = np.bincount(des["base"][co], wt[co] * dy[co], minlength=nb)
            idx = np.flatnonzero(sw)
            steps = D[idx, f:f + lag] - des["d1"][idx, None]
            match = (sc[des["base"][idx]] > 0) & ~np.isnan(steps).any(1)
            nun += wt[idx[~match]].sum()
            idx, steps = idx[match], steps[match]
            ctrl = sy[des["base"][idx]] / sc[des["base"][idx]]
            num += np.sum(wt[idx] * S[idx] * (dy[idx] - ctrl))
            dose += np.sum(wt[idx] * S[idx] * steps.sum(1))
            den += wt[idx].sum()
            nsw += len(idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            out += [num / dose, num / den, dose / den, nsw, nun]
    # DID_M: every change between t-1 and t against stayers with the same D_{t-1}
    num = den = nsw = nun = 0.0
    for t in range(1, T):
        dy, dd = Y[:, t] - Y[:, t - 1], D[:, t] - D[:, t - 1]
        okay = ~np.isnan(dy) & ~np.isnan(dd) & (wt > 0)
        sw, st = okay & (np.abs(dd) > des["tol"]), okay & (np.abs(dd) <= des["tol"])
        if not sw.any():
            continue
        code = _codes(D[:, t - 1], des["bins"])
        k = code.max() + 1
        sc = np.bincount(code[st], wt[st], minlength=k)
        sy = np.bincount(code[st], wt[st] * dy[st], minlength=k)
        idx = np.flatnonzero(sw)
        match = sc[code[idx]] > 0
        nun += wt[idx[~match]].sum()
        idx = idx[match]
        ctrl = sy[code[idx]] / sc[code[idx]]
        num += np.sum(wt[idx] * np.sign(dd[idx]) * (dy[idx] - ctrl))
        den += np.sum(wt[idx] * np.abs(dd[idx]))
        nsw += len(idx)
    with np.errstate(invalid="ignore", divide="ignore"):
        out += [num / den, nsw, nun]
    return np.asarray(out, float)


def _switchers_support(des: dict[str, Any], persons: np.ndarray | None) -> pd.DataFrame:
    """Support columns of the switchers design's tidy rows, in ``SwitchersResult.tidy`` order:
    the units and periods the estimator's comparisons use (unit weights one)."""
    Y, D, F = des["Y"], des["D"], des["F"]
    n, T = Y.shape
    missing = np.isnan(Y)
    for x in des["X"]:
        missing |= np.isnan(x)
    ok_unit = ~des["gap"]
    rows: dict[int, dict[str, float]] = {}
    hs = [*range(1, des["L"] + 1), *(-p for p in range(1, des["P"] + 1))]
    for h in hs:
        tr, co = np.zeros((n, T), dtype=bool), np.zeros((n, T), dtype=bool)
        lag = abs(h)
        for f in range(1, T):
            t_end, t_ref = f - 1 + lag, f - 1
            t_out = t_end if h > 0 else f - 1 - lag
            if t_end >= T or t_out < 0:
                continue
            okay = ok_unit & ~missing[:, t_out] & ~missing[:, t_ref]
            sw = okay & (F == f)
            if not sw.any():
                continue
            ctrl = okay & (F > t_end)
            idx = np.flatnonzero(sw)
            steps = D[idx, f:f + lag] - des["d1"][idx, None]
            has = np.isin(des["base"][idx], des["base"][ctrl]) & ~np.isnan(steps).any(1)
            idx = idx[has]
            used = ctrl & np.isin(des["base"], des["base"][idx])
            tr[np.ix_(idx, [t_out, t_ref])] = True
            co[np.ix_(np.flatnonzero(used), [t_out, t_ref])] = True
        rows[h] = wide_sides(tr, co, persons)
    tr, co = np.zeros((n, T), dtype=bool), np.zeros((n, T), dtype=bool)
    for t in range(1, T):
        dd = D[:, t] - D[:, t - 1]
        okay = ~missing[:, t] & ~missing[:, t - 1] & ~np.isnan(dd)
        sw, st = okay & (np.abs(dd) > des["tol"]), okay & (np.abs(dd) <= des["tol"])
        if not sw.any():
            continue
        code = _codes(D[:, t - 1], des["bins"])
        idx = np.flatnonzero(sw & np.isin(code, code[st]))
        used = np.flatnonzero(st & np.isin(code, code[idx]))
        tr[np.ix_(idx, [t - 1, t])] = True
        co[np.ix_(used, [t - 1, t])] = True
    out = pd.DataFrame([rows[h] for h in sorted(hs)] + [wide_sides(tr, co, persons)])
    out["df_resid"] = np.nan
    return out[_SUPPORT]


def switchers(
    panel: Any,
    outcome: str,
    *,
    dose: str,
    unit: str = "department_id",
    time: str = "year",
    effects: int = 3,
    placebo: int = 0,
    baseline_bins: int | Sequence[float] | None = None,
    tolerance: float = 0.0,
    covariates: Sequence[str] | None = None,
    n_boot: int = 199,
    seed: int | None = None,
    alpha: float = 0.05,
    cluster: str | None = None,
    persons: str | None = None,
) -> SwitchersResult:
    """Effects of a time-varying intensity of use (see the module docstring for the method).

    Parameters
    ----------
    panel
        Unit-period data (DataFrame or ``impact.panel.Panel``); periods are consecutive integers.
    outcome
        Outcome column.
    dose
        The time-varying intensity column, e.g. ``intensity_flexible_letting``.
    unit, time
        Unit and time columns.
    effects, placebo
        Number of dynamic effects (>= 1) and of placebo horizons (>= 0).
    baseline_bins
        Matching of baselines: None (exact), an int (zero plus quantile bins of positive values)
        or explicit bin edges.
    tolerance
        Intensity changes of at most ``tolerance`` count as stable.
    covariates
        Adjustment covariates (see the module docstring).
    n_boot, seed
        Bootstrap replications (0: no standard errors) and their seed.
    alpha
        1 - level of the intervals.
    cluster
        Unit-level column whose values are the blocks of the bootstrap (e.g. ``"plan_id"``); a
        missing value makes the unit its own block. ``None`` (or the unit column): the units are
        resampled. Recorded in the result (``cluster``, ``cluster_variable``, ``n_clusters``).
    persons
        Optional column with the number of persons behind each unit-period (e.g.
        ``n_residents``, or the outcome's base): gives the ``n_persons`` support columns of
        :meth:`SwitchersResult.tidy` (a missing count counts as 0).

    Returns
    -------
    SwitchersResult
    """
    covs = [covariates] if isinstance(covariates, str) else list(covariates or [])
    frame = as_frame(panel)
    needed = [outcome, *covs, unit, time]
    require_columns(frame, [*needed, dose] + ([cluster] if cluster else []), what="switchers")
    data, n_dropped = drop_missing(frame, needed, what="switchers")
    if effects < 1 or placebo < 0:
        raise EstimationError("switchers: need effects >= 1 and placebo >= 0")
    des = _switchers_prepare(data, outcome, dose=dose, unit=unit, time=time, covariates=covs,
                             effects=effects, placebo=placebo, baseline_bins=baseline_bins,
                             tol=tolerance)
    n = len(des["units"])
    codes = _clusters(data, cluster, unit, des["units"], what="switchers")
    est = _switchers_estimate(des, np.ones(n))
    draws = _boot(_switchers_estimate, des, codes, n_boot, seed)
    se, lo, hi = boot_summary(est, draws if draws.size else np.empty((0, len(est))),
                              alpha=alpha)
    hs = [*range(1, effects + 1), *(-p for p in range(1, placebo + 1))]
    i = 5 * np.arange(len(hs))
    eff = pd.DataFrame({"horizon": hs, "estimate": est[i], "se": se[i], "lower": lo[i],
                        "upper": hi[i], "did": est[i + 1], "did_se": se[i + 1],
                        "dose_change": est[i + 2], "n_switchers": est[i + 3].astype(int),
                        "n_unmatched": est[i + 4].astype(int)})
    order = np.argsort(hs, kind="stable")
    eff = eff.iloc[order].reset_index(drop=True)
    eff_draws = draws[:, i[order]] if draws.size else np.empty((0, len(hs)))
    k = 5 * len(hs)
    if not eff["n_switchers"].any() and not est[k + 1]:
        raise EstimationError("switchers: no switcher has a matching stable unit")
    didm = pd.DataFrame({"estimate": [est[k]], "se": [se[k]], "lower": [lo[k]],
                         "upper": [hi[k]], "n_switches": [int(est[k + 1])],
                         "n_unmatched": [int(est[k + 2])]})
    return SwitchersResult(effects=eff, did_m=didm, outcome=outcome, dose=dose, n_units=n,
                           n_switchers=int((des["F"] < des["Y"].shape[1]).sum()),
                           n_dropped=n_dropped, n_gap_units=int(des["gap"].sum()),
                           n_boot=n_boot, seed=seed, alpha=alpha, cluster=cluster,
                           cluster_variable=cluster or unit,
                           n_clusters=int(codes.max()) + 1, effect_draws=eff_draws,
                           support=_switchers_support(des, _persons_wide(
                               data, unit, time, persons, des["units"], what="switchers")))
