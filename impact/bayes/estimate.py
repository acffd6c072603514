"""Entry points: :class:`HierarchicalModel`, :func:`hierarchical`, :func:`compare_pooling`,
prior predictive checks.

:class:`HierarchicalModel` keeps the model (a :class:`~impact.bayes.design.ModelConfig` and the
data) apart from the sampling (:meth:`HierarchicalModel.fit`'s keyword options); each option is
passed one way. :func:`hierarchical` is the same in one call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd
import xarray as xr

from impact.bayes import arviz_io
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.effects import (
    dynamics_table,
    effects_table,
    extra_effects_table,
    support_table,
)
from impact.bayes.fit import reproducible_compilation, resolve_sampler, sample
from impact.bayes.model import build_model
from impact.bayes.parameterisation import CENTRED_ABOVE, LevelChoice, choose_effects
from impact.bayes.results import HierarchicalResult, warn_if_not_converged
from impact.errors import EstimationError

#: Parameters of interest: the convergence gate applies to those present in the model. The
#: nuisance parameters (the standard deviations ``sigma_<level>`` of the plan and municipality
#: intercepts and the global intercept) are gated only with ``strict_gate=True``; their worst
#: values are always reported (``*_nuisance`` columns of ``.diagnostics``). Measured at report
#: scale, ``sigma_plan_id`` mixes slowest (bulk ESS 430-740 with 4 x 1000 draws).
GATE_VARIABLES = (
    "effect_pooled",
    "effect_mean",
    "effect",
    "sigma_effect",
    "sigma_unit_effect",
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
    "control_effect",
    "rho",
)

#: A data-chosen parameterisation is kept by the first refit when its mean data weight is
#: this far from the rule's boundary (below 0.2 or above 0.8): measured on the issue-15 placebo
#: world, the centred alternative failed badly (R-hat 1.087, 171 divergences) where the
#: non-centred one passed.
DECISIVE = 0.3

#: Fits at most, first one included, unless ``max_attempts`` says otherwise. With the default
#: budget a failing model costs at most 1 + 2 + 2 = 5 times the first fit's iterations.
MAX_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The settings of one fit: parameterisation of the group effects and sampler settings."""

    centred_effects: bool
    draws: int
    tune: int
    target_accept: float
    adaptation: str | None = None


def next_attempt(
    first: Attempt, done: list[tuple[Attempt, pd.DataFrame]], *, flip: bool, sampler: str
) -> Attempt | None:
    """The refit after the failed fits ``done`` (settings, diagnostics row), or ``None``.

    1. with ``flip`` (partial pooling, and a parameterisation that the data did not settle,
       see :data:`DECISIVE`): the other parameterisation of the group effects, twice the
       tuning; else the same parameterisation with twice the draws and the tuning;
    2. the better parameterisation so far (:func:`attempt_score`), twice the draws and the
       tuning, ``target_accept`` at least 0.99;
    3. nutpie only: the same with nutpie's low-rank (denser) mass-matrix adaptation.
    """
    k = len(done)
    best = max(done, key=lambda a: attempt_score(a[1]))[0]
    more = dataclasses.replace(first, draws=2 * first.draws, tune=2 * first.tune)
    if k == 1:
        if flip:
            return dataclasses.replace(
                first, centred_effects=not first.centred_effects, tune=2 * first.tune
            )
        return more
    more = dataclasses.replace(
        more,
        centred_effects=best.centred_effects,
        target_accept=max(first.target_accept, 0.99),
    )
    if k == 2:
        return more
    if k == 3 and sampler == "nutpie":
        return dataclasses.replace(more, adaptation="low_rank")
    return None


