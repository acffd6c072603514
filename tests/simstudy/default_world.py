"""The study's primary specification on its own default world and on that world's placebo.

One replication = one seed of the default (report-scale) world, exactly as ``impact run`` simulates
it: selected adoption (supported, more vulnerable departments; both tools mostly together). For
every tool x outcome the primary estimate (:func:`impact.estimates.primary`) is computed

- on the **factual** world, beside the truth of its own estimand (the tool-specific effect over the
  department-years behind the estimate), and
- on the **placebo** world (:func:`impact.simulate.placebo`: the counterfactual persons, the real
  adoption and lettings, so every true effect is 0),

together with the naive contrast (``att_gt`` unconditional, never-treated by that tool) on the
placebo world, to show what the primary specification corrects.

Run as a script for the table of the issue note::

    python tests/simstudy/default_world.py --seeds 0 50 --workers 2 --out simstudy.csv
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import warnings

import numpy as np
import pandas as pd

from impact import did, panel, simulate
from impact.estimates import OUTCOMES, TOOLS, att_gt_truth, prepare, primary, primary_truth


def replicate(seed: int, *, scale: str = "report", n_boot: int = 99,
              naive: bool = True) -> list[dict[str, object]]:
    """Primary estimates (factual and placebo) and the naive placebo contrast for one seed."""
    reg = simulate.registers(seed=seed, scale=scale)
    worlds = {"factual": reg, "placebo": simulate.placebo(reg)}
    rows: list[dict[str, object]] = []
    for world, registers in worlds.items():
        data = prepare(panel.build(registers, validate=False).frame)
        for outcome in OUTCOMES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = primary(data, outcome, n_boot=n_boot, seed=seed)
            truth = primary_truth(res, registers.truth, outcome)
            pre = res.pretest.set_index("tool")["p_value"]
            for r in res.overall.itertuples(index=False):
                t = truth[(truth["tool"] == r.tool) & (truth["term"] == "att")]["truth"].iloc[0]
                rows.append({"seed": seed, "world": world, "spec": "primary", "tool": r.tool,
                             "outcome": outcome, "estimate": r.estimate, "se": r.se,
                             "truth": t, "pretest_p_value": float(pre[r.tool])})
            if naive and world == "placebo":
                for tool in TOOLS:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        agg = did.att_gt(data, outcome, "department_id", "year",
                                         f"cohort_{tool}", n_boot=0, unbalanced="drop",
                                         cluster="cluster_plan").aggregate("simple").overall
                    rows.append({"seed": seed, "world": world, "spec": "naive att_gt",
                                 "tool": tool, "outcome": outcome, "estimate": agg.att,
                                 "se": agg.se,
                                 "truth": float(att_gt_truth(data, registers.truth, outcome,
                                                             tool)["simple"]),
                                 "pretest_p_value": np.nan})
    return rows


def _one(args: tuple[int, str, int, bool]) -> list[dict[str, object]]:
    seed, scale, n_boot, naive = args
    return replicate(seed, scale=scale, n_boot=n_boot, naive=naive)


def run(seeds: range, *, workers: int = 2, scale: str = "report", n_boot: int = 99,
        naive: bool = True) -> pd.DataFrame:
    """All replications in ``workers`` spawned processes (the parent may hold BLAS threads)."""
    jobs = [(s, scale, n_boot, naive) for s in seeds]
    if workers <= 1:
        parts = [_one(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_one, jobs, chunksize=1)
    return pd.DataFrame([r for p in parts for r in p])


def summarise(reps: pd.DataFrame) -> pd.DataFrame:
    """Per world x spec x tool x outcome: mean bias in SE units, coverage, MC errors."""
    reps = reps.assign(z=(reps["estimate"] - reps["truth"]) / reps["se"],
                       covered=(reps["estimate"] - 1.959964 * reps["se"] <= reps["truth"])
                       & (reps["truth"] <= reps["estimate"] + 1.959964 * reps["se"]))
    g = reps.groupby(["world", "spec", "tool", "outcome"], sort=False)
    out = g.agg(n=("z", "size"), mean_estimate=("estimate", "mean"), mean_truth=("truth", "mean"),
                mean_se=("se", "mean"), sd_estimate=("estimate", "std"),
                mean_bias_in_se=("z", "mean"), coverage=("covered", "mean"),
                pretest_rejection=("pretest_p_value", lambda p: float((p < 0.05).mean())))
    out["mc_se_bias_in_se"] = 1 / np.sqrt(out["n"])
    out["mc_se_coverage"] = np.sqrt(0.95 * 0.05 / out["n"])
    return out.reset_index()


def main(argv: list[str] | None = None) -> None:
    """Command line: seeds, workers, output CSV of replications; prints the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs=2, type=int, default=[0, 50])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", default="report")
    ap.add_argument("--n-boot", type=int, default=99)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    reps = run(range(*args.seeds), workers=args.workers, scale=args.scale, n_boot=args.n_boot)
    if args.out:
        reps.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print(summarise(reps).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    sys.exit(main())
