"""Input checks and the wide (unit x period) arrays behind :func:`impact.did.att_gt`.

The rules follow R's ``did::pre_process_did2`` where they decide which units and cells enter the
estimation (cohorts coded 0/NaN/inf are never treated; cohorts after the last period plus
anticipation count as never treated; units treated in the first period, allowing for anticipation,
are dropped), but every removal is counted, warned about and recorded, and problems R only warns
about that make the estimate meaningless raise :class:`impact.EstimationError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impact.errors import EstimationError, EstimationWarning

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WidePanel:
    """A balanced panel as arrays, units sorted by id.

    Attributes
    ----------
    unit_ids
        Unit identifiers (n,).
    periods
        Sorted time periods (T,).
    y
        Outcome, n x T.
    x
        Design with intercept: n x k (time-invariant covariates) or n x T x k.
    cohort
        First treated period per unit, 0 = never treated (after the R rules above).
    weights
        Sampling weights normalised to mean one (n,).
    cluster
        Integer cluster codes ``0 .. G-1`` (n,), or None (each unit its own cluster).
    groups
        Treated cohorts for which ATT(g,t) are estimated.
    notes
        Human-readable record of every row/unit dropped or recoded.
    """

    unit_ids: NDArray
    periods: FloatArray
    y: FloatArray
    x: FloatArray
    cohort: FloatArray
    weights: FloatArray
    cluster: NDArray[np.int64] | None
    groups: FloatArray
    covariate_names: tuple[str, ...]
    n_rows_dropped: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def time_varying_x(self) -> bool:
        """Whether covariates are stored per period."""
        return self.x.ndim == 3

    def x_at(self, period_index: int) -> FloatArray:
        """Design matrix (n x k) with covariates measured in period ``period_index``."""
        return self.x[:, period_index, :] if self.x.ndim == 3 else self.x


def _examples(values: Sequence[object], k: int = 10) -> str:
    vals = list(values)
    more = f" (and {len(vals) - k} more)" if len(vals) > k else ""
    return ", ".join(str(v) for v in vals[:k]) + more


def _require_columns(data: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise EstimationError(
            f"att_gt: column(s) {missing} not in data (columns: {list(data.columns)})"
        )


def _require_numeric(data: pd.DataFrame, col: str, role: str) -> None:
    if not (pd.api.types.is_numeric_dtype(data[col]) or pd.api.types.is_bool_dtype(data[col])):
        raise EstimationError(
            f"att_gt: {role} column {col!r} must be numeric (got dtype {data[col].dtype}); "
            "encode categories as 0/1 dummy columns first"
        )


def _warn(notes: list[str], message: str) -> None:
    notes.append(message)
    warnings.warn(f"att_gt: {message}", EstimationWarning, stacklevel=4)


def _codes(values: pd.Series) -> tuple[NDArray[np.int64], np.ndarray]:
    """Integer codes in sorted order of the values (missing values get -1) and the sorted values."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def cluster_codes(values: pd.Series, name: str) -> NDArray[np.int64]:
    """Cluster codes of one value per unit (units in order): a missing value is its own cluster.

    Named clusters get codes ``0 .. K-1`` in sorted order of their values (as before, so complete
    cluster columns give the same codes and bootstrap draws); units with a missing value (e.g.
    ``plan_id`` of a department without a helhedsplan) get ``K, K+1, ...`` in unit order. An
    all-missing column therefore gives ``0 .. n-1``, exactly the codes of clustering by unit.

    Raises
    ------
    impact.EstimationError
        With fewer than two clusters (no variance can be estimated).
    """
    codes = pd.factorize(values, sort=True)[0].astype(np.int64)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    if codes.size and codes.max() < 1:
        raise EstimationError(f"att_gt: clustering by {name!r} needs at least two clusters, "
                              "found one")
    return codes


def _duplicated(key: NDArray[np.int64], n_keys: int) -> NDArray[np.bool_]:
    """Rows whose key (in ``0 .. n_keys - 1``) occurs more than once."""
    if n_keys <= 4 * key.size + 1024:
        return np.bincount(key, minlength=n_keys)[key] > 1
    ordered = np.sort(key)
    return np.isin(key, ordered[1:][ordered[1:] == ordered[:-1]])


def _varies_within(ucode: NDArray[np.int64], n_units: int, values: NDArray) -> NDArray[np.bool_]:
    """Per unit code: whether ``values`` (codes or floats without NaN) differ within the unit."""
    first = np.empty(n_units, dtype=values.dtype)
    first[ucode] = values
    varies = np.zeros(n_units, dtype=bool)
    varies[ucode[values != first[ucode]]] = True
    return varies


