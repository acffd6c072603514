"""Effects of the *intensity* of use of a letting tool, not only of its adoption.

A time-varying intensity (de Chaisemartin & D'Haultfoeuille) is :func:`impact.did.switchers`
(``impact/did/switchers.py``); ``dose_response(design="switchers")`` still calls it (deprecated).

``design="staggered"`` (Callaway, Goodman-Bacon & Sant'Anna 2024, "Difference-in-differences with a
continuous treatment"; the R package ``contdid``)
    Units adopt at different times (``cohort``; 0 = never) with a unit-level dose d in (0, 1] (e.g.
    the share of lettings through the tool). For each cohort g and period t the long difference
    ``Y_t - Y_base`` of the cohort's units is regressed on a B-spline (``method="parametric"``;
    degree 1 without knots = linear) or on dose bins (``method="binned"``), and the mean long
    difference of the comparison units (never treated, or not yet treated at t) is subtracted:
    ATT(g,t|d). Its derivative in d is the average causal response ACR(g,t|d). Post-treatment cells
    are averaged with weights proportional to cohort size (as ``did``'s "simple" aggregation) into
    the dose curves ATT(d), ACR(d) and the summaries ATT^o (average over treated doses) and ACR^o;
    averaging over cohorts by event time e = t - g gives event studies of ATT^o and ACR^o.
    Base period: g-1 in post periods; t-1 in pre periods (``base_period="varying"``, contdid's
    default) or g-1 (``"universal"``). ATT(d) is identified under parallel trends; ACR(d) and
    comparisons across doses need *strong* parallel trends (CGS 2024, section 3).

Covariates
    staggered: regression adjustment: among the comparison units of each (g,t) cell the long
    difference is regressed on the covariates at the base period; the prediction for each treated
    unit replaces the comparison mean. switchers: as in ``did_multiplegt_dyn``'s ``controls``:
    theta from a regression of first differences of the outcome on first differences of the
    covariates, within period x baseline cells, on not-yet-switched units; the estimator then runs
    on Y - X'theta.

Unbalanced panels
    Every comparison uses the units observed in both of its periods; nothing is imputed. Rows with
    a missing outcome, covariate, cohort, unit or time are left out and counted (``n_dropped``).

Inference
    Cluster bootstrap (``n_boot`` resamples with replacement, drawn from ``seed``) of units, or
    with ``cluster`` of blocks of units (e.g. all departments of a plan; a unit with a missing
    cluster value is a block of its own), re-estimating everything (knots, grid and bins stay
    fixed). Intervals are estimate +- z * se. The joint covariance of the event-study estimates
    is that of the bootstrap draws (``.vcov()``).

Timing of the exposure
    The estimators take whatever intensity column they are given. In the department panel the
    intensity of year t counts the lettings of calendar year t, while the outcomes are stocks at
    1 January of t, so the lettings of t can first move the stock of t+1: pass an exposure that
    precedes the outcome (e.g. the intensity of t-1, or the share let through the channel since
    adoption up to t-1), not same-year intensity.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline

from impact.did._results import (
    DoseResponseResult,
    DroppedRowsWarning,
    SwitchersResult,
    as_frame,
    boot_summary,
    drop_missing,
    require_columns,
    unit_cluster_codes,
)
from impact.errors import EstimationError
from impact.results import persons_column, wide_sides

__all__ = ["DoseResponseResult", "SwitchersResult", "dose_response"]


def _wide(data: pd.DataFrame, unit: str, time: str, cols: Sequence[str], what: str = "dose_response"
          ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Unit x period arrays (NaN where a unit-period is absent); periods must be integers."""
    units = np.sort(data[unit].unique())
    t = data[time].to_numpy(float)
    if not np.all(t == np.round(t)):
        raise EstimationError(f"{what}: {time!r} must hold integer periods (years)")
    periods = np.arange(int(t.min()), int(t.max()) + 1)
    iu = np.searchsorted(units, data[unit].to_numpy())
    it = (t - periods[0]).astype(int)
    if pd.Series(iu * len(periods) + it).duplicated().any():
        raise EstimationError(f"{what}: more than one row per ({unit}, {time})")
    out = {}
    for c in cols:
        m = np.full((len(units), len(periods)), np.nan)
        m[iu, it] = data[c].to_numpy(float)
        out[c] = m
    return units, periods, out


