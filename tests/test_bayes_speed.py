"""Tests of the speed work in impact.bayes: the fused binomial Op, the fused panel
log-likelihood Ops, the dense department x year layout of the linear predictor and the vectorised
convergence diagnostics.

Each faster piece is checked against the plain implementation it replaces (scipy, pm.Binomial,
pm.Normal, the gathered linear predictor, ArviZ). No sampling: these run in seconds.
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
from impact.bayes.ops import PanelLogp, PanelLogpGrad, binomial_logit_logp, panel_logp
from tests.bayes_synthetic import synthetic_panel

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


def test_binomial_kernel_is_accurate_in_the_tails() -> None:
    """softplus and expit to ~1e-15 relative against extended precision, also where
    ``exp(-|x|)`` is far below the rounding of ``1 + exp(-|x|)`` (no cancellation). Beyond
    ``|x| = 700`` the kernel uses ``exp(-700) ~ 1e-304`` (relative, not absolute, error)."""
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [rng.normal(0, 3, 5000), rng.uniform(-700, 700, 500), -np.logspace(-9, np.log10(699), 400)]
    )
    x = np.concatenate([x, -x])
    logp, dlogp = _compile_binomial_op()(x)  # k = 0, n = 1: -softplus, -expit
    xl = x.astype(np.longdouble)
    softplus = np.where(x > 0, xl + np.log1p(np.exp(-xl)), np.log1p(np.exp(xl)))
    expit_l = 1 / (1 + np.exp(-xl))
    np.testing.assert_allclose(-logp, softplus.astype(float), rtol=1e-15, atol=0)
    np.testing.assert_allclose(-dlogp, expit_l.astype(float), rtol=1e-15, atol=0)


def _compile_binomial_op():
    import pytensor
    import pytensor.tensor as pt

    eta = pt.dvector("eta")
    k = pt.zeros_like(eta)
    return pytensor.function([eta], list(binomial_logit_logp(eta, k, k + 1.0)), mode="NUMBA")


# ---------------------------------------------------------------------- fused panel Ops


def _panel(balanced: bool, seed: int = 0) -> dict:
    """Observations of 7 units x 5 times in random order (some cells missing if unbalanced)."""
    rng = np.random.default_rng(seed)
    n_unit, n_time = 7, 5
    cells = [(u, t) for u in range(n_unit) for t in range(n_time)]
    if not balanced:
        cells = [c for c in cells if rng.random() > 0.25]
    cells = [cells[i] for i in rng.permutation(len(cells))]
    n_obs = len(cells)
    n = rng.integers(0, 40, n_obs).astype(float)
    return {
        "unit_idx": np.array([c[0] for c in cells]),
        "time_idx": np.array([c[1] for c in cells]),
        "d": rng.uniform(0, 1, n_obs) * (rng.random(n_obs) < 0.5),
        "n_unit": n_unit,
        "n_time": n_time,
        "y_normal": rng.normal(size=n_obs),
        "k": np.floor(n * rng.uniform(0, 1, n_obs)),
        "n": n,
        "params": [
            rng.normal(0, 0.5, n_unit),
            rng.normal(0, 0.5, n_time),
            rng.normal(0, 0.5, n_unit),
            rng.normal(0, 0.3, n_obs),
            np.array(0.8),
        ],
    }


def _panel_graph(panel: dict, likelihood: str, has_extra: bool, symbols: list | None = None):
    """Symbolic inputs, their test values and the ``panel_logp`` node's logp for a test panel.

    ``symbols``: the parameters to use (``a, te, tau[, extra][, sigma]``), new ones if None.
    """
    import pytensor.tensor as pt

    names = ["a", "te", "tau"] + (["extra"] if has_extra else [])
    values = panel["params"][:3] + ([panel["params"][3]] if has_extra else [])
    if likelihood == "normal":
        names, values = [*names, "sigma"], [*values, panel["params"][4]]
    if symbols is None:
        symbols = [pt.dscalar(n) if n == "sigma" else pt.dvector(n) for n in names]
    par = dict(zip(names, symbols, strict=True))
    common = {k: panel[k] for k in ("unit_idx", "time_idx", "d", "n_unit", "n_time")}
    common["extra"] = par.get("extra")
    if likelihood == "normal":
        logp, _ = panel_logp(
            "normal",
            par["a"],
            par["te"],
            par["tau"],
            y=panel["y_normal"],
            sigma=par["sigma"],
            **common,
        )
    else:
        log_choose = stats.binom.logpmf(panel["k"], panel["n"], 0.5) - panel["n"] * np.log(0.5)
        logp, _ = panel_logp(
            "binomial",
            par["a"],
            par["te"],
            par["tau"],
            y=panel["k"],
            n=panel["n"],
            log_choose=log_choose,
            offset=-0.4,
            **common,
        )
    return symbols, values, logp


def _panel_reference(panel: dict, likelihood: str, has_extra: bool) -> np.ndarray:
    a, te, tau, extra, sigma = panel["params"]
    u, t = panel["unit_idx"], panel["time_idx"]
    eta = a[u] + te[t] + tau[u] * panel["d"] + (extra if has_extra else 0.0)
    if likelihood == "normal":
        return stats.norm.logpdf(panel["y_normal"], eta, sigma)
    return stats.binom.logpmf(panel["k"], panel["n"], expit(eta - 0.4))


@pytest.mark.parametrize("balanced", [True, False], ids=["balanced", "unbalanced"])
@pytest.mark.parametrize("has_extra", [False, True], ids=["plain", "extra"])
@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_panel_op_matches_scipy_and_perform(likelihood: str, has_extra: bool, balanced: bool):
    """Elementwise logp equals scipy; the numba kernels equal the NumPy ``perform`` in value and
    gradient, for a weighted sum (vector cotangent) and a plain sum (the reduced forward and
    scalar-cotangent backward variants, which the numba compilation must pick)."""
    import pytensor

    panel = _panel(balanced)
    inputs, values, logp = _panel_graph(panel, likelihood, has_extra)
    weights = np.random.default_rng(1).normal(size=panel["d"].size)
    for cost, variants in (
        ((logp * weights).sum(), {"reduce=False", "scalar_cotangent=False"}),
        (logp.sum(), {"reduce=True", "scalar_cotangent=True"}),
    ):
        outputs = [cost, *pytensor.grad(cost, inputs)]
        got = {}
        for mode in ("NUMBA", "FAST_COMPILE"):  # FAST_COMPILE: Python linker, perform
            f = pytensor.function(inputs, outputs, mode=mode)
            got[mode] = f(*values)
            if mode == "NUMBA":
                ops = [str(n.op) for n in f.maker.fgraph.apply_nodes]
                for variant in variants:
                    assert any(variant in op for op in ops), (variant, ops)
        for x, y in zip(got["NUMBA"], got["FAST_COMPILE"], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    f = pytensor.function(inputs, logp, mode="NUMBA")
    ref = _panel_reference(panel, likelihood, has_extra)
    np.testing.assert_allclose(f(*values), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize("has_extra", [False, True], ids=["plain", "extra"])
@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_panel_op_gradient_is_verified(likelihood: str, has_extra: bool, mode: str) -> None:
    """Finite differences of a weighted sum and of the plain sum (both pullback paths)."""
    import pytensor.tensor as pt
    from pytensor.gradient import verify_grad

    panel = _panel(balanced=False, seed=2)
    _, values, _ = _panel_graph(panel, likelihood, has_extra)
    weights = np.random.default_rng(4).normal(size=panel["d"].size)
    for weighted in (True, False):

        def cost(*symbols, weighted=weighted):
            logp = _panel_graph(panel, likelihood, has_extra, list(symbols))[2]
            return (logp * weights).sum() if weighted else pt.sum(logp)

        verify_grad(cost, values, rng=np.random.default_rng(0), mode=mode)


def test_panel_logp_checks_its_data() -> None:
    import pytensor.tensor as pt

    a, te, tau = pt.dvector(), pt.dvector(), pt.dvector()
    base = {
        "unit_idx": np.array([0, 1, 1]),
        "time_idx": np.array([0, 0, 1]),
        "d": np.zeros(3),
        "y": np.zeros(3),
        "sigma": pt.dscalar(),
        "n_unit": 2,
        "n_time": 2,
    }
    panel_logp("normal", a, te, tau, **base)
    for change in (
        {"unit_idx": np.array([0, 1, 2])},
        {"time_idx": np.array([0, -1, 1])},
        {"time_idx": np.array([0, 1, 1]), "unit_idx": np.array([1, 1, 1])},  # duplicate cell
        {"d": np.zeros(2)},
        {"sigma": None},
    ):
        with pytest.raises(ValueError):
            panel_logp("normal", a, te, tau, **(base | change))
    with pytest.raises(ValueError):
        panel_logp("binomial", a, te, tau, **base)  # binomial needs n, not sigma


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


def _config(likelihood: str, full: bool) -> ModelConfig:
    """Binomial or normal model, with (``full``) or without event time and extra grouping."""
    options = (
        {"event_time": "event_time", "event_window": (-3, 2), "effect_by_extra": "housing_market"}
        if full
        else {}
    )
    if likelihood == "binomial":
        return ModelConfig(
            "n_employed", "intensity", likelihood="binomial", trials="n_labour_force", **options
        )
    return ModelConfig("log_income", "in_force", **options)


@pytest.fixture(scope="module")
def balanced() -> pd.DataFrame:
    frame = synthetic_panel(5, n_municipalities=4, departments_per_municipality=5).frame
    return frame.sample(frac=1.0, random_state=3)


def _logp_and_gradient(model, mode: str):
    """One compiled function of a point: (logp, gradient raveled in value-variable order)."""
    import pytensor

    logp = model.logp()
    f = pytensor.function(
        model.value_vars, [logp, *pytensor.grad(logp, model.value_vars)], mode=mode
    )

    def evaluate(point: dict) -> tuple[float, np.ndarray]:
        logp, *grad = f(*[point[v.name] for v in model.value_vars])
        return float(logp), np.concatenate([np.ravel(g) for g in grad])

    return evaluate, f


def _random_points(model, n: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    start = model.initial_point()
    return [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()} for _ in range(n)]


@pytest.mark.parametrize("full", [False, True], ids=["plain", "event+extra"])
@pytest.mark.parametrize("panel", ["balanced", "unbalanced"])
@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_fused_model_equals_unfused(likelihood: str, panel: str, full: bool, request) -> None:
    """logp and gradient of the fused model (PanelLogp) equal those of pm.Normal / pm.Binomial
    on the PyTensor linear predictor at random points. FAST_RUN (C linker; the Ops' NumPy
    ``perform``, with the reduced-sum rewrite): the numba kernels are compared with ``perform``
    above, and the compiled numba model in :func:`test_fused_numba_graph_is_fused_and_cacheable`.
    """
    cfg = _config(likelihood, full)
    design = prepare(request.getfixturevalue(panel), cfg)
    fused, plain = build_model(design, cfg), build_model(design, cfg, fused_binomial=False)
    assert [v.name for v in fused.value_vars] == [v.name for v in plain.value_vars]
    assert any(isinstance(n.op, PanelLogp) for n in _nodes(fused.logp()))
    assert not any(isinstance(n.op, PanelLogp) for n in _nodes(plain.logp()))
    (f_fused, _), (f_plain, _) = (_logp_and_gradient(m, "FAST_RUN") for m in (fused, plain))
    for point in _random_points(fused):
        (logp_f, grad_f), (logp_p, grad_p) = f_fused(point), f_plain(point)
        assert logp_f == pytest.approx(logp_p, rel=1e-10)
        np.testing.assert_allclose(grad_f, grad_p, rtol=1e-10, atol=1e-9)


def _nodes(output) -> list:
    from pytensor.graph.traversal import ancestors

    return [v.owner for v in ancestors([output]) if v.owner is not None]


def test_fused_model_pointwise_loglik_and_predictive(unbalanced: pd.DataFrame) -> None:
    """pm.compute_log_likelihood (the elementwise output, for LOO) equals the unfused model's on
    a small fake posterior; posterior predictive draws keep dims (chain, draw, obs)."""
    import pymc as pm

    for likelihood in ("normal", "binomial"):
        cfg = _config(likelihood, full=True)
        design = prepare(unbalanced, cfg)
        fused, plain = build_model(design, cfg), build_model(design, cfg, fused_binomial=False)
        with fused:
            prior = pm.sample_prior_predictive(draws=6, random_seed=1)
        draws = prior["prior"].to_dataset().isel(chain=0)
        posterior = xr.concat(
            [
                draws.isel(draw=slice(0, 3)),
                draws.isel(draw=slice(3, 6)).assign_coords(draw=[0, 1, 2]),
            ],
            dim="chain",
        ).assign_coords(chain=[0, 1])
        idata = xr.DataTree.from_dict({"posterior": posterior})
        loglik = {}
        for name, model in (("fused", fused), ("plain", plain)):
            with model:
                out = pm.compute_log_likelihood(
                    idata.copy(), extend_inferencedata=False, progressbar=False
                )
            loglik[name] = out["y"]
        assert loglik["fused"].dims == ("chain", "draw", "obs")
        np.testing.assert_allclose(loglik["fused"], loglik["plain"], rtol=1e-10, atol=1e-10)
        with fused:
            pred = pm.sample_posterior_predictive(idata, random_seed=2, progressbar=False)
        y = pred["posterior_predictive"]["y"]
        assert y.dims == ("chain", "draw", "obs") and y.shape == (2, 3, design.n_obs)


@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_fused_numba_graph_is_fused_and_cacheable(unbalanced: pd.DataFrame, likelihood: str):
    """Compiled with numba (as nutpie does), the model's logp + gradient uses the reduced forward
    and scalar-cotangent backward variants, equals the unfused model, and every node has a numba
    cache key (an uncacheable node would make each compile recompile the whole graph)."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    cfg = _config(likelihood, full=True)
    design = prepare(unbalanced, cfg)
    fused, plain = build_model(design, cfg), build_model(design, cfg, fused_binomial=False)
    f_fused, compiled = _logp_and_gradient(fused, "NUMBA")
    f_plain, _ = _logp_and_gradient(plain, "FAST_RUN")
    fgraph = compiled.maker.fgraph
    panel_nodes = [n for n in fgraph.apply_nodes if isinstance(n.op, PanelLogp | PanelLogpGrad)]
    assert {str(n.op) for n in panel_nodes} == {
        f"PanelLogp{{likelihood='{likelihood}', has_extra=True, reduce=True}}",
        f"PanelLogpGrad{{likelihood='{likelihood}', has_extra=True, scalar_cotangent=True}}",
    }
    for node in panel_nodes:
        assert numba_funcify_and_cache_key(node.op, node=node)[1] is not None
    assert numba_funcify_and_cache_key(fgraph)[1] is not None
    for point in _random_points(fused):
        (logp_f, grad_f), (logp_p, grad_p) = f_fused(point), f_plain(point)
        assert logp_f == pytest.approx(logp_p, rel=1e-10)
        np.testing.assert_allclose(grad_f, grad_p, rtol=1e-10, atol=1e-9)


