"""Coverage of the hierarchical model's 90% intervals on the default world (issue 15, item 4).

One replication = one seed of the simulator's default world (``scale="report"``, selected
adoption, both tools mostly together), exactly as ``impact run`` simulates it, and its placebo
(:func:`impact.simulate.placebo`: the counterfactual persons with the real adoption and lettings,
so every true effect is 0). On each, :func:`impact.bayes.hierarchical` is fitted as the pipeline
fits it (:func:`impact.workflow.estimates.bayes_inputs`: ``[bayes]`` of a config file, by default
the package's defaults).

The truth of the model's estimand
---------------------------------
The model's effect of municipality ``m`` multiplies the exposure ``d`` in the mean structure
``eta = a_unit + year (+ stratum-year + covariate slopes + controls) + effect[m] * d``. Where the
true effect is not exactly proportional to ``d``, what the model estimates is the projection of
the true effects onto that mean structure (the pseudo-true value of a Gaussian model with flat
nuisance terms; the model's priors on them make it a different estimator, see
``benchmarks/RESULTS.md``, 2026-12-03): the generalised least-squares coefficients of the true
effect of *every* tool (``<outcome>_effect``, factual minus the world without any tool: the
factual outcome is the placebo's plus exactly this) on the model's design, in the metric of
the model's own error covariance (its AR(1) correlation and count weights at their posterior
means; identity for iid unweighted errors). Adding the true effects to the outcome moves every
such coefficient by exactly this amount, so it is the effect least squares on the design reports
when it is right about everything but the shape of the effects (``truth``). Municipalities
without a treated department-year are not scored (their effect is the prior's); the pooled truth
is the mean of the scored municipalities' truths.

The same projection of the tool's own effect (``<outcome>_effect_<tool>``, factual minus the
world without that tool) is ``truth_tool``, the policy quantity. The two differ by the
projection of the other tool's effect onto this tool's columns once its exposure is controlled
for linearly: contamination bias (Goldsmith-Pinkham, Hull and Kolesar 2024), a property of the
estimand, not of the intervals. ``coverage_tool`` reports the intervals against it.

``truth_att`` is the truth ``impact run`` itself reports beside the model (:func:`att_truth`):
the mean tool-specific effect over a group's treated department-years divided by their mean
exposure, the effect per unit of exposure at which the implied ATT
(``private/bayes/implied_att_*.csv``) is right. It equals the projection only where the true
effect is proportional to the exposure; the default world's is not (cumulative lettings per
dwelling keep counting tenants who have moved out again, so the effect per unit of exposure
falls with years since adoption), and ``coverage_att`` measures what that costs the reported
implied ATTs. ``implied_mean`` / ``implied_lower_90`` / ``implied_upper_90`` / ``implied_truth`` /
``covered_implied`` are those ATTs themselves, as ``impact run`` reports them (its pooled row is
the department-year mean of the groups' effect times exposure, draw by draw, which ``truth_att``
of the pooled row, the pooled effect's target, is not).

Usage (slow: about 30-60 s per fit on 2 cores)::

    PYTHONPATH=. python -m tests.simstudy.calibration_bayes --seeds 0 40 --out bayes_cal.csv
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from impact import panel, simulate
from impact.bayes.design import profile_weights
from impact.simulate.truth import effect_column
from impact.workflow.config import StudyConfig, load
from impact.workflow.estimates import bayes_inputs, treatment_tool
from impact.workflow.subgroup_outputs import IMPLIED, implied_att_rows, implied_effects


def _design(data: pd.DataFrame, options: dict, treatment: str, effect_by: str
            ) -> tuple[sp.csr_matrix, list[str]]:
    """The model's mean structure as a sparse design; the last columns are the group effects."""
    n = len(data)
    rows = np.arange(n)
    unit = pd.factorize(data["department_id"])[0]
    time = pd.factorize(data["year"], sort=True)[0]
    n_time = time.max() + 1
    blocks = [sp.csr_matrix((np.ones(n), (rows, unit))),
              sp.csr_matrix((np.ones(n), (rows, time)))[:, 1:]]
    if options.get("time_by"):
        key = data[list(options["time_by"])].astype(str).agg("/".join, axis=1)
        stratum = pd.factorize(key)[0]
        blocks.append(sp.csr_matrix((np.ones(n), (rows, stratum * n_time + time))))
    for col in options.get("covariates") or ():
        x = data[col].to_numpy(dtype=float)
        blocks.append(sp.csr_matrix((x - x.mean(), (rows, time)))[:, 1:])
    for col in options.get("controls") or ():
        blocks.append(sp.csr_matrix(data[[col]].to_numpy(dtype=float)))
    group = data[effect_by].astype(str).to_numpy()
    d = data[treatment].to_numpy(dtype=float)
    groups = sorted(set(group[d > 0]))
    profile = _profile_bins(data, options, treatment)
    if profile is not None:  # the shared profile: one column per bin after the first
        blocks.append(sp.csr_matrix(np.column_stack(
            [np.where(profile == k, d, 0.0) for k in range(1, profile.max() + 1)])))
    cols = [np.where(group == g, d, 0.0) for g in groups]
    blocks.append(sp.csr_matrix(np.column_stack(cols)))
    return sp.hstack(blocks).tocsr(), groups


