"""Aggregations of ATT(g,t) into summary parameters (Callaway & Sant'Anna 2021, Section 3).

Reimplements the rules of R's ``did::compute.aggte``: cohort weights ``pg`` are the weighted
shares of units in each cohort; ``simple`` averages post-treatment cells with weights ``pg``;
``group`` averages each cohort's post-treatment cells, then the cohorts with ``pg``; ``dynamic``
averages cells by event time ``e = t - g`` with weights ``pg`` (optionally on cohorts observed for
``balance_e`` periods, within ``[min_e, max_e]``), the overall effect being the mean over
``e >= 0``; ``calendar`` averages post-treatment cells by period, the overall effect being the
mean over periods. Influence functions include the estimation effect of the weights (``wif``).
As in R, ``max_e`` limits ``simple``/``group`` in units of positions in the sorted union of
periods and cohorts, and ``dynamic`` in calendar units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from impact.errors import EstimationError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class AggregateCore:
    """Point estimates and influence functions of one aggregation (before inference)."""

    overall_att: float
    overall_inf: FloatArray
    by_key: FloatArray
    by_att: FloatArray
    by_inf: FloatArray  # n x m
    #: indices (into the cells passed in) of the cells behind the overall effect and each key
    overall_cells: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    by_cells: tuple[NDArray[np.int64], ...] = ()


def _wif(
    keepers: NDArray[np.int64],
    pg: FloatArray,
    weights: FloatArray,
    unit_cohort: FloatArray,
    cell_cohort: FloatArray,
) -> FloatArray:
    """Influence function of the estimated aggregation weights ``pg[k] / sum(pg[keepers])``."""
    spg = pg[keepers].sum()
    centered = (
        weights[:, None] * (unit_cohort[:, None] == cell_cohort[keepers][None, :])
        - pg[keepers][None, :]
    )
    return centered / spg - np.outer(centered.sum(axis=1), pg[keepers] / spg**2)


def _agg_inf(
    att: FloatArray,
    inf: FloatArray,
    which: NDArray[np.int64],
    w_agg: FloatArray,
    wif: FloatArray | None,
) -> FloatArray:
    if which.size == 0:
        raise EstimationError("aggregate: no ATT(g,t) cells fall in this aggregation")
    out = inf[:, which] @ w_agg
    if wif is not None:
        out = out + wif @ att[which]
    return out


def aggregate_cells(
    kind: str,
    *,
    cohort: FloatArray,
    time: FloatArray,
    att: FloatArray,
    influence: FloatArray,
    unit_weights: FloatArray,
    unit_cohort: FloatArray,
    periods: FloatArray,
    min_e: float,
    max_e: float,
    balance_e: int | None,
) -> AggregateCore:
    """Compute one aggregation's point estimates and influence functions.

    Parameters
    ----------
    kind
        ``"simple"``, ``"group"``, ``"dynamic"`` or ``"calendar"``.
    cohort, time, att
        Per-cell cohort, period and ATT(g,t) (no NaN).
    influence
        n x K influence functions of the cells.
    unit_weights, unit_cohort
        Per-unit weights (mean one) and cohort (0 = never treated).
    periods
        All periods of the panel.
    min_e, max_e, balance_e
        Event-time window and balancing, as in R's ``aggte``.

    Returns
    -------
    AggregateCore
    """
    groups = np.unique(cohort)
    # positions in the sorted union of periods and cohorts (R's t2orig / orig2t)
    grid = np.unique(np.concatenate([periods, groups]))
    t_pos = np.searchsorted(grid, time) + 1.0
    g_pos = np.searchsorted(grid, cohort) + 1.0
    pg_group = np.array([np.mean(unit_weights * (unit_cohort == g)) for g in groups])
    pg = pg_group[np.searchsorted(groups, cohort)]
    empty = np.empty((influence.shape[0], 0))

    def weighted_means(masks: list[NDArray[np.bool_]]) -> tuple[FloatArray, FloatArray]:
        """Cohort-size weighted mean of the cells in each mask, with its influence function."""
        atts, infs = [], []
        for mask in masks:
            which = np.flatnonzero(mask)
            w = pg[which] / pg[which].sum()
            atts.append(float(np.sum(att[which] * w)))
            infs.append(_agg_inf(att, influence, which, w,
                                 _wif(which, pg, unit_weights, unit_cohort, cohort)))
        return np.asarray(atts), np.column_stack(infs)

    if kind == "simple":
        keep = np.flatnonzero((g_pos <= t_pos) & (t_pos <= g_pos + max_e))
        w = pg[keep] / pg[keep].sum()
        inf = _agg_inf(att, influence, keep, w, _wif(keep, pg, unit_weights, unit_cohort, cohort))
        est = float(np.sum(att[keep] * w)) if keep.size else float("nan")
        return AggregateCore(est, inf, np.empty(0), np.empty(0), empty, overall_cells=keep)

    if kind == "group":
        att_g, inf_g, cells_g = [], [], []
        for g in groups:
            which = np.flatnonzero((cohort == g) & (g_pos <= t_pos) & (t_pos <= g_pos + max_e))
            cells_g.append(which)
            att_g.append(att[which].mean() if which.size else np.nan)
            inf_g.append(
                _agg_inf(att, influence, which, pg[which] / pg[which].sum(), None)
                if which.size
                else np.full(influence.shape[0], np.nan)
            )
        by_att = np.asarray(att_g)
        by_inf = np.column_stack(inf_g)
        keep = np.arange(groups.size)
        w = pg_group / pg_group.sum()
        wif = _wif(keep, pg_group, unit_weights, unit_cohort, groups)
        inf = by_inf @ w + wif @ by_att
        return AggregateCore(float(np.sum(by_att * w)), inf, groups, by_att, by_inf,
                             overall_cells=np.unique(np.concatenate(cells_g)).astype(np.int64),
                             by_cells=tuple(cells_g))

    if kind == "dynamic":
        e_all = time - cohort
        include = np.ones(att.size, dtype=bool)
        eseq = np.unique(e_all)
        if balance_e is not None:
            t_max = grid[int(t_pos.max()) - 1]
            include = (t_max - cohort) >= balance_e
            eseq = np.unique(e_all[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - t_max + grid[0])]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        if eseq.size == 0:
            raise EstimationError(
                "aggregate: no event times fall within the requested window; adjust "
                "min_e/max_e/balance_e"
            )
        masks = [(e_all == e) & include for e in eseq]
        by_att, by_inf = weighted_means(masks)
        pos = eseq >= 0
        if pos.any():
            overall = float(by_att[pos].mean())
            inf = by_inf[:, pos].mean(axis=1)
        else:
            overall, inf = float("nan"), np.full(influence.shape[0], np.nan)
        by_cells = tuple(np.flatnonzero(m) for m in masks)
        return AggregateCore(overall, inf, eseq.astype(float), by_att, by_inf,
                             overall_cells=np.flatnonzero(np.any(
                                 [m for m, p in zip(masks, pos, strict=True) if p]
                                 or [np.zeros(att.size, dtype=bool)], axis=0)),
                             by_cells=by_cells)

    if kind == "calendar":
        min_g = g_pos.min()
        cal = [
            tp for tp in np.unique(t_pos) if tp >= min_g and np.any((t_pos == tp) & (g_pos <= tp))
        ]
        if not cal:
            raise EstimationError("aggregate: no calendar period has post-treatment cells")
        masks = [(t_pos == tp) & (g_pos <= t_pos) for tp in cal]
        by_att, by_inf = weighted_means(masks)
        keys = grid[np.asarray(cal, dtype=int) - 1]
        return AggregateCore(float(by_att.mean()), by_inf.mean(axis=1), keys, by_att, by_inf,
                             overall_cells=np.flatnonzero(np.any(masks, axis=0)),
                             by_cells=tuple(np.flatnonzero(m) for m in masks))

    raise EstimationError(
        f"aggregate: unknown type {kind!r}; use 'simple', 'dynamic', 'group' or 'calendar'"
    )
