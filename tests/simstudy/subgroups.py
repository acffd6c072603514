"""Subgroup estimates (impact.subgroups) and tenant channels (impact.channels) against the truth.

One replication = one seed of the default (report-scale) world, as ``impact run`` simulates it.
On the **factual** world and on its **placebo** (:func:`impact.simulate.placebo`: every true
effect 0) the primary specification is run by market type and by vulnerability tercile
(:func:`impact.subgroups.by_subgroup`); each subgroup estimate is set beside the truth of its own
estimand (the tool-specific effect over the department-years behind it), with the joint-bootstrap
Wald test that the effects are equal across subgroups. The channel contrasts of share employed
(flexible letting and referral against the waiting list, within each market) come beside them.

Run as a script (a handful of seeds: each takes a few minutes on one core)::

    python tests/simstudy/subgroups.py --seeds 0 4 --workers 2 --out subgroups.csv
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import warnings

import numpy as np
import pandas as pd

from impact import panel, simulate
from impact.channels import tenant_composition
from impact.estimates import OUTCOMES, prepare
from impact.subgroups import SUBGROUPS, by_subgroup


def replicate(seed: int, *, scale: str = "report", n_boot: int = 99,
              outcomes: tuple[str, ...] = OUTCOMES) -> list[dict[str, object]]:
    """Subgroup estimates, Wald tests and channel contrasts (factual and placebo) for one seed."""
    reg = simulate.registers(seed=seed, scale=scale)
    worlds = {"factual": reg, "placebo": simulate.placebo(reg)}
    rows: list[dict[str, object]] = []
    for world, registers in worlds.items():
        data = prepare(panel.build(registers, validate=False).frame)
        for subgroup in SUBGROUPS:
            for outcome in outcomes:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = by_subgroup(data, outcome, subgroup, n_boot=n_boot, seed=seed,
                                      truth=registers.truth)
                for r in res.overall.itertuples(index=False):
                    rows.append({"seed": seed, "world": world, "kind": "estimate",
                                 "subgroup_variable": subgroup, "subgroup": r.subgroup,
                                 "tool": r.tool, "outcome": outcome, "estimate": r.estimate,
                                 "se": r.se, "truth": r.truth})
                for t in res.tests.itertuples(index=False):
                    rows.append({"seed": seed, "world": world, "kind": "wald",
                                 "subgroup_variable": subgroup, "subgroup": "equal",
                                 "tool": t.tool, "outcome": outcome, "stat": t.stat,
                                 "p_value": t.p_value})
        comp = tenant_composition(registers).contrasts
        c = comp[(comp["measure"] == "share_employed") & (comp["market_type"] != "all")
                 & comp["channel"].isin(["flexible_letting", "municipal_referral"])]
        for r in c.itertuples(index=False):
            rows.append({"seed": seed, "world": world, "kind": f"channel {r.comparison}",
                         "subgroup_variable": "market_type", "subgroup": r.market_type,
                         "tool": r.channel, "outcome": "share_employed",
                         "estimate": r.difference, "se": r.se,
                         "truth": np.nan if world == "factual" else 0.0})
    return rows


def _one(args: tuple[int, str, int, tuple[str, ...], str | None]) -> list[dict[str, object]]:
    seed, scale, n_boot, outcomes, partial = args
    rows = replicate(seed, scale=scale, n_boot=n_boot, outcomes=outcomes)
    if partial:
        pd.DataFrame(rows).to_csv(f"{partial}.seed{seed}.csv", index=False)
    return rows


def run(seeds: range, *, workers: int = 2, scale: str = "report", n_boot: int = 99,
        outcomes: tuple[str, ...] = OUTCOMES, partial: str | None = None) -> pd.DataFrame:
    """All replications in ``workers`` spawned processes (each seed's rows also written to
    ``<partial>.seed<seed>.csv`` as it finishes, if ``partial`` is given)."""
    jobs = [(s, scale, n_boot, outcomes, partial) for s in seeds]
    if workers <= 1:
        parts = [_one(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_one, jobs, chunksize=1)
    return pd.DataFrame([r for p in parts for r in p])


def summarise(reps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Estimates: mean estimate, truth, SE, bias in SE units, coverage; Wald: rejection rate."""
    est = reps[reps["kind"] != "wald"].copy()
    est["z"] = (est["estimate"] - est["truth"]) / est["se"]
    est["covered"] = np.where(est["truth"].notna(), est["z"].abs() <= 1.959964, np.nan)
    keys = ["world", "kind", "subgroup_variable", "subgroup", "tool", "outcome"]
    g = est.groupby(keys, sort=False)
    out = g.agg(n=("estimate", "size"), mean_estimate=("estimate", "mean"),
                mean_truth=("truth", "mean"), mean_se=("se", "mean"),
                sd_estimate=("estimate", "std"), mean_bias_in_se=("z", "mean"),
                coverage=("covered", "mean")).reset_index()
    wald = reps[reps["kind"] == "wald"].groupby(keys, sort=False).agg(
        n=("p_value", "size"), mean_p=("p_value", "mean"),
        rejection_5pct=("p_value", lambda p: float((p < 0.05).mean()))).reset_index()
    return out, wald


def main(argv: list[str] | None = None) -> None:
    """Command line: seeds, workers, output CSV of replications; prints the summaries."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs=2, type=int, default=[0, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", default="report")
    ap.add_argument("--n-boot", type=int, default=99)
    ap.add_argument("--outcomes", nargs="*", default=list(OUTCOMES))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    reps = run(range(*args.seeds), workers=args.workers, scale=args.scale, n_boot=args.n_boot,
               outcomes=tuple(args.outcomes), partial=args.out)
    if args.out:
        reps.to_csv(args.out, index=False)
    pd.set_option("display.width", 250)
    est, wald = summarise(reps)
    fmt = {"float_format": lambda v: f"{v:.4g}"}
    print(est.to_string(index=False, **fmt))
    print(wald.to_string(index=False, **fmt))


if __name__ == "__main__":
    sys.exit(main())