def prepare_panel(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str],
    weights: str | None,
    cluster: str | None,
    control: str,
    anticipation: int,
    unbalanced: str,
) -> WidePanel:
    """Validate the long input and pivot it to a :class:`WidePanel`.

    Raises
    ------
    impact.EstimationError
        On missing columns, non-numeric data, duplicated (unit, time) rows, cohorts that vary
        within a unit, negative cohorts or weights, time-varying weights or cluster labels (a
        missing cluster label makes the unit its own cluster), fewer than two clusters, an
        unbalanced panel (unless ``unbalanced="drop"``), no treated cohort left, or no
        never-treated units with ``control="never"``.
    """
    if not isinstance(data, pd.DataFrame):
        raise EstimationError(f"att_gt: data must be a pandas DataFrame, got {type(data)!r}")
    covariates = list(covariates)
    cols = [outcome, unit, time, cohort, *covariates]
    cols += [c for c in (weights, cluster) if c is not None]
    _require_columns(data, cols)
    if len(set(covariates)) != len(covariates) or {outcome, unit, time, cohort} & set(covariates):
        raise EstimationError(f"att_gt: covariates {covariates} repeat or overlap other roles")
    for col, role in [(outcome, "outcome"), (time, "time"), (cohort, "cohort")]:
        _require_numeric(data, col, role)
    for col in covariates:
        _require_numeric(data, col, "covariate")
    if weights is not None:
        _require_numeric(data, weights, "weights")
    notes: list[str] = []
    keep = [*dict.fromkeys(cols)]
    df = data.loc[:, keep].copy()
    if df.empty:
        raise EstimationError("att_gt: data has no rows")
    for col, role in [(unit, "unit"), (time, "time")]:
        if df[col].isna().any():
            raise EstimationError(
                f"att_gt: {role} column {col!r} has {df[col].isna().sum()} missing value(s)"
            )
    if not np.all(np.isfinite(df[time].to_numpy(dtype=float))):
        raise EstimationError(f"att_gt: time column {time!r} must be finite")

    ucode, units = _codes(df[unit])
    n_u = units.size
    n_input_rows = len(df)
    tcode, times = _codes(df[time])
    times = times.astype(float)
    n_tv = times.size
    dup = _duplicated(ucode * n_tv + tcode, n_u * n_tv)
    if dup.any():
        bad = df.loc[dup, [unit, time]].drop_duplicates().itertuples(index=False)
        raise EstimationError(
            f"att_gt: {int(dup.sum())} rows share a (unit, time) pair; each unit may appear once "
            f"per period. E.g. {_examples([tuple(r) for r in bad])}"
        )
    # cohort: 0, NaN and +inf all mean never treated
    g = df[cohort].astype(float)
    if (g < 0).any():
        raise EstimationError(
            f"att_gt: cohort column {cohort!r} has negative values; use 0 (or NaN/inf) for "
            "never treated and the first treated period otherwise"
        )
    g = g.where(np.isfinite(g), 0.0).fillna(0.0)
    df[cohort] = g
    varying = _varies_within(ucode, n_u, g.to_numpy())
    if varying.any():
        raise EstimationError(
            f"att_gt: cohort {cohort!r} varies within unit(s) "
            f"{_examples(pd.unique(df[unit].to_numpy()[varying[ucode]]))}; "
            "the cohort must be the unit's first treated period in every row (staggered adoption)"
        )
    for col, role in [(weights, "weights"), (cluster, "cluster")]:
        if col is None:
            continue
        varies = _varies_within(ucode, n_u, _codes(df[col])[0])
        if varies.any():
            raise EstimationError(
                f"att_gt: {role} column {col!r} varies over time within unit(s) "
                f"{_examples(pd.unique(df[unit].to_numpy()[varies[ucode]]))}; it must be constant "
                "per unit"
            )
    if weights is not None:
        wv = df[weights].to_numpy(dtype=float)
        if np.any(~np.isfinite(wv)) or np.any(wv < 0) or wv.sum() <= 0:
            raise EstimationError(
                f"att_gt: weights {weights!r} must be finite and non-negative with a positive sum"
            )

    # rows with missing or non-finite outcome/covariates are dropped, counted and reported
    num = df[[outcome, *covariates]].to_numpy(dtype=float)
    bad_rows = ~np.all(np.isfinite(num), axis=1)
    n_dropped = int(bad_rows.sum())
    if n_dropped:
        _warn(
            notes,
            f"dropped {n_dropped} row(s) with missing or non-finite {outcome!r}"
            + (f" or covariates {covariates}" if covariates else "")
            + f" (units {_examples(pd.unique(df.loc[bad_rows, unit]))})",
        )
        df = df.loc[~bad_rows]
        ucode = ucode[~bad_rows]

    periods = times if not n_dropped else np.sort(df[time].unique()).astype(float)
    n_t = periods.size
    if n_t < 2:
        raise EstimationError(f"att_gt: need at least two time periods, found {n_t}")
    counts = np.bincount(ucode, minlength=n_u)
    short = pd.unique(df[unit].to_numpy()[(counts < n_t)[ucode]])
    if len(short):
        if unbalanced == "drop":
            _warn(
                notes,
                f"dropped {len(short)} unit(s) not observed in all {n_t} periods "
                f"(balanced panel required): {_examples(short)}",
            )
            df = df.loc[~df[unit].isin(short)]
        else:
            raise EstimationError(
                f"att_gt: unbalanced panel: {len(short)} unit(s) are not observed (with a "
                f"non-missing outcome) in all {n_t} periods: {_examples(short)}. Balance the panel "
                "or pass unbalanced='drop' to drop these units (R did's default)"
            )

    # treatment timing rules (R did::pre_process_did2)
    gvals = df[cohort].to_numpy(dtype=float)
    late = gvals > periods.max() + anticipation
    if late.any():
        n_late = df.loc[late, unit].nunique()
        _warn(
            notes,
            f"{n_late} unit(s) first treated after the last period (+ anticipation) are used as "
            "never treated",
        )
        df.loc[late, cohort] = 0.0
    gvals = df[cohort].to_numpy(dtype=float)
    if not (gvals == 0).any():
        if control == "never":
            raise EstimationError(
                "att_gt: no never-treated units (cohort 0/NaN/inf) to compare with; use "
                "control='not_yet' to compare with not-yet-treated units"
            )
        latest = gvals.max()
        cutoff = latest - anticipation
        _warn(
            notes,
            f"no never-treated units: periods >= {cutoff:g} are dropped and the last cohort "
            f"({latest:g}) serves only as a comparison group",
        )
        df = df.loc[df[time] < cutoff]
        periods = np.sort(df[time].unique()).astype(float)
        gvals = df[cohort].to_numpy(dtype=float)
        if periods.size < 2:
            raise EstimationError("att_gt: fewer than two periods left before the last cohort")
    first = periods[0]
    early = (gvals > 0) & (gvals <= first + anticipation)
    if early.any():
        ids = pd.unique(df.loc[early, unit])
        _warn(
            notes,
            f"dropped {len(ids)} unit(s) already treated in the first period {first:g}"
            + (f" (anticipation {anticipation})" if anticipation else "")
            + f": {_examples(ids)}",
        )
        df = df.loc[~early]
    if df.empty:
        raise EstimationError("att_gt: no units left after the checks above")
    # rows in (unit, time) order without a sort: each row's position in the balanced grid (the
    # unit codes of the checks above still hold when no row was dropped)
    if len(df) == n_input_rows:
        n_units, periods = n_u, times
    else:
        ucode, units = _codes(df[unit])
        tcode, periods = _codes(df[time])
        n_units, periods = units.size, periods.astype(float)
    if periods.size * n_units != len(df):
        raise EstimationError("att_gt: internal error: panel not balanced after filtering")
    position = ucode * periods.size + tcode
    order = np.empty(len(df), dtype=np.int64)
    order[position] = np.arange(len(df))
    first = order[:: periods.size]  # each unit's first period

    def wide(col: str | list[str]) -> np.ndarray:
        return df[col].to_numpy(dtype=float)[order]

    unit_ids = df[unit].to_numpy()[first]
    y = wide(outcome).reshape(n_units, periods.size)
    coh = df[cohort].to_numpy(dtype=float)[first]
    latest_all = coh.max()
    groups = np.unique(coh[(coh > 0) & (coh > periods[0] + anticipation)])
    if not (coh == 0).any():
        groups = groups[groups < latest_all]
    if groups.size == 0:
        raise EstimationError(
            "att_gt: no treated cohort left to estimate; the cohort column must hold the first "
            "treated period (0 for never treated) and some cohorts must start after the first period"
        )
    # R's guard against tiny cohorts: fewer units than covariates + 5
    sizes = pd.Series(coh).value_counts().sort_index()
    small = sizes[sizes < len(covariates) + 5]
    if len(small):
        listing = ", ".join(f"{g:g}: {k}" for g, k in small.items())
        if 0.0 in small.index and control == "never":
            raise EstimationError(
                f"att_gt: only {small.loc[0.0]} never-treated unit(s), too few to serve as the "
                "comparison group; use control='not_yet'"
            )
        _warn(notes, f"some cohorts have very few units (cohort: units) {listing}")
    w = np.ones(n_units) if weights is None else df[weights].to_numpy(dtype=float)[first]
    w = w / w.mean()
    if covariates:
        xs = wide(covariates).reshape(n_units, periods.size, len(covariates))
        if np.all(xs == xs[:, :1, :]):
            x = np.column_stack([np.ones(n_units), xs[:, 0, :]])
        else:
            x = np.concatenate([np.ones((n_units, periods.size, 1)), xs], axis=2)
    else:
        x = np.ones((n_units, 1))
    clus = None
    if cluster is not None and cluster != unit:
        clus = cluster_codes(df[cluster].iloc[first], cluster)
    return WidePanel(
        unit_ids=unit_ids,
        periods=periods,
        y=y,
        x=x,
        cohort=coh,
        weights=w,
        cluster=clus,
        groups=groups.astype(float),
        covariate_names=tuple(covariates),
        n_rows_dropped=n_dropped,
        notes=tuple(notes),
    )
