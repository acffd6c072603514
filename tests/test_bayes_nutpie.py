"""The lighter nutpie C callbacks of impact.bayes._nutpie give what nutpie's own give."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

nutpie = pytest.importorskip("nutpie")

from impact.bayes import _nutpie  # noqa: E402
from tests.eight_schools import eight_schools_model  # noqa: E402


def _compile(light: bool):
    import nutpie.compile_pymc as cp

    before = cp._make_c_logp_func
    with _nutpie.light_callbacks(light) as used:
        compiled = nutpie.compile_pymc_model(eight_schools_model())
    assert used is light
    assert cp._make_c_logp_func is before  # restored
    return compiled


@pytest.fixture(scope="module")
def both():
    assert _nutpie.compatible(), "nutpie's private callback builders changed: update _nutpie"
    return _compile(False), _compile(True)


def _logp(compiled, x: np.ndarray, dim: int | None = None) -> tuple[int, float, np.ndarray]:
    grad, logp = np.zeros(len(x)), np.zeros(1)
    dbl = ctypes.POINTER(ctypes.c_double)
    rc = compiled.compiled_logp_func.ctypes(
        ctypes.c_uint64(len(x) if dim is None else dim),
        x.ctypes.data_as(dbl),
        grad.ctypes.data_as(dbl),
        logp.ctypes.data_as(dbl),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    return int(rc), float(logp[0]), grad


def _expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    out = np.zeros(compiled.n_expanded)
    dbl = ctypes.POINTER(ctypes.c_double)
    rc = compiled.compiled_expand_func.ctypes(
        ctypes.c_uint64(len(x)),
        ctypes.c_uint64(compiled.n_expanded),
        x.ctypes.data_as(dbl),
        out.ctypes.data_as(dbl),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    return int(rc), out


def test_callbacks_agree_and_keep_return_codes(both) -> None:
    plain, light = both
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = rng.normal(size=plain.n_dim)
        rc_p, lp_p, g_p = _logp(plain, x)
        rc_l, lp_l, g_l = _logp(light, x)
        assert rc_p == rc_l == 0
        assert lp_l == lp_p and np.isfinite(lp_l)
        np.testing.assert_array_equal(g_l, g_p)
        assert np.abs(g_l).sum() > 0
        (rc_pe, out_p), (rc_le, out_l) = _expand(plain, x), _expand(light, x)
        assert rc_pe == rc_le == 0
        np.testing.assert_array_equal(out_l, out_p)
    x = rng.normal(size=plain.n_dim)
    assert _logp(light, x, dim=plain.n_dim + 1)[0] == -1  # wrong dimension
    x[plain.n_dim - 1] = np.inf  # a non-finite point: nutpie's code, whatever it is, is kept
    assert _logp(light, x)[0] == _logp(plain, x)[0] != 0


def test_same_draws_for_the_same_seed(both) -> None:
    plain, light = both
    kw = {"draws": 60, "tune": 60, "chains": 2, "cores": 1, "seed": 11, "progress_bar": False}
    a, b = nutpie.sample(plain, **kw), nutpie.sample(light, **kw)
    for var in ("mu", "tau", "theta"):
        np.testing.assert_array_equal(b["posterior"][var].values, a["posterior"][var].values)


def test_fused_model_is_thread_safe_and_deterministic() -> None:
    """nutpie evaluates the log density from several threads at once: the fused Ops must give
    bit-identical results whatever the thread (a reassociated, alignment-dependent sum did not)."""
    import threading

    from impact.bayes.design import ModelConfig, prepare
    from impact.bayes.model import build_model
    from tests.bayes_synthetic import synthetic_panel

    sim = synthetic_panel(
        7, n_municipalities=30, departments_per_municipality=10, share_adopting=0.4
    )
    cfg = ModelConfig("n_employed", "in_force", likelihood="binomial", trials="n_labour_force")
    with _nutpie.light_callbacks():
        compiled = nutpie.compile_pymc_model(build_model(prepare(sim.frame, cfg), cfg))
    rng = np.random.default_rng(3)
    points = [rng.normal(0.0, 0.2, compiled.n_dim) for _ in range(6)]
    reference = [_logp(compiled, x) for x in points]
    mismatches = [0]

    def worker(offset: int) -> None:
        for i in range(1500):
            j = (i + offset) % len(points)
            _, lp, g = _logp(compiled, points[j])
            if lp != reference[j][1] or not np.array_equal(g, reference[j][2]):
                mismatches[0] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches[0] == 0