def attempt_score(diagnostics: pd.DataFrame) -> tuple[float, ...]:
    """Ranks fits: passed the gate, fewer failed criteria, larger worst ESS, smaller R-hat."""
    row = diagnostics.iloc[0]
    g = arviz_io.GATE
    ess = min(float(row["ess_bulk"]), float(row["ess_tail"]))
    failed = (
        int(not row["r_hat"] <= g["r_hat_max"])
        + int(not ess >= g["ess_min"])
        + int(row["divergences"] > g["divergences_max"])
        + int(row["bfmi"] <= g["bfmi_min"])
    )
    return (float(bool(row["converged"])), -failed, ess, -float(row["r_hat"]))


class HierarchicalModel:
    """A Bayesian hierarchical DiD model of one panel, before and after sampling.

    Parameters
    ----------
    data
        Department-year panel, one row per ``(unit, time)``.
    config
        The model (see :class:`~impact.bayes.design.ModelConfig`).
    persons
        Optional column with the persons behind each department-year (e.g. ``n_residents`` or
        the outcome's base), for the ``n_persons`` support columns of the effect tables (a
        binomial model uses its trials); not part of the model, so not of its hash.

    Attributes
    ----------
    design
        The validated model arrays.
    effects_choice
        How the group effects are parameterised (:class:`~impact.bayes.parameterisation.
        LevelChoice`): from the data when ``config.centred_effects == "auto"``.

    Examples
    --------
    >>> model = HierarchicalModel(panel, ModelConfig("log_income", "in_force"))  # doctest: +SKIP
    >>> prior = model.prior_predictive(draws=200, seed=1)  # doctest: +SKIP
    >>> result = model.fit(draws=1000, chains=4, seed=1)  # doctest: +SKIP
    """

    def __init__(self, data: pd.DataFrame, config: ModelConfig, *,
                 persons: str | None = None) -> None:
        if not isinstance(config, ModelConfig):
            raise EstimationError("impact.bayes: config must be an impact.bayes.ModelConfig")
        from impact.results import persons_column

        self.config = config
        self.design = prepare(data, config)
        #: persons per department-year (rows of the design), or None
        self.persons = persons_column(data, persons, what="impact.bayes")
        if config.pooling != "partial":
            self.effects_choice = LevelChoice("effect", bool(config.centred_effects is True), "user")
        elif config.centred_effects == "auto":
            self.effects_choice = choose_effects(self.design)
        else:
            self.effects_choice = LevelChoice("effect", bool(config.centred_effects), "user")
        self._models: dict[tuple[bool, bool], Any] = {}
        #: nutpie's compiled models, by parameterisation (reused by refits and later fits)
        self._compiled: dict[bool, dict[str, Any]] = {}

    def pymc_model(self, centred_effects: bool | None = None, *, fused: bool = True) -> Any:
        """The PyMC model (built once per parameterisation and kept)."""
        centred = self.effects_choice.centred if centred_effects is None else centred_effects
        key = (bool(centred), fused)
        if key not in self._models:
            config = dataclasses.replace(self.config, centred_effects=bool(centred))
            self._models[key] = build_model(self.design, config, fused_binomial=fused)
        return self._models[key]

    def prior_predictive(self, draws: int = 500, seed: int | None = None) -> xr.DataTree:
        """Draws from the prior and the prior predictive (the normal and Student-t models are
        on the standardised outcome)."""
        import pymc as pm

        with self.pymc_model(), reproducible_compilation():
            return pm.sample_prior_predictive(draws=draws, random_seed=seed)

    def fit(
        self,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        sampler: str = "auto",
        target_accept: float = 0.95,
        seed: int | None = None,
        progressbar: bool = False,
        max_attempts: int = MAX_ATTEMPTS,
        threshold: float = 0.0,
        log_likelihood: bool = False,
        strict_gate: bool = False,
    ) -> HierarchicalResult:
        """Sample the posterior; refit while the gate fails, up to ``max_attempts`` fits.

        Parameters
        ----------
        draws, tune, chains, cores, sampler, target_accept, seed, progressbar
            Of the first fit (see :func:`impact.bayes.fit.sample`); refits follow
            :func:`next_attempt` with the same seed.
        max_attempts
            Fits at most, the first included (1: no refit). Every attempt is recorded in
            ``result.attempts``; the result is that of the first attempt that passed the gate,
            or of the best (:func:`attempt_score`) when none did.
        threshold
            Practical threshold for ``p_above_threshold``.
        log_likelihood
            Add the pointwise log-likelihood group (for LOO).
        strict_gate
            Also gate the nuisance parameters (level standard deviations, intercept).
        """
        if max_attempts < 1:
            raise EstimationError("impact.bayes: max_attempts must be at least 1")
        which = resolve_sampler(sampler)
        first = Attempt(self.effects_choice.centred, draws, tune, target_accept)
        choice = self.effects_choice
        settled = choice.source == "data" and abs(choice.data_weight - CENTRED_ABOVE) > DECISIVE
        flip = self.config.pooling == "partial" and not settled
        done: list[tuple[Attempt, pd.DataFrame]] = []
        fits: list[tuple[Any, Any, Any, list[str], list[str]]] = []
        attempt: Attempt | None = first
        while attempt is not None and len(done) < max_attempts:
            # the fused Op has NumPy and numba implementations, not JAX
            model = self.pymc_model(attempt.centred_effects, fused=which != "numpyro")
            idata, run = sample(
                model,
                draws=attempt.draws,
                tune=attempt.tune,
                chains=chains,
                cores=cores,
                sampler=which,
                target_accept=attempt.target_accept,
                seed=seed,
                progressbar=progressbar,
                adaptation=attempt.adaptation,
                compiled=self._compiled.setdefault(attempt.centred_effects, {}),
            )
            gate, nuisance = self._gate_variables(idata, strict_gate)
            worst, _ = arviz_io.diagnostics(idata, gate, nuisance)
            worst["wall_seconds"] = run.wall_seconds
            done.append((attempt, worst))
            fits.append((model, idata, run, gate, nuisance))
            if bool(worst["converged"].iloc[0]):
                break
            attempt = next_attempt(first, done, flip=flip, sampler=which)
        chosen = next(
            (i for i, (_, w) in enumerate(done) if bool(w["converged"].iloc[0])),
            max(range(len(done)), key=lambda i: attempt_score(done[i][1])),
        )
        model, idata, run, gate, nuisance = fits[chosen]
        if log_likelihood:
            import pymc as pm

            with model, reproducible_compilation():
                pm.compute_log_likelihood(idata, extend_inferencedata=True, progressbar=False)
        return self._result(
            idata, run, model, done, chosen, threshold, gate=gate, nuisance=nuisance
        )

    def _gate_variables(self, idata: xr.DataTree, strict: bool) -> tuple[list[str], list[str]]:
        nuisance = [f"sigma_{level}" for level in self.config.levels] + ["intercept"]
        gate = [*GATE_VARIABLES, *(nuisance if strict else [])]
        gate = [v for v in gate if v in idata["posterior"]]
        nuisance = [v for v in nuisance if v in idata["posterior"] and v not in gate]
        return gate, nuisance

    def _result(
        self,
        idata: xr.DataTree,
        run: Any,
        model: Any,
        done: list[tuple[Attempt, pd.DataFrame]],
        chosen: int,
        threshold: float,
        *,
        gate: list[str],
        nuisance: list[str],
    ) -> HierarchicalResult:
        attempts = attempts_table(done, chosen)
        worst = done[chosen][1].copy()
        worst["sampler"] = run.sampler
        worst["wall_seconds"] = run.wall_seconds
        worst["attempt"] = chosen + 1
        worst["n_attempts"] = len(done)
        worst["centred_effects"] = done[chosen][0].centred_effects
        warn_if_not_converged(worst, run.sampler)
        conv = bool(worst["converged"].iloc[0])
        effects = effects_table(idata, self.design, self.config, threshold)
        effects = pd.concat([effects, support_table(self.design, "effects", self.persons)],
                            axis=1)
        effects["converged"] = conv
        extra = extra_effects_table(idata, threshold)
        dynamics = dynamics_table(idata, threshold)
        if extra is not None:
            extra = pd.concat([extra, support_table(self.design, "extra", self.persons)], axis=1)
        if dynamics is not None:
            dynamics = pd.concat([dynamics, support_table(self.design, "dynamics", self.persons)],
                                 axis=1)
        for tab in (extra, dynamics):
            if tab is not None:
                tab["converged"] = conv
        return HierarchicalResult(
            idata=idata,
            config=self.config,
            run=run,
            effects=effects,
            extra_effects=extra,
            dynamics=dynamics,
            diagnostics=worst,
            threshold=threshold,
            data_hash=self.design.data_hash,
            model=model,
            design=self.design,
            gate_variables=tuple(gate),
            nuisance_variables=tuple(nuisance),
            attempts=attempts,
            parameterisation={"effect": self.effects_choice.to_dict()},
        )