def _profile_bins(data: pd.DataFrame, options: dict, treatment: str) -> np.ndarray | None:
    """The model's bin of time since adoption per row (``effect_profile``; -1 untreated)."""
    from impact.bayes.design import ModelConfig, profile_terms

    if not options.get("effect_profile"):
        return None
    config = ModelConfig(outcome=treatment, treatment=treatment,
                         effect_profile=options["effect_profile"],
                         profile_last=int(options.get("profile_last", 8)))
    return profile_terms(data, config, data[treatment].to_numpy(dtype=float)).get("profile_idx")


def _profile_average(coef: np.ndarray, data: pd.DataFrame, options: dict, treatment: str,
                     effect_by: str, groups: list[str]) -> np.ndarray:
    """Group coefficients (rows of ``coef``'s last ``len(groups)``) plus their treatment-weighted
    mean of the profile's coefficients over the group's treated rows: the effect the model
    reports (:func:`impact.bayes.model._profile_terms`); the group coefficients alone without a
    profile."""
    g_coef = coef[-len(groups):]
    profile = _profile_bins(data, options, treatment)
    if profile is None:
        return g_coef
    n_bins = int(profile.max()) + 1
    p_coef = np.vstack([np.zeros((1, coef.shape[1])),
                        coef[-len(groups) - (n_bins - 1):-len(groups)]])
    d = data[treatment].to_numpy(dtype=float)
    where = pd.Index(groups).get_indexer(data[effect_by].astype(str))
    return g_coef + profile_weights(where, profile, d, len(groups), n_bins) @ p_coef


def _whiten(x: sp.csr_matrix | np.ndarray, data: pd.DataFrame, rho: float,
            scale: np.ndarray) -> sp.csr_matrix | np.ndarray:
    """Rows of ``x`` in the metric of the model's errors (the likelihood's own transform).

    Row ``o`` becomes ``(x[o] / s[o] - rho**k x[prev] / s[prev]) / sqrt(1 - rho**(2k))`` after a
    step of ``k`` years and ``x[o] / s[o]`` at a department's first year: the rows whose sum of
    squares is the model's Gaussian quadratic form. ``data`` is in (department, year) order.
    """
    unit = data["department_id"].to_numpy()
    year = data["year"].to_numpy()
    first = np.r_[True, unit[1:] != unit[:-1]]
    n = len(data)
    prev = np.where(first, 0, np.arange(n) - 1)
    rk = np.where(first, 0.0, rho ** np.maximum(year - np.r_[year[0], year[:-1]], 1))
    norm = np.sqrt(1.0 - rk**2)
    own = 1.0 / (scale * norm)
    lag = np.where(first, 0.0, -rk / (scale[prev] * norm))
    w = sp.csr_matrix((np.r_[own, lag[~first]],
                       (np.r_[np.arange(n), np.flatnonzero(~first)], np.r_[np.arange(n),
                                                                          prev[~first]])),
                      shape=(n, n))
    return w @ x


