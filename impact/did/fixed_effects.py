"""Two-way fixed effects DiD and event studies on linearmodels' PanelOLS.

Both estimators regress the outcome on the treatment (binary adoption or a continuous intensity such
as ``intensity_flexible_letting``) with unit (department) and time (year) effects absorbed by
:class:`linearmodels.panel.PanelOLS`.

Standard errors
---------------
Cluster-robust by the column named in ``cluster`` (``department_id``, ``plan_id``, ``municipality_id``,
or any other column); ``cluster=None`` gives heteroskedasticity-robust errors. A missing cluster value
(``plan_id`` is null for departments without a helhedsplan) makes that unit its own cluster. The
small-sample correction is linearmodels' ``debiased=True, group_debias=True``, that is the CR1
correction of Stata's ``regress ... i.unit i.year, vce(cluster c)`` on the dummy-variable regression::

    V = G/(G-1) * (n-1)/(n-K) * (X'X)^-1 (sum_g X_g'e_g e_g'X_g) (X'X)^-1

with G clusters, n observations and K = all regressors of the LSDV regression (treatment,
covariates, N unit and T-1 time dummies). linearmodels counts both sets of effects in K when the
model has two effects, also when the unit effects are nested in the clusters. Inference uses the t
distribution with n-K degrees of freedom, as linearmodels does.

Timing of the treatment
-----------------------
``treatment`` may be any column, e.g. a lagged exposure. In the department panel the intensity of
year t counts the lettings of calendar year t while the outcomes are stocks at 1 January of t, so
the lettings of year t can first move the stock of t+1: pass an exposure that precedes the outcome
(the intensity of t-1, or the cumulative share let through the channel since adoption up to t-1),
not same-year intensity. A lag shifted within each unit leaves the first year of every unit
missing; those rows are left out and counted like any other missing value.

Missing values
--------------
Rows with a missing outcome, treatment, covariate, weight, unit, time or cohort are left out; their
number is stored in ``n_dropped`` and reported with a :class:`~impact.did._results.DroppedRowsWarning`.
Unbalanced panels are used as they are.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from linearmodels import PanelOLS
from linearmodels.panel.utility import AbsorbingEffectError

from impact.did._results import (
    DroppedRowsWarning,
    as_frame,
    cluster_codes,
    coef_table,
    drop_missing,
    require_columns,
)
from impact.errors import EstimationError, EstimationWarning
from impact.results import Result, SupportCounter, draw_intervals, persons_column

__all__ = ["EventStudyResult", "TWFEResult", "event_study", "twfe"]


@dataclass(frozen=True)
class TWFEResult(Result):
    """Result of :func:`twfe`.

    Attributes
    ----------
    coefficients
        One row per regressor (treatment first, then covariates): term, estimate, se, statistic,
        p_value, lower, upper.
    outcome, treatment
        Names of the outcome and treatment column(s).
    n_obs, n_units, n_periods, n_clusters
        Estimation sample sizes (``n_clusters`` is None without clustering).
    n_dropped
        Rows left out for missing values.
    cluster, alpha
        Cluster column (None: robust) and the level of the intervals (1 - alpha).
    fit
        The underlying :class:`linearmodels.panel.results.PanelEffectsResults`.
    support
        Per row of ``coefficients``: the support columns of :meth:`tidy`.
    """

    coefficients: pd.DataFrame
    outcome: str
    treatment: tuple[str, ...]
    n_obs: int
    n_units: int
    n_periods: int
    n_clusters: int | None
    n_dropped: int
    cluster: str | None
    alpha: float
    fit: Any = field(repr=False, compare=False)
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def estimate(self) -> float:
        """Coefficient of the (first) treatment."""
        return float(self.coefficients["estimate"].iloc[0])

    @property
    def se(self) -> float:
        """Standard error of the (first) treatment coefficient."""
        return float(self.coefficients["se"].iloc[0])

    def _tidy(self) -> pd.DataFrame:
        """Coefficient table with the support columns, ``cluster`` (None: robust) and
        ``n_clusters``.

        Support: every row rests on the whole estimation sample (``n_units``, ``n_persons``);
        a treatment row also has its sides: treated = the unit-periods with a non-zero
        treatment, control = the unit-periods of units never treated in the sample;
        ``df_resid`` = n - K, the residual degrees of freedom of the t inference.
        """
        return _with_support(self.coefficients, self.support, self.cluster, self.n_clusters)

    def vcov(self) -> np.ndarray:
        """Covariance of the coefficients (rows of ``coefficients``), as fitted."""
        terms = list(self.coefficients["term"])
        return self.fit.cov.loc[terms, terms].to_numpy(dtype=float)

    _summary_columns = ("p_value",)

    def _summary_title(self) -> str:
        return f"TWFE (PanelOLS, unit and time effects): {self.outcome}"

    def _summary_notes(self) -> tuple[str, ...]:
        cl = f"clustered by {self.cluster} ({self.n_clusters} clusters)" if self.cluster else "robust"
        return (f"n = {self.n_obs}, units = {self.n_units}, periods = {self.n_periods}, "
                f"rows dropped (missing) = {self.n_dropped}; SE {cl}; "
                f"{100 * (1 - self.alpha):g}% CI",)

    @property
    def _figsize(self) -> tuple[float, float]:  # type: ignore[override]
        return (5.0, 0.6 + 0.5 * len(self.coefficients))

    def _draw(self, ax: Any) -> None:
        """Coefficient plot: one row per term, estimate with its confidence interval."""
        c = self.coefficients
        y = np.arange(len(c))[::-1]
        draw_intervals(ax, y, c["estimate"], c["lower"], c["upper"], horizontal=True)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, c["term"])
        ax.set_xlabel(f"effect on {self.outcome}")


@dataclass(frozen=True)
class EventStudyResult(Result):
    """Result of :func:`event_study`.

    Event-study interface (shared with ``att_gt(...).aggregate("dynamic")`` and
    :func:`impact.did.dose_response`): ``event_time``, ``estimate``, ``se`` (numpy arrays, the
    reference period excluded), :meth:`vcov` and ``reference_period``.

    Attributes
    ----------
    coefficients
        One row per event time in the window, the reference period included (estimate 0, se
        NaN, ``reference`` True): event_time, term, estimate, se, statistic, p_value, lower, upper,
        reference, binned (True for a binned endpoint).
    covariates
        Coefficients of the covariates (same columns as :class:`TWFEResult`).
    n_outside_window
        Rows of treated units outside the window, left out when ``bin_endpoints=False``.
    support
        Per row of ``coefficients``: the support columns of :meth:`tidy`.
    """

    coefficients: pd.DataFrame
    covariates: pd.DataFrame
    outcome: str
    cohort: str
    window: tuple[int, int]
    reference: int
    bin_endpoints: bool
    n_obs: int
    n_units: int
    n_periods: int
    n_clusters: int | None
    n_dropped: int
    n_outside_window: int
    cluster: str | None
    alpha: float
    fit: Any = field(repr=False, compare=False)
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def _estimated(self) -> pd.DataFrame:
        return self.coefficients[~self.coefficients["reference"].to_numpy(dtype=bool)]

    @property
    def event_time(self) -> np.ndarray:
        """Event times of the estimated coefficients (the reference period excluded)."""
        return self._estimated["event_time"].to_numpy(dtype=float)

    @property
    def estimate(self) -> np.ndarray:
        """Event-time coefficients in ``event_time`` order."""
        return self._estimated["estimate"].to_numpy(dtype=float)

    @property
    def se(self) -> np.ndarray:
        """Their standard errors (cluster-robust when clustering)."""
        return self._estimated["se"].to_numpy(dtype=float)

    @property
    def reference_period(self) -> int:
        """The omitted event time (normalised to zero), as ``reference``."""
        return self.reference

    def vcov(self) -> np.ndarray:
        """Joint covariance of :attr:`estimate` (in ``event_time`` order), as fitted (CR1 when
        clustering, HC1 otherwise); ``sqrt(diag)`` is :attr:`se`."""
        terms = list(self._estimated["term"])
        v = self.fit.cov.loc[terms, terms].to_numpy(dtype=float)
        return (v + v.T) / 2

    def _tidy(self) -> pd.DataFrame:
        """Event-time coefficients, reference period included, with the support columns,
        ``cluster`` (None: robust) and ``n_clusters``; then ``event_time``, the test columns,
        ``reference`` and ``binned``.

        Support: ``n_units``, ``n_persons`` = the whole estimation sample; treated side = the
        unit-periods at that event time (after binning), control side = the unit-periods with no
        event-time indicator on (never-treated units, and treated units at the reference
        period); ``df_resid`` = n - K.
        """
        return _with_support(self.coefficients, self.support, self.cluster, self.n_clusters)

    _summary_columns = ("p_value",)

    def _summary_title(self) -> str:
        return f"Event study (PanelOLS, unit and time effects): {self.outcome}, cohort {self.cohort}"

    def _summary_notes(self) -> tuple[str, ...]:
        cl = f"clustered by {self.cluster} ({self.n_clusters} clusters)" if self.cluster else "robust"
        lo, hi = self.window
        binned = "binned endpoints" if self.bin_endpoints else "endpoints trimmed"
        notes = (f"window [{lo}, {hi}] ({binned}), reference {self.reference}; n = {self.n_obs}, "
                 f"units = {self.n_units}, periods = {self.n_periods}, rows dropped (missing) = "
                 f"{self.n_dropped}, outside window = {self.n_outside_window}; SE {cl}",)
        if len(self.covariates):
            notes += ("covariates: " + ", ".join(
                f"{r.term} {r.estimate:.4g} (se {r.se:.4g})"
                for r in self.covariates.itertuples(index=False)),)
        return notes

    def _draw(self, ax: Any) -> None:
        """Estimates and intervals by event time; the reference period as an open point at 0."""
        c = self.coefficients
        est = c[~c["reference"]]
        draw_intervals(ax, est["event_time"], est["estimate"], est["lower"], est["upper"],
                       label=f"{100 * (1 - self.alpha):g}% CI")
        ax.plot([self.reference], [0.0], "o", mfc="white", color="C0", label="reference")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(self.reference + 0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(c["event_time"], [t[len("event_time["):-1] for t in c["term"]])
        ax.set_xlabel("years since adoption")
        ax.set_ylabel(f"effect on {self.outcome}")
        ax.legend(frameon=False)


def _with_support(table: pd.DataFrame, support: pd.DataFrame, cluster: str | None,
                  n_clusters: int | None) -> pd.DataFrame:
    out = table.reset_index(drop=True).copy()
    if len(support) == len(out):
        first = ["term", "estimate", "se", "lower", "upper"]
        out = pd.concat([out[first], support.reset_index(drop=True),
                         out.drop(columns=first)], axis=1)
    out["cluster"] = cluster
    out["n_clusters"] = pd.array([n_clusters] * len(out), dtype="Int64")
    return out


def _support(data: pd.DataFrame, terms: Sequence[str], *, unit: str, time: str,
             persons: np.ndarray | None, df_resid: float,
             sides: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Support columns per coefficient: the whole sample, and the sides of ``sides[term]``."""
    counter = SupportCounter.from_frame(data, unit, time, persons)
    n_units, n_persons = counter.count(np.ones(len(data), dtype=bool))
    rows = []
    for term in terms:
        row: dict[str, float] = {"n_units": n_units, "n_persons": n_persons}
        if term in sides:
            side = counter.sides(*sides[term])
            row |= {k: v for k, v in side.items() if k not in ("n_units", "n_persons")}
        rows.append(row)
    out = pd.DataFrame(rows, columns=["n_units", "n_persons", "n_units_treated",
                                      "n_units_control", "n_persons_treated",
                                      "n_persons_control"])
    out["df_resid"] = df_resid
    return out


