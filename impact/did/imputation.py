"""Imputation difference-in-differences with several tools (Borusyak, Jaravel & Spiess 2024).

The study's primary estimator. Each department may take up several letting tools, each with its
own adoption year (``cohort_<tool>``; 0 = never), and a tool agreed in year g can first move the
1-January stock of year g + ``onset_lag``. An observation is *untreated* while no tool can have
moved it yet.

1. **Untreated model.** On the untreated department-years only,
   ``Y_it = alpha_i + lambda_{t,s(i)} + gamma_t' X_i + e_it``: department effects, year effects
   per stratum ``s`` (e.g. housing market x LBF support, the variables the tools were assigned
   on) and year-specific slopes on time-invariant pre-adoption covariates ``X_i`` (e.g. the
   department's composition in the first year). Conditional parallel trends: without the tools,
   departments with the same stratum and baseline composition would have moved alike.
2. **Imputation.** ``Y_it(0)`` is predicted for every treated department-year;
   ``tau_it = Y_it - Y_it(0)`` is the effect of whatever tools were in force.
3. **One tool at a time.** Where two tools overlap, ``tau_it`` holds both effects. The effects
   are decomposed additively by an OLS of ``tau_it`` over all treated observations on
   tool x event-time bin (x ``effect_by`` cell) indicators; the effect of tool k at a
   department-year is ``tau_it`` minus the fitted effects of the *other* tools there. The
   estimand is tool-specific: the effect of k with the other tools at their factual paths
   (factual minus the world without k alone); with one tool it is plain BJS imputation.
   ATT_k is the mean over the department-years treated by k (every one weighted equally, the
   "simple" weights of ``did``), ``dynamic`` by event time e = t - g - onset_lag, ``group`` by
   cohort.

Every estimate is a linear function of the outcome. Inference: a pairs bootstrap over clusters
(``cluster``; a department with a missing value is its own cluster; ``None`` = departments),
re-estimating all three steps with the clusters' multiplicities as weights; intervals are
estimate +- z se. The pre-test (BJS's test 1) adds, for each tool, indicators of the ``n_leads``
years before its onset to the untreated model and tests them jointly with a cluster-robust Wald
statistic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from impact.did._blas import single_blas_thread
from impact.did._results import DroppedRowsWarning, cluster_codes, require_columns
from impact.errors import EstimationError
from impact.results import Result, SupportCounter, draw_intervals, persons_column

__all__ = ["ImputationResult", "imputation"]


@dataclass(frozen=True)
class _Design:
    """Everything about the sample that does not depend on the outcome values."""

    y: np.ndarray
    unit: np.ndarray               # unit code per row
    n_units: int
    clusters: np.ndarray           # cluster code per row
    n_clusters: int
    untreated: np.ndarray          # bool per row
    z: np.ndarray                  # untreated-model regressors (rows x k), all rows
    treated: dict[str, np.ndarray]  # bool per row, per tool
    event: dict[str, np.ndarray]   # event time per row (nan if never), per tool
    cohort: dict[str, np.ndarray]
    decomp: np.ndarray             # tool x bin x cell indicators over all rows
    decomp_tool: np.ndarray        # tool index of each decomposition column
    lead: dict[str, np.ndarray]    # pre-onset lead indicators (rows x n_leads), per tool


@dataclass(frozen=True)
class ImputationResult(Result):
    """Tool-specific imputation estimates.

    Attributes
    ----------
    overall
        One row per tool: ``tool, estimate, se, lower, upper, n_units_treated, n_obs_treated``.
    dynamic
        ``tool, event_time, estimate, se, lower, upper, n_obs``.
    group
        ``tool, cohort, estimate, se, lower, upper, n_obs``.
    pretest
        ``tool, stat, df, p_value`` (joint Wald test of the leads).
    leads
        ``tool, event_time, estimate, se, lower, upper``: the lead coefficients of the pre-test
        (bootstrap SEs; event time -1 = the first year in force).
    rows
        The treated department-years behind each tool's estimate: ``tool`` and the unit, time,
        cohort and event-time columns (for the truth of the estimand in simulations).
    settings
        Options and sample sizes (``cluster``, ``n_clusters``, ``n_units``, ``n_rows_dropped``...).
    draws
        Bootstrap draws of every estimate (columns described by ``draw_keys``).
    draw_keys
        ``term, tool, event_time, cohort, estimate`` of each column of ``draws``.
    support
        The support columns of :meth:`tidy`, one row per row of ``tidy()``.
    """

    overall: pd.DataFrame
    dynamic: pd.DataFrame
    group: pd.DataFrame
    pretest: pd.DataFrame
    leads: pd.DataFrame
    rows: pd.DataFrame
    settings: dict[str, Any]
    draws: np.ndarray = field(repr=False)
    draw_keys: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    support: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def _tidy(self) -> pd.DataFrame:
        """``term`` (att, event_time, cohort, lead), ``estimate, se, lower, upper``, the support
        columns, then ``tool`` (+ ``event_time``, ``cohort``, ``n_obs_treated``, ``n_obs``).

        Support: treated side = the tool's treated unit-periods behind the row (all, at the
        event time, of the cohort; for a lead, the untreated unit-periods at that lead), control
        side = the untreated unit-periods the untreated model is fitted on (for a lead: those
        not at that lead); ``df_resid`` = untreated unit-periods minus the unit effects and the
        untreated model's regressors (a lower bound of its residual df).
        """
        parts = [self.overall.drop(columns="n_units_treated", errors="ignore").assign(term="att"),
                 self.dynamic.assign(term="event_time"),
                 self.group.assign(term="cohort"),
                 self.leads.assign(term="lead")]
        out = pd.concat(parts, ignore_index=True)
        first = ["term", "estimate", "se", "lower", "upper"]
        rest = [c for c in out.columns if c not in first]
        pieces = [out[first]]
        if len(self.support) == len(out):
            pieces.append(self.support.reset_index(drop=True))
        return pd.concat([*pieces, out[rest]], axis=1)

    _summary_columns = ("tool", "event_time", "cohort")

    def _summary_title(self) -> str:
        return (f"Imputation DiD (Borusyak, Jaravel & Spiess 2024): {self.settings['outcome']}, "
                f"tools {', '.join(c.removeprefix('cohort_') for c in self.settings['cohorts'])}")

    def _summary_notes(self) -> tuple[str, ...]:
        s = self.settings
        pre = "; ".join(f"{r.tool}: pre-test p = {r.p_value:.3g} (df {r.df})"
                        for r in self.pretest.itertuples(index=False))
        return (f"n = {s['n_obs']}, units = {s['n_units']}, rows dropped = "
                f"{s['n_rows_dropped']}; cluster bootstrap over {s['cluster']} "
                f"({s['n_clusters']} clusters) n = {s['n_boot']}; "
                f"{100 * (1 - s['alpha']):g}% intervals", pre)

    def _draw(self, ax: Any) -> None:
        """Leads and dynamic effects by event time, one series per tool."""
        tidy = self.tidy()
        rows = tidy[tidy["term"].isin(["lead", "event_time"])]
        for i, (tool, d) in enumerate(rows.groupby("tool", sort=False)):
            d = d.sort_values("event_time")
            draw_intervals(ax, d["event_time"].to_numpy(dtype=float) + 0.1 * i, d["estimate"],
                           d["lower"], d["upper"], label=str(tool), color=f"C{i}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(-0.5, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("event time (0: the first year the outcome can respond)")
        ax.set_ylabel(f"effect on {self.settings['outcome']}")
        ax.legend(frameon=False, fontsize="small")

    def event_study(self, tool: str) -> EventStudy:
        """Leads and dynamic effects of one tool, relative to event time -1, with their joint
        bootstrap covariance (``reference_period`` -1 omitted), for the pre-trend diagnostics.

        Event time -1 is the first year in force (the stock cannot have moved yet). The leads
        are the lead coefficients of the pre-test; every coefficient has the lead of -1
        subtracted, so the event study is normalised like a conventional one.
        """
        tidy = self.draw_keys
        mine = (tidy["tool"] == tool).to_numpy()
        lead = np.flatnonzero(mine & (tidy["term"] == "lead").to_numpy())
        post = np.flatnonzero(mine & (tidy["term"] == "event_time").to_numpy())
        et = tidy["event_time"].to_numpy(dtype=float)
        ref = lead[et[lead] == -1]
        if ref.size == 0:
            raise EstimationError(f"imputation: no lead -1 for {tool}; no normalised event study")
        keep = np.concatenate([lead[et[lead] != -1], post])
        est = tidy["estimate"].to_numpy(dtype=float)
        point = est[keep] - est[ref[0]]
        cov = None
        if self.draws.shape[0] > 1:
            d = self.draws[:, keep] - self.draws[:, [ref[0]]]
            d = d[np.isfinite(d).all(axis=1)]
            cov = np.atleast_2d(np.cov(d, rowvar=False, ddof=1))
        se = np.sqrt(np.diag(cov)) if cov is not None else np.full(point.size, np.nan)
        return EventStudy(event_time=et[keep], estimate=point, se=se, _vcov=cov)


@dataclass(frozen=True)
class EventStudy:
    """Event-time coefficients (``event_time``, ``estimate``, ``se``) and ``vcov()``."""

    event_time: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    _vcov: np.ndarray | None = field(repr=False)
    reference_period: int = -1

    def vcov(self) -> np.ndarray:
        """Joint covariance of the event-time coefficients (bootstrap)."""
        if self._vcov is None:
            raise EstimationError("imputation: no bootstrap draws (n_boot=0), no covariance")
        return self._vcov


def _unit_constant(df: pd.DataFrame, unit: str, cols: Sequence[str]) -> None:
    for col in cols:
        n = df.groupby(unit, sort=False)[col].nunique(dropna=False)
        if (n > 1).any():
            bad = n.index[n > 1][:5].tolist()
            raise EstimationError(
                f"imputation: {col!r} must be constant within {unit} (time-invariant), but varies "
                f"for {int((n > 1).sum())} units, e.g. {bad}")


def _design(data: pd.DataFrame, outcome: str, *, cohorts: Sequence[str], unit: str, time: str,
            onset_lag: int, strata: Sequence[str], covariates: Sequence[str], cluster: str | None,
            effect_by: str | None, event_bins: int, n_leads: int, persons: str | None = None
            ) -> tuple[_Design, pd.DataFrame, list[str]]:
    need = [outcome, unit, time, *cohorts, *strata, *covariates]
    need += [c for c in (cluster, effect_by, persons) if c is not None and c not in need]
    require_columns(data, need, what="imputation")
    if len(set(cohorts)) != len(cohorts) or not cohorts:
        raise EstimationError(f"imputation: cohorts must be distinct column names, got {cohorts}")
    notes: list[str] = []
    df = data[list(dict.fromkeys(need))].copy()
    num = df[[outcome, *covariates]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(num.to_numpy(dtype=float)).all(axis=1)
    bad |= df[[unit, time, *strata]].isna().any(axis=1).to_numpy()
    if effect_by is not None:
        bad |= df[effect_by].isna().to_numpy()
    if bad.any():
        notes.append(f"{int(bad.sum())} rows with a missing outcome, covariate or stratum left out")
    df = df.loc[~bad].reset_index(drop=True)
    if df.empty:
        raise EstimationError("imputation: no rows left after removing rows with missing values")
    if df.duplicated([unit, time]).any():
        raise EstimationError(f"imputation: duplicate ({unit}, {time}) rows")
    _unit_constant(df, unit, [*cohorts, *strata, *covariates]
                   + ([effect_by] if effect_by else []))
    t = df[time].to_numpy(dtype="int64")
    treated, event, cohort = {}, {}, {}
    for c in cohorts:
        g = pd.to_numeric(df[c], errors="coerce").fillna(0).to_numpy(dtype="float64")
        g = np.where(np.isfinite(g) & (g > 0), g, np.nan)
        onset = g + onset_lag
        cohort[c] = g
        event[c] = t - onset
        treated[c] = np.isfinite(onset) & (t >= onset)
    any_treated = np.zeros(len(df), dtype=bool)
    for c in cohorts:
        any_treated |= treated[c]
    untreated = ~any_treated
    # Units without an untreated year cannot be imputed; year x stratum cells without untreated
    # observations cannot be either.
    ucode = pd.factorize(df[unit], sort=True)[0]
    has_untreated = np.bincount(ucode, untreated, minlength=ucode.max() + 1) > 0
    keep = has_untreated[ucode]
    stratum = (pd.factorize(pd.MultiIndex.from_frame(df[list(strata)].astype(str)), sort=True)[0]
               if strata else np.zeros(len(df), dtype=np.int64))
    cell = pd.Series(stratum * 10_000 + (t - t.min()))
    covered = set(cell[untreated & keep])
    keep &= cell.isin(covered).to_numpy()
    if (~keep).any():
        notes.append(f"{int((~keep).sum())} rows of units without an untreated year, or of year x "
                     "stratum cells without untreated observations, cannot be imputed: left out")
    df = df.loc[keep].reset_index(drop=True)
    sel = np.flatnonzero(keep)
    t, stratum, untreated = t[sel], stratum[sel], untreated[sel]
    treated = {c: v[sel] for c, v in treated.items()}
    event = {c: v[sel] for c, v in event.items()}
    cohort = {c: v[sel] for c, v in cohort.items()}
    ucode = pd.factorize(df[unit], sort=True)[0]
    n_units = int(ucode.max()) + 1
    clus = cluster_codes(df, cluster, unit) if cluster not in (None, unit) else None
    if clus is None:
        clus = ucode.copy()
    clus = pd.factorize(clus, sort=True)[0]
    # Untreated-model regressors: year x stratum and year x centred covariate (one year dropped
    # per stratum and per covariate: the department effects absorb it).
    years = np.unique(t)
    cols = []
    for s in np.unique(stratum):
        for yr in years[1:]:
            cols.append(((stratum == s) & (t == yr)).astype(float))
    if covariates:
        x = df[list(covariates)].to_numpy(dtype=float)
        x = x - x[untreated].mean(axis=0)
        for j in range(x.shape[1]):
            for yr in years[1:]:
                cols.append(np.where(t == yr, x[:, j], 0.0))
    z = np.column_stack(cols) if cols else np.zeros((len(df), 0))
    # A treated row is imputable only if its prediction does not depend on a direction of the
    # untreated model that its data leave free (e.g. a year with too few untreated units for
    # every covariate slope).
    ok = _identified(z, ucode, untreated, n_units)
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} treated rows whose untreated outcome is not identified "
                     "(too few untreated units in their year and stratum) left out")
        sel = np.flatnonzero(ok)
        df = df.loc[ok].reset_index(drop=True)
        t, stratum, untreated, z = t[sel], stratum[sel], untreated[sel], z[sel]
        treated = {c: v[sel] for c, v in treated.items()}
        event = {c: v[sel] for c, v in event.items()}
        cohort = {c: v[sel] for c, v in cohort.items()}
        ucode = pd.factorize(ucode[sel], sort=True)[0]
        clus = pd.factorize(clus[sel], sort=True)[0]
        n_units = int(ucode.max()) + 1
    # Decomposition columns: tool x event-time bin x effect_by cell.
    cells = (pd.factorize(df[effect_by], sort=True)[0] if effect_by is not None
             else np.zeros(len(df), dtype=np.int64))
    dcols, dtool = [], []
    for k, c in enumerate(cohorts):
        b = np.minimum(np.nan_to_num(event[c], nan=-1), event_bins - 1)
        for bin_ in range(event_bins):
            for m in np.unique(cells):
                col = treated[c] & (b == bin_) & (cells == m)
                if col.any():
                    dcols.append(col.astype(float))
                    dtool.append(k)
    decomp = np.column_stack(dcols) if dcols else np.zeros((len(df), 0))
    lead = {c: np.column_stack([(event[c] == -j).astype(float) for j in range(1, n_leads + 1)])
            for c in cohorts}
    design = _Design(y=df[outcome].to_numpy(dtype=float), unit=ucode, n_units=n_units,
                     clusters=clus, n_clusters=int(clus.max()) + 1, untreated=untreated, z=z,
                     treated=treated, event=event, cohort=cohort, decomp=decomp,
                     decomp_tool=np.asarray(dtool, dtype=np.int64), lead=lead)
    return design, df, notes


def _identified(z: np.ndarray, unit: np.ndarray, untreated: np.ndarray, n_units: int
                ) -> np.ndarray:
    """Rows whose untreated prediction is identified by the untreated rows (all of those are)."""
    if z.shape[1] == 0:
        return np.ones(z.shape[0], dtype=bool)
    u0 = np.flatnonzero(untreated)
    dm, means = _unit_demean(z[u0], unit[u0], np.ones(u0.size), n_units)
    scale = _column_scale(z)
    dm = dm / scale
    lam, vec = np.linalg.eigh(dm.T @ dm)
    null = (vec[:, lam <= _rank_tol(lam)] / scale[:, None]).T
    if null.shape[0] == 0:
        return np.ones(z.shape[0], dtype=bool)
    null = null / np.linalg.norm(null * scale, axis=1, keepdims=True)
    free = np.abs(((z - means[unit]) / scale) @ (null * scale).T).max(axis=1)
    return untreated | (free <= 1e-6)


def _rank_tol(eigenvalues: np.ndarray) -> float:
    """Eigenvalues of a Gram matrix at or below this are treated as zero."""
    top = float(eigenvalues.max()) if eigenvalues.size else 1.0
    return max(top, 1e-300) * eigenvalues.size * 1e-10


def _column_scale(x: np.ndarray) -> np.ndarray:
    """Root mean square of each column (1 for an all-zero column)."""
    rms = np.sqrt(np.mean(x * x, axis=0)) if x.shape[0] else np.ones(x.shape[1])
    return np.where(rms > 0, rms, 1.0)


def _lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Minimum-norm weighted least squares (columns scaled) through the small Gram matrix."""
    if x.shape[1] == 0:
        return np.zeros(0)
    scale = _column_scale(x)
    xs = x / scale
    xw = xs * w[:, None]
    lam, vec = np.linalg.eigh(xs.T @ xw)
    keep = lam > _rank_tol(lam)
    return (vec[:, keep] @ ((vec[:, keep].T @ (xw.T @ y)) / lam[keep])) / scale


