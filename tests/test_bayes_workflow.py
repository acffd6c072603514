"""Issue 15: parameterisation from the data, refits on a failed gate, the model object.

The default tests sample with tiny chains (plumbing) or not at all (the rule, the refit plan);
the fits at default settings on the issue's panel are ``slow``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact.bayes as bayes
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.estimate import Attempt, HierarchicalModel, attempt_score, next_attempt
from impact.bayes.parameterisation import choose_effects, group_effect_estimates
from impact.errors import EstimationError
from tests.bayes_panels import EFFECT_SD, NOISE_SD, simple_hierarchical_panel
from tests.bayes_synthetic import synthetic_panel

CONFIG = ModelConfig(outcome="y", treatment="in_force")
TINY = {"draws": 20, "tune": 20, "chains": 2, "seed": 3}


def _design(seed: int, zero_effect: bool = False):
    return prepare(simple_hierarchical_panel(seed, zero_effect=zero_effect), CONFIG)


# ------------------------------------------------------------------ the rule (no sampling)


def test_group_estimates_are_the_two_way_fe_least_squares() -> None:
    """Against a dense least-squares fit with unit and year dummies (exact identity)."""
    frame = simple_hierarchical_panel(0)
    design = prepare(frame, CONFIG)
    est, se = group_effect_estimates(design)
    n = design.n_obs
    cols = [np.eye(len(design.units))[design.unit_idx], np.eye(len(design.times))[design.time_idx]]
    d_g = np.zeros((n, len(design.effect_groups)))
    d_g[np.arange(n), design.effect_idx] = design.d
    x = np.column_stack([*cols, d_g])
    y = (design.y - design.y_loc) / design.y_scale
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    ok = np.isfinite(se)
    np.testing.assert_allclose(est[ok], beta[-len(est) :][ok], rtol=1e-7, atol=1e-9)


def test_rule_centres_identified_effects_and_not_placebo_ones() -> None:
    """Identified effects: between-SD ~ 0.02 (truth), SE ~ 0.004, centred; placebo: not.

    Tolerance on the between-group SD: with 24 groups its moment estimate has a sampling SD of
    about 0.02 / sqrt(2 * 23) ~ 0.003 (normal theory), so 4 x that = 0.012. The SE of a
    municipality effect is about NOISE_SD / sqrt(n_treated_years) with ~60 treated
    department-years: 0.02 / sqrt(60) ~ 0.0026 before the fixed effects take their share, so it
    lies in (0.002, 0.008). In the placebo world the mean data weight is far below 0.5 (its
    between-SD estimate is near 0, the SEs unchanged).
    """
    for seed in range(3):
        design = _design(seed)
        c = choose_effects(design)
        assert c.centred and c.source == "data"
        assert abs(c.between_sd * design.y_scale - EFFECT_SD) < 0.012
        assert 0.002 < c.median_se * design.y_scale < 0.008
        assert c.data_weight > 0.8
        placebo = _design(seed, zero_effect=True)
        p = choose_effects(placebo)
        assert not p.centred
        assert p.data_weight < 0.4
        assert p.between_sd * placebo.y_scale < 0.01
    assert NOISE_SD == 0.02  # the fixture behind the numbers above


def test_model_object_records_choice_and_respects_user() -> None:
    frame = simple_hierarchical_panel(1)
    auto = HierarchicalModel(frame, CONFIG)
    assert auto.effects_choice.centred and auto.effects_choice.source == "data"
    user = HierarchicalModel(frame, ModelConfig("y", "in_force", centred_effects=False))
    assert not user.effects_choice.centred and user.effects_choice.source == "user"
    assert "effect_lin" in auto.pymc_model().named_vars
    assert "effect_lin_z" not in auto.pymc_model().named_vars
    assert "effect_lin_z" in user.pymc_model().named_vars
    assert auto.pymc_model() is auto.pymc_model()  # built once
    with pytest.raises(EstimationError, match="centred_effects"):
        HierarchicalModel(frame, ModelConfig("y", "in_force", centred_effects="yes"))
    with pytest.raises(EstimationError, match="ModelConfig"):
        HierarchicalModel(frame, {"outcome": "y"})  # type: ignore[arg-type]


# ------------------------------------------------------------------ the refit plan (no sampling)


def _row(converged: bool, r_hat: float, ess: float, div: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "r_hat": [r_hat],
        "ess_bulk": [ess],
        "ess_tail": [ess],
        "divergences": [div],
        "bfmi": [0.9],
        "converged": [converged],
    })


def test_refit_plan() -> None:
    first = Attempt(False, 1000, 1000, 0.95)
    a2 = next_attempt(first, [(first, _row(False, 1.02, 300))], flip=True, sampler="nutpie")
    assert a2 == Attempt(True, 1000, 2000, 0.95)
    # the flipped one was better: attempt 3 keeps it, twice the draws and tuning
    done = [(first, _row(False, 1.02, 300)), (a2, _row(False, 1.011, 390))]
    a3 = next_attempt(first, done, flip=True, sampler="nutpie")
    assert a3 == Attempt(True, 2000, 2000, 0.99)
    done.append((a3, _row(False, 1.011, 380)))
    a4 = next_attempt(first, done, flip=True, sampler="nutpie")
    assert a4 == Attempt(True, 2000, 2000, 0.99, "low_rank")
    assert next_attempt(first, done, flip=True, sampler="pymc") is None
    done.append((a4, _row(False, 1.02, 100)))
    assert next_attempt(first, done, flip=True, sampler="nutpie") is None
    # no flip (no partial pooling, or a parameterisation the data settled): more draws
    a2 = next_attempt(first, [(first, _row(False, 1.02, 300))], flip=False, sampler="pymc")
    assert a2 == Attempt(False, 2000, 2000, 0.95)
    # a divergence-free fit outranks one with divergences at the same ESS
    assert attempt_score(_row(False, 1.0, 500)) > attempt_score(_row(False, 1.0, 500, div=2))
    assert attempt_score(_row(True, 1.0, 401)) > attempt_score(_row(False, 1.0, 5000))


def test_failed_gate_refits_and_records_every_attempt() -> None:
    """Tiny chains cannot pass ESS >= 400: both attempts run and fail, the best is chosen.

    The user's non-centred effects are flipped by the first refit (with twice the tuning).
    """
    panel = synthetic_panel(3, n_municipalities=4, departments_per_municipality=6).frame
    model = HierarchicalModel(panel, ModelConfig("log_income", "in_force", centred_effects=False))
    with pytest.warns(bayes.ConvergenceWarning):
        fit = model.fit(**TINY, max_attempts=2)
    att = fit.attempts
    assert list(att["attempt"]) == [1, 2]
    assert list(att["centred_effects"]) == [False, True]
    assert list(att["tune"]) == [20, 40] and not att["converged"].any()
    assert att["chosen"].sum() == 1 and not fit.converged
    chosen = int(att.loc[att["chosen"], "attempt"].iloc[0])
    assert fit.diagnostics["attempt"].iloc[0] == chosen
    assert fit.diagnostics["n_attempts"].iloc[0] == 2
    assert fit.parameterisation["effect"]["source"] == "user"
    assert fit.diagnostics["centred_effects"].iloc[0] == att.loc[att["chosen"], "centred_effects"].iloc[0]
    # one way to pass each option: model options are not fit options
    with pytest.raises(TypeError):
        model.fit(likelihood="binomial")  # type: ignore[call-arg]
    prior = model.prior_predictive(draws=10, seed=1)
    assert prior["prior_predictive"]["y"].shape[:2] == (1, 10)


# ------------------------------------------------------------------ slow: the issue's two cases


@pytest.mark.slow
@pytest.mark.parametrize("zero_effect", [False, True], ids=["identified", "placebo"])
def test_issue_panel_passes_the_gate_with_defaults(zero_effect: bool) -> None:
    """Issue 15: both worlds pass the gate at the defaults (1,000 draws x 4 chains), first try.

    The pooled 90% interval must also contain the mean of the drawn effects (0 in the placebo).
    """
    frame = simple_hierarchical_panel(0, zero_effect=zero_effect)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayes.ConvergenceWarning)
        fit = bayes.hierarchical(frame, "y", "in_force", seed=1)
    assert fit.converged and fit.diagnostics["attempt"].iloc[0] == 1
    assert fit.parameterisation["effect"]["centred"] is (not zero_effect)
    truth = float(frame.attrs["effects"].mean())
    pooled = fit.effects.iloc[0]
    assert pooled["lower_90"] < truth < pooled["upper_90"]


def test_kept_nutpie_compilation_gives_pm_sample_draws() -> None:
    """The compiled model kept between fits gives the draws of ``pm.sample`` for one seed."""
    pytest.importorskip("nutpie")
    from impact.bayes.fit import sample
    from tests.eight_schools import eight_schools_model

    model = eight_schools_model()
    kw = {"draws": 30, "tune": 30, "chains": 2, "seed": 5, "sampler": "nutpie"}
    via_pymc, run0 = sample(model, **kw)
    kept: dict = {}
    first, run1 = sample(model, **kw, compiled=kept)
    again, run2 = sample(model, **kw, compiled=kept)
    assert (run0.reused_compilation, run1.reused_compilation, run2.reused_compilation) == (
        False,
        False,
        True,
    )
    for var in ("mu", "tau", "theta"):
        ref = via_pymc["posterior"][var].to_numpy()
        np.testing.assert_array_equal(first["posterior"][var].to_numpy(), ref)
        np.testing.assert_array_equal(again["posterior"][var].to_numpy(), ref)
    assert set(first["sample_stats"].data_vars) == set(via_pymc["sample_stats"].data_vars)
