"""Tests of the speed work in impact.bayes: the fused binomial Op, the dense department x year
layout of the linear predictor and the vectorised convergence diagnostics.

Each faster piece is checked against the plain implementation it replaces (scipy, pm.Binomial,
the gathered linear predictor, ArviZ). No sampling: these run in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit

from impact.bayes import arviz_io
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.model import build_model, dense_layout
from impact.bayes.ops import binomial_logit_logp
from impact.bayes.synthetic import synthetic_panel

# ------------------------------------------------------------------ fused binomial Op


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_binomial_op_matches_scipy(mode: str) -> None:
    """numba kernel (polynomial exp / log) and NumPy perform agree with scipy to ~1e-14."""
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(0, 3, 2000), rng.uniform(-800, 800, 200), [0.0, -0.0, 36.7, -36.7, 710, -750]]
    )
    k = rng.integers(0, 40, x.size).astype(float)
    n = k + rng.integers(0, 40, x.size)
    eta = pt.dvector("eta")
    logp, _ = binomial_logit_logp(eta, k, n)
    grad = pytensor.grad(logp.sum(), eta)
    f = pytensor.function([eta], [logp, grad], mode=mode)
    got_logp, got_grad = f(x)
    log_choose = stats.binom.logpmf(k, n, 0.5) - n * np.log(0.5)
    ref_logp = stats.binom.logpmf(k, n, expit(x)) - log_choose
    moderate = np.abs(x) < 20  # scipy's expit(x) rounds to 1 in the far tails
    np.testing.assert_allclose(got_logp[moderate], ref_logp[moderate], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got_logp, k * x - n * np.logaddexp(0, x), rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(got_grad, k - n * expit(x), rtol=1e-13, atol=1e-12)


def test_binomial_op_gradient_is_verified() -> None:
    from pytensor.gradient import verify_grad

    k, n = np.array([0.0, 3, 10, 5]), np.array([0.0, 10, 10, 7])
    verify_grad(
        lambda e: binomial_logit_logp(e, k, n)[0].sum(),
        [np.array([0.3, -2.0, 1.0, 0.5])],
        rng=np.random.default_rng(0),
    )


# ------------------------------------------------------- model: dense layout, fused binomial


@pytest.fixture(scope="module")
def unbalanced() -> pd.DataFrame:
    """A small panel with missing department-years (the dense layout's gather path)."""
    frame = synthetic_panel(5, n_municipalities=4, departments_per_municipality=5).frame
    drop = np.random.default_rng(1).choice(len(frame), size=17, replace=False)
    return frame.drop(index=frame.index[drop]).sample(frac=1.0, random_state=2)


def _loglik_at_random_point(model, names: list[str], seed: int = 0):
    """Log-likelihood of ``y`` and the named variables' values at a jittered point."""
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    inputs_vars = model.value_vars
    loglik = model.compile_fn(
        model.logp(vars=[model["y"]], sum=False)[0],
        inputs=inputs_vars,
        point_fn=False,
        on_unused_input="ignore",
    )
    graphs = model.replace_rvs_by_values([model[v] for v in names])  # values, not draws
    values = model.compile_fn(graphs, inputs=inputs_vars, point_fn=False, on_unused_input="ignore")
    inputs = [point[v.name] for v in model.value_vars]
    return loglik(*inputs), dict(zip(names, values(*inputs), strict=True))


@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_dense_layout_matches_gathered_predictor(unbalanced: pd.DataFrame, likelihood: str):
    """Pointwise log-likelihood equals the one from ``eta = a_unit[unit] + year[time] + ...``
    computed observation by observation, with rows shuffled and cells missing."""
    if likelihood == "binomial":
        cfg = ModelConfig(
            "n_employed",
            "intensity",
            likelihood="binomial",
            trials="n_labour_force",
            effect_by_extra="housing_market",
        )
    else:
        cfg = ModelConfig("log_income", "in_force", event_time="event_time", event_window=(-3, 2))
    design = prepare(unbalanced, cfg)
    layout = dense_layout(design)
    assert layout.cell is not None  # unbalanced: gather path
    model = build_model(design, cfg)
    names = ["a_unit", "time_effect", "effect_lin"]
    names += ["effect_extra_z", "sigma_effect_extra"] if likelihood == "binomial" else []
    names += ["event_lead_lin", "event_dev", "sigma"] if likelihood == "normal" else []
    got, v = _loglik_at_random_point(model, names)
    order = layout.order
    eta = (
        v["a_unit"][design.unit_idx]
        + v["time_effect"][design.time_idx]
        + v["effect_lin"][design.effect_idx] * design.d
    )
    if likelihood == "binomial":
        eta = eta + v["sigma_effect_extra"] * v["effect_extra_z"][design.extra_idx] * design.d
        ref = stats.binom.logpmf(design.y, design.n_trials, expit(eta + design.y_loc))
    else:
        lead = np.where(design.lead_idx >= 0, v["event_lead_lin"][design.lead_idx], 0.0)
        lag = np.where(design.lag_idx >= 0, v["event_dev"][design.lag_idx], 0.0) * design.d
        y_std = (design.y - design.y_loc) / design.y_scale
        ref = stats.norm.logpdf(y_std, eta + lead + lag, v["sigma"])
    np.testing.assert_allclose(got, ref[order], rtol=1e-10, atol=1e-10)
    # observations are labelled by their row position in the data
    assert [int(i) for i in model.coords["obs"]] == list(order)


def test_fused_binomial_equals_pm_binomial(unbalanced: pd.DataFrame) -> None:
    cfg = ModelConfig("n_employed", "in_force", likelihood="binomial", trials="n_labour_force")
    design = prepare(unbalanced, cfg)
    fused, plain = build_model(design, cfg), build_model(design, cfg, fused_binomial=False)
    point = fused.initial_point()
    assert fused.compile_logp()(point) == pytest.approx(plain.compile_logp()(point), rel=1e-12)
    np.testing.assert_allclose(
        fused.compile_dlogp()(point), plain.compile_dlogp()(point), rtol=1e-10, atol=1e-8
    )


# ------------------------------------------------------------------ vectorised diagnostics


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ArviZ's R-hat of the constant: 0 / 0
def test_vectorised_diagnostics_match_arviz() -> None:
    """R-hat, bulk and tail ESS equal ArviZ's for AR(1) chains, a constant, a stuck chain, ties."""
    rng = np.random.default_rng(0)
    n_chain, n_draw, k = 4, 400, 12
    x = np.zeros((n_chain, n_draw, k))
    phi = rng.uniform(-0.5, 0.97, k)
    for t in range(1, n_draw):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=(n_chain, k))
    x[:, :, 0] = 3.0
    x[1, :, 1] += 2.0
    x[:, :, 2] = rng.integers(0, 3, (n_chain, n_draw))
    da = xr.DataArray(x.reshape(n_chain, n_draw, 3, 4), dims=("chain", "draw", "a", "b"))
    r, b, t = arviz_io._vectorised_diagnostics(da)
    assert r.shape == b.shape == t.shape == (3, 4)
    ds = xr.Dataset({"v": da})
    az = arviz_io._az()
    np.testing.assert_allclose(r, az.rhat(ds)["v"].to_numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(b, az.ess(ds, method="bulk")["v"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(t, az.ess(ds, method="tail", prob=(0.05, 0.95))["v"].to_numpy(), rtol=1e-10)
