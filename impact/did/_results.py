"""Shared helpers of the DiD estimators: input preparation, clusters, coefficient tables, bootstrap.

Everything here is private; the public estimators are :func:`impact.did.twfe`,
:func:`impact.did.event_study`, :func:`impact.did.bacon` and :func:`impact.did.dose_response`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from impact.errors import DroppedRowsWarning, EstimationError
from impact.results import Result, draw_intervals, new_axes

__all__ = [
    "DoseResponseResult",
    "DroppedRowsWarning",
    "SwitchersResult",
    "as_frame",
    "bootstrap_units",
    "cluster_codes",
    "coef_table",
    "draws_vcov",
    "drop_missing",
    "format_table",
    "require_columns",
    "unit_cluster_codes",
]


def as_frame(panel: Any) -> pd.DataFrame:
    """Return the department-year frame of ``panel``.

    Parameters
    ----------
    panel
        A :class:`pandas.DataFrame` or an object with a ``.frame`` DataFrame (``impact.panel.Panel``).
        Unit and time may be columns or (named) index levels; index levels are reset to columns.
    """
    frame = getattr(panel, "frame", panel)
    if not isinstance(frame, pd.DataFrame):
        raise EstimationError(
            f"expected a pandas DataFrame or a Panel with a .frame, got {type(panel).__name__}"
        )
    levels = [n for n in frame.index.names if n is not None and n not in frame.columns]
    if levels:
        frame = frame.reset_index(level=levels)
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise :class:`EstimationError` naming every column of ``columns`` missing from ``frame``."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, list(frame.columns)[:25]))
        raise EstimationError(f"{what}: column(s) {missing} not in the data (columns: {have} ...)")


def drop_missing(
    frame: pd.DataFrame, columns: Sequence[str], *, what: str
) -> tuple[pd.DataFrame, int]:
    """Drop rows with a missing value in ``columns``; count them and warn.

    Returns
    -------
    frame, n_dropped
        The complete rows (a copy) and the number of rows left out.
    """
    cols = list(dict.fromkeys(columns))
    bad = frame[cols].isna().any(axis=1).to_numpy()
    n_bad = int(bad.sum())
    if n_bad:
        per = {c: int(frame[c].isna().sum()) for c in cols if frame[c].isna().any()}
        warnings.warn(
            f"{what}: {n_bad} of {len(frame)} row(s) left out for missing values {per}",
            DroppedRowsWarning,
            stacklevel=3,
        )
    out = frame.loc[~bad].copy()
    if out.empty:
        raise EstimationError(f"{what}: no rows left after removing rows with missing values")
    return out, n_bad


def cluster_codes(frame: pd.DataFrame, cluster: str | None, unit: str) -> np.ndarray | None:
    """Integer cluster codes for ``frame``.

    A missing cluster value (e.g. ``plan_id`` of a department without a helhedsplan) makes the
    unit its own cluster: its observations form one cluster, distinct from every plan.
    ``cluster=None`` returns ``None`` (heteroskedasticity-robust covariance).
    """
    if cluster is None:
        return None
    require_columns(frame, [cluster], what="cluster")
    values = frame[cluster]
    own = ("__own_cluster__:" + frame[unit].astype(str)).to_numpy()
    keys = np.where(values.isna().to_numpy(), own, ("c:" + values.astype(str)).to_numpy())
    codes = pd.factorize(keys)[0].astype(np.int64)
    if codes.max() < 1:
        raise EstimationError(f"clustering by {cluster!r} needs at least two clusters, found one")
    return codes


def unit_cluster_codes(frame: pd.DataFrame, cluster: str, unit: str, units: np.ndarray,
                       *, what: str) -> np.ndarray:
    """Cluster code per unit of ``units`` (in that order) for a block bootstrap over clusters.

    Codes follow the first appearance in ``units``, and a missing value makes the unit its own
    cluster, so a column with a distinct (or missing) value per unit gives ``0 .. n-1``: the
    unit bootstrap, draw for draw.

    Raises
    ------
    EstimationError
        If the cluster value varies within a unit or there are fewer than two clusters.
    """
    varies = frame.groupby(unit)[cluster].nunique(dropna=False) > 1
    if varies.any():
        raise EstimationError(f"{what}: cluster column {cluster!r} varies within unit(s) "
                              f"{list(varies.index[varies][:10])}; it must be constant per unit")
    values = frame.groupby(unit)[cluster].first().reindex(units)
    own = ("__own_cluster__:" + pd.Series(units).astype(str)).to_numpy()
    keys = np.where(values.isna().to_numpy(), own, ("c:" + values.astype(str)).to_numpy())
    codes = pd.factorize(keys)[0].astype(np.int64)
    if codes.max() < 1:
        raise EstimationError(f"{what}: clustering by {cluster!r} needs at least two clusters, "
                              "found one")
    return codes


def draws_vcov(draws: np.ndarray, k: int) -> np.ndarray:
    """Covariance (ddof 1) of bootstrap draws over the draws where all ``k`` columns are finite.

    Its diagonal equals the squared bootstrap standard errors of :func:`boot_summary` when no draw
    is NaN; NaN (k x k) with fewer than two complete draws.
    """
    if draws.ndim != 2 or draws.shape[1] != k:
        return np.full((k, k), np.nan)
    ok = draws[np.all(np.isfinite(draws), axis=1)]
    if ok.shape[0] < 2:
        return np.full((k, k), np.nan)
    dev = ok - ok.mean(axis=0)
    return (dev.T @ dev) / (ok.shape[0] - 1)


def coef_table(
    terms: Sequence[str],
    estimate: np.ndarray,
    se: np.ndarray,
    *,
    alpha: float,
    df: float | None = None,
) -> pd.DataFrame:
    """Coefficient table with columns term, estimate, se, statistic, p_value, lower, upper.

    ``df`` selects Student-t inference with ``df`` degrees of freedom; ``None`` the normal.
    """
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    dist = stats.norm if df is None else stats.t(df)
    crit = float(dist.ppf(1 - alpha / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    p = 2 * dist.sf(np.abs(stat))
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": est,
            "se": se,
            "statistic": stat,
            "p_value": p,
            "lower": est - crit * se,
            "upper": est + crit * se,
        }
    )


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """Render a small DataFrame as fixed-width text for ``.summary()``."""
    return df.to_string(index=False, float_format=lambda v: f"{v:.{digits}g}")


def bootstrap_units(
    units: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int,
    seed: int | np.random.Generator | None,
) -> np.ndarray:
    """Unit-cluster (pairs) bootstrap draws of a vector ``statistic``.

    Parameters
    ----------
    units
        The distinct unit labels.
    statistic
        Maps an array of resampled unit labels (with repeats) to a 1-d array of estimates; a
        repeated unit must count as separate units (relabel before grouping).
    n_boot
        Number of bootstrap samples.
    seed
        Seed or Generator; the only source of randomness.

    Returns
    -------
    ndarray
        ``(n_boot, k)`` draws; rows where the statistic could not be computed are NaN.
    """
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    for _ in range(n_boot):
        pick = units[rng.integers(0, len(units), len(units))]
        try:
            draws.append(np.asarray(statistic(pick), dtype=float))
        except EstimationError:
            draws.append(np.full(len(draws[0]) if draws else 0, np.nan))
    width = max(len(d) for d in draws)
    return np.vstack([d if len(d) == width else np.full(width, np.nan) for d in draws])


def boot_summary(
    estimate: np.ndarray, draws: np.ndarray, *, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap standard errors and normal-approximation intervals ``estimate +- z * se``.

    Draws that are NaN (a bootstrap sample where a quantity could not be computed) are ignored.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(draws, axis=0, ddof=1) if len(draws) > 1 else np.full(len(estimate), np.nan)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return se, estimate - z * se, estimate + z * se


def band(ax: Any, x: np.ndarray, est: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
         label: str, step: bool = False) -> None:
    """Draw an estimate with its interval: a line with a shaded band, or points with bars."""
    if step:
        draw_intervals(ax, x, est, lower, upper, label=label)
    else:
        ax.plot(x, est, label=label)
        ax.fill_between(x, lower, upper, alpha=0.25)
    ax.axhline(0, color="grey", lw=0.8)


# Results of impact.did.dose_response (kept here so that module stays small)


@dataclass(frozen=True)
class DoseResponseResult(Result):
    """Result of :func:`dose_response` with ``design="staggered"``.

    Attributes
    ----------
    dose_curve
        One row per dose (grid point or bin): dose, (bin), att, att_se, att_lower, att_upper, acr,
        acr_se, acr_lower, acr_upper. For bins, ``acr`` is the slope between the previous bin and
        this one (difference of ATTs over difference of mean doses).
    overall
        ATT^o and ACR^o: term, estimate, se, lower, upper.
    event_study
        Per event time: event_time, att, att_se, att_lower, att_upper, acr, acr_se, ...
    group_time
        Per (cohort, time) cell: cohort, time, base, n_treated, n_control, att, acr.
    n_dropped, n_dropped_units
        Rows left out for missing values; treated units left out for lacking a positive dose.
    cluster, cluster_variable, n_clusters
        The ``cluster`` argument, the level the bootstrap resamples (``cluster`` or the unit
        column) and its number of clusters.
    support
        The support columns of :meth:`tidy`, one row per row of ``tidy()``.

    Event-study interface: ``event_time``, ``estimate`` (ATT^o(e)) and ``se`` (numpy arrays, the
    rows of ``event_study``), :meth:`vcov` (covariance of the bootstrap draws; ``parameter="acr"``
    for ACR^o(e)) and ``reference_period`` (-1 with ``base_period="universal"``, whose cells are
    their own base and are not estimated; None with ``"varying"``).
    """

    dose_curve: pd.DataFrame
    overall: pd.DataFrame
    event_study: pd.DataFrame
    group_time: pd.DataFrame
    outcome: str
    dose: str
    method: str
    control: str
    base_period: str
    degree: int
    knots: tuple[float, ...]
    n_units: int
    n_treated: int
    n_dropped: int
    n_dropped_units: int
    n_boot: int
    seed: int | None
    alpha: float
    cluster: str | None = None
    cluster_variable: str | None = None
    n_clusters: int | None = None
    event_draws: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False,
                                    compare=False)
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def event_time(self) -> np.ndarray:
        """Event times of the event study."""
        return self.event_study["event_time"].to_numpy(dtype=float)

    @property
    def estimate(self) -> np.ndarray:
        """ATT^o(e) by event time."""
        return self.event_study["att"].to_numpy(dtype=float)

    @property
    def se(self) -> np.ndarray:
        """Bootstrap standard errors of ATT^o(e)."""
        return self.event_study["att_se"].to_numpy(dtype=float)

    @property
    def reference_period(self) -> int | None:
        """The event time not estimated because it is every cell's base (universal base)."""
        return -1 if self.base_period == "universal" else None

    def vcov(self, parameter: str = "att") -> np.ndarray:
        """Covariance of the bootstrap draws of ATT^o(e) (or ACR^o(e)) across event times.

        Computed over the draws in which every event time could be estimated; its diagonal is
        ``se**2`` when no draw failed. NaN without bootstrap (``n_boot < 2``).
        """
        if parameter not in ("att", "acr"):
            raise EstimationError(f"vcov: parameter must be 'att' or 'acr', got {parameter!r}")
        ne = len(self.event_study)
        d = self.event_draws
        part = d[:, :ne] if parameter == "att" else d[:, ne:]
        return draws_vcov(part if d.shape[1:] == (2 * ne,) else np.empty((0, 0)), ne)

    def _tidy(self) -> pd.DataFrame:
        """Long table: term, estimate, se, lower, upper, the support columns, parameter, dose,
        event_time, cluster, n_clusters.

        Rows: ATT^o and ACR^o, then ATT(d) and ATT^o(e), then ACR(d) and ACR^o(e). Support:
        the (cohort, period) cells behind a row (post-treatment cells for ATT^o, ACR^o and the
        dose curve, the cells at event time e for the event study); treated side = the cells'
        treated units (for binned curves: those in the bin, and the bin below for ACR) at the
        cells' two periods, control side = their comparison units; ``df_resid`` = the smallest
        residual df of those cells (treated + comparison units minus the dose basis, the
        intercept and the covariates).
        """
        parts = [self.overall.assign(parameter=self.overall["term"], dose=np.nan,
                                     event_time=np.nan)]
        for par in ("att", "acr"):
            c, e = self.dose_curve, self.event_study
            parts.append(pd.DataFrame({
                "term": [f"{par.upper()}(d={d:.4g})" for d in c["dose"]], "parameter": par.upper(),
                "dose": c["dose"], "event_time": np.nan, "estimate": c[par], "se": c[f"{par}_se"],
                "lower": c[f"{par}_lower"], "upper": c[f"{par}_upper"]}))
            parts.append(pd.DataFrame({
                "term": [f"{par.upper()}^o(e={k})" for k in e["event_time"]],
                "parameter": f"{par.upper()}^o(e)", "dose": np.nan, "event_time": e["event_time"],
                "estimate": e[par], "se": e[f"{par}_se"], "lower": e[f"{par}_lower"],
                "upper": e[f"{par}_upper"]}))
        cols = ["term", "estimate", "se", "lower", "upper", "parameter", "dose", "event_time"]
        out = pd.concat(parts, ignore_index=True)[cols]
        if len(self.support) == len(out):
            out = pd.concat([out.iloc[:, :5], self.support.reset_index(drop=True),
                             out.iloc[:, 5:]], axis=1)
        return out.assign(cluster=self.cluster_variable, n_clusters=self.n_clusters)

    _summary_columns = ("parameter", "dose", "event_time")

    def _summary_title(self) -> str:
        return f"Dose response (CGS 2024), {self.outcome} on dose {self.dose}"

    def _summary_notes(self) -> tuple[str, ...]:
        spec = (f"B-spline degree {self.degree}, knots {list(np.round(self.knots, 4))}"
                if self.method == "parametric" else f"{len(self.dose_curve)} dose bins")
        return (f"{spec}; control {self.control}, base period {self.base_period}",
                f"units = {self.n_units}, treated = {self.n_treated}, rows dropped = "
                f"{self.n_dropped}, treated units without dose = {self.n_dropped_units}; "
                f"bootstrap over {self.cluster_variable} ({self.n_clusters} clusters) n = "
                f"{self.n_boot}, seed = {self.seed}; {100 * (1 - self.alpha):g}% intervals")

    def _draw(self, ax: Any, parameter: str = "att") -> None:
        """One dose curve (``"att"``: ATT(d), ``"acr"``: ACR(d)) with pointwise intervals."""
        c, name = self.dose_curve, f"{parameter.upper()}(d)"
        band(ax, c["dose"].to_numpy(), c[parameter].to_numpy(),
             c[f"{parameter}_lower"].to_numpy(), c[f"{parameter}_upper"].to_numpy(), label=name,
             step=self.method == "binned")
        ax.set_xlabel(f"dose ({self.dose})")
        ax.set_ylabel(f"effect on {self.outcome}")
        ax.set_title(name)

    def plot(self, ax: Any = None, parameter: str | None = None) -> Any:
        """Dose curves with pointwise intervals; returns the matplotlib Figure.

        Without ``ax``: ATT(d) and ACR(d) side by side (or the one named by ``parameter``);
        with ``ax``: the curve ``parameter`` (default ``"att"``) drawn into it.
        """
        if parameter not in (None, "att", "acr"):
            raise EstimationError(f"plot: parameter must be 'att' or 'acr', got {parameter!r}")
        if ax is not None or parameter is not None:
            fig, axes = new_axes(ax, figsize=(4.5, 3.5))
            self._draw(axes, parameter or "att")
            if ax is None:
                fig.tight_layout()
            return fig
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.5))
        for i, par in enumerate(("att", "acr")):
            self._draw(fig.add_subplot(1, 2, i + 1), par)
        fig.tight_layout()
        return fig


