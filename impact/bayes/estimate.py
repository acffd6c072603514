"""Entry points: :func:`hierarchical`, :func:`compare_pooling`, prior predictive checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import xarray as xr

from impact.bayes import arviz_io
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.effects import dynamics_table, effects_table, extra_effects_table
from impact.bayes.fit import resolve_sampler, sample
from impact.bayes.model import build_model
from impact.bayes.results import HierarchicalResult, warn_if_not_converged

#: Parameters of interest: the convergence gate applies to those present in the model. The
#: nuisance parameters (the standard deviations ``sigma_<level>`` of the plan and municipality
#: intercepts and the global intercept) are gated only with ``strict_gate=True``; their worst
#: values are always reported (``*_nuisance`` columns of ``.diagnostics``). Measured at report
#: scale, ``sigma_plan_id`` mixes slowest (bulk ESS 430-740 with 4 x 1000 draws).
GATE_VARIABLES = (
    "effect_pooled",
    "effect",
    "sigma_effect",
    "effect_extra",
    "sigma_effect_extra",
    "time_effect",
    "sigma_time",
    "event_lead",
    "event_effect",
    "sigma_event",
    "sigma_unit",
    "sigma",
    "nu",
)


def hierarchical(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    *,
    unit: str = "department_id",
    time: str = "year",
    levels: Sequence[str] = ("plan_id", "municipality_id"),
    effect_by: str = "municipality_id",
    effect_by_extra: str | None = None,
    likelihood: str = "normal",
    trials: str | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    sampler: str = "auto",
    target_accept: float = 0.95,
    seed: int | None = None,
    threshold: float = 0.0,
    progressbar: bool = False,
    pooling: str = "partial",
    centred_intercepts: bool = True,
    centred_levels: bool = False,
    centred_effects: bool = False,
    event_time: str | None = None,
    event_window: tuple[int, int] = (-4, 5),
    log_likelihood: bool = False,
    strict_gate: bool = False,
) -> HierarchicalResult:
    """Bayesian hierarchical difference-in-differences model of a tool's effect.

    Department intercepts nested in ``levels`` (afdeling in helhedsplan in kommune), zero-sum year
    effects and a treatment effect (adoption 0/1 or intensity in [0, 1]) that varies by
    ``effect_by`` group with partial pooling. See :func:`impact.bayes.model.build_model` for the
    likelihoods and the priors, and :mod:`impact.bayes.model` for departments without a plan.

    Parameters
    ----------
    data
        Department-year panel, one row per ``(unit, time)``.
    outcome
        Outcome column: e.g. log income (normal, Student-t) or a count ``k`` (binomial).
    treatment
        ``in_force_<tool>`` (0/1) or ``intensity_<channel>`` (share of lettings, [0, 1]).
    unit, time
        Panel keys.
    levels
        Grouping columns the units are nested in, finest first. A null in a finer level (no
        helhedsplan) puts the unit in that municipality's ``"none"`` group.
    effect_by
        Groups with their own, partially pooled effect (rows of ``.effects``).
    effect_by_extra
        Optional second grouping (e.g. housing-market type) with additive deviations.
    likelihood
        ``"normal"`` / ``"student_t"`` (outcome scale) or ``"binomial"`` (with ``trials``).
    trials
        Column with the number of trials ``n`` for the binomial (e.g. ``n_labour_force``).
    draws, tune, chains, cores
        Sampling sizes; ``cores`` defaults to ``min(chains, cpu_count)``.
    sampler
        ``"auto"`` (nutpie if installed, else PyMC's NUTS), ``"nutpie"``, ``"pymc"``,
        ``"numpyro"``. Always passed explicitly to PyMC; recorded in ``result.sampler``.
    target_accept
        NUTS target acceptance (0.95).
    seed
        Random seed; the same seed gives the same draws.
    threshold
        Practical threshold for ``p_above_threshold`` (outcome scale; percentage points for the
        binomial).
    progressbar
        Show the sampler's progress bar.
    pooling
        ``"partial"`` (default), ``"complete"`` or ``"none"`` for the effects.
    centred_intercepts, centred_levels, centred_effects
        Parameterisation of the department intercepts and year effects, of the plan and
        municipality intercepts, and of the group effects (defaults chosen by measurement, see
        ``benchmarks/bench_bayes.py``).
    event_time
        Optional column with the time relative to adoption (null for never-adopting units):
        adds leads (pre-trend / anticipation checks, reference year -1) and post-adoption
        dynamics, reported in ``result.dynamics``.
    event_window
        First lead and last lag; relative times outside are binned into the ends.
    log_likelihood
        Add the pointwise log-likelihood group (for LOO).
    strict_gate
        Also gate the nuisance parameters (level standard deviations, intercept); see
        ``GATE_VARIABLES``.

    Returns
    -------
    HierarchicalResult
        ``.effects``, ``.diagnostics``, ``.converged``, ``.idata``, ``.tidy()``, ``.summary()``,
        ``.plot()``, ``.plot_ppc()``, ``.save(path)``.

    Warns
    -----
    ConvergenceWarning
        When the fit fails the convergence gate (the tables are then marked
        ``converged=False``).
    """
    config = ModelConfig(
        outcome=outcome,
        treatment=treatment,
        unit=unit,
        time=time,
        levels=tuple(levels),
        effect_by=effect_by,
        effect_by_extra=effect_by_extra,
        likelihood=likelihood,
        trials=trials,
        pooling=pooling,
        centred_intercepts=centred_intercepts,
        centred_levels=centred_levels,
        centred_effects=centred_effects,
        event_time=event_time,
        event_window=(int(event_window[0]), int(event_window[1])),
    )
    design = prepare(data, config)
    which = resolve_sampler(sampler)
    # the fused binomial Op has NumPy and numba implementations, not JAX
    model = build_model(design, config, fused_binomial=which != "numpyro")
    idata, run = sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        sampler=which,
        target_accept=target_accept,
        seed=seed,
        progressbar=progressbar,
    )
    if log_likelihood:
        import pymc as pm

        with model:
            pm.compute_log_likelihood(idata, extend_inferencedata=True, progressbar=False)
    nuisance = [f"sigma_{level}" for level in config.levels] + ["intercept"]
    gate = [*GATE_VARIABLES, *(nuisance if strict_gate else [])]
    gate = [v for v in gate if v in idata["posterior"]]
    nuisance = [v for v in nuisance if v in idata["posterior"] and v not in gate]
    worst, _ = arviz_io.diagnostics(idata, gate, nuisance)
    worst["sampler"] = run.sampler
    worst["wall_seconds"] = run.wall_seconds
    warn_if_not_converged(worst, run.sampler)
    conv = bool(worst["converged"].iloc[0])
    effects = effects_table(idata, design, config, threshold)
    effects["converged"] = conv
    extra = extra_effects_table(idata, threshold)
    dynamics = dynamics_table(idata, threshold)
    for tab in (extra, dynamics):
        if tab is not None:
            tab["converged"] = conv
    return HierarchicalResult(
        idata=idata,
        config=config,
        run=run,
        effects=effects,
        extra_effects=extra,
        dynamics=dynamics,
        diagnostics=worst,
        threshold=threshold,
        data_hash=design.data_hash,
        model=model,
        design=design,
        gate_variables=tuple(gate),
        nuisance_variables=tuple(nuisance),
    )


def compare_pooling(
    data: pd.DataFrame, outcome: str, treatment: str, **kwargs: Any
) -> pd.DataFrame:
    """LOO comparison of complete, no and partial pooling of the effects.

    Fits :func:`hierarchical` three times (same data, options and seed, ``pooling`` set to
    ``"complete"``, ``"none"`` and ``"partial"``) with the pointwise log-likelihood and compares
    them with PSIS-LOO (``arviz.compare``, stacking weights).

    Returns
    -------
    DataFrame
        Index ``pooling``; ArviZ's columns (``rank``, ``elpd``, ``p``, ``elpd_diff``, ``weight``,
        ``se``, ``dse``, ...) plus ``converged`` (each fit's gate) and ``sampler``.
    """
    if "pooling" in kwargs:
        raise TypeError("compare_pooling sets pooling itself")
    fits = {
        name: hierarchical(data, outcome, treatment, pooling=name, log_likelihood=True, **kwargs)
        for name in ("complete", "none", "partial")
    }
    table = arviz_io.compare({k: f.idata for k, f in fits.items()})
    table.index.name = "pooling"
    table["converged"] = [fits[k].converged for k in table.index]
    table["sampler"] = [fits[k].sampler for k in table.index]
    return table


def prior_predictive(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    *,
    draws: int = 500,
    seed: int | None = None,
    **options: Any,
) -> xr.DataTree:
    """Draws from the prior and the prior predictive of the model :func:`hierarchical` would fit.

    ``options`` are the model options of :func:`hierarchical` (``unit``, ``levels``,
    ``likelihood``, ``trials``, ...). The normal and Student-t models are on the standardised
    outcome.
    """
    import pymc as pm

    allowed = {f for f in ModelConfig.__dataclass_fields__ if f not in ("outcome", "treatment")}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"prior_predictive: unknown option(s) {sorted(unknown)}")
    if "levels" in options:
        options["levels"] = tuple(options["levels"])
    config = ModelConfig(outcome=outcome, treatment=treatment, **options)
    design = prepare(data, config)
    model = build_model(design, config)
    with model:
        idata = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    return idata


def plot_prior_predictive(
    data: pd.DataFrame | xr.DataTree,
    outcome: str | None = None,
    treatment: str | None = None,
    **options: Any,
) -> Any:
    """Plot the prior predictive distribution against the observed outcome.

    Takes the arguments of :func:`prior_predictive`, or the data tree it returned. Returns the
    ArviZ ``PlotCollection`` (``.savefig(path)``).
    """
    if isinstance(data, xr.DataTree):
        idata = data
    else:
        if outcome is None or treatment is None:
            raise TypeError("plot_prior_predictive needs outcome and treatment with a DataFrame")
        idata = prior_predictive(data, outcome, treatment, **options)
    return arviz_io.plot_predictive(idata, "prior_predictive")