def _unit_demean(a: np.ndarray, unit: np.ndarray, w: np.ndarray, n_units: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted within-unit demeaning of the columns of ``a``; returns (demeaned, unit means)."""
    ind = sparse.csr_matrix((w, (unit, np.arange(unit.size))), shape=(n_units, unit.size))
    tot = np.asarray(ind.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (ind @ a) / tot[:, None]
    means = np.nan_to_num(means)
    return a - means[unit], means


def _estimate(d: _Design, w: np.ndarray, cohorts: Sequence[str],
              layout: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """All estimates (overall, dynamic, group per tool, in :func:`_layout` order) for weights w."""
    u0 = np.flatnonzero(d.untreated & (w > 0))
    w0 = w[u0]
    y0, z0 = d.y[u0], d.z[u0]
    both = np.column_stack([y0, z0])
    dm, means = _unit_demean(both, d.unit[u0], w0, d.n_units)
    beta = _lstsq(dm[:, 1:], dm[:, 0], w0)
    alpha = means[:, 0] - means[:, 1:] @ beta  # unit mean of y - z'beta over untreated rows
    has_untreated = np.bincount(d.unit[u0], minlength=d.n_units) > 0
    tr = np.flatnonzero(~d.untreated & (w > 0) & has_untreated[d.unit])
    tau = d.y[tr] - alpha[d.unit[tr]] - d.z[tr] @ beta
    wt = w[tr]
    dec = d.decomp[tr]
    gamma = _lstsq(dec, tau, wt)
    out: list[float] = []
    for k, c in enumerate(cohorts):
        other = d.decomp_tool != k
        adj = tau - dec[:, other] @ gamma[other]
        mine = d.treated[c][tr]
        ev = d.event[c][tr]
        co = d.cohort[c][tr]
        out.append(_wmean(adj, wt, mine))
        out += [_wmean(adj, wt, mine & (ev == e)) for e in layout[c]["event_time"]]
        out += [_wmean(adj, wt, mine & (co == g)) for g in layout[c]["cohort"]]
        out += list(_leads(d, w, c, layout[c]["lead"]))
    return np.asarray(out)


def _leads(d: _Design, w: np.ndarray, c: str, leads: np.ndarray) -> np.ndarray:
    """Coefficients of the pre-onset lead indicators added to the untreated model (weights w)."""
    if leads.size == 0:
        return np.zeros(0)
    u0 = np.flatnonzero(d.untreated & (w > 0))
    x = np.column_stack([d.z[u0], d.lead[c][u0][:, -leads - 1]])
    dm, _ = _unit_demean(np.column_stack([d.y[u0], x]), d.unit[u0], w[u0], d.n_units)
    return _lstsq(dm[:, 1:], dm[:, 0], w[u0])[-leads.size:]


def _wmean(values: np.ndarray, w: np.ndarray, mask: np.ndarray) -> float:
    ww = w[mask]
    total = ww.sum()
    return float(np.sum(ww * values[mask]) / total) if total > 0 else np.nan


def _row(tool: str, est: float, se: float, z: float, **keys: Any) -> dict[str, Any]:
    return {"tool": tool, **keys, "estimate": est, "se": se, "lower": est - z * se,
            "upper": est + z * se}


def _layout(d: _Design, cohorts: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for c in cohorts:
        present = d.lead[c][d.untreated].any(axis=0)
        out[c] = {"event_time": np.unique(d.event[c][d.treated[c]]),
                  "cohort": np.unique(d.cohort[c][d.treated[c]]),
                  # lead event times -n..-1 with untreated observations (ascending)
                  "lead": -(np.flatnonzero(present)[::-1] + 1)}
    return out


def _pretest(d: _Design, c: str) -> dict[str, float]:
    """BJS test 1: leads added to the untreated model, cluster-robust Wald test."""
    u0 = np.flatnonzero(d.untreated)
    lead = d.lead[c][u0]
    keep = lead.any(axis=0)
    lead = lead[:, keep]
    if lead.shape[1] == 0:
        return {"stat": np.nan, "df": 0, "p_value": np.nan}
    x = np.column_stack([d.z[u0], lead])
    dm, _ = _unit_demean(np.column_stack([d.y[u0], x]), d.unit[u0], np.ones(u0.size), d.n_units)
    yd, xd = dm[:, 0], dm[:, 1:]
    scale = _column_scale(xd)
    lam, vec = np.linalg.eigh((xd / scale).T @ (xd / scale))
    keep = lam > _rank_tol(lam)
    xtx_inv = ((vec[:, keep] / lam[keep]) @ vec[:, keep].T) / np.outer(scale, scale)
    b = xtx_inv @ xd.T @ yd
    e = yd - xd @ b
    cl = d.clusters[u0]
    g = int(cl.max()) + 1
    scores = np.zeros((g, xd.shape[1]))
    np.add.at(scores, cl, xd * e[:, None])
    n, k = xd.shape[0], xd.shape[1] + d.n_units
    factor = g / (g - 1) * (n - 1) / max(n - k, 1)
    v = factor * xtx_inv @ (scores.T @ scores) @ xtx_inv
    m = lead.shape[1]
    bl, vl = b[-m:], v[-m:, -m:]
    try:
        stat = float(bl @ np.linalg.solve(vl, bl))
    except np.linalg.LinAlgError:
        return {"stat": np.nan, "df": m, "p_value": np.nan}
    return {"stat": stat, "df": m, "p_value": float(stats.chi2.sf(stat, m))}


def imputation(
    data: pd.DataFrame,
    outcome: str,
    *,
    cohorts: Sequence[str],
    unit: str = "department_id",
    time: str = "year",
    onset_lag: int = 1,
    strata: Sequence[str] = (),
    covariates: Sequence[str] = (),
    effect_by: str | None = None,
    event_bins: int = 5,
    cluster: str | None = None,
    n_boot: int = 199,
    n_leads: int = 3,
    alpha: float = 0.05,
    seed: int | np.random.SeedSequence | None = 0,
    persons: str | None = None,
) -> ImputationResult:
    """Tool-specific imputation DiD estimates (see the module docstring).

    Parameters
    ----------
    data
        Long panel, one row per unit and period.
    outcome
        Outcome column.
    cohorts
        One first-year-in-force column per tool (0 or NaN = never), e.g.
        ``["cohort_flexible_letting", "cohort_municipal_referral"]``; the tool name in the
        results is the column name without ``cohort_``.
    unit, time
        Unit and (integer) period columns.
    onset_lag
        Periods between a tool's first year in force and the first outcome it can move (1 for
        the 1-January stock: lettings of year g house tenants who appear at 1 January g + 1).
    strata
        Time-invariant columns whose cells get their own period effects.
    covariates
        Time-invariant numeric columns (pre-adoption values) with period-specific slopes.
    effect_by
        Time-invariant column by which the decomposition lets the tools' effects differ.
    event_bins
        Event-time bins of the decomposition (the last one open: e >= event_bins - 1).
    cluster
        Column of the clusters for the bootstrap (a missing value = the unit's own cluster);
        ``None`` = units.
    n_boot
        Cluster bootstrap replications (0 = no standard errors).
    n_leads
        Pre-onset periods tested by the pre-test.
    alpha
        1 - confidence level of the intervals.
    seed
        Seed of the bootstrap.
    persons
        Optional column with the number of persons behind each unit-period (e.g.
        ``n_residents``, or the outcome's base): gives the ``n_persons`` support columns of
        :meth:`ImputationResult.tidy` (a missing count counts as 0).

    Returns
    -------
    ImputationResult

    Raises
    ------
    impact.EstimationError
        Missing columns, time-varying strata/covariates/cohorts, or no treated observations.
    """
    if isinstance(onset_lag, bool) or int(onset_lag) != onset_lag or onset_lag < 0:
        raise EstimationError(f"imputation: onset_lag must be a non-negative integer, got {onset_lag!r}")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 0:
        raise EstimationError(f"imputation: n_boot must be a non-negative integer, got {n_boot!r}")
    if int(event_bins) < 1:
        raise EstimationError(f"imputation: event_bins must be >= 1, got {event_bins!r}")
    if not 0 < alpha < 1:
        raise EstimationError(f"imputation: alpha must be in (0, 1), got {alpha!r}")
    cohorts = list(cohorts)
    d, df, notes = _design(data, outcome, cohorts=cohorts, unit=unit, time=time,
                           onset_lag=int(onset_lag), strata=list(strata),
                           covariates=list(covariates), cluster=cluster, effect_by=effect_by,
                           event_bins=int(event_bins), n_leads=int(n_leads), persons=persons)
    if not any(v.any() for v in d.treated.values()):
        raise EstimationError(f"imputation: no treated observations of {cohorts} for {outcome!r}")
    n_dropped = len(data) - len(df)
    if n_dropped:
        warnings.warn(f"imputation: {n_dropped} rows left out ({'; '.join(notes)})",
                      DroppedRowsWarning, stacklevel=2)
    layout = _layout(d, cohorts)
    with single_blas_thread():
        est = _estimate(d, np.ones(d.y.size), cohorts, layout)
        draws = np.empty((int(n_boot), est.size))
        rng = np.random.default_rng(seed)
        for b in range(int(n_boot)):
            mult = np.bincount(rng.integers(0, d.n_clusters, d.n_clusters),
                               minlength=d.n_clusters).astype(float)
            draws[b] = _estimate(d, mult[d.clusters], cohorts, layout)
    if n_boot:
        with np.errstate(invalid="ignore"):
            se = np.nanstd(draws, axis=0, ddof=1)
    else:
        se = np.full(est.size, np.nan)
    z = float(stats.norm.ppf(1 - alpha / 2))
    overall, dynamic, group, leads, rows, pre = [], [], [], [], [], []
    support: dict[str, list[dict[str, float]]] = {"att": [], "event_time": [], "cohort": [],
                                                  "lead": []}
    counter = SupportCounter(d.unit, pd.factorize(df[time], sort=True)[0],
                             persons_column(df, persons, what="imputation"))
    untreated = d.untreated
    df_resid = float(untreated.sum() - np.unique(d.unit[untreated]).size - d.z.shape[1])
    keys: list[dict[str, Any]] = []
    i = 0
    t = df[time].to_numpy()
    for c in cohorts:
        tool = c.removeprefix("cohort_")
        mine = d.treated[c]
        support["att"].append(counter.sides(mine, untreated))
        support["event_time"] += [counter.sides(mine & (d.event[c] == e), untreated)
                                  for e in layout[c]["event_time"]]
        support["cohort"] += [counter.sides(mine & (d.cohort[c] == g), untreated)
                              for g in layout[c]["cohort"]]
        support["lead"] += [counter.sides(untreated & (d.event[c] == e),
                                          untreated & (d.event[c] != e))
                            for e in layout[c]["lead"]]
        keys.append({"term": "att", "tool": tool})
        overall.append(_row(tool, est[i], se[i], z)
                       | {"n_units_treated": int(np.unique(d.unit[mine]).size),
                          "n_obs_treated": int(mine.sum())})
        i += 1
        for e in layout[c]["event_time"]:
            n_obs = int((mine & (d.event[c] == e)).sum())
            keys.append({"term": "event_time", "tool": tool, "event_time": int(e)})
            dynamic.append(_row(tool, est[i], se[i], z, event_time=int(e)) | {"n_obs": n_obs})
            i += 1
        for g in layout[c]["cohort"]:
            n_obs = int((mine & (d.cohort[c] == g)).sum())
            keys.append({"term": "cohort", "tool": tool, "cohort": int(g)})
            group.append(_row(tool, est[i], se[i], z, cohort=int(g)) | {"n_obs": n_obs})
            i += 1
        for e in layout[c]["lead"]:
            keys.append({"term": "lead", "tool": tool, "event_time": int(e)})
            leads.append(_row(tool, est[i], se[i], z, event_time=int(e)))
            i += 1

        rows.append(pd.DataFrame({"tool": tool, unit: df[unit].to_numpy()[mine], time: t[mine],
                                  "cohort": d.cohort[c][mine].astype(int),
                                  "event_time": d.event[c][mine].astype(int)}))
        pre.append({"tool": tool, **_pretest(d, c)})
    settings = {"outcome": outcome, "cohorts": tuple(cohorts), "unit": unit, "time": time,
                "onset_lag": int(onset_lag), "strata": tuple(strata),
                "covariates": tuple(covariates), "effect_by": effect_by,
                "event_bins": int(event_bins), "cluster": cluster or unit,
                "n_clusters": d.n_clusters, "n_units": d.n_units, "n_obs": int(d.y.size),
                "n_rows_dropped": int(n_dropped), "n_boot": int(n_boot), "alpha": float(alpha)}
    return ImputationResult(overall=pd.DataFrame(overall), dynamic=pd.DataFrame(dynamic),
                            group=pd.DataFrame(group), pretest=pd.DataFrame(pre),
                            leads=pd.DataFrame(leads, columns=["tool", "event_time", "estimate",
                                                               "se", "lower", "upper"]),
                            rows=pd.concat(rows, ignore_index=True), settings=settings,
                            draws=draws, notes=tuple(notes),
                            support=pd.DataFrame([*support["att"], *support["event_time"],
                                                  *support["cohort"], *support["lead"]]
                                                 ).assign(df_resid=df_resid),
                            draw_keys=pd.DataFrame(keys, columns=["term", "tool", "event_time",
                                                                  "cohort"]).assign(estimate=est))
