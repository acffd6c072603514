"""The PyMC model of the Bayesian hierarchical DiD (priors in :func:`build_model`).

Data checks and arrays are in :mod:`impact.bayes.design` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from impact.bayes.design import Design, ModelConfig, prepare, profile_weights, validate_config
from impact.bayes.parameterisation import unit_effect_weights

__all__ = [
    "PRIORS",
    "Design",
    "ModelConfig",
    "build_model",
    "prepare",
    "validate_config",
]


#: Prior scales, on the standardised outcome (normal, Student-t) or the log-odds (binomial).
PRIORS: dict[str, float] = {
    "intercept_sd": 1.5,
    "sigma_level": 1.0,
    "sigma_unit": 1.0,
    "sigma_time": 0.5,
    "effect_sd": 1.0,
    "sigma_effect": 0.5,
    "sigma_obs": 1.0,
}


def _hier(name: str, mean, sigma, dims: str, centred: bool):
    """``Normal(mean, sigma)`` centred, or ``mean + sigma * z`` with ``z ~ Normal(0, 1)``."""
    import pymc as pm

    if centred:
        return pm.Normal(name, mu=mean, sigma=sigma, dims=dims)
    z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
    return pm.Deterministic(name, mean + sigma * z, dims=dims)


def _treated_units(design: Design) -> np.ndarray:
    """Positions (in ``design.units``) of the units with a treated observation, sorted."""
    return np.unique(design.unit_idx[design.d > 0])


def _treated_groups(design: Design) -> np.ndarray:
    """Positions of the effect groups with a treated observation (all if none has one)."""
    treated = np.unique(design.effect_idx[design.d > 0])
    return treated if len(treated) else np.arange(len(design.effect_groups))


def _mean_shares(design: Design) -> np.ndarray:
    """Share of each ``effect_mean_by`` category among the effect groups with treatment.

    Groups without a treated department-year are left out (their effects are the prior's);
    if no group has one, all groups count.
    """
    assert design.effect_mean_idx is not None
    counts = np.bincount(design.effect_mean_idx[_treated_groups(design)],
                         minlength=len(design.effect_mean_groups)).astype(float)
    return counts / counts.sum()


@dataclass(frozen=True)
class DenseLayout:
    """The department x year layout of the linear predictor.

    ``eta`` is built as a ``(n_unit, n_time)`` matrix, ``a_unit[:, None] + time_effect[None, :]
    + effect_unit[:, None] * d``, and flattened row-major. Measured at report scale this is
    cheaper in the gradient than gathering ``a_unit[unit_idx] + time_effect[time_idx] +
    effect[effect_idx] * d`` by observation: the backward pass is a row and a column sum instead
    of scatter-adds. The observations enter the likelihood in ``order`` (unit, then time);
    ``cell`` maps them to the flattened matrix and is ``None`` for a balanced panel (every
    department observed every year), where no gather is needed.
    """

    order: np.ndarray
    cell: np.ndarray | None
    d: np.ndarray
    unit_effect: np.ndarray
    unit_extra: np.ndarray | None


def dense_layout(design: Design) -> DenseLayout:
    """Observation order, cell index and the treatment matrix for :func:`build_model`."""
    n_unit, n_time = len(design.units), len(design.times)
    order = np.lexsort((design.time_idx, design.unit_idx))
    cell = design.unit_idx[order] * n_time + design.time_idx[order]
    d = np.zeros(n_unit * n_time)
    d[cell] = design.d[order]
    # effect_by (and effect_by_extra) are constant within units: checked in prepare()
    unit_effect = np.zeros(n_unit, dtype=np.int64)
    unit_effect[design.unit_idx] = design.effect_idx
    unit_extra = None
    if design.extra_idx is not None:
        unit_extra = np.zeros(n_unit, dtype=np.int64)
        unit_extra[design.unit_idx] = design.extra_idx
    balanced = design.n_obs == n_unit * n_time
    return DenseLayout(
        order=order,
        cell=None if balanced else cell,
        d=d.reshape(n_unit, n_time),
        unit_effect=unit_effect,
        unit_extra=unit_extra,
    )


def build_model(design: Design, config: ModelConfig, *, fused_binomial: bool = True):
    """Build the PyMC model.

    Priors (weakly informative; outcome standardised to mean 0, sd 1 for the normal and Student-t
    likelihoods, log-odds scale centred at the overall share for the binomial):

    - ``intercept ~ Normal(0, 1.5)`` (binomial: centred at the overall log-odds);
    - each level ``l`` (coarsest first): ``sigma_<l> ~ HalfNormal(1)``,
      ``a_<l>[g] ~ Normal(a_<parent>[parent(g)], sigma_<l>)`` (non-centred by default:
      ``a_<l> = a_<parent> + sigma_<l> * a_<l>_z``; plans have only 2-5 departments);
    - ``sigma_unit ~ HalfNormal(1)``, ``a_unit[i] ~ Normal(a_<finest>[level(i)], sigma_unit)``
      (centred by default: each department has ~10 years of data);
    - ``sigma_time ~ HalfNormal(0.5)``, ``time_effect ~ ZeroSumNormal(sigma_time)`` (the year
      effects of the DiD, summing to zero so they are identified next to the intercepts);
    - ``effect_mu ~ Normal(0, 1)``, ``sigma_effect ~ HalfNormal(0.5)``,
      ``effect_lin[g] ~ Normal(effect_mu, sigma_effect)`` (non-centred by default:
      ``effect_mu + sigma_effect * z[g]``) — an effect of 1 sd of the outcome (or 1 on the
      log-odds scale) is large, so these are wide; ``pooling="complete"`` uses ``effect_mu``
      for every group, ``pooling="none"`` independent ``Normal(0, 1)`` effects;
    - with ``effect_mean_by``: ``effect_mu_by[k] ~ Normal(0, 1)`` per category and
      ``effect_lin[g] ~ Normal(effect_mu_by[k(g)], sigma_effect)``; ``effect_mu`` is then the
      average of ``effect_mu_by`` over the categories' shares of the groups with treatment
      (:func:`_mean_shares`), and ``effect_mean`` (dims ``effect_mean_group``) is on the outcome
      scale; ``pooling="complete"`` then gives every group its category's effect;
    - with ``event_time``: see :func:`_event_terms`;
    - with ``effect_profile``: see :func:`_profile_terms`;
    - the treatment enters divided by its typical dose (:func:`impact.bayes.design.dose_scale`,
      1 for a 0/1 treatment; the same for each control), so the effects' priors above are per
      typical dose; ``effect``, ``effect_pooled`` and the other reported effects are per unit
      of the treatment;
    - extra grouping: ``sigma_effect_extra ~ HalfNormal(0.5)``, additive deviations;
    - with ``unit_effects``: ``sigma_unit_effect ~ HalfNormal(0.5)`` and, for each unit with a
      treated observation (coordinate ``treated_unit``), ``unit_effect_z ~ Normal(0, 1)``; the
      unit's effect is ``effect_lin[g] + sigma_unit_effect * unit_effect_z`` (non-centred: a
      department has only its treated years). ``effect_lin[g]`` is then the mean effect of a
      department of group ``g``; ``effect`` is that of the group's own departments, weighted as
      least squares weights them (:func:`impact.bayes.parameterisation.unit_effect_weights`:
      the effect the two-way model would report for the group), and ``effect_pooled`` the mean
      of ``effect`` over the groups with treatment;
    - normal: ``sigma ~ HalfNormal(1)``; Student-t: also ``nu ~ Gamma(2, 0.1)``.

    Deterministics ``effect_pooled`` and ``effect`` (dims ``effect_group``) are on the outcome
    scale (normal, Student-t) or the log-odds scale (binomial). Check the priors with
    :func:`impact.bayes.plot_prior_predictive`.

    Speed: the observed ``y`` (dims ``obs``) is in (department, year) order
    (:func:`dense_layout`), each observation labelled by its row position in the data. With
    ``fused_binomial=True`` (the default) the normal and binomial log-likelihoods, linear
    predictor included, are one fused Op (:func:`impact.bayes.ops.panel_logp`) with a one-pass
    gradient. Measured at report scale (600 departments x 10 years, nutpie's compiled logp and
    gradient, numba backend, best of repeated runs on a shared 2-core machine): normal ~37 ->
    ~26 microseconds per evaluation, binomial ~81 -> ~61 (the binomial's ``exp`` / ``log`` are
    most of what remains). Without fusion the linear predictor is built on the department x
    year grid and gathered, which differentiates cheaper than gathering by observation.

    Parameters
    ----------
    design, config
        From :func:`impact.bayes.design.prepare` and the options.
    fused_binomial
        Fused likelihood through :class:`~impact.bayes.ops.PanelLogp` for the normal and
        binomial likelihoods (default; the name is historical: it covers both). ``False`` uses
        ``pm.Normal`` / ``pm.Binomial(logit_p=...)`` on the PyTensor linear predictor, needed by
        the JAX-based samplers (numpyro), which cannot run the Op. The Student-t likelihood
        always uses ``pm.StudentT``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    p = PRIORS
    layout = dense_layout(design)
    coords: dict[str, list[str]] = {
        "unit": design.units,
        "time": design.times,
        "effect_group": design.effect_groups,
        # observations in (unit, time) order, labelled by their row position in the data
        "obs": [str(i) for i in layout.order],
    }
    for name, groups in zip(design.level_names, design.level_groups, strict=True):
        coords[f"level_{name}"] = groups
    if design.extra_groups is not None:
        coords["extra_group"] = design.extra_groups
    if design.effect_mean_idx is not None:
        coords["effect_mean_group"] = design.effect_mean_groups
    unit_dev = config.unit_effects and config.pooling == "partial"
    if unit_dev:
        treated_units = _treated_units(design)
        coords["treated_unit"] = [design.units[i] for i in treated_units]
    ci = config.centred_intercepts
    # the effects are per typical dose of the treatment (design.d = treatment / d_scale); reported
    # per unit of the treatment on the outcome scale
    per_unit = design.y_scale / design.d_scale

    with pm.Model(coords=coords) as model:
        intercept = pm.Normal("intercept", 0.0, p["intercept_sd"])
        parent_mean = intercept
        for j in reversed(range(len(design.level_names))):
            name = design.level_names[j]
            sigma_l = pm.HalfNormal(f"sigma_{name}", p["sigma_level"])
            mean = (
                parent_mean
                if j == len(design.level_names) - 1
                else parent_mean[design.level_parent[j]]
            )
            parent_mean = _hier(
                f"a_{name}",
                mean,
                sigma_l,
                f"level_{name}",
                config.centred_levels,
            )
        sigma_unit = pm.HalfNormal("sigma_unit", p["sigma_unit"])
        unit_mean = parent_mean if design.unit_parent is None else parent_mean[design.unit_parent]
        a_unit = _hier("a_unit", unit_mean, sigma_unit, "unit", ci)

        sigma_time = pm.HalfNormal("sigma_time", p["sigma_time"])
        if ci:
            time_effect = pm.ZeroSumNormal("time_effect", sigma=sigma_time, dims="time")
        else:
            time_z = pm.ZeroSumNormal("time_effect_z", sigma=1.0, dims="time")
            time_effect = pm.Deterministic("time_effect", sigma_time * time_z, dims="time")

        n_g = len(design.effect_groups)
        if config.pooling != "none" and design.effect_mean_idx is not None:
            # a mean per category; the pooled effect is their average over the categories'
            # shares of the groups with treated department-years
            mu_by = pm.Normal("effect_mu_by", 0.0, p["effect_sd"], dims="effect_mean_group")
            effect_mu = pm.Deterministic("effect_mu", pm.math.dot(_mean_shares(design), mu_by))
            pm.Deterministic("effect_mean", mu_by * per_unit, dims="effect_mean_group")
            group_mean = mu_by[design.effect_mean_idx]
        elif config.pooling != "none":
            effect_mu = pm.Normal("effect_mu", 0.0, p["effect_sd"])
            group_mean = effect_mu * np.ones(n_g)
        if config.pooling == "partial":
            sigma_effect = pm.HalfNormal("sigma_effect", p["sigma_effect"])
            mean = effect_mu if design.effect_mean_idx is None else group_mean
            effect_lin = _hier(
                "effect_lin", mean, sigma_effect, "effect_group", config.centred_effects
            )
        elif config.pooling == "complete":
            effect_lin = pm.Deterministic("effect_lin", group_mean, dims="effect_group")
        else:
            effect_lin = pm.Normal("effect_lin", 0.0, p["effect_sd"], dims="effect_group")
            effect_mu = pm.Deterministic("effect_mu", effect_lin.mean())
        tau = effect_lin[layout.unit_effect]  # per unit
        group_effect = effect_lin
        if unit_dev:
            sigma_u = pm.HalfNormal("sigma_unit_effect", p["sigma_effect"])
            z_u = pm.Normal("unit_effect_z", 0.0, 1.0, dims="treated_unit")
            tau = pt.inc_subtensor(tau[treated_units], sigma_u * z_u)
            # each group's effect over its own units, weighted as least squares weights them
            weights = unit_effect_weights(design)[:, treated_units]
            group_effect = effect_lin + pt.dot(weights, sigma_u * z_u)
            # the pooled effect: over the treated groups' own departments too
            effect_mu = group_effect[_treated_groups(design)].mean()
        if design.extra_idx is not None and config.pooling == "partial":
            sigma_x = pm.HalfNormal("sigma_effect_extra", p["sigma_effect"])
            z_x = pm.Normal("effect_extra_z", 0.0, 1.0, dims="extra_group")
            pm.Deterministic("effect_extra", sigma_x * z_x * per_unit, dims="extra_group")
            tau = tau + sigma_x * z_x[layout.unit_extra]
        profile_term = None
        if design.profile_idx is not None:
            profile_term, group_effect = _profile_terms(design, p, layout.order, effect_mu,
                                                        group_effect, per_unit)
            if unit_dev:  # the pooled effect: the mean of the treated groups' reported effects
                effect_mu = group_effect[_treated_groups(design)].mean()
        pm.Deterministic("effect_pooled", effect_mu * per_unit)
        pm.Deterministic("effect", group_effect * per_unit, dims="effect_group")

        extra = None
        if design.lead_idx is not None and design.lag_idx is not None:
            extra = _event_terms(design, p, layout.order)
        if profile_term is not None:
            extra = profile_term if extra is None else extra + profile_term
        untreated = _untreated_terms(design, p, layout)
        if untreated is not None:
            extra = untreated if extra is None else extra + untreated
        if config.errors == "ar1" or design.rel_weight is not None:
            eta = a_unit[design.unit_idx[layout.order]] + time_effect[design.time_idx[layout.order]]
            eta = eta + tau[design.unit_idx[layout.order]] * design.d[layout.order]
            _correlated_normal(design, config, layout, eta if extra is None else eta + extra)
            return model
        if fused_binomial and config.likelihood in ("normal", "binomial"):
            _fused_likelihood(design, config.likelihood, layout, (a_unit, time_effect, tau), extra)
            return model

        eta = (a_unit[:, None] + time_effect[None, :] + tau[:, None] * layout.d).ravel()
        if layout.cell is not None:
            eta = eta[layout.cell]
        if extra is not None:
            eta = eta + extra
        if config.likelihood == "binomial":
            assert design.n_trials is not None
            pm.Binomial(
                "y",
                n=design.n_trials[layout.order],
                logit_p=eta + design.y_loc,
                observed=design.y[layout.order],
                dims="obs",
            )
        else:
            y_std = (design.y[layout.order] - design.y_loc) / design.y_scale
            sigma = pm.HalfNormal("sigma", p["sigma_obs"])
            if config.likelihood == "normal":
                pm.Normal("y", mu=eta, sigma=sigma, observed=y_std, dims="obs")
            else:
                nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
                pm.StudentT("y", nu=nu, mu=eta, sigma=sigma, observed=y_std, dims="obs")
    return model


