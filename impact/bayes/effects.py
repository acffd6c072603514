"""Effect tables from posterior draws: intervals, probabilities, percentage points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from impact.bayes import arviz_io
from impact.bayes.design import Design, ModelConfig

INTERVALS = (0.90, 0.95)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def summarise_draws(
    da: xr.DataArray, label_dim: str | None, threshold: float, suffix: str = ""
) -> pd.DataFrame:
    """mean, sd, 90% and 95% equal-tailed intervals, P(> 0) and P(> threshold) per label."""
    mean = da.mean(["chain", "draw"])
    sd = da.std(["chain", "draw"], ddof=1)
    cols: dict[str, np.ndarray] = {
        "mean": np.atleast_1d(mean.to_numpy()),
        "sd": np.atleast_1d(sd.to_numpy()),
    }
    for prob in INTERVALS:
        ci = arviz_io.eti(da, prob)
        pct = round(prob * 100)
        cols[f"lower_{pct}"] = np.atleast_1d(ci.sel(ci_bound="lower").to_numpy())
        cols[f"upper_{pct}"] = np.atleast_1d(ci.sel(ci_bound="upper").to_numpy())
    cols["p_positive"] = np.atleast_1d((da > 0).mean(["chain", "draw"]).to_numpy())
    cols["p_above_threshold"] = np.atleast_1d((da > threshold).mean(["chain", "draw"]).to_numpy())
    out = pd.DataFrame({f"{k}{suffix}": v for k, v in cols.items()})
    labels = ["pooled"] if label_dim is None else [str(x) for x in da[label_dim].to_numpy()]
    out.insert(0, "group", labels)
    return out


def percentage_point_draws(
    idata: xr.DataTree, design: Design, chunk: int = 200
) -> tuple[xr.DataArray, xr.DataArray]:
    """Average marginal effects (percentage points) of the binomial model.

    For every draw: ``100 * (expit(eta0 + effect) - expit(eta0))`` averaged over the treated
    department-years (``d > 0``) of a group, weighted by trials (i.e. over persons), where
    ``eta0`` is the untreated linear predictor (unit + year effects). ``effect`` is the group's
    log-odds effect of the treatment going from 0 to 1 (the hyper-mean for the pooled row).
    Groups without treated department-years average over all their department-years. Deviations
    of an ``effect_by_extra`` grouping are not included.
    """
    post = idata["posterior"]
    a_unit = post["a_unit"].to_numpy()  # chain, draw, unit
    t_eff = post["time_effect"].to_numpy()
    eff = post["effect"].to_numpy()  # chain, draw, group (log-odds)
    mu = post["effect_pooled"].to_numpy()
    n_chain, n_draw = mu.shape
    a_unit = a_unit.reshape(n_chain * n_draw, -1)
    t_eff = t_eff.reshape(n_chain * n_draw, -1)
    eff = eff.reshape(n_chain * n_draw, -1)
    mu = mu.reshape(-1)
    treated = design.d > 0
    w_all = np.asarray(design.n_trials, dtype=float)
    n_g = len(design.effect_groups)
    sel_groups = []
    for g in range(n_g):
        in_g = design.effect_idx == g
        sel = in_g & treated
        sel_groups.append(np.flatnonzero(sel if sel.any() else in_g))
    sel_pooled = np.flatnonzero(treated)
    out_g = np.empty((a_unit.shape[0], n_g))
    out_p = np.empty(a_unit.shape[0])
    for s0 in range(0, a_unit.shape[0], chunk):
        s1 = min(s0 + chunk, a_unit.shape[0])
        eta0 = design.y_loc + a_unit[s0:s1][:, design.unit_idx] + t_eff[s0:s1][:, design.time_idx]
        p0 = _expit(eta0)
        for g, idx in enumerate(sel_groups):
            w = w_all[idx] / max(w_all[idx].sum(), 1e-12) if w_all[idx].sum() > 0 else None
            diff = _expit(eta0[:, idx] + eff[s0:s1, g : g + 1]) - p0[:, idx]
            out_g[s0:s1, g] = np.average(diff, axis=1, weights=w)
        w = w_all[sel_pooled]
        diff = _expit(eta0[:, sel_pooled] + mu[s0:s1, None]) - p0[:, sel_pooled]
        out_p[s0:s1] = np.average(diff, axis=1, weights=w if w.sum() > 0 else None)
    pooled = xr.DataArray(100 * out_p.reshape(n_chain, n_draw), dims=("chain", "draw"))
    groups = xr.DataArray(
        100 * out_g.reshape(n_chain, n_draw, n_g),
        dims=("chain", "draw", "effect_group"),
        coords={"effect_group": design.effect_groups},
    )
    return pooled, groups


def effects_table(
    idata: xr.DataTree, design: Design | None, config: ModelConfig, threshold: float
) -> pd.DataFrame:
    """The ``.effects`` table: one ``pooled`` row, then one row per ``effect_by`` group.

    Normal / Student-t: effects on the outcome's own scale (``scale="outcome"``). Binomial: on the
    log-odds scale (``scale="log_odds"``) with the same statistics in percentage points in the
    ``*_pp`` columns; ``p_above_threshold`` then uses the percentage-point draws (``threshold``
    in pp). ``n_treated`` counts treated department-years per group.
    """
    post = idata["posterior"]
    binomial = config.likelihood == "binomial"
    thr_main = float("inf") if binomial else threshold
    pooled = summarise_draws(post["effect_pooled"], None, thr_main)
    groups = summarise_draws(post["effect"], "effect_group", thr_main)
    table = pd.concat([pooled, groups], ignore_index=True)
    table["scale"] = "log_odds" if binomial else "outcome"
    if binomial:
        if design is None:
            raise ValueError("percentage points need the design")
        pp_pooled, pp_groups = percentage_point_draws(idata, design)
        pp = pd.concat(
            [
                summarise_draws(pp_pooled, None, threshold, "_pp"),
                summarise_draws(pp_groups, "effect_group", threshold, "_pp"),
            ],
            ignore_index=True,
        )
        table["p_above_threshold"] = pp["p_above_threshold_pp"].to_numpy()
        table = pd.concat([table, pp.drop(columns=["group", "p_above_threshold_pp"])], axis=1)
    if design is not None:
        treated = design.d > 0
        counts = np.bincount(design.effect_idx[treated], minlength=len(design.effect_groups))
        table["n_treated"] = np.concatenate([[int(treated.sum())], counts]).astype(int)
    return table


def extra_effects_table(idata: xr.DataTree, threshold: float) -> pd.DataFrame | None:
    """Deviations of the ``effect_by_extra`` groups (same scale as ``effect``), if any."""
    post = idata["posterior"]
    if "effect_extra" not in post:
        return None
    return summarise_draws(post["effect_extra"], "extra_group", threshold)


def dynamics_table(idata: xr.DataTree, threshold: float) -> pd.DataFrame | None:
    """Event-time leads and post-adoption effects (same scale as ``effect``), if modelled.

    Rows ``term="lead"`` (should be near 0 without anticipation or pre-trends) and
    ``term="lag"`` (the pooled effect at each time since adoption), with ``event_time``.
    """
    post = idata["posterior"]
    if "event_effect" not in post:
        return None
    parts = []
    for term, var, dim in (("lead", "event_lead", "lead"), ("lag", "event_effect", "lag")):
        tab = summarise_draws(post[var], dim, threshold)
        tab.insert(0, "event_time", tab.pop("group").astype(int))
        tab.insert(0, "term", term)
        parts.append(tab)
    return pd.concat(parts, ignore_index=True)


def support_table(design: Design, kind: str, persons: np.ndarray | None = None) -> pd.DataFrame:
    """Support columns of the rows of one effect table (see :mod:`impact.results`).

    Parameters
    ----------
    design
        The model's arrays (rows: department-years).
    kind
        ``"effects"`` (the pooled row, then one per ``effect_by`` group), ``"extra"`` (one per
        ``effect_by_extra`` group) or ``"dynamics"`` (leads, then lags, as
        :func:`dynamics_table`).
    persons
        Persons per department-year; default: the binomial model's trials (else unknown).

    Returns
    -------
    pandas.DataFrame
        ``n_units, n_persons`` of the department-years behind each row (its group; for an
        event time, the department-years at it and those without any event indicator), the
        sides (treated: treatment > 0, or at the event time; control: treatment 0, or no event
        indicator) and ``df_resid``: department-years minus the effects of the equivalent
        fixed-effects model (units, years, groups, extra groups, leads and lags).
    """
    from impact.results import SupportCounter

    if persons is None and design.n_trials is not None:
        persons = np.asarray(design.n_trials, dtype=float)
    counter = SupportCounter(design.unit_idx, design.time_idx, persons)
    treated = design.d > 0
    rows: list[dict[str, float]] = []
    if kind == "effects":
        sel = [np.ones(design.n_obs, dtype=bool)]
        sel += [design.effect_idx == g for g in range(len(design.effect_groups))]
        rows = [counter.sides(s & treated, s & ~treated) for s in sel]
    elif kind == "extra" and design.extra_idx is not None:
        rows = [counter.sides((design.extra_idx == g) & treated, (design.extra_idx == g) & ~treated)
                for g in range(len(design.extra_groups or []))]
    elif kind == "dynamics" and design.lead_idx is not None and design.lag_idx is not None:
        none = (design.lead_idx < 0) & (design.lag_idx < 0)
        rows = [counter.sides(design.lead_idx == j, none) for j in range(len(design.leads))]
        rows += [counter.sides(design.lag_idx == j, none) for j in range(len(design.lags))]
    out = pd.DataFrame(rows, columns=["n_units", "n_persons", "n_units_treated",
                                      "n_units_control", "n_persons_treated",
                                      "n_persons_control"])
    n_params = (len(design.units) + len(design.times) - 1 + len(design.effect_groups)
                + len(design.extra_groups or []) + len(design.leads) + len(design.lags))
    out["df_resid"] = float(design.n_obs - n_params)
    return out
