"""Benchmark nutpie's compilation of the report-scale model: nutpie's C callbacks vs impact's.

Each run is a fresh process (the callbacks' extra compile cost is paid once per process), the
two variants alternate, and the table gives the seconds of the first
``nutpie.compile_pymc_model`` of the process (PyTensor's numba disk cache warm, as after any
earlier fit; imports, data and model building excluded).

Usage::

    .venv/bin/python benchmarks/bench_nutpie_compile.py [--repeat 3] [--likelihood binomial]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import nutpie, nutpie.compile_pymc
sys.path.insert(0, sys.argv[3])  # the checkout: tests/ holds the simulated panel
from tests.bayes_synthetic import synthetic_panel
from impact.bayes._nutpie import light_callbacks
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.model import build_model
light, likelihood = sys.argv[1] == "1", sys.argv[2]
sim = synthetic_panel(2024, n_municipalities=60, departments_per_municipality=10,
                      share_adopting=0.4)
if likelihood == "binomial":
    cfg = ModelConfig("n_employed", "in_force", likelihood="binomial", trials="n_labour_force")
else:
    cfg = ModelConfig("log_income", "in_force")
model = build_model(prepare(sim.frame, cfg), cfg)
t0 = time.perf_counter()
with light_callbacks(light) as used:
    nutpie.compile_pymc_model(model)
print(json.dumps({"light_callbacks": used, "compile_s": time.perf_counter() - t0}))
"""


def main() -> None:
    """Run the alternating fresh-process compilations and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--likelihood", default="binomial")
    args = ap.parse_args()
    # one unmeasured run fills PyTensor's numba disk cache for this model
    runs = [(1, -1)] + [(light, rep) for rep in range(args.repeat) for light in (0, 1)]
    rows = []
    for light, rep in runs:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(light), args.likelihood,
             str(Path(__file__).resolve().parents[1])],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        if rep >= 0:
            rows.append({"run": rep + 1, **row})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False))
    print("\nseconds by callbacks (min / median / max):")
    print(table.groupby("light_callbacks")["compile_s"].agg(["min", "median", "max"]).round(2))


if __name__ == "__main__":
    main()