@dataclass(frozen=True)
class SwitchersResult(Result):
    """Result of :func:`dose_response` with ``design="switchers"``.

    Attributes
    ----------
    effects
        One row per horizon (placebos negative): horizon, estimate (normalised effect per unit of
        intensity), se, lower, upper, did (non-normalised DID_l), did_se, dose_change (delta^D_l),
        n_switchers, n_unmatched.
    did_m
        The instantaneous estimator DID_M: estimate, se, lower, upper, n_switches, n_unmatched.
    n_gap_units
        Units left out of the DID_l effects because their intensity is missing somewhere between
        their first observation and their first switch.
    cluster, cluster_variable, n_clusters
        As in :class:`DoseResponseResult`.
    support
        The support columns of :meth:`tidy`, one row per row of ``tidy()``.

    Event-study interface: ``event_time`` (the horizons, placebos negative), ``estimate``, ``se``
    (normalised effects), :meth:`vcov` (covariance of the bootstrap draws) and
    ``reference_period`` (0: the period before the first switch, F-1, against which every effect
    and placebo is measured).
    """

    effects: pd.DataFrame
    did_m: pd.DataFrame
    outcome: str
    dose: str
    n_units: int
    n_switchers: int
    n_dropped: int
    n_gap_units: int
    n_boot: int
    seed: int | None
    alpha: float
    cluster: str | None = None
    cluster_variable: str | None = None
    n_clusters: int | None = None
    effect_draws: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False,
                                     compare=False)
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def event_time(self) -> np.ndarray:
        """Horizons of ``effects`` (placebos negative)."""
        return self.effects["horizon"].to_numpy(dtype=float)

    @property
    def estimate(self) -> np.ndarray:
        """Normalised effects (per unit of intensity) by horizon."""
        return self.effects["estimate"].to_numpy(dtype=float)

    @property
    def se(self) -> np.ndarray:
        """Their bootstrap standard errors."""
        return self.effects["se"].to_numpy(dtype=float)

    @property
    def reference_period(self) -> int:
        """Horizon 0, the period F-1 before the first switch."""
        return 0

    def vcov(self) -> np.ndarray:
        """Covariance of the bootstrap draws of the normalised effects across horizons."""
        return draws_vcov(self.effect_draws, len(self.effects))

    def _tidy(self) -> pd.DataFrame:
        """term, estimate, se, lower, upper, the support columns, horizon, cluster, n_clusters
        (normalised effects, placebos, DID_M).

        Support: treated side = the switchers matched to a control at the row's two periods
        (F-1 and F-1+l, or the placebo's), control side = the not-yet-switched units with
        their baseline at the same periods; DID_M: the switchers of each period t and the
        stayers they are compared with, at t-1 and t. ``df_resid`` is not defined (``<NA>``).
        """
        e = self.effects
        terms = [f"placebo_{-h}" if h < 0 else f"effect_{h}" for h in e["horizon"]]
        out = pd.DataFrame({"term": terms}).join(e[["estimate", "se", "lower", "upper"]])
        out["horizon"] = e["horizon"].to_numpy(dtype=float)
        m = self.did_m.assign(term="DID_M", horizon=np.nan)
        out = pd.concat([out, m[out.columns]], ignore_index=True)
        if len(self.support) == len(out):
            out = pd.concat([out.iloc[:, :5], self.support.reset_index(drop=True),
                             out.iloc[:, 5:]], axis=1)
        return out.assign(cluster=self.cluster_variable, n_clusters=self.n_clusters)

    _summary_columns = ("horizon",)

    def _summary_title(self) -> str:
        return (f"Switchers (de Chaisemartin-D'Haultfoeuille), {self.outcome} on intensity "
                f"{self.dose}: normalised effects per unit of intensity, placebos, DID_M")

    def _summary_notes(self) -> tuple[str, ...]:
        return (f"units = {self.n_units}, switchers = {self.n_switchers}, rows dropped = "
                f"{self.n_dropped}, units with gaps before the first switch = "
                f"{self.n_gap_units}; bootstrap over {self.cluster_variable} ({self.n_clusters} "
                f"clusters) n = {self.n_boot}, seed = {self.seed}",)

    def _draw(self, ax: Any) -> None:
        """Event-study plot of the normalised effects and placebos by horizon."""
        e = self.effects
        band(ax, e["horizon"].to_numpy(), e["estimate"].to_numpy(), e["lower"].to_numpy(),
             e["upper"].to_numpy(), label="effect per unit of intensity", step=True)
        ax.set_xlabel("periods since first switch (negative: placebo)")
        ax.set_ylabel(f"effect on {self.outcome}")