def attempts_table(done: list[tuple[Attempt, pd.DataFrame]], chosen: int) -> pd.DataFrame:
    """One row per fit: its settings, its gate diagnostics and whether it is the result."""
    rows = []
    for i, (attempt, worst) in enumerate(done):
        row = worst.iloc[0]
        rows.append({
            "attempt": i + 1,
            **dataclasses.asdict(attempt),
            **{c: row[c] for c in ("r_hat", "ess_bulk", "ess_tail", "divergences", "bfmi")},
            "converged": bool(row["converged"]),
            "wall_seconds": float(row["wall_seconds"]),
            "chosen": i == chosen,
        })
    out = pd.DataFrame(rows)
    out["adaptation"] = out["adaptation"].fillna("")
    return out


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
    effect_mean_by: str | None = None,
    unit_effects: bool = False,
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
    centred_effects: bool | str = "auto",
    event_time: str | None = None,
    event_window: tuple[int, int] = (-4, 5),
    effect_profile: str | None = None,
    profile_last: int = 8,
    log_likelihood: bool = False,
    strict_gate: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
    persons: str | None = None,
    time_by: Sequence[str] = (),
    covariates: Sequence[str] = (),
    controls: Sequence[str] = (),
    errors: str = "iid",
    weights: str | None = None,
) -> HierarchicalResult:
    """Bayesian hierarchical difference-in-differences model of a tool's effect.

    Department intercepts nested in ``levels`` (afdeling in helhedsplan in kommune), zero-sum year
    effects and a treatment effect (any numeric exposure in [0, 1]: adoption 0/1, an intensity or
    a lagged / cumulative share) that varies by ``effect_by`` group with partial pooling. See
    :func:`impact.bayes.model.build_model` for the likelihoods and the priors, and
    :mod:`impact.bayes.model` for departments without a plan. The same as
    ``HierarchicalModel(data, ModelConfig(...)).fit(...)``.

    Parameters
    ----------
    data
        Department-year panel, one row per ``(unit, time)``.
    outcome
        Outcome column: e.g. log income (normal, Student-t) or a count ``k`` (binomial).
    treatment
        ``in_force_<tool>`` (0/1), ``intensity_<channel>`` (share of lettings, [0, 1]) or any
        numeric exposure in [0, 1].
    unit, time
        Panel keys.
    levels
        Grouping columns the units are nested in, finest first. A null in a finer level (no
        helhedsplan) puts the unit in that municipality's ``"none"`` group.
    effect_by
        Groups with their own, partially pooled effect (rows of ``.effects``).
    effect_by_extra
        Optional second grouping (e.g. housing-market type) with additive deviations.
    effect_mean_by
        Optional column constant within the ``effect_by`` groups (e.g. ``"market_type"``): the
        group effects are pooled towards a mean per category (``result.idata`` variable
        ``effect_mean``); the pooled row averages these over the categories' shares of the
        groups with treatment.
    unit_effects
        Each treated unit's effect deviates from its group's (partial pooling; see
        :class:`~impact.bayes.design.ModelConfig`): the group effect is the mean of its units'.
    likelihood
        ``"normal"`` / ``"student_t"`` (outcome scale) or ``"binomial"`` (with ``trials``).
    trials
        Column with the number of trials ``n`` for the binomial (e.g. ``n_labour_force``).
    draws, tune, chains, cores
        Sampling sizes of the first fit; ``cores`` defaults to ``min(chains, cpu_count)``.
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
        municipality intercepts, and of the group effects (``"auto"``: from the data, see
        :mod:`impact.bayes.parameterisation`; recorded in ``result.parameterisation``).
    event_time
        Optional column with the time relative to adoption (null for never-adopting units):
        adds leads (pre-trend / anticipation checks, reference year -1) and post-adoption
        dynamics, reported in ``result.dynamics``.
    event_window
        First lead and last lag; relative times outside are binned into the ends.
    effect_profile, profile_last
        Optional column with the time since adoption (null for never-adopting units): the
        effect varies with it by one shared profile (bins up to ``profile_last``), and
        ``.effects`` reports each group's effect averaged over its treated observations,
        weighted by their treatment (see :class:`~impact.bayes.design.ModelConfig`); the
        profile is the ``effect_profile`` variable of ``result.idata``.
    log_likelihood
        Add the pointwise log-likelihood group (for LOO).
    strict_gate
        Also gate the nuisance parameters (level standard deviations, intercept); see
        ``GATE_VARIABLES``.
    max_attempts
        Fits at most while the gate fails (1: no refit); see
        :meth:`HierarchicalModel.fit` and ``result.attempts``.
    persons
        Optional column with the persons behind each department-year, for the ``n_persons``
        support columns of the effect tables (see :class:`HierarchicalModel`).
    time_by, covariates, controls
        The untreated model of the primary DiD: year effects per stratum, year-specific slopes
        of (baseline) covariates, other tools' exposures with a common effect each (see
        :class:`~impact.bayes.design.ModelConfig`).
    errors, weights
        ``"iid"`` or ``"ar1"`` errors within departments, and the count column behind each
        share for a count-weighted error scale (normal likelihood).

    Returns
    -------
    HierarchicalResult
        ``.effects``, ``.diagnostics``, ``.converged``, ``.attempts``, ``.parameterisation``,
        ``.idata``, ``.tidy()``, ``.summary()``, ``.plot()``, ``.plot_ppc()``, ``.save(path)``.

    Warns
    -----
    ConvergenceWarning
        When no attempt passed the convergence gate (the tables are then marked
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
        effect_mean_by=effect_mean_by,
        unit_effects=unit_effects,
        likelihood=likelihood,
        trials=trials,
        pooling=pooling,
        centred_intercepts=centred_intercepts,
        centred_levels=centred_levels,
        centred_effects=centred_effects,
        event_time=event_time,
        event_window=(int(event_window[0]), int(event_window[1])),
        effect_profile=effect_profile,
        profile_last=int(profile_last),
        time_by=tuple(time_by),
        covariates=tuple(covariates),
        controls=tuple(controls),
        errors=errors,
        weights=weights,
    )
    return HierarchicalModel(data, config, persons=persons).fit(
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        sampler=sampler,
        target_accept=target_accept,
        seed=seed,
        progressbar=progressbar,
        max_attempts=max_attempts,
        threshold=threshold,
        log_likelihood=log_likelihood,
        strict_gate=strict_gate,
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
    allowed = {f for f in ModelConfig.__dataclass_fields__ if f not in ("outcome", "treatment")}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"prior_predictive: unknown option(s) {sorted(unknown)}")
    if "levels" in options:
        options["levels"] = tuple(options["levels"])
    config = ModelConfig(outcome=outcome, treatment=treatment, **options)
    return HierarchicalModel(data, config).prior_predictive(draws=draws, seed=seed)


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