def _bspline(knots: np.ndarray, degree: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B-spline basis (with intercept, partition of unity) and its derivative at ``x``."""
    nb = len(knots) - degree - 1
    spl = BSpline(knots, np.eye(nb), degree, extrapolate=True)
    deriv = spl.derivative()(x) if degree > 0 else np.zeros((len(x), nb))
    return spl(x), deriv


def _wls(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    sw = np.sqrt(w)
    coef, _, rank, _ = np.linalg.lstsq(z * sw[:, None], y * sw, rcond=None)
    return coef if rank == z.shape[1] else None


def _staggered(data: pd.DataFrame, outcome: str, *, dose: str, cohort: str, unit: str,
               time: str, covariates: list[str], method: str, degree: int, num_knots: int,
               bins: int | Sequence[float], grid: Sequence[float] | None, control: str,
               base_period: str) -> tuple[Any, dict[str, Any]]:
    if (data.groupby(unit)[cohort].nunique() > 1).any():
        raise EstimationError(f"dose_response: cohort {cohort!r} varies within {unit}")
    units, periods, w = _wide(data, unit, time, [outcome, cohort, dose, *covariates])
    g = np.nanmax(w[cohort], axis=1)
    treated = g > 0
    post = (periods[None, :] >= g[:, None]) & treated[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # never-treated: all-NaN rows
        d_post = np.nanmean(np.where(post, w[dose], np.nan), axis=1)
    # cohorts after the last period are not yet treated throughout: comparison units only
    in_window = treated & (g <= periods[-1])
    d_unit = np.where(in_window, d_post, 0.0)
    bad = in_window & ~(d_unit > 0)
    if bad.any():
        warnings.warn(f"dose_response: {int(bad.sum())} treated unit(s) without a positive "
                      f"{dose!r} after adoption left out", DroppedRowsWarning, stacklevel=3)
    keep = ~bad
    g, d_unit, units, in_window = g[keep], d_unit[keep], units[keep], in_window[keep]
    Y = w[outcome][keep]
    X = [w[c][keep] for c in covariates]
    cohorts = np.sort(np.unique(g[in_window]))
    if not len(cohorts):
        raise EstimationError("dose_response: no unit is treated within the panel's periods")
    if control == "never" and not (g == 0).any():
        raise EstimationError("dose_response: control='never' needs never-treated units "
                              "(cohort 0); use control='not_yet'")
    dpos = d_unit[in_window]
    if method == "parametric":
        inner = np.quantile(dpos, np.linspace(0, 1, num_knots + 2)[1:-1])
        knots = np.r_[[dpos.min()] * (degree + 1), inner, [dpos.max()] * (degree + 1)]
        xgrid = (np.quantile(dpos, np.linspace(0.05, 0.95, 19)) if grid is None
                 else np.asarray(grid, float))
        bgrid, dbgrid = _bspline(knots, degree, xgrid)
        bunit, dbunit = _bspline(knots, degree, d_unit)
        nbin, bin_of = 0, np.zeros(len(units), int)
    else:
        edges = (np.quantile(dpos, np.linspace(0, 1, int(bins) + 1)) if np.isscalar(bins)
                 else np.asarray(bins, float))
        bin_of = np.clip(np.searchsorted(edges, d_unit, side="right") - 1, 0, len(edges) - 2)
        nbin, knots = len(edges) - 1, edges
        xgrid = np.array([dpos[bin_of[in_window] == b].mean() if (bin_of[in_window] == b).any()
                          else np.nan for b in range(nbin)])
    cells = []
    t0 = periods[0]
    for gg in cohorts:
        for ti, t in enumerate(periods):
            if t >= gg:
                base = gg - 1
            else:
                base = t - 1 if base_period == "varying" else gg - 1
            if base == t or base < t0:
                continue
            bi = int(base - t0)
            ok = ~np.isnan(Y[:, ti]) & ~np.isnan(Y[:, bi])
            for x in X:
                ok &= ~np.isnan(x[:, bi])
            tr = np.flatnonzero(ok & (g == gg))
            later = g > max(t, base) if control == "not_yet" else np.zeros(len(g), bool)
            co = np.flatnonzero(ok & ((g == 0) | later) & (g != gg))
            if len(tr) == 0 or len(co) == 0:
                continue
            dy = Y[:, ti] - Y[:, bi]
            z = np.column_stack([np.ones(len(units))] + [x[:, bi] for x in X])
            cells.append(dict(g=gg, t=t, base=base, e=int(t - gg), tr=tr, co=co, dy=dy, z=z))
    if not cells:
        raise EstimationError("dose_response: no (cohort, period) cell has treated and "
                              "comparison units observed in both periods")
    design = dict(units=units, g=g, d=d_unit, knots=knots, grid=xgrid, cells=cells,
                  method=method, nbin=nbin, bin_of=bin_of, cohorts=cohorts)
    if method == "parametric":
        design.update(bgrid=bgrid, dbgrid=dbgrid, bunit=bunit, dbunit=dbunit)
    return design, {"n_units": len(units), "n_treated": int(in_window.sum()),
                    "n_bad": int(bad.sum())}


def _staggered_estimate(des: dict[str, Any], wt: np.ndarray) -> np.ndarray:
    """All staggered-design quantities for unit weights ``wt`` (ones, or bootstrap counts)."""
    m = len(des["grid"])
    size = {gg: wt[des["g"] == gg].sum() for gg in des["cohorts"]}
    rows = []  # per cell: att curve (m), acr curve (m), att_o, acr_o
    for c in des["cells"]:
        tr, co = c["tr"], c["co"]
        wc, wtr = wt[co], wt[tr]
        out = np.full(2 * m + 2, np.nan)
        gam = _wls(c["z"][co], c["dy"][co], wc) if wc.sum() > 0 else None
        if gam is not None and wtr.sum() > 0:
            r = c["dy"][tr] - c["z"][tr] @ gam
            out[2 * m] = np.sum(wtr * r) / wtr.sum()
            if des["method"] == "parametric":
                beta = _wls(des["bunit"][tr], r, wtr)
                if beta is not None:
                    out[:m] = des["bgrid"] @ beta
                    out[m:2 * m] = des["dbgrid"] @ beta
                    out[2 * m + 1] = np.sum(wtr * (des["dbunit"][tr] @ beta)) / wtr.sum()
            else:
                b = des["bin_of"][tr]
                num = np.bincount(b, wtr * r, minlength=m)
                den = np.bincount(b, wtr, minlength=m)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[:m] = np.where(den > 0, num / den, np.nan)
                out[m + 1:2 * m] = np.diff(out[:m]) / np.diff(des["grid"])
        rows.append(out)
    est = np.vstack(rows)
    cw = np.array([size[c["g"]] for c in des["cells"]], float)
    ev = np.array([c["e"] for c in des["cells"]])

    def avg(mask: np.ndarray) -> np.ndarray:
        vals = est[mask]
        ww = np.where(np.isnan(vals), 0.0, cw[mask][:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ww.sum(0) > 0, np.nansum(vals * ww, 0) / ww.sum(0), np.nan)

    overall = avg(ev >= 0)
    es = [avg(ev == k)[2 * m:] for k in des["events"]]
    return np.concatenate([overall, np.concatenate(es), est[:, 2 * m], est[:, 2 * m + 1]])


_SUPPORT = ["n_units", "n_persons", "n_units_treated", "n_units_control", "n_persons_treated",
            "n_persons_control", "df_resid"]


def _persons_wide(data: pd.DataFrame, unit: str, time: str, persons: str | None,
                  units: np.ndarray, what: str = "dose_response") -> np.ndarray | None:
    """Persons per unit (rows ``units``) and period of ``data`` (missing: 0), or None."""
    p = persons_column(data, persons, what=what)
    if p is None:
        return None
    all_units, _, w = _wide(data.assign(persons__=p), unit, time, ["persons__"], what=what)
    return np.nan_to_num(w["persons__"][np.searchsorted(all_units, units)])


def _staggered_support(des: dict[str, Any], persons: np.ndarray | None, n_covariates: int
                       ) -> pd.DataFrame:
    """Support columns of the staggered design's tidy rows (see ``DoseResponseResult.tidy``)."""
    n, cells, t0, n_t = len(des["units"]), des["cells"], des["t0"], des["n_periods"]
    n_basis = des["bunit"].shape[1] if des["method"] == "parametric" else des["nbin"]
    m = len(des["grid"])

    def row(which: list[dict[str, Any]], keep: np.ndarray | None = None) -> dict[str, float]:
        tr = np.zeros((n, n_t), dtype=bool)
        co = np.zeros_like(tr)
        for c in which:
            cols = [int(c["t"] - t0), int(c["base"] - t0)]
            units = c["tr"] if keep is None else c["tr"][keep[c["tr"]]]
            tr[np.ix_(units, cols)] = True
            co[np.ix_(c["co"], cols)] = True
        out: dict[str, float] = wide_sides(tr, co, persons)
        out["df_resid"] = min((len(c["tr"]) + len(c["co"]) - n_basis - 1 - n_covariates
                               for c in which), default=np.nan)
        return out

    post = [c for c in cells if c["e"] >= 0]
    rows = [row(post)] * 2
    for par in ("att", "acr"):
        for k in range(m):
            if des["method"] == "parametric":
                rows.append(row(post))
            else:
                lo = k - 1 if par == "acr" and k > 0 else k
                rows.append(row(post, (des["bin_of"] >= lo) & (des["bin_of"] <= k)))
        rows += [row([c for c in cells if c["e"] == e]) for e in des["events"]]
    return pd.DataFrame(rows, columns=_SUPPORT)


def _boot(fn: Any, des: dict[str, Any], codes: np.ndarray, n_boot: int, seed: Any) -> np.ndarray:
    """Cluster (block) bootstrap via multinomial resampling counts.

    ``codes`` gives each unit's cluster ``0 .. G-1``; G clusters are drawn with replacement and
    every unit weighs as often as its cluster was drawn (identical to stacking the drawn blocks
    with their units relabelled). ``codes = 0 .. n-1`` is the unit bootstrap.
    """
    rng = np.random.default_rng(seed)
    n_cl = int(codes.max()) + 1
    draws = [fn(des, rng.multinomial(n_cl, np.full(n_cl, 1.0 / n_cl)).astype(float)[codes])
             for _ in range(n_boot)]
    return np.vstack(draws) if draws else np.empty((0, 0))


def _clusters(data: pd.DataFrame, cluster: str | None, unit: str, units: np.ndarray,
              what: str = "dose_response") -> np.ndarray:
    if cluster is None or cluster == unit:
        return np.arange(len(units))
    return unit_cluster_codes(data, cluster, unit, units, what=what)


def _ci_frame(est: np.ndarray, draws: np.ndarray, alpha: float, sl: slice, prefix: str
              ) -> dict[str, np.ndarray]:
    se, lo, hi = boot_summary(est[sl], draws[:, sl] if draws.size else
                              np.empty((0, sl.stop - sl.start)), alpha=alpha)
    return {prefix: est[sl], f"{prefix}_se": se, f"{prefix}_lower": lo, f"{prefix}_upper": hi}


def dose_response(
    panel: Any,
    outcome: str,
    *,
    dose: str,
    cohort: str | None = None,
    design: str = "staggered",
    unit: str = "department_id",
    time: str = "year",
    method: str = "parametric",
    degree: int = 1,
    num_knots: int = 0,
    bins: int | Sequence[float] = 4,
    grid: Sequence[float] | None = None,
    control: str = "not_yet",
    base_period: str = "varying",
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
) -> DoseResponseResult | SwitchersResult:
    """Effects of a continuous intensity of use (see the module docstring for the methods).

    Parameters
    ----------
    panel
        Unit-period data (DataFrame or ``impact.panel.Panel``); periods are consecutive integers.
    outcome
        Outcome column.
    dose
        Intensity column, e.g. ``intensity_flexible_letting``. staggered: the unit's dose is its
        mean over periods from adoption on (a time-invariant dose is used as it is); switchers:
        the time-varying intensity itself.
    cohort
        staggered only: first treated period (``cohort_<tool>``), 0 = never treated.
    design
        ``"staggered"`` (ATT(d), ACR(d) by CGS 2024); ``"switchers"`` is deprecated and calls
        :func:`impact.did.switchers` with the switchers options below.
    unit, time
        Unit and time columns.
    method, degree, num_knots, bins, grid
        staggered: ``"parametric"`` B-spline in dose of the given ``degree`` with ``num_knots``
        interior knots at dose quantiles, evaluated at ``grid`` (default: 5%..95% quantiles of the
        treated doses); or ``"binned"`` with ``bins`` quantile bins (or explicit edges).
    control
        staggered: ``"not_yet"`` (never or not yet treated, contdid's default) or ``"never"``.
    base_period
        staggered: ``"varying"`` or ``"universal"`` base period for pre-treatment cells.
    effects, placebo, baseline_bins, tolerance
        Only for the deprecated ``design="switchers"`` (see :func:`impact.did.switchers`).
    covariates
        Adjustment covariates (see module docstring).
    n_boot, seed
        Bootstrap replications (0: no standard errors) and their seed.
    alpha
        1 - level of the intervals.
    cluster
        Unit-level column whose values are the blocks of the bootstrap (e.g. ``"plan_id"``, the
        level at which tools are assigned); a missing value makes the unit its own block.
        ``None`` (or the unit column): the units are resampled. Recorded in the result
        (``cluster``, ``cluster_variable``, ``n_clusters``) and its ``tidy()``.
    persons
        Optional column with the number of persons behind each unit-period (e.g.
        ``n_residents``, or the outcome's base): gives the ``n_persons`` support columns of
        ``tidy()`` (a missing count counts as 0).

    Returns
    -------
    DoseResponseResult
        (a ``SwitchersResult`` from the deprecated ``design="switchers"``)
    """
    if design not in ("staggered", "switchers"):
        raise EstimationError(f"dose_response: design must be 'staggered' or 'switchers', not "
                              f"{design!r}")
    if design == "switchers":
        warnings.warn("dose_response(design='switchers') is deprecated: call "
                      "impact.did.switchers(...) (same arguments less cohort and the staggered "
                      "options)", DeprecationWarning, stacklevel=2)
        from impact.did.switchers import switchers

        return switchers(panel, outcome, dose=dose, unit=unit, time=time, effects=effects,
                         placebo=placebo, baseline_bins=baseline_bins, tolerance=tolerance,
                         covariates=covariates, n_boot=n_boot, seed=seed, alpha=alpha,
                         cluster=cluster, persons=persons)
    covs = [covariates] if isinstance(covariates, str) else list(covariates or [])
    frame = as_frame(panel)
    needed = [outcome, *covs, unit, time] + ([cohort] if cohort else [])
    require_columns(frame, [*needed, dose] + ([cluster] if cluster else []),
                    what="dose_response")
    data, n_dropped = drop_missing(frame, needed, what="dose_response")
    if cohort is None:
        raise EstimationError("dose_response: design='staggered' needs the cohort column")
    if method not in ("parametric", "binned") or control not in ("not_yet", "never") or \
            base_period not in ("varying", "universal"):
        raise EstimationError("dose_response: method in {parametric, binned}, control in "
                              "{not_yet, never}, base_period in {varying, universal}")
    des, info = _staggered(data, outcome, dose=dose, cohort=cohort, unit=unit, time=time,
                           covariates=covs, method=method, degree=degree, num_knots=num_knots,
                           bins=bins, grid=grid, control=control, base_period=base_period)
    des["events"] = sorted({c["e"] for c in des["cells"]})
    n = len(des["units"])
    codes = _clusters(data, cluster, unit, des["units"])
    est = _staggered_estimate(des, np.ones(n))
    draws = _boot(_staggered_estimate, des, codes, n_boot, seed)
    m, ne, nc = len(des["grid"]), len(des["events"]), len(des["cells"])
    curve = pd.DataFrame({"dose": des["grid"]})
    if method == "binned":
        e = des["knots"]
        curve.insert(0, "bin", [f"({e[b]:.3g}, {e[b + 1]:.3g}]" for b in range(m)])
    for prefix, sl in (("att", slice(0, m)), ("acr", slice(m, 2 * m))):
        curve = curve.assign(**_ci_frame(est, draws, alpha, sl, prefix))
    ov = _ci_frame(est, draws, alpha, slice(2 * m, 2 * m + 2), "x")
    overall = pd.DataFrame({"term": ["ATT^o", "ACR^o"], "estimate": ov["x"], "se": ov["x_se"],
                            "lower": ov["x_lower"], "upper": ov["x_upper"]})
    s = 2 * m + 2
    es = pd.DataFrame({"event_time": des["events"]})
    ev_cols = np.r_[s + 2 * np.arange(ne), s + 2 * np.arange(ne) + 1]
    ev_draws = draws[:, ev_cols] if draws.size else np.empty((0, 2 * ne))
    for prefix, off in (("att", 0), ("acr", 1)):
        idx = s + 2 * np.arange(ne) + off
        se, lo, hi = boot_summary(est[idx], draws[:, idx] if draws.size else
                                  np.empty((0, ne)), alpha=alpha)
        es = es.assign(**{prefix: est[idx], f"{prefix}_se": se, f"{prefix}_lower": lo,
                          f"{prefix}_upper": hi})
    s += 2 * ne
    cells = des["cells"]
    gt = pd.DataFrame({"cohort": [c["g"] for c in cells], "time": [c["t"] for c in cells],
                       "base": [c["base"] for c in cells],
                       "n_treated": [len(c["tr"]) for c in cells],
                       "n_control": [len(c["co"]) for c in cells],
                       "att": est[s:s + nc], "acr": est[s + nc:s + 2 * nc]})
    if method == "binned":
        overall.loc[1, ["estimate", "se", "lower", "upper"]] = np.nan
    _, periods, _ = _wide(data, unit, time, [])
    des["t0"], des["n_periods"] = int(periods[0]), len(periods)
    support = _staggered_support(des, _persons_wide(data, unit, time, persons, des["units"]),
                                 len(covs))
    return DoseResponseResult(
        dose_curve=curve, overall=overall, event_study=es, group_time=gt, outcome=outcome,
        dose=dose, method=method, control=control, base_period=base_period, degree=degree,
        knots=tuple(float(k) for k in des["knots"]), n_units=info["n_units"],
        n_treated=info["n_treated"], n_dropped=n_dropped, n_dropped_units=info["n_bad"],
        n_boot=n_boot, seed=seed, alpha=alpha, cluster=cluster, cluster_variable=cluster or unit,
        n_clusters=int(codes.max()) + 1, event_draws=ev_draws, support=support)
