"""Benchmark :func:`impact.bayes.hierarchical` at report scale: samplers and parameterisations.

Simulated panel (:func:`tests.bayes_synthetic.synthetic_panel`, seeded): 60 municipalities x 10
departments = 600 departments x 10 years, plans nested in municipalities, effects that differ by
municipality. For every sampler (nutpie, PyMC's own NUTS, numpyro only if installed) and every
parameterisation asked for, fits 4 chains x (tune + draws) and prints wall time of the whole
:func:`impact.bayes.hierarchical` call (model building, compilation, sampling, diagnostics and
tables), the worst R-hat / bulk / tail ESS over the parameters of interest, divergences, BFMI,
the worst bulk and tail ESS per second of wall time, the sampler's own time (``pm.sample``:
compilation + sampling) with bulk ESS per second of it, and whether the convergence gate passed.

PyMC, nutpie and ArviZ are imported before the clock starts (importing nutpie alone takes ~4 s,
which the first fit of a process would otherwise pay). With ``--repeat N`` the samplers run N
times in alternating order (the machine may be shared: compare best-of, and the ratio within
one invocation); the summary gives the best wall time and ESS/s per sampler and the ratio of
nutpie's (or numpyro's) best ESS/s to PyMC NUTS'.

Usage::

    .venv/bin/python benchmarks/bench_bayes.py [--samplers nutpie pymc] [--cores 2]
        [--params cna] [--likelihood normal|binomial] [--municipalities 60] [--draws 1000]
        [--tune 1000] [--repeat 2]

``--params`` codes, three letters: department intercepts and year effects, plan and municipality
intercepts, group effects; ``c`` centred, ``n`` non-centred, ``a`` (group effects only) chosen
from the data (``cna`` is the default model). Every fit is a single attempt (``max_attempts=1``:
no refit), so both samplers are timed on the same work.

``--panel default`` fits instead the model ``impact run`` fits on its default world (report scale,
848 departments; :func:`impact.workflow.estimates.bayes_inputs` with the ``[bayes]`` defaults:
strata x year effects, baseline slopes, the other tool as a control, municipality effects pooled
within market types), simulated once before the clock starts.

``--panel default --breakdown`` prints instead where nutpie's time goes on that model: the
seconds of ``nutpie.compile_pymc_model`` (PyTensor rewrites, numba, the C callbacks), the
microseconds of one log density + gradient evaluation (best of 5 x 1000, one thread), and the
leapfrog steps of the warm-up and of the kept draws (4 chains, the script's ``--tune`` /
``--draws``), whose product with the evaluation cost is most of the sampling time; for the
pipeline model and for the same model without its untreated terms and profile (``bare``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from impact.bayes import hierarchical

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/ (the panel)
from impact.workflow.config import StudyConfig
from tests.bayes_synthetic import synthetic_panel
from tests.simstudy.calibration_bayes import world

_WORLDS: dict[int, tuple[pd.DataFrame, dict]] = {}


def run_default_world(sampler: str, draws: int, tune: int, chains: int, cores: int,
                      seed: int, target_accept: float | None = None) -> dict[str, object]:
    """One fit of the model ``impact run`` fits on its default world (``--panel default``)."""
    if seed not in _WORLDS:
        _WORLDS[seed] = world(seed, StudyConfig())[:2]
        data = _WORLDS[seed][0]
        print(f"default world, seed {seed}: {data['department_id'].nunique()} departments, "
              f"{len(data)} department-years", flush=True)
    data, options = _WORLDS[seed]
    options = {**options, "sampler": sampler, "draws": draws, "tune": tune, "chains": chains,
               "cores": cores, "max_attempts": 1}
    if target_accept is not None:
        options["target_accept"] = target_accept
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierarchical(data, StudyConfig().bayes_model.outcome,
                           StudyConfig().bayes_model.treatment, seed=seed, **options)
    return _row(fit, "pipeline", time.perf_counter() - t0)


def run_one(
    frame: pd.DataFrame,
    sampler: str,
    params: str,
    likelihood: str,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
) -> dict[str, object]:
    """Fit once and return one row of the benchmark table."""
    kw: dict[str, object] = {}
    if likelihood == "binomial":
        outcome, kw["trials"] = "n_employed", "n_labour_force"
    else:
        outcome = "log_income"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierarchical(
            frame,
            outcome,
            "in_force",
            likelihood=likelihood,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            sampler=sampler,
            seed=seed,
            centred_intercepts=params[0] == "c",
            centred_levels=params[1] == "c",
            centred_effects="auto" if params[2] == "a" else params[2] == "c",
            max_attempts=1,
            **kw,
        )
    return _row(fit, params, time.perf_counter() - t0)


def _row(fit: object, params: str, wall: float) -> dict[str, object]:
    """One row of the benchmark table."""
    d = fit.diagnostics.iloc[0]
    pooled = fit.effects.iloc[0]
    return {
        "sampler": fit.sampler,
        "params": params,
        "centred_effects": bool(d["centred_effects"]),
        "wall_s": round(wall, 1),
        "r_hat": round(float(d["r_hat"]), 4),
        "ess_bulk": int(d["ess_bulk"]),
        "ess_tail": int(d["ess_tail"]),
        "divergences": int(d["divergences"]),
        "bfmi": round(float(d["bfmi"]), 2),
        "ess_bulk_per_s": round(float(d["ess_bulk"]) / wall, 1),
        "ess_tail_per_s": round(float(d["ess_tail"]) / wall, 1),
        # the sampler alone: compilation + sampling (pm.sample), without model building,
        # diagnostics and tables, which cost both samplers the same
        "sample_s": round(float(d["wall_seconds"]), 1),
        "ess_bulk_per_sample_s": round(float(d["ess_bulk"]) / float(d["wall_seconds"]), 1),
        "pooled_mean": round(float(pooled["mean"]), 4),
        "converged": bool(d["converged"]),
    }


def main() -> None:
    """Parse arguments, run the grid, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samplers", nargs="+", default=["nutpie", "pymc", "numpyro"])
    ap.add_argument("--params", nargs="+", default=["cna"])
    ap.add_argument("--likelihood", default="normal")
    ap.add_argument("--municipalities", type=int, default=60)
    ap.add_argument("--departments-per-municipality", type=int, default=10)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--share-adopting", type=float, default=0.4)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--target-accept", type=float, default=None,
                    help="--panel default: NUTS target acceptance (default: hierarchical's)")
    ap.add_argument("--panel", choices=("synthetic", "default"), default="synthetic",
                    help="default: the model impact run fits on its default world (seed "
                         "--seed; --params, --likelihood and the panel sizes do not apply)")
    ap.add_argument("--breakdown", action="store_true",
                    help="--panel default: nutpie's compile time, gradient cost and steps")
    args = ap.parse_args()
    warm_imports()
    if args.breakdown:
        breakdown(args.draws, args.tune, args.chains, args.cores, args.seed)
        return
    if args.panel == "default":
        args.params = ["pipeline"]
    sim = synthetic_panel(
        2024,
        n_municipalities=args.municipalities,
        departments_per_municipality=args.departments_per_municipality,
        share_adopting=args.share_adopting,
    )
    frame = sim.frame
    print(
        f"panel: {frame['department_id'].nunique()} departments x {frame['year'].nunique()} "
        f"years, {args.chains} chains x ({args.tune} tune + {args.draws} draws), "
        f"{args.cores} cores, likelihood {args.likelihood}; true pooled effect "
        f"{sim.effect_pooled if args.likelihood != 'binomial' else sim.effect_pooled_logit}"
    )
    rows = []
    samplers = []
    for sampler in args.samplers:
        if sampler != "pymc" and importlib.util.find_spec(sampler) is None:
            print(f"skip {sampler}: not installed")
            continue
        samplers.append(sampler)
    for rep in range(args.repeat):
        order = samplers if rep % 2 == 0 else samplers[::-1]
        for sampler, params in ((s, p) for s in order for p in args.params):
            if args.panel == "default":
                row = run_default_world(sampler, args.draws, args.tune, args.chains, args.cores,
                                        args.seed, args.target_accept)
            else:
                row = run_one(
                    frame,
                    sampler,
                    params,
                    args.likelihood,
                    args.draws,
                    args.tune,
                    args.chains,
                    args.cores,
                    args.seed,
                )
            rows.append({"run": rep + 1, **row})
            print(
                pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1), flush=True
            )
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False))
    best = table.groupby(["sampler", "params"]).agg(
        runs=("wall_s", "size"),
        best_wall_s=("wall_s", "min"),
        best_ess_bulk_per_s=("ess_bulk_per_s", "max"),
        best_ess_tail_per_s=("ess_tail_per_s", "max"),
        best_sample_s=("sample_s", "min"),
        best_ess_bulk_per_sample_s=("ess_bulk_per_sample_s", "max"),
        all_converged=("converged", "all"),
    )
    print("\nbest of runs:")
    print(best.to_string())
    for column, what in (("ess_bulk_per_s", "whole call"),
                         ("ess_bulk_per_sample_s", "compilation + sampling")):
        per_sampler = table.groupby("sampler")[column].max()
        for fast in ("nutpie", "numpyro"):
            if fast in per_sampler and "pymc" in per_sampler:
                print(
                    f"ESS/s {fast} / PyMC NUTS, {what} (best run, best parameterisation): "
                    f"{per_sampler[fast] / per_sampler['pymc']:.2f}x"
                )


