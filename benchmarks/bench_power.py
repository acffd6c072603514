"""Benchmark :func:`impact.diagnostics.power`: replications per second at report scale.

Prints one table: for each panel size (the report-scale simulated panel, its departments
subsampled or duplicated as new departments in new plans of the same municipalities), estimator
(``att_gt``: Callaway-Sant'Anna simple ATT with analytic SEs, the study's primary estimator;
``design``: the closed-form estimator) and backend (``sequential``, ``loky`` with 2 workers),
the wall time of ``n_reps`` replications at one effect, replications per second and the cost of
one replication (wall, and CPU time of the sequential runs: on a machine shared with other jobs
the CPU time says what an idle core would take). The target of issue 12 is 1,000 att_gt replications at report scale in at most
60 s on 2 cores.

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_power.py [--reps 1000] [--scale report]
        [--sizes 0.25 0.5 1 2] [--backends sequential loky]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import impact
from impact.diagnostics import power

OUTCOME, TOOL = "share_employed", "flexible_letting"


def resized(panel: pd.DataFrame, factor: float, seed: int = 0) -> pd.DataFrame:
    """The panel with ``factor`` times its departments: a seeded subsample (factor < 1) or
    copies as new departments in new plans of the same municipalities (factor > 1)."""
    ids = np.sort(panel["department_id"].unique())
    if factor <= 1:
        keep = np.random.default_rng(seed).choice(ids, round(factor * ids.size),
                                                  replace=False)
        return panel[panel["department_id"].isin(keep)]
    parts = []
    offset = int(ids.max()) + 1
    plan_offset = int(panel["plan_id"].max()) + 1
    for k in range(int(np.ceil(factor))):
        copy = panel.copy()
        copy["department_id"] = copy["department_id"] + k * offset
        copy["plan_id"] = copy["plan_id"] + k * plan_offset
        parts.append(copy)
    out = pd.concat(parts, ignore_index=True)
    n_target = round(factor * ids.size)
    return out[out["department_id"].isin(np.sort(out["department_id"].unique())[:n_target])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--scale", default="report")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--backends", nargs="+", default=["sequential", "loky"])
    parser.add_argument("--estimators", nargs="+", default=["att_gt", "design"])
    args = parser.parse_args()

    t0 = time.perf_counter()
    panel = impact.panel.build(impact.simulate.registers(0, args.scale)).frame
    print(f"panel at scale {args.scale!r}: {panel['department_id'].nunique()} departments x "
          f"{panel['year'].nunique()} years, built in {time.perf_counter() - t0:.1f} s; "
          f"{os.cpu_count()} CPU(s)")
    rows = []
    for factor in args.sizes:
        data = resized(panel, factor)
        for estimator in args.estimators:
            for backend in args.backends:
                if factor != 1.0 and backend != "sequential":
                    continue
                n = args.reps if factor == 1.0 else max(args.reps // 5, 20)
                if estimator == "design":
                    n *= 10
                t, cpu = time.perf_counter(), time.process_time()
                res = power(data, outcome=OUTCOME, tool=TOOL, effects=[0.02], n_reps=n,
                            estimator=estimator, backend=backend, n_jobs=2, progress=False)
                secs = time.perf_counter() - t
                cpu = time.process_time() - cpu
                rows.append({"departments": data["department_id"].nunique(),
                             "estimator": estimator, "backend": backend, "n_reps": n,
                             "seconds": round(secs, 2), "reps_per_s": round(n / secs, 1),
                             "ms_per_rep": round(1000 * secs / n, 2),
                             "cpu_ms_per_rep": round(1000 * cpu / n, 2)
                             if backend == "sequential" else float("nan"),
                             "power_at_0.02": round(float(res.table["power"].iloc[0]), 3)})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
                      flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False))
    main_rows = table[(table["estimator"] == "att_gt") & (table["departments"] ==
                                                          panel["department_id"].nunique())]
    for _, r in main_rows.iterrows():
        print(f"att_gt, {r['backend']}: 1,000 replications take {r['ms_per_rep']:.1f} s wall "
              f"on this machine now (target <= 60 s on 2 cores)")
        if r["backend"] == "sequential":
            print(f"  CPU time {r['cpu_ms_per_rep']:.1f} ms per replication: on 2 idle cores "
                  f"1,000 replications need about {r['cpu_ms_per_rep'] / 2:.0f} s")


if __name__ == "__main__":
    main()