def projection_truth(data: pd.DataFrame, options: dict, treatment: str, effect_by: str,
                     tau: pd.DataFrame, *, rho: float = 0.0,
                     scale: np.ndarray | None = None) -> pd.DataFrame:
    """GLS coefficients of each column of ``tau`` on the model's mean structure, per group.

    ``data`` (and ``tau``) in (department, year) order; ``rho`` and ``scale`` (per row) are the
    model's error correlation and scale (see the module docstring). One design and one solve
    for all columns; rows: the groups, columns: those of ``tau``.

    The whitened design is solved directly (SVD least squares, minimum norm where its fixed
    effects are collinear), after scaling its columns to unit length: its columns differ in
    scale by orders of magnitude (a covariate in kroner times the year dummies against an
    exposure of a few treated department-years), and the normal equations square that
    condition number, so a solve of them truncates a weakly exposed group's coefficient to 0.
    """
    x, groups = _design(data, options, treatment, effect_by)
    s = np.ones(len(data)) if scale is None else scale
    xw = _whiten(x, data, rho, s).toarray()
    tw = _whiten(tau.to_numpy(dtype=float), data, rho, s)
    norm = np.linalg.norm(xw, axis=0)
    norm[norm == 0] = 1.0
    coef = np.linalg.lstsq(xw / norm, tw, rcond=None)[0] / norm[:, None]
    coef = _profile_average(coef, data, options, treatment, effect_by, groups)
    return pd.DataFrame(coef, index=groups, columns=tau.columns)


def _error_model(fit, data: pd.DataFrame) -> tuple[float, np.ndarray]:
    """The fitted error model at its posterior means: AR(1) ``rho`` and the scale per row."""
    post = fit.idata["posterior"]
    rho = float(post["rho"].mean()) if "rho" in post else 0.0
    if "sigma_common" in post:
        w = data[fit.config.weights].to_numpy(dtype=float)
        w = w / w.mean()
        common, count = float(post["sigma_common"].mean()), float(post["sigma_count"].mean())
        return rho, np.sqrt(common**2 + count**2 / w)
    return rho, np.ones(len(data))


