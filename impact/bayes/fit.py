"""Sampling: PyMC's own NUTS, nutpie or numpyro, always chosen explicitly.

PyMC >= 5.2x silently switches ``pm.sample()`` to nutpie when it is installed; here the sampler is
always passed as ``nuts_sampler=`` and recorded in the result.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from impact.bayes._nutpie import light_callbacks
from impact.errors import EstimationError

SAMPLERS = ("auto", "nutpie", "pymc", "numpyro")

#: nutpie's mass-matrix adaptation. Measured at report scale (600 departments, 4 x 2000
#: iterations): "draw_diag" (Stan-like, from the draws' variance) gave min bulk ESS 736 against
#: 498 for nutpie's default "diag" (the plan-level sd mixes slowest) in the same time;
#: "low_rank" took 45x longer. Re-measured with the binomial likelihood (fused Op, dense layout,
#: target_accept 0.95, seeds 1 and 2): min gated bulk ESS 1129 / 1056 with "draw_diag" against
#: 734 / 862 with "diag", the same tree depth (31 leapfrog steps per draw).
NUTPIE_ADAPTATION = "draw_diag"


@contextlib.contextmanager
def reproducible_compilation() -> Iterator[None]:
    """Compile without PyTensor's numba ``fastmath`` (``reassoc`` and friends).

    With ``fastmath`` LLVM vectorises PyTensor's reductions by reassociating them, and their
    rounding then depends on the arrays' alignment, i.e. on the heap layout of the process. A
    process that compiled the model (cold cache) and one that loaded it from PyTensor's cache
    (warm) allocate differently, so their log densities differed in the last bits (measured:
    1e-13 at 50 points of a small model) and NUTS trajectories diverged: one seed gave two
    answers. Without it, cold and warm processes give bit-identical draws
    (``tests/test_bayes_seed.py``). The fused Ops (:mod:`impact.bayes.ops`) set their own flags
    (``contract`` only) and keep their speed. PyTensor's cache keys include the flag.
    """
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        yield


def resolve_sampler(sampler: str) -> str:
    """The NUTS implementation to use: ``"auto"`` is nutpie when importable, else PyMC's own."""
    if sampler not in SAMPLERS:
        raise EstimationError(f"impact.bayes: sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"
    if sampler != "pymc" and importlib.util.find_spec(sampler) is None:
        raise EstimationError(
            f"impact.bayes: sampler={sampler!r} requested but {sampler} is not installed "
            "(install the 'fast' extra, or use sampler='pymc')"
        )
    return sampler


@dataclass(frozen=True)
class SamplingRun:
    """What ran: the sampler, its settings and the wall time (compilation included)."""

    sampler: str
    draws: int
    tune: int
    chains: int
    cores: int
    target_accept: float
    seed: int | None
    wall_seconds: float
    adaptation: str = ""
    #: nutpie only: compiled with the lighter C callbacks of :mod:`impact.bayes._nutpie`
    light_callbacks: bool = False
    #: nutpie only: the compiled model of an earlier fit was reused (no compilation)
    reused_compilation: bool = False

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-serialisable dict."""
        return dict(self.__dict__)


def sample(
    model: Any,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    sampler: str = "auto",
    target_accept: float = 0.95,
    seed: int | None = None,
    progressbar: bool = False,
    adaptation: str | None = None,
    compiled: dict[str, Any] | None = None,
) -> tuple[Any, SamplingRun]:
    """Run NUTS on a PyMC model.

    Parameters
    ----------
    model
        A :class:`pymc.Model`.
    draws, tune, chains
        Kept draws, tuning iterations and chains.
    cores
        Chains run in parallel; default ``min(chains, os.cpu_count())``.
    sampler
        ``"auto"``, ``"nutpie"``, ``"pymc"`` or ``"numpyro"``.
    target_accept
        NUTS target acceptance rate (0.95 by default, for hierarchical geometry).
    seed
        Random seed; a given seed gives identical draws.
    progressbar
        Show a progress bar.
    adaptation
        nutpie only: its mass-matrix adaptation (default :data:`NUTPIE_ADAPTATION`;
        ``"low_rank"`` is the denser one, used by the last refit).
    compiled
        nutpie only: a dict that keeps the compiled model between calls for the same
        ``model`` (filled on the first call). The draws are those of ``pm.sample`` for the same
        seed (same compiled functions, same per-chain seed; tested).

    Returns
    -------
    (DataTree, SamplingRun)
    """
    import pymc as pm

    which = resolve_sampler(sampler)
    if draws < 1 or tune < 1 or chains < 1:
        raise EstimationError("impact.bayes: draws, tune and chains must be positive")
    if not 0 < target_accept < 1:
        raise EstimationError("impact.bayes: target_accept must be in (0, 1)")
    n_cores = int(cores if cores is not None else min(chains, os.cpu_count() or 1))
    nuts: dict[str, Any] = {"target_accept": target_accept}
    if which == "nutpie":
        nuts["adaptation"] = adaptation or NUTPIE_ADAPTATION
    t0 = time.perf_counter()
    if which == "nutpie" and compiled is not None:
        reused = "model" in compiled
        idata, light = _sample_nutpie(model, compiled, draws, tune, chains, n_cores, seed, nuts)
        wall = time.perf_counter() - t0
        run = SamplingRun(
            which, draws, tune, chains, n_cores, target_accept, seed, wall,
            str(nuts["adaptation"]), light, reused,
        )  # fmt: skip
        return idata, run
    with model, reproducible_compilation(), light_callbacks(which == "nutpie") as light:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=n_cores,
            nuts_sampler=which,  # always explicit: PyMC would silently pick nutpie
            random_seed=seed,
            progressbar=progressbar,
            quiet=not progressbar,
            nuts=nuts,
            compute_convergence_checks=False,
        )
    wall = time.perf_counter() - t0
    adaptation = nuts.get("adaptation", "stan-windowed-diag" if which == "pymc" else "")
    run = SamplingRun(
        which, draws, tune, chains, n_cores, target_accept, seed, wall, str(adaptation), light
    )
    return idata, run


def _sample_nutpie(
    model: Any,
    compiled: dict[str, Any],
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int | None,
    nuts: dict[str, Any],
) -> tuple[Any, bool]:
    """``pm.sample(nuts_sampler="nutpie")`` with the compiled model kept in ``compiled``.

    The same steps as PyMC 5's ``_sample_external_nuts``: compile (numba backend), the chain-0
    seed ``get_random_generator(seed).spawn(chains)[0].integers(2**30)``, ``nutpie.sample``
    without the warm-up, ``patch_nutpie_idata``.
    """
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata
    from pymc.util import get_random_generator

    with model, reproducible_compilation():
        if "model" not in compiled:
            with light_callbacks(True) as light:
                compiled["model"] = nutpie.compile_pymc_model(model, backend="numba")
            compiled["light"] = light
        rngs = get_random_generator(seed).spawn(chains)
        t0 = time.time()
        idata = nutpie.sample(
            compiled["model"],
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=int(rngs[0].integers(2**30)),
            save_warmup=False,
            store_unconstrained=False,
            progress_bar=False,
            **nuts,
        )
        patch_nutpie_idata(idata, model, sampling_time=time.time() - t0)
    return idata, bool(compiled["light"])