def _as_tuple(x: str | Sequence[str] | None) -> tuple[str, ...]:
    if x is None:
        return ()
    return (x,) if isinstance(x, str) else tuple(x)


def _fit(
    data: pd.DataFrame,
    outcome: str,
    regressors: list[str],
    *,
    unit: str,
    time: str,
    clusters: np.ndarray | None,
    weights: str | None,
) -> Any:
    """Fit PanelOLS with unit and time effects and the documented covariance."""
    idx = pd.MultiIndex.from_arrays([data[unit].to_numpy(), data[time].to_numpy()])
    if idx.duplicated().any():
        dup = data.loc[idx.duplicated(keep=False), [unit, time]].head(5).to_dict("records")
        raise EstimationError(f"more than one row per ({unit}, {time}), e.g. {dup}")
    y = pd.Series(data[outcome].to_numpy(float), index=idx, name=outcome)
    x = pd.DataFrame(data[regressors].to_numpy(float), index=idx, columns=regressors)
    w = None if weights is None else pd.Series(data[weights].to_numpy(float), index=idx)
    if w is not None and (w <= 0).any():
        raise EstimationError(f"weights {weights!r} must be positive")
    model = PanelOLS(y, x, entity_effects=True, time_effects=True, weights=w)
    try:
        if clusters is None:
            return model.fit(cov_type="robust", debiased=True)
        cl = pd.DataFrame({"cluster": clusters}, index=idx)
        return model.fit(cov_type="clustered", clusters=cl, debiased=True, group_debias=True)
    except AbsorbingEffectError as err:
        raise EstimationError(
            f"a regressor is collinear with the unit and time effects ({err}); e.g. a treatment "
            "that never varies within units over time, or an event study without never-treated "
            "units and without binned endpoints (then one more event time must be omitted)"
        ) from err