def breakdown(draws: int, tune: int, chains: int, cores: int, seed: int) -> None:
    """Where nutpie's time goes on the default world's model (``--breakdown``).

    Two rows: the pipeline model, and the same model without the untreated terms and the profile
    (``bare``: department, year and municipality effects only), whose difference is the cost of
    those terms.
    """
    import numpy as np
    import nutpie

    from impact.bayes._nutpie import light_callbacks
    from impact.bayes.design import ModelConfig
    from impact.bayes.estimate import HierarchicalModel
    from impact.bayes.fit import reproducible_compilation

    data, options = world(seed, StudyConfig())[:2]
    b = StudyConfig().bayes_model
    pipeline = {k: v for k, v in options.items() if k in ModelConfig.__dataclass_fields__}
    bare = {**pipeline, "effect_profile": None, "time_by": (), "covariates": (), "controls": ()}
    rows = []
    for name, model_options in (("pipeline", pipeline), ("bare", bare)):
        config = ModelConfig(b.outcome, b.treatment, **model_options)
        model = HierarchicalModel(data, config).pymc_model()
        t0 = time.perf_counter()
        with model, reproducible_compilation(), light_callbacks(True):
            compiled = nutpie.compile_pymc_model(model, backend="numba")
        compile_s = time.perf_counter() - t0
        x = np.full(compiled.n_dim, 0.01)
        compiled.logp_func(x)
        per_eval = []
        for _ in range(5):
            t1 = time.perf_counter()
            for _ in range(1000):
                compiled.logp_func(x)
            per_eval.append((time.perf_counter() - t1) / 1000 * 1e6)
        t2 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores,
                              seed=seed, save_warmup=True, progress_bar=False,
                              target_accept=0.95)
        sample_s = time.perf_counter() - t2
        warm = int(idata.warmup_sample_stats["n_steps"].sum())
        kept = int(idata.sample_stats["n_steps"].sum())
        rows.append({
            "model": name,
            "parameters": compiled.n_dim,
            "compile_s": round(compile_s, 1),
            "logp_grad_us": round(min(per_eval), 1),
            "warmup_steps": warm,
            "draw_steps": kept,
            "sample_s": round(sample_s, 1),
            "steps_x_eval_per_core_s": round((warm + kept) * min(per_eval) / 1e6 / cores, 1),
        })
        print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1),
              flush=True)


def warm_imports() -> None:
    """Import the sampling stack before timing (one-off import costs are not sampling)."""
    import arviz  # noqa: F401
    import pymc  # noqa: F401
    import scipy.stats  # noqa: F401

    if importlib.util.find_spec("nutpie") is not None:
        import nutpie
        import nutpie.compile_pymc  # noqa: F401


if __name__ == "__main__":
    main()
