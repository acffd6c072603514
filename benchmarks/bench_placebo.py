"""Benchmark and demonstration of :mod:`impact.diagnostics.placebo` on the default world.

Simulates the default world (``--scale``, ``--seed``) and its placebo world (no effect anywhere,
the real selected adoption), runs the three placebos with the primary specification and prints
the placebo tables and the cost: wall time and CPU time (on a machine shared with other jobs the
CPU time says what an idle core would take) of one primary estimate without bootstrap, of the time
placebo (``len(shifts)`` x outcomes estimates with ``--boot`` bootstrap replications) and of the
space placebo (``(1 + --perm)`` x tools x outcomes point estimates).

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_placebo.py [--scale report] [--seed 0]
        [--perm 19] [--boot 49] [--outcomes share_employed ...]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

import impact
from impact import diagnostics
from impact.estimates import OUTCOMES, prepare, primary


def _timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--perm", type=int, default=19)
    parser.add_argument("--boot", type=int, default=49)
    parser.add_argument("--outcomes", nargs="+", default=list(OUTCOMES))
    args = parser.parse_args()
    reg = impact.simulate.registers(args.seed, args.scale)
    worlds = {"factual": reg, "placebo": impact.simulate.placebo(reg)}
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    cost = []
    for name, registers in worlds.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = prepare(impact.panel.build(registers, validate=False).frame)
            _, wall, cpu = _timed(primary, data, args.outcomes[0], n_boot=0, seed=0)
            cost.append({"world": name, "step": "one primary estimate (n_boot=0)", "calls": 1,
                         "wall_s": wall, "cpu_s": cpu})
            tp, wall, cpu = _timed(diagnostics.placebo_time, data, args.outcomes,
                                   n_boot=args.boot, seed=args.seed)
            cost.append({"world": name, "step": f"placebo_time (shifts 2, 3; n_boot={args.boot})",
                         "calls": 2 * len(args.outcomes), "wall_s": wall, "cpu_s": cpu})
            sp, wall, cpu = _timed(diagnostics.placebo_space, data, args.outcomes,
                                   n_perm=args.perm, seed=args.seed)
            cost.append({"world": name, "step": f"placebo_space (n_perm={args.perm})",
                         "calls": (1 + 2 * args.perm) * len(args.outcomes), "wall_s": wall,
                         "cpu_s": cpu})
        table = pd.concat([tp, sp], ignore_index=True).drop(columns=["note"])
        print(f"\n== {name} world (scale {args.scale}, seed {args.seed}) ==")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    cost = pd.DataFrame(cost)
    cost["cpu_s_per_call"] = cost["cpu_s"] / cost["calls"]
    print("\n== cost ==")
    print(cost.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