def _prepare(
    panel: Any,
    needed: list[str],
    *,
    unit: str,
    time: str,
    cluster: str | None,
    what: str,
) -> tuple[pd.DataFrame, int]:
    frame = as_frame(panel)
    require_columns(frame, [*needed, unit, time] + ([cluster] if cluster else []), what=what)
    return drop_missing(frame, [*needed, unit, time], what=what)


def twfe(
    panel: Any,
    outcome: str,
    treatment: str | Sequence[str],
    *,
    unit: str = "department_id",
    time: str = "year",
    cluster: str | None = "department_id",
    covariates: Sequence[str] | None = None,
    weights: str | None = None,
    alpha: float = 0.05,
    persons: str | None = None,
) -> TWFEResult:
    """Two-way fixed effects regression ``y_it = a_i + l_t + b * D_it + X_it'g + e_it``.

    Parameters
    ----------
    panel
        Department-year data: a DataFrame or ``impact.panel.Panel`` (its ``.frame`` is used).
    outcome
        Outcome column, e.g. ``"in_share_employed"``.
    treatment
        Treatment column(s): a 0/1 adoption indicator (``in_force_flexible_letting``) or an
        intensity (``intensity_flexible_letting``, share of lettings through the channel). Any
        column works, lagged ones included; an intensity should precede the outcome (the
        lettings of year t reach the 1-January stock of t+1; see the module docstring).
    unit, time
        Unit and time columns; their effects are absorbed.
    cluster
        Column whose values define the clusters (``department_id``, ``plan_id``,
        ``municipality_id``); a missing value makes the unit its own cluster. ``None``:
        heteroskedasticity-robust covariance.
    covariates
        Time-varying control columns.
    weights
        Column of positive regression weights (e.g. ``n_residents``); weighted least squares.
    alpha
        1 - level of the confidence intervals.
    persons
        Optional column with the number of persons behind each unit-period (e.g.
        ``n_residents``, or the outcome's base): gives the ``n_persons`` support columns of
        :meth:`TWFEResult.tidy` (a missing count counts as 0).

    Returns
    -------
    TWFEResult

    Raises
    ------
    EstimationError
        Missing columns, duplicate unit-time rows, a treatment absorbed by the effects, or fewer
        than two clusters.
    """
    treat = _as_tuple(treatment)
    covs = list(_as_tuple(covariates))
    if not treat:
        raise EstimationError("twfe: give at least one treatment column")
    needed = [outcome, *treat, *covs] + ([weights] if weights else [])
    data, n_dropped = _prepare(panel, needed, unit=unit, time=time, cluster=cluster, what="twfe")
    clusters = cluster_codes(data, cluster, unit)
    fit = _fit(data, outcome, [*treat, *covs], unit=unit, time=time, clusters=clusters,
               weights=weights)
    table = coef_table(list(fit.params.index), fit.params.to_numpy(), fit.std_errors.to_numpy(),
                       alpha=alpha, df=float(fit.df_resid))
    codes = pd.factorize(data[unit], sort=True)[0]
    sides = {}
    for name in treat:
        on = data[name].to_numpy(float) != 0
        ever = np.bincount(codes, on.astype(float)) > 0
        sides[name] = (on, ~ever[codes])
    support = _support(data, list(table["term"]), unit=unit, time=time,
                       persons=persons_column(data, persons, what="twfe"),
                       df_resid=float(fit.df_resid), sides=sides)
    return TWFEResult(
        coefficients=table, outcome=outcome, treatment=treat, n_obs=int(fit.nobs),
        n_units=int(data[unit].nunique()), n_periods=int(data[time].nunique()),
        n_clusters=None if clusters is None else int(np.unique(clusters).size),
        n_dropped=n_dropped, cluster=cluster, alpha=alpha, fit=fit, support=support,
    )