def test_fused_graph_compiles_without_cache_warnings(tmp_path) -> None:
    """In a fresh process, compiling a graph with the panel Ops raises no numba warning (such as
    "Cannot cache compiled function")."""
    import subprocess
    import sys

    script = tmp_path / "compile_panel.py"
    script.write_text(
        "import warnings\n"
        "import numpy as np, pytensor, pytensor.tensor as pt\n"
        "from numba.core.errors import NumbaWarning\n"
        "warnings.simplefilter('error', NumbaWarning)\n"
        "from impact.bayes.ops import panel_logp\n"
        "a, te, tau, s = pt.dvector(), pt.dvector(), pt.dvector(), pt.dscalar()\n"
        "u, t = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)\n"
        "lp, _ = panel_logp('normal', a, te, tau, unit_idx=u, time_idx=t, d=np.ones(12),\n"
        "                   y=np.zeros(12), sigma=s, n_unit=4, n_time=3)\n"
        "cost = lp.sum()\n"
        "f = pytensor.function([a, te, tau, s], [cost, *pytensor.grad(cost, [a, te, tau, s])],\n"
        "                      mode='NUMBA')\n"
        "print(f(np.zeros(4), np.zeros(3), np.zeros(4), 1.0)[0])\n"
    )
    for _ in range(2):  # the second run loads from the cache the first one wrote
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "cache" not in run.stderr.lower(), run.stderr


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
    np.testing.assert_allclose(
        t, az.ess(ds, method="tail", prob=(0.05, 0.95))["v"].to_numpy(), rtol=1e-10
    )
