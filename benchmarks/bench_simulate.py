"""Benchmark of the synthetic register: time and peak memory per scale.

Run ``python benchmarks/bench_simulate.py [small report national]``. Each scale runs in its own
process so that its peak resident memory (``resource.getrusage``) is its own; the time includes the
counterfactual world and the truth table.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def run_one(scale: str, seed: int = 0) -> dict[str, float | int | str]:
    """Simulate one scale in this process and measure it."""
    from impact import simulate

    start = time.perf_counter()
    reg = simulate.registers(seed=seed, scale=scale)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    residents = reg.persons["department_id"].notna()
    return {
        "scale": scale,
        "departments": len(reg.departments),
        "person_years": len(reg.persons),
        "resident_person_years": int(residents.sum()),
        "residents_2013": int((residents & (reg.persons["year"] == 2013)).sum()),
        "counterfactual_person_years": len(reg.counterfactual.persons),
        "seconds": round(seconds, 1),
        "peak_memory_gib": round(peak_kib / 2**20, 2),
    }


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "--one":
        print(json.dumps(run_one(argv[1])))
        return
    scales = argv or ["small", "report", "national"]
    rows = []
    for scale in scales:
        out = subprocess.run([sys.executable, __file__, "--one", scale], check=True,
                             capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = ("scale", "departments", "person_years", "residents_2013", "seconds", "peak_memory_gib")
    print(" | ".join(f"{h:>15}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]:>15,}" if isinstance(row[h], int) else f"{row[h]:>15}"
                         for h in header))


if __name__ == "__main__":
    main(sys.argv[1:])