def _event_label(e: int, lo: int, hi: int, binned: bool) -> str:
    if binned and e == lo:
        return f"<={e}"
    if binned and e == hi:
        return f">={e}"
    return str(e)


def event_study(
    panel: Any,
    outcome: str,
    *,
    cohort: str,
    unit: str = "department_id",
    time: str = "year",
    window: tuple[int, int] = (-4, 4),
    reference: int = -1,
    bin_endpoints: bool = True,
    cluster: str | None = "department_id",
    covariates: Sequence[str] | None = None,
    weights: str | None = None,
    treatment_intensity: str | None = None,
    alpha: float = 0.05,
    persons: str | None = None,
) -> EventStudyResult:
    """Dynamic TWFE event study ``y_it = a_i + l_t + sum_{e != ref} b_e * 1[t - g_i = e] * s_it + e_it``.

    Parameters
    ----------
    panel
        Department-year data (DataFrame or ``impact.panel.Panel``).
    outcome
        Outcome column.
    cohort
        Column with the first treated period g_i of each unit (``cohort_<tool>``); 0 = never
        treated: all event dummies of such units are 0. Must be constant within unit.
    unit, time
        Unit and time columns; time in consecutive integers (years), event time is ``time - cohort``.
    window
        ``(lo, hi)`` event times estimated, lo <= reference < hi.
    reference
        Omitted event time (default -1, the year before adoption).
    bin_endpoints
        True: event times below ``lo`` (above ``hi``) are pooled into the ``lo`` (``hi``) dummy.
        False: rows of treated units outside the window are left out (counted in
        ``n_outside_window`` and warned about).
    cluster, covariates, weights, alpha
        As in :func:`twfe`.
    treatment_intensity
        Optional column s_it multiplying each event dummy (e.g. the agreed or realised share of
        lettings through the tool), so that the b_e are effects per unit of intensity. ``None``:
        s_it = 1 (binary adoption). A realised intensity should precede the outcome (see the
        module docstring on timing).
    persons
        As in :func:`twfe`.

    Returns
    -------
    EventStudyResult
    """
    lo, hi = (int(window[0]), int(window[1]))
    if not lo <= reference < hi:
        raise EstimationError(f"event_study: need lo <= reference < hi, got window {window}, "
                              f"reference {reference}")
    covs = list(_as_tuple(covariates))
    needed = [outcome, cohort, *covs] + ([weights] if weights else [])
    data, n_dropped = _prepare(panel, needed, unit=unit, time=time, cluster=cluster,
                               what="event_study")
    if (data.groupby(unit)[cohort].nunique() > 1).any():
        raise EstimationError(f"event_study: cohort column {cohort!r} varies within {unit}")
    g = data[cohort].to_numpy(float)
    treated = g > 0
    scale = np.ones(len(data))
    if treatment_intensity is not None:
        require_columns(data, [treatment_intensity], what="event_study")
        scale = data[treatment_intensity].to_numpy(float)
        miss = treated & np.isnan(scale)
        if miss.any():
            warnings.warn(f"event_study: {int(miss.sum())} row(s) of treated units left out for "
                          f"missing {treatment_intensity!r}", DroppedRowsWarning, stacklevel=2)
            data, g, scale, treated = data[~miss], g[~miss], scale[~miss], treated[~miss]
            n_dropped += int(miss.sum())
    if treated.all():
        warnings.warn("event_study: no never-treated units (cohort 0); the event-time effects "
                      "are identified only through the timing differences and the binned "
                      "endpoints, which restrict the effects outside the window", EstimationWarning,
                      stacklevel=2)
    e = np.where(treated, data[time].to_numpy(float) - g, np.nan)
    n_outside = 0
    if bin_endpoints:
        e = np.where(treated, np.clip(e, lo, hi), np.nan)
    else:
        out = treated & ((e < lo) | (e > hi))
        n_outside = int(out.sum())
        if n_outside:
            warnings.warn(f"event_study: {n_outside} row(s) of treated units outside the window "
                          f"{window} left out (bin_endpoints=False)", DroppedRowsWarning,
                          stacklevel=2)
            data, e, scale = data[~out], e[~out], scale[~out]
    data = data.copy()
    times = [k for k in range(lo, hi + 1) if k != reference]
    names = [f"event_time[{_event_label(k, lo, hi, bin_endpoints)}]" for k in times]
    for k, name in zip(times, names, strict=True):
        data[name] = np.where(e == k, scale, 0.0)
    empty = [n for n in names if not data[n].any()]
    if empty:
        raise EstimationError(f"event_study: no treated observations for {empty}; narrow the window")
    clusters = cluster_codes(data, cluster, unit)
    fit = _fit(data, outcome, [*names, *covs], unit=unit, time=time, clusters=clusters,
               weights=weights)
    table = coef_table(list(fit.params.index), fit.params.to_numpy(), fit.std_errors.to_numpy(),
                       alpha=alpha, df=float(fit.df_resid))
    ev = table.iloc[: len(names)].copy()
    ev.insert(0, "event_time", times)
    ref = {"event_time": reference, "term": f"event_time[{reference}]", "estimate": 0.0}
    ev = pd.concat([ev, pd.DataFrame([ref])], ignore_index=True)
    ev = ev.sort_values("event_time", ignore_index=True)
    ev["reference"] = ev["event_time"] == reference
    ev["binned"] = bin_endpoints & ev["event_time"].isin([lo, hi])
    no_dummy = ~np.isin(e, times)  # never treated (e is NaN) or at the reference period
    support = _support(data, list(ev["term"]), unit=unit, time=time,
                       persons=persons_column(data, persons, what="event_study"),
                       df_resid=float(fit.df_resid),
                       sides={t: (e == k, no_dummy) for t, k in zip(ev["term"], ev["event_time"],
                                                                      strict=True)})
    return EventStudyResult(
        coefficients=ev, covariates=table.iloc[len(names):].reset_index(drop=True),
        outcome=outcome, cohort=cohort, window=(lo, hi), reference=reference,
        bin_endpoints=bin_endpoints, n_obs=int(fit.nobs), n_units=int(data[unit].nunique()),
        n_periods=int(data[time].nunique()),
        n_clusters=None if clusters is None else int(np.unique(clusters).size),
        n_dropped=n_dropped, n_outside_window=n_outside, cluster=cluster, alpha=alpha, fit=fit,
        support=support,
    )