def _fused_likelihood(
    design: Design,
    likelihood: str,
    layout: DenseLayout,
    params: tuple[Any, Any, Any],
    extra: Any | None,
) -> None:
    """The observed ``y`` (dims ``obs``) through :func:`impact.bayes.ops.panel_logp`.

    A :class:`pymc.CustomDist` with parameters ``a_unit``, ``time_effect``, ``tau`` (per
    department: the group effect plus the extra grouping's deviation), the event-time terms
    ``extra`` (if any) and, normal only, ``sigma ~ HalfNormal(1)``. Its log-likelihood is the
    fused :class:`~impact.bayes.ops.PanelLogp` (the binomial with its constant ``log C(n, k)``
    and offset ``y_loc``); its draws (prior and posterior predictive) are those of
    ``pm.Binomial(n, logit_p=eta + y_loc)`` / ``pm.Normal(eta, sigma)`` with ``eta`` gathered by
    observation. The same density as the unfused model, observations in the same order.
    """
    import pymc as pm

    from impact.bayes.ops import panel_logp

    order = layout.order
    unit, time, d = design.unit_idx[order], design.time_idx[order], design.d[order]
    has_extra = extra is not None
    n_params = 3 + has_extra
    panel = {
        "unit_idx": unit,
        "time_idx": time,
        "d": d,
        "n_unit": len(design.units),
        "n_time": len(design.times),
    }

    def linear_predictor(a_unit: Any, time_effect: Any, tau: Any, *rest: Any) -> Any:
        eta = a_unit[unit] + time_effect[time] + tau[unit] * d
        return eta + rest[0] if has_extra else eta

    def extra_of(par: tuple) -> Any:
        return par[3] if has_extra else None

    binomial = likelihood == "binomial"
    if binomial:
        from scipy.special import gammaln

        assert design.n_trials is not None
        n, observed = design.n_trials[order], design.y[order]
        n_f, k_f = n.astype(np.float64), observed.astype(np.float64)
        # log C(n, k), computed once from the data
        log_choose = gammaln(n_f + 1.0) - gammaln(k_f + 1.0) - gammaln(n_f - k_f + 1.0)
        likelihood_data = {"n": n_f, "log_choose": log_choose, "offset": design.y_loc}
        scale: list[Any] = []
    else:
        observed = (design.y[order] - design.y_loc) / design.y_scale
        scale = [pm.HalfNormal("sigma", PRIORS["sigma_obs"])]

    def dist(*args: Any) -> Any:
        *par, size = args
        if binomial:
            logit_p = linear_predictor(*par) + design.y_loc
            return pm.Binomial.dist(n=n, logit_p=logit_p, size=size)
        *par, sigma = par
        return pm.Normal.dist(mu=linear_predictor(*par), sigma=sigma, size=size)

    def logp(value: Any, *par: Any) -> Any:
        a_unit, time_effect, tau = par[:3]
        data = likelihood_data if binomial else {"sigma": par[n_params]}
        return panel_logp(
            likelihood,
            a_unit,
            time_effect,
            tau,
            y=value,
            extra=extra_of(par),
            **data,
            **panel,
        )[0]

    pm.CustomDist(
        "y",
        *params,
        *([extra] if has_extra else []),
        *scale,
        dist=dist,
        logp=logp,
        observed=observed,
        dims="obs",
    )


