"""Goodman-Bacon (2021) decomposition of the TWFE DiD estimate under staggered adoption.

With a binary, absorbing treatment in a balanced panel, the coefficient of ``D_it`` in
``y_it = a_i + l_t + b D_it + e_it`` is a weighted average of every 2x2 DiD between timing groups
(Goodman-Bacon 2021, *Journal of Econometrics* 225(2), Theorem 1):

- *Treated vs Untreated*: a timing group k against the never-treated units U, all periods;
- *Earlier vs Later Treated*: early group k against later group l before l is treated;
- *Later vs Earlier Treated*: later group l against early group k after k is treated (the
  "forbidden" comparison that uses already-treated units as controls);
- *Later vs Always Treated*: a timing group against units treated in every period.

Weights follow eq. (10a)-(10c) of the paper: the squared subsample size times the variance of the
two-way demeaned treatment in each 2x2, divided by the variance of the two-way demeaned treatment in
the full panel. They sum to one, and the weighted sum of the 2x2 estimates equals the TWFE
coefficient exactly (checked on every call; see ``identity_error``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from impact.did._results import (
    as_frame,
    drop_missing,
    require_columns,
)
from impact.errors import EstimationError
from impact.results import Result, SupportCounter, persons_column

__all__ = ["BaconResult", "bacon"]

TYPES = (
    "Earlier vs Later Treated",
    "Later vs Earlier Treated",
    "Treated vs Untreated",
    "Later vs Always Treated",
)


@dataclass(frozen=True)
class BaconResult(Result):
    """Result of :func:`bacon`.

    Attributes
    ----------
    comparisons
        One row per 2x2 comparison: term, type, treated (first treated period of the treated
        group), control (first treated period of the control group; inf = never treated),
        estimate, weight, n_treated, n_control (units).
    twfe_estimate
        The TWFE coefficient computed directly (two-way within estimator).
    identity_error
        ``sum(weight * estimate) - twfe_estimate`` (round-off only).
    n_obs, n_units, n_periods, n_dropped
        Sample sizes and rows left out for missing values.
    support
        The support columns of :meth:`tidy`, one row per comparison.
    """

    comparisons: pd.DataFrame
    twfe_estimate: float
    identity_error: float
    outcome: str
    treatment: str
    n_obs: int
    n_units: int
    n_periods: int
    n_dropped: int
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    def by_type(self) -> pd.DataFrame:
        """Total weight and weighted average estimate per comparison type (like ``bacon_summary``)."""
        c = self.comparisons
        rows = []
        for kind in TYPES:
            sub = c[c["type"] == kind]
            if len(sub):
                w = float(sub["weight"].sum())
                avg = float((sub["weight"] * sub["estimate"]).sum() / w) if w > 0 else np.nan
                rows.append({"type": kind, "weight": w, "avg_estimate": avg,
                             "n_comparisons": len(sub)})
        return pd.DataFrame(rows)

    def _tidy(self) -> pd.DataFrame:
        """All 2x2 comparisons: term, estimate, se, lower, upper (no standard errors: NaN), the
        support columns, then type, treated, control, weight, n_treated, n_control.

        Support: treated side = the treated timing group's unit-periods in the comparison's
        periods, control side = the control group's; no ``df_resid``.
        """
        c = self.comparisons
        out = c[["term", "estimate"]].assign(se=np.nan, lower=np.nan, upper=np.nan)
        if len(self.support) == len(c):
            out = pd.concat([out, self.support.reset_index(drop=True)], axis=1)
        return pd.concat([out, c.drop(columns=["term", "estimate"])], axis=1)

    _summary_columns = ("type", "weight")

    def _summary_title(self) -> str:
        return f"Goodman-Bacon decomposition of TWFE: {self.outcome} on {self.treatment}"

    def _summary_notes(self) -> tuple[str, ...]:
        by = "; ".join(f"{r.type}: weight {r.weight:.4g}, average {r.avg_estimate:.4g} "
                       f"({r.n_comparisons} comparisons)"
                       for r in self.by_type().itertuples(index=False))
        return (f"n = {self.n_obs}, units = {self.n_units}, periods = {self.n_periods}, rows "
                f"dropped (missing) = {self.n_dropped}",
                f"TWFE estimate = {self.twfe_estimate:.6g}; sum of weights = "
                f"{self.comparisons['weight'].sum():.12g}; identity error = "
                f"{self.identity_error:.2e}", by)

    _figsize = (6.0, 4.0)

    def _draw(self, ax: Any) -> None:
        """Scatter of the 2x2 estimates against their weights, by type, and the TWFE line."""
        for marker, kind in zip("osD^", TYPES, strict=True):
            sub = self.comparisons[self.comparisons["type"] == kind]
            if len(sub):
                ax.scatter(sub["weight"], sub["estimate"], marker=marker, label=kind)
        ax.axhline(self.twfe_estimate, color="red", lw=0.8, label="TWFE estimate")
        ax.set_xlabel("weight")
        ax.set_ylabel("2x2 DiD estimate")
        ax.legend(frameon=False, fontsize="small")


def _timing(data: pd.DataFrame, treatment: str, unit: str, time: str) -> pd.Series:
    """First treated period of each unit (inf = never); checks binary, absorbing treatment."""
    d = data[treatment].to_numpy(float)
    if not np.isin(d, (0.0, 1.0)).all():
        raise EstimationError(f"bacon: treatment {treatment!r} must be 0/1")
    ordered = data.sort_values([unit, time])
    ordered = ordered.assign(**{treatment: ordered[treatment].astype(float)})  # bool -> 0/1
    steps = ordered.groupby(unit)[treatment].diff().dropna()
    if (steps < 0).any():
        bad = ordered.loc[steps[steps < 0].index, unit].unique()[:10].tolist()
        raise EstimationError(f"bacon: treatment must be absorbing (never switches off); "
                              f"it does in units {bad}")
    first = ordered[ordered[treatment] == 1].groupby(unit)[time].min()
    return first.astype(float).reindex(ordered[unit].unique()).fillna(np.inf)


def bacon(
    panel: Any,
    outcome: str,
    treatment: str,
    *,
    unit: str = "department_id",
    time: str = "year",
    persons: str | None = None,
) -> BaconResult:
    """Goodman-Bacon decomposition of the TWFE coefficient into all 2x2 DiD comparisons.

    Parameters
    ----------
    panel
        DataFrame or ``impact.panel.Panel``; must be balanced after removing rows with missing
        values (the decomposition is exact only for balanced panels).
    outcome
        Outcome column.
    treatment
        Binary (0/1) absorbing treatment column, e.g. ``in_force_flexible_letting``. Units treated
        in the first period are *always treated*; units never treated are the untreated group.
    unit, time
        Unit and time columns.
    persons
        Optional column with the number of persons behind each unit-period: gives the
        ``n_persons`` support columns of :meth:`BaconResult.tidy` (a missing count counts as 0).

    Returns
    -------
    BaconResult

    Raises
    ------
    EstimationError
        Non-binary or non-absorbing treatment, unbalanced panel, or no variation in timing.
    """
    frame = as_frame(panel)
    require_columns(frame, [outcome, treatment, unit, time], what="bacon")
    data, n_dropped = drop_missing(frame, [outcome, treatment, unit, time], what="bacon")
    if data.duplicated([unit, time]).any():
        raise EstimationError(f"bacon: more than one row per ({unit}, {time})")
    periods = np.sort(data[time].unique()).astype(float)
    counts = data.groupby(unit).size()
    if (counts != len(periods)).any():
        short = counts[counts != len(periods)].index[:10].tolist()
        raise EstimationError(
            f"bacon: the panel must be balanced ({len(periods)} periods per unit); units "
            f"{short} have fewer (after removing {n_dropped} rows with missing values)"
        )
    first = _timing(data, treatment, unit, time)
    first = first.where(first > periods[0], periods[0])  # treated from the start: always treated
    T, N = len(periods), len(first)
    groups = np.sort(first.unique())
    n_share = first.value_counts().reindex(groups).to_numpy() / N
    dbar = np.array([np.mean(periods >= g) for g in groups])  # share of periods treated
    # group x period mean outcomes
    gmap = data[unit].map(first)
    ybar = data.groupby([gmap.to_numpy(), data[time].to_numpy()])[outcome].mean().unstack()
    ybar = ybar.reindex(index=groups, columns=periods).to_numpy()

    # TWFE by the two-way within transformation (balanced panel)
    wide_y = data.pivot(index=unit, columns=time, values=outcome).to_numpy(float)
    wide_d = data.pivot(index=unit, columns=time, values=treatment).to_numpy(float)
    dd = wide_d - wide_d.mean(1, keepdims=True) - wide_d.mean(0, keepdims=True) + wide_d.mean()
    var_d = float(np.mean(dd**2))
    if var_d <= 1e-14:
        raise EstimationError("bacon: the treatment has no variation net of unit and time effects")
    twfe_est = float(np.sum(dd * wide_y) / np.sum(dd**2))

    def did(treated: int, control: int, pre: np.ndarray, post: np.ndarray) -> float:
        change = ybar[:, post].mean(1) - ybar[:, pre].mean(1)
        return float(change[treated] - change[control])

    rows: list[tuple] = []
    windows: list[np.ndarray] = []  # periods of each comparison
    n_units = first.value_counts()
    for k, gk in enumerate(groups):
        if not np.isfinite(gk) or dbar[k] in (0.0, 1.0):
            continue
        for u, gu in enumerate(groups):
            if np.isfinite(gu):
                continue
            nku = n_share[k] / (n_share[k] + n_share[u])
            w = (n_share[k] + n_share[u]) ** 2 * nku * (1 - nku) * dbar[k] * (1 - dbar[k])
            est = did(k, u, periods < gk, periods >= gk)
            rows.append((TYPES[2], gk, gu, est, w / var_d))
            windows.append(np.ones(T, dtype=bool))
    for k, gk in enumerate(groups):  # k earlier, l later; both treated at some point
        for ell, gl in enumerate(groups):
            if not (np.isfinite(gk) and np.isfinite(gl) and gk < gl):
                continue
            nkl = n_share[k] / (n_share[k] + n_share[ell])
            dk, dl = dbar[k], dbar[ell]
            base = nkl * (1 - nkl) * (dk - dl)
            if dk < 1:  # early treated vs later (not yet treated) controls
                w = ((n_share[k] + n_share[ell]) * (1 - dl)) ** 2 * base / (1 - dl) \
                    * (1 - dk) / (1 - dl)
                pre, mid = periods < gk, (periods >= gk) & (periods < gl)
                rows.append((TYPES[0], gk, gl, did(k, ell, pre, mid), w / var_d))
                windows.append(pre | mid)
            w = ((n_share[k] + n_share[ell]) * dk) ** 2 * base / dk * dl / dk
            mid, post = (periods >= gk) & (periods < gl), periods >= gl
            kind = TYPES[3] if dk == 1 else TYPES[1]
            rows.append((kind, gl, gk, did(ell, k, mid, post), w / var_d))
            windows.append(mid | post)
    if not rows:
        raise EstimationError("bacon: no 2x2 comparison can be formed (no variation in timing)")
    comp = pd.DataFrame(rows, columns=["type", "treated", "control", "estimate", "weight"])
    comp.insert(0, "term", [
        f"{t:g} vs {'never' if np.isinf(c) else f'{c:g}'}"
        for t, c in zip(comp["treated"], comp["control"], strict=True)
    ])
    comp["n_treated"] = comp["treated"].map(n_units).astype(int)
    comp["n_control"] = comp["control"].map(n_units).astype(int)
    total = float((comp["weight"] * comp["estimate"]).sum())
    counter = SupportCounter.from_frame(data, unit, time,
                                        persons_column(data, persons, what="bacon"))
    group = gmap.to_numpy(dtype=float)
    period = np.searchsorted(periods, data[time].to_numpy(dtype=float))
    support = pd.DataFrame([
        counter.sides((group == g_t) & win[period], (group == g_c) & win[period])
        for g_t, g_c, win in zip(comp["treated"], comp["control"], windows, strict=True)])
    return BaconResult(
        comparisons=comp, twfe_estimate=twfe_est, identity_error=total - twfe_est,
        outcome=outcome, treatment=treatment, n_obs=len(data), n_units=N, n_periods=T,
        n_dropped=n_dropped, support=support,
    )