def world(seed: int, config: StudyConfig, *, placebo: bool = False
          ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The fitted data, the model options and the truth table of one replication."""
    reg = simulate.registers(seed=seed, scale=config.run.scale)
    if placebo:
        reg = simulate.placebo(reg)
    frame = panel.build(reg, validate=False).frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, options, _ = bayes_inputs(frame, config)
    data = data.sort_values(["department_id", "year"]).reset_index(drop=True)
    return data, options, reg.truth


def replicate(seed: int, config: StudyConfig, *, placebo: bool = False,
              **sampling: object) -> pd.DataFrame:
    """One fit: per scored group the 90% interval, the truth and whether it covers it.

    ``sampling`` overrides the ``[bayes]`` sampling options (``draws``, ``tune``, ...).
    """
    from impact import bayes

    b = config.bayes_model
    data, options, truth_table = world(seed, config, placebo=placebo)
    options = {**options, **sampling}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayes.hierarchical(data, b.outcome, b.treatment, seed=seed, **options)
    rho, scale = _error_model(fit, data)
    eff = fit.effects.set_index("group")
    sfx, unit = ("_pp", 100.0) if b.likelihood == "binomial" else ("", 1.0)
    out = pd.DataFrame({"mean": eff[f"mean{sfx}"] / unit,
                        "lower_90": eff[f"lower_90{sfx}"] / unit,
                        "upper_90": eff[f"upper_90{sfx}"] / unit})
    truth = truths(data, options, config, truth_table, placebo=placebo, rho=rho, scale=scale)
    out = out.join(truth, how="inner")
    if b.likelihood != "binomial":
        out = out.join(implied_atts(fit, data, config, None if placebo else truth_table))
    out = _score(out)
    out["seed"], out["placebo"], out["converged"] = seed, placebo, fit.converged
    out["attempts"] = int(fit.diagnostics["n_attempts"].iloc[0])
    out["rho"] = rho
    out["wall_seconds"] = float(fit.diagnostics["wall_seconds"].iloc[0])
    return out.rename_axis("group").reset_index()


def truths(data: pd.DataFrame, options: dict, config: StudyConfig, truth_table: pd.DataFrame,
           *, placebo: bool, rho: float = 0.0, scale: np.ndarray | None = None
           ) -> pd.DataFrame:
    """``truth`` (every tool's effect) and ``truth_tool`` (the tool's own) per scored group.

    Both are :func:`projection_truth`; the first row is the pooled truth (their mean). With the
    normal likelihood also ``least_squares``: the same projection of the fitted outcome itself,
    the estimate of least squares on the design (to compare the model's estimates with).
    """
    b = config.bayes_model
    cols = {"truth": effect_column(b.outcome, None),
            "truth_tool": effect_column(b.outcome, treatment_tool(b.treatment))}
    if placebo:
        tau = pd.DataFrame(0.0, index=data.index, columns=list(cols))
    else:
        tau = data[["department_id", "year"]].merge(
            truth_table[["department_id", "year", *cols.values()]],
            on=["department_id", "year"], how="left", validate="1:1")[list(cols.values())]
        tau = tau.fillna(0.0).set_axis(list(cols), axis=1)
    if b.likelihood == "normal":
        tau["least_squares"] = data[b.outcome].to_numpy(dtype=float)
    per_group = projection_truth(data, options, b.treatment, b.effect_by, tau, rho=rho,
                                 scale=scale)
    out = pd.concat([per_group.mean().to_frame("pooled").T, per_group])
    out["truth_att"] = att_truth(data, config, None if placebo else truth_table,
                                 list(out.index))
    return out


def implied_atts(fit, data: pd.DataFrame, config: StudyConfig,
                 truth_table: pd.DataFrame | None) -> pd.DataFrame:
    """The implied ATTs ``impact run`` reports (its own function, with the effect draws) and
    their truth (0 in a placebo world), per group: ``implied_mean``, ``implied_lower_90``,
    ``implied_upper_90``, ``implied_truth``."""
    b = config.bayes_model
    rows = implied_effects(fit.effects, data, b.treatment, b.effect_by, truth=truth_table,
                           outcome=None if truth_table is None else b.outcome,
                           onset_lag=config.did.primary.onset_lag,
                           effect_draws=fit.idata["posterior"]["effect"]).set_index("group")
    out = pd.DataFrame({f"implied_{c}": rows[f"implied_att_{c}"]
                        for c in ("mean", "lower_90", "upper_90")})
    out["implied_truth"] = rows["truth"] if truth_table is not None else 0.0
    return out


def att_truth(data: pd.DataFrame, config: StudyConfig, truth_table: pd.DataFrame | None,
              groups: list[str]) -> pd.Series:
    """The truth ``impact run`` sets beside the model's implied ATTs, per unit of exposure.

    :func:`impact.workflow.subgroup_outputs.implied_effects` (the pipeline's own function)
    reports a group's effect times its mean exposure over its treated department-years (from
    the cohort plus ``[did.primary].onset_lag``) beside the mean tool-specific truth over the
    same department-years; their ratio is the effect per unit of exposure that makes the implied
    ATT right, so an interval for the effect covers it exactly when the implied ATT's interval
    covers the pipeline's truth. 0 in a placebo world (``truth_table=None``).
    """
    b = config.bayes_model
    if truth_table is None:
        return pd.Series(0.0, index=groups)
    unit = pd.DataFrame({"group": groups, **{c: 1.0 for c in IMPLIED}})
    rows = implied_effects(unit, data, b.treatment, b.effect_by, truth=truth_table,
                           outcome=b.outcome, onset_lag=config.did.primary.onset_lag)
    return (rows["truth"] / rows["mean_exposure"]).set_axis(rows["group"]).reindex(groups)


def _score(rows: pd.DataFrame) -> pd.DataFrame:
    """``covered`` / ``covered_tool`` / ``covered_att``: the 90% interval holds ``truth`` /
    ``truth_tool`` / ``truth_att``."""
    rows = rows.copy()
    for sfx in [x for x in ("", "_tool", "_att") if f"truth{x}" in rows]:
        t = rows[f"truth{sfx}"]
        rows[f"covered{sfx}"] = (rows["lower_90"] <= t) & (t <= rows["upper_90"])
    if "implied_truth" in rows:  # the implied ATTs impact run reports, against their truth
        t = rows["implied_truth"]
        rows["covered_implied"] = (rows["implied_lower_90"] <= t) & (t <= rows["implied_upper_90"])
    return rows


def rescore(rows: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    """An earlier run's rows with ``truth``, ``truth_tool``, ``least_squares`` recomputed.

    No refit: the worlds are simulated again and projected.

    For runs of unweighted models only (the error scale is then 1; ``rho`` is in the rows).
    """
    if config.bayes_model.weighted:
        raise SystemExit("rescore: the weighted model's error scale is not in the rows")
    done = []
    for (seed, placebo), fit in rows.groupby(["seed", "placebo"], sort=False):
        keep = fit.drop(columns=[c for c in fit.columns
                                 if c.startswith(("truth", "covered", "least_squares"))])
        data, options, truth_table = world(int(seed), config, placebo=bool(placebo))
        t = truths(data, options, config, truth_table, placebo=bool(placebo),
                   rho=float(fit["rho"].iloc[0]))
        done.append(_score(keep.set_index("group").join(t, how="inner"))
                    .rename_axis("group").reset_index())
        print(f"rescored seed {seed} placebo {placebo}", flush=True)
    return pd.concat(done, ignore_index=True)


def coverage(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the pooled and the municipality intervals, by world, with MC errors.

    Against ``truth``; ``coverage_tool`` / ``mean_error_tool`` against ``truth_tool`` and
    ``coverage_att`` / ``mean_error_att`` against ``truth_att``; ``coverage_implied`` /
    ``mean_error_implied``: the implied ATTs ``impact run`` reports against their truth (rows of
    runs that have them).
    """
    kind = np.where(rows["group"] == "pooled", "pooled", "municipality")
    aggs = dict(n=("covered", "size"), seeds=("seed", "nunique"), coverage=("covered", "mean"),
                mean_error=("z", "mean"), sd_error=("z", "std"), mean_width=("width", "mean"),
                converged=("converged", "mean"))
    rows = rows.assign(kind=kind, z=(rows["mean"] - rows["truth"]),
                       width=rows["upper_90"] - rows["lower_90"])
    for sfx in [x for x in ("_tool", "_att") if f"truth{x}" in rows]:
        rows = rows.assign(**{f"z{sfx}": rows["mean"] - rows[f"truth{sfx}"]})
        aggs |= {f"coverage{sfx}": (f"covered{sfx}", "mean"),
                 f"mean_error{sfx}": (f"z{sfx}", "mean")}
    if "covered_implied" in rows:
        rows = rows.assign(z_implied=rows["implied_mean"] - rows["implied_truth"])
        aggs |= {"coverage_implied": ("covered_implied", "mean"),
                 "mean_error_implied": ("z_implied", "mean")}
    out = rows.groupby(["placebo", "kind"]).agg(**aggs)
    out["mc_se"] = np.sqrt(0.9 * 0.1 / out["n"])
    return out


def matched(rows: pd.DataFrame) -> pd.Series:
    """The factual world against its placebo, seed by seed (same counterfactual persons).

    ``pooled_corr`` / ``pooled_shift`` / ``pooled_shift_sd``: correlation of the pooled errors
    of the two worlds and the mean and SD of their difference; ``slope`` / ``intercept``: the
    municipality estimates' move from the placebo to the factual fit regressed on their truth
    (1 and 0 when adding the effect moves each estimate by its truth); ``sd_error_factual`` /
    ``sd_error_placebo``: SD of the municipality errors.
    """
    err = rows.assign(err=rows["mean"] - rows["truth"])
    pooled = err[err["group"] == "pooled"].pivot(index="seed", columns="placebo", values="err")
    pooled = pooled.dropna()
    groups = err[err["group"] != "pooled"].pivot_table(index=["seed", "group"], columns="placebo",
                                                        values=["mean", "truth", "err"]).dropna()
    moved = groups[("mean", False)] - groups[("mean", True)]
    slope, intercept = np.polyfit(groups[("truth", False)], moved, 1)
    diff = pooled[False] - pooled[True]
    return pd.Series({
        "seeds": len(pooled), "pooled_corr": pooled[False].corr(pooled[True]),
        "pooled_shift": diff.mean(), "pooled_shift_sd": diff.std(),
        "slope": slope, "intercept": intercept,
        "sd_error_factual": groups[("err", False)].std(),
        "sd_error_placebo": groups[("err", True)].std(),
    })


def by_truth(rows: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """Municipality intervals by where their truth lies among the seed's, per world.

    Bins: quintiles of the truth minus its seed mean (0 = smallest). Per bin: ``n``, coverage, the
    mean and SD of ``z = (mean - truth) / posterior SD`` (the SD from the 90% interval's width;
    1 and 0 for calibrated normal intervals); the last rows (``bin = "all"``) add the slope of the
    truth regressed on the estimate within seeds (1 where posterior means shrink as much as the
    truths warrant) and of the estimate on the truth (the reliability where they do).
    """
    out = []
    for placebo, g in rows[rows["group"] != "pooled"].groupby("placebo"):
        g = g.assign(sd=(g["upper_90"] - g["lower_90"]) / (2 * 1.6448536269514722))
        g = g.assign(z=(g["mean"] - g["truth"]) / g["sd"],
                     truth_d=g["truth"] - g.groupby("seed")["truth"].transform("mean"),
                     mean_d=g["mean"] - g.groupby("seed")["mean"].transform("mean"))
        ranks = g.groupby("seed")["truth_d"].rank(method="first", pct=True)
        g = g.assign(bin=(np.ceil(ranks * n_bins).astype(int) - 1).astype(str))
        spread = g["truth_d"].var() > 0  # not in a placebo world: every truth is 0, no bins
        parts = [g.groupby("bin").agg(n=("z", "size"), coverage=("covered", "mean"),
                                      mean_z=("z", "mean"), sd_z=("z", "std"))] if spread else []
        parts.append(pd.DataFrame({
            "n": [len(g)], "coverage": [g["covered"].mean()], "mean_z": [g["z"].mean()],
            "sd_z": [g["z"].std()],
            "slope_truth_on_mean": [np.polyfit(g["mean_d"], g["truth_d"], 1)[0]
                                    if spread else np.nan],
            "slope_mean_on_truth": [np.polyfit(g["truth_d"], g["mean_d"], 1)[0]
                                    if spread else np.nan]}, index=pd.Index(["all"], name="bin")))
        out.append(pd.concat(parts).assign(placebo=placebo))
    return pd.concat(out).reset_index().set_index(["placebo", "bin"])


def against_least_squares(rows: pd.DataFrame) -> pd.DataFrame:
    """The model's municipality estimates against least squares on the truth's design, per world.

    ``corr``, ``slope`` (the estimate regressed on least squares) and the SD of each across the
    municipalities (within seeds): where the model is least squares on that design (flat
    priors), 1, 1 and equal SDs, and the projection is then its pseudo-true value.
    """
    g = rows[rows["group"] != "pooled"]
    g = g.assign(mean_d=g["mean"] - g.groupby(["seed", "placebo"])["mean"].transform("mean"),
                 ls_d=g["least_squares"]
                 - g.groupby(["seed", "placebo"])["least_squares"].transform("mean"))
    return g.groupby("placebo").apply(lambda w: pd.Series({
        "n": len(w), "corr": w["mean_d"].corr(w["ls_d"]),
        "slope": np.polyfit(w["ls_d"], w["mean_d"], 1)[0],
        "sd_estimate": w["mean_d"].std(), "sd_least_squares": w["ls_d"].std()}),
        include_groups=False)


def exposure_shape(seed: int, config: StudyConfig) -> pd.DataFrame:
    """The true effect per unit of exposure by years since adoption, on one factual world.

    Over the department-years of the implied ATTs (:func:`att_truth`), per year since the
    tool's cohort: their number, the mean exposure, the mean tool-specific effect and their
    ratio (constant where the effect is proportional to the exposure, as the model assumes).
    """
    b = config.bayes_model
    tool = treatment_tool(b.treatment)
    data, _, truth_table = world(seed, config)
    col = effect_column(b.outcome, tool)
    data = data.merge(truth_table[["department_id", "year", col]],
                      on=["department_id", "year"], how="left", validate="1:1")
    rows = implied_att_rows(data, tool, config.did.primary.onset_lag)
    out = rows.groupby(rows["year"] - rows[f"cohort_{tool}"]).agg(
        n=(col, "size"), mean_exposure=(b.treatment, "mean"), mean_effect=(col, "mean"))
    out["effect_per_exposure"] = out["mean_effect"] / out["mean_exposure"]
    return out.rename_axis("years_since_adoption")


def common_fits(runs: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each run's rows restricted to the (seed, placebo) fits every run has."""
    keys = [pd.MultiIndex.from_frame(r[["seed", "placebo"]]) for r in runs]
    common = keys[0].unique()
    for k in keys[1:]:
        common = common.intersection(k.unique())
    return [r[k.isin(common)] for r, k in zip(runs, keys, strict=True)]


def main() -> None:
    """Run the study over a seed range and print the coverage table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs=2, type=int, default=[0, 40], metavar=("FIRST", "STOP"))
    ap.add_argument("--config", default=None, help="a study config (default: the defaults)")
    ap.add_argument("--worlds", default="factual,placebo")
    ap.add_argument("--draws", type=int, default=None, help="default: [bayes].draws")
    ap.add_argument("--tune", type=int, default=None, help="default: [bayes].tune")
    ap.add_argument("--max-attempts", type=int, default=None,
                    help="fits per replication while the gate fails (default: the model's)")
    ap.add_argument("--pooling", default=None, choices=("partial", "none", "complete"),
                    help="pooling of the group effects (default: the model's, partial)")
    ap.add_argument("--out", default=None, help="CSV of every group of every replication")
    ap.add_argument("--summarise", nargs="+", default=None, metavar="CSV",
                    help="print the tables of earlier runs' CSVs instead of fitting; with several, "
                         "each on the (seed, world) fits all of them have")
    ap.add_argument("--rescore", default=None, metavar="CSV",
                    help="recompute truth / truth_tool of an earlier run's CSV (no refit; "
                         "unweighted models) and write it to --out")
    ap.add_argument("--exposure-shape", type=int, default=None, metavar="SEED",
                    help="print the true effect per unit of exposure by years since adoption")
    args = ap.parse_args()
    if args.exposure_shape is not None:
        config = load(Path(args.config)) if args.config else StudyConfig()
        print(exposure_shape(args.exposure_shape, config).round(4).to_string())
        return
    if args.rescore:
        config = load(Path(args.config)) if args.config else StudyConfig()
        done = rescore(pd.read_csv(args.rescore, dtype={"group": str}), config)
        done.to_csv(args.out or args.rescore, index=False)
        print(coverage(done).to_string())
        return
    if args.summarise:
        runs = [pd.read_csv(f, dtype={"group": str}) for f in args.summarise]
        for name, done in zip(args.summarise, common_fits(runs), strict=True):
            print(name)
            print(coverage(done).to_string())
            if done["placebo"].nunique() == 2:
                print(matched(done).round(4).to_string())
            print(by_truth(done).round(4).to_string())
            if "least_squares" in done:
                print(against_least_squares(done).round(4).to_string())
        return
    sampling = {k: v for k, v in (("draws", args.draws), ("tune", args.tune),
                                  ("max_attempts", args.max_attempts), ("pooling", args.pooling))
                if v is not None}
    config = load(Path(args.config)) if args.config else StudyConfig()
    rows = []
    for seed in range(*args.seeds):
        for placebo in [w == "placebo" for w in args.worlds.split(",")]:
            rows.append(replicate(seed, config, placebo=placebo, **sampling))
            r = rows[-1]
            print(f"seed {seed} placebo {placebo}: municipality coverage "
                  f"{r['covered'].iloc[1:].mean():.3f}, pooled {r['mean'].iloc[0]:.4f} "
                  f"[{r['lower_90'].iloc[0]:.4f}, {r['upper_90'].iloc[0]:.4f}] truth "
                  f"{r['truth'].iloc[0]:.4f}, converged {bool(r['converged'].iloc[0])}, "
                  f"{r['wall_seconds'].iloc[0]:.0f} s", flush=True)
            if args.out:
                pd.concat(rows, ignore_index=True).to_csv(args.out, index=False)
    done = pd.concat(rows, ignore_index=True)
    print(coverage(done).to_string())
    if done["placebo"].nunique() == 2:
        print(matched(done).round(4).to_string())


if __name__ == "__main__":
    main()