def _event_terms(design: Design, p: dict[str, float], order: np.ndarray):  # pytensor expression
    """Leads (placebo / anticipation, vs. the reference year -1) and post-adoption dynamics.

    ``event_lead[e] ~ Normal(0, 1)`` for each lead bin; ``event_dev ~ ZeroSumNormal(sigma_event)``
    over the lag bins (``sigma_event ~ HalfNormal(0.5)``): the effect at lag ``e`` is the group
    effect plus ``event_dev[e]`` (times the treatment), so the group effects stay the average
    over the lag bins. Reported on the outcome (or log-odds) scale as ``event_lead`` and
    ``event_effect = effect_pooled + event_dev``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    model = pm.modelcontext(None)
    model.add_coords({"lead": [str(e) for e in design.leads], "lag": [str(e) for e in design.lags]})
    lead = pm.Normal("event_lead_lin", 0.0, p["effect_sd"], dims="lead")
    sigma_event = pm.HalfNormal("sigma_event", p["sigma_effect"])
    dev = pm.ZeroSumNormal("event_dev", sigma=sigma_event, dims="lag")
    pm.Deterministic("event_lead", lead * design.y_scale, dims="lead")
    pm.Deterministic("event_effect", (model["effect_mu"] + dev) * design.y_scale / design.d_scale,
                     dims="lag")
    assert design.lead_idx is not None and design.lag_idx is not None
    lead_i, lag_i, d = design.lead_idx[order], design.lag_idx[order], design.d[order]
    lead_term = pt.switch(lead_i >= 0, lead[np.maximum(lead_i, 0)], 0.0)
    lag_term = pt.switch(lag_i >= 0, dev[np.maximum(lag_i, 0)], 0.0) * d
    return lead_term + lag_term


def _profile_terms(design: Design, p: dict[str, float], order: np.ndarray, effect_mu: Any,
                   group_effect: Any, per_unit: float) -> tuple[Any, Any]:
    """The effect's shared profile over time since adoption (``effect_profile``).

    ``effect_profile_z ~ Normal(0, 1)`` (per typical dose) on an orthonormal basis of the
    profiles with a treatment-weighted mean of 0 over the treated observations
    (:func:`impact.bayes.design.profile_terms`): ``profile = basis @ z``. A treated
    observation's effect per typical dose is its group's plus ``profile[bin]``; each group's
    reported effect is the treatment-weighted mean of that over its own treated observations
    (the group parameter plus its own weighted mean of the profile), so that effect times
    the group's mean treatment is the model's mean effect over those observations. Reported:
    ``effect_profile`` (dims ``profile_time``), the pooled effect per unit at each time since
    adoption. Returns the linear-predictor term (observation order) and the groups' effects.

    Every group then reports its own mean over its treated observations, with complete pooling
    too (the groups share the parameter, not the mix of times since adoption); with
    ``unit_effects`` the group's departments' deviations keep their least-squares weights and
    the profile its treatment weights.
    """
    import pymc as pm
    import pytensor.tensor as pt

    model = pm.modelcontext(None)
    assert design.profile_idx is not None and design.profile_basis is not None
    basis = design.profile_basis
    model.add_coords({"profile_time": [str(t) for t in design.profile_times],
                      "profile_basis": [str(k) for k in range(basis.shape[1])]})
    z = pm.Normal("effect_profile_z", 0.0, p["effect_sd"], dims="profile_basis")
    profile = pt.dot(basis, z)
    pm.Deterministic("effect_profile", (effect_mu + profile) * per_unit, dims="profile_time")
    idx, d = design.profile_idx, design.d
    weight = profile_weights(design.effect_idx, idx, d, len(design.effect_groups),
                             len(design.profile_times))
    term = profile[np.maximum(idx[order], 0)] * d[order]
    return term, group_effect + pt.dot(weight, profile)


def _untreated_terms(design: Design, p: dict[str, float], layout: DenseLayout):
    """Year effects by stratum, year slopes of covariates and control effects (obs order).

    - ``time_by_effect ~ ZeroSumNormal(0.5)`` over (stratum, year), zero-sum on both axes
      (identified beside the common year effects and the unit intercepts);
    - ``slope ~ ZeroSumNormal(0.5)`` over (covariate, year), zero-sum over years (a
      covariate's level is in the unit intercepts);
    - ``control_lin ~ Normal(0, 1)`` per control, reported as ``control_effect`` on the
      outcome scale.

    The scales of the first two are fixed (the DiD's fixed stratum-year effects with a weakly
    informative prior): hundreds of departments identify each term, and a hierarchical scale
    over them would only add a funnel. Returns ``None`` when the design has none of them.
    """
    import pymc as pm
    import pytensor.tensor as pt

    model = pm.modelcontext(None)
    n_cell = (len(design.units), len(design.times))

    def on_grid(values: np.ndarray) -> np.ndarray:
        """Rows of the data (``(n_obs, k)``) on the unit x year grid, 0 where unobserved."""
        grid = np.zeros((*n_cell, values.shape[1]))
        grid[design.unit_idx, design.time_idx] = values
        return grid

    # each term on the unit x year grid: small products and broadcasts, whose gradients are
    # cheaper than the scatter-adds of gathers by observation (benchmarks/RESULTS.md)
    terms = []
    if design.stratum_idx is not None:
        model.add_coords({"stratum": design.strata})
        dev = pm.ZeroSumNormal("time_by_effect", sigma=p["sigma_time"], dims=("stratum", "time"),
                               n_zerosum_axes=2)
        # strata are constant within units
        unit_stratum = np.zeros(n_cell[0], dtype=np.int64)
        unit_stratum[design.unit_idx] = design.stratum_idx
        terms.append(pt.dot(np.eye(len(design.strata))[unit_stratum], dev))
    if design.covariate_x is not None:
        model.add_coords({"covariate": design.covariates})
        slope = pm.ZeroSumNormal("slope", sigma=p["sigma_time"], dims=("covariate", "time"))
        x = design.covariate_x
        x_unit = np.zeros((n_cell[0], x.shape[1]))
        x_unit[design.unit_idx] = x
        if np.array_equal(x_unit[design.unit_idx], x):  # baselines: constant within units
            terms.append(pt.dot(x_unit, slope))
        else:
            terms.append((on_grid(x) * slope.T[None, :, :]).sum(axis=2))
    total = None
    if terms:
        flat = sum(terms[1:], terms[0]).ravel()
        total = flat if layout.cell is None else flat[layout.cell]
    if design.control_x is not None:
        model.add_coords({"control": design.controls})
        lin = pm.Normal("control_lin", 0.0, p["effect_sd"], dims="control")
        pm.Deterministic("control_effect", lin * design.y_scale / design.control_scale,
                         dims="control")
        control = pt.dot(np.asarray(design.control_x, dtype=float)[layout.order], lin)
        total = control if total is None else total + control
    return total


def _previous(design: Design, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each observation in (unit, time) order: the position of the unit's previous
    observation (-1 for its first) and the number of periods since it."""
    unit, time = design.unit_idx[order], design.time_idx[order]
    prev = np.arange(len(order)) - 1
    first = np.ones(len(order), dtype=bool)
    first[1:] = unit[1:] != unit[:-1]
    prev[first] = -1
    gap = np.where(first, 0, time - time[np.maximum(prev, 0)])
    return prev, gap.astype(np.float64)


def _correlated_normal(design: Design, config: ModelConfig, layout: DenseLayout, eta) -> None:
    """Normal likelihood with AR(1) errors within units and/or count-weighted scales.

    With ``z[o] = (y[o] - eta[o]) / s[o]``: ``z ~ Normal(0, 1)`` at a unit's first observation
    and ``z[o] | z[prev] ~ Normal(rho**k z[prev], 1 - rho**(2k))`` after a step of ``k`` years
    (the exact AR(1) across gaps), ``rho = 2 * rho_beta - 1``, ``rho_beta ~ Beta(2, 2)``
    (``rho = 0`` with ``errors="iid"``). The scale is ``s = sigma`` without weights and
    ``sqrt(sigma_common**2 + sigma_count**2 / w)`` with ``w`` the count relative to its mean
    (``sigma_common, sigma_count ~ HalfNormal(1)``). The pointwise log-likelihood is the
    sequential (conditional) one, so LOO works as for independent errors.
    """
    import pymc as pm
    import pytensor.tensor as pt

    order = layout.order
    prev, gap = _previous(design, order)
    first = prev < 0
    prev_c = np.maximum(prev, 0)
    p = PRIORS
    if design.rel_weight is None:
        scale = pm.HalfNormal("sigma", p["sigma_obs"])
        s = scale * pt.ones(len(order))
    else:
        common = pm.HalfNormal("sigma_common", p["sigma_obs"])
        count = pm.HalfNormal("sigma_count", p["sigma_obs"])
        s = pt.sqrt(common**2 + count**2 / design.rel_weight[order])
    if config.errors == "ar1":
        rho_beta = pm.Beta("rho_beta", 2.0, 2.0)
        rho = pm.Deterministic("rho", 2.0 * rho_beta - 1.0)
    else:
        rho = pt.constant(0.0)
    observed = (design.y[order] - design.y_loc) / design.y_scale

    def logp(value, mu, sd, r):
        z = (value - mu) / sd
        rk = r ** pt.maximum(gap, 1.0)
        mean = pt.switch(first, 0.0, rk * z[prev_c])
        var = pt.switch(first, 1.0, 1.0 - rk**2)
        return -0.5 * (z - mean) ** 2 / var - 0.5 * pt.log(var) - pt.log(sd) - 0.9189385332046727

    # draws: the first observations, then each later position within the units in turn
    position = _position(first)
    starts = np.flatnonzero(first)
    steps = [np.flatnonzero(position == k) for k in range(1, int(position.max()) + 1)]

    def random(mu, sd, r, rng=None, size=None):
        mu = np.asarray(mu)
        z = np.empty(mu.shape[-1])
        z[starts] = rng.standard_normal(len(starts))
        for idx in steps:
            rk = float(r) ** gap[idx]
            z[idx] = rk * z[prev[idx]] + np.sqrt(1.0 - rk**2) * rng.standard_normal(len(idx))
        return mu + np.asarray(sd) * z

    pm.CustomDist("y", eta, s, rho, logp=logp, random=random, observed=observed, dims="obs")


def _position(first: np.ndarray) -> np.ndarray:
    """Position of each observation within its unit (0 for the first)."""
    run = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    return np.arange(len(first)) - starts[run]
