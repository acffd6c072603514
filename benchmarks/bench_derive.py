"""``impact derive`` at full-population scale: time and peak memory.

Generates register extracts (BEF, UDDA, AKM, FAIK per year as parquet, the LBF files, the survey) of
about ``--person-years`` person-years (default 20 million: 2 million persons x 10 years), then runs
``impact.derive.derive`` in a fresh subprocess (so its peak resident memory is its own) with DuckDB's
``--memory-limit``, and prints seconds, peak memory and the rows written. Validation of the derived
tables (in memory, as ``impact validate``) is included.

Usage: ``python benchmarks/bench_derive.py [--person-years 20000000] [--memory-limit 8GB]
[--data DIR]``; ``--data DIR`` keeps the extracts for repeated runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FIRST, LAST = 2004, 2013
N_DEPARTMENTS = 7_000


def generate(folder: Path, person_years: int, seed: int = 1) -> int:
    """Write the extracts; returns the number of BEF person-years."""
    rng = np.random.default_rng(seed)
    years = np.arange(FIRST, LAST + 1)
    n = person_years // len(years)
    pnr = np.arange(n, dtype=np.int64)
    family = pnr // 2
    age0 = rng.integers(0, 90, n)
    ie_type = rng.choice([1, 2, 3], n, p=[0.86, 0.1, 0.04])
    country = np.where(ie_type == 1, "DK", rng.choice(["SE", "DE", "TR", "IQ", "SO", "PL"], n))
    address = family.copy()
    social = address % 6 == 0
    hfaudd = rng.choice([1001, 2001, 3001, 4001, 5001, 6001, 7001, 8001, 9001], n)
    socio_codes = np.array([131, 132, 133, 134, 135, 210, 220, 310, 321, 322, 323, 330, 410, 420])
    for year in years:
        pd.DataFrame({"PNR": pnr, "FAMILIE_ID": family, "ALDER": age0 + (year - FIRST),
                      "ADRESSE_ID": address, "IE_TYPE": ie_type, "OPR_LAND": country}
                     ).to_parquet(folder / f"bef{year}.parquet", index=False)
        pd.DataFrame({"PNR": pnr, "HFAUDD": hfaudd}).to_parquet(
            folder / f"udda{year - 1}.parquet", index=False)
        pd.DataFrame({"PNR": pnr, "SOCIO13": rng.choice(socio_codes, n)}).to_parquet(
            folder / f"akm{year - 1}.parquet", index=False)
        fam = np.unique(family)
        pd.DataFrame({"FAMILIE_ID": fam, "FAMDISPON_NY": rng.normal(300_000, 90_000, len(fam))}
                     ).to_parquet(folder / f"faik{year - 1}.parquet", index=False)
    groups = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    pd.DataFrame({"AUDD": [g * 100 + 1 for g in groups], "H1": [f"H{g}" for g in groups]}
                 ).to_parquet(folder / "disced15.parquet", index=False)
    linked = np.unique(address[social])
    pd.DataFrame({"ADRESSE_ID": linked, "AFDELING": linked % N_DEPARTMENTS + 1}).to_parquet(
        folder / "lbf_adresser.parquet", index=False)
    dept = np.arange(1, N_DEPARTMENTS + 1)
    plan = pd.array([d // 10 if d % 10 == 0 else None for d in dept], dtype="Int64")
    pd.DataFrame({"AFDELING": dept, "ORGNR": dept // 10 + 1, "KOM": 101, "LEJEMAAL": 100,
                  "HELHEDSPLAN": plan}).to_parquet(folder / "lbf_afdelinger.parquet", index=False)
    n_let = n // 20
    pd.DataFrame({"UDLEJNING_ID": np.arange(n_let), "AFDELING": rng.integers(1, N_DEPARTMENTS + 1,
                                                                             n_let),
                  "AAR": rng.integers(FIRST, LAST + 1, n_let), "KANAL": "venteliste",
                  "PNR": rng.integers(0, n, n_let)}).to_parquet(
        folder / "lbf_udlejninger.parquet", index=False)
    pd.DataFrame({"AFDELING": pd.array([1, 2], dtype="Int64"),
                  "HELHEDSPLAN": pd.array([None, None], dtype="Int64"),
                  "TOOL": ["flexible_letting", "municipal_referral"], "START_YEAR": [2007, 2008],
                  "END_YEAR": pd.array([None, 2010], dtype="Int64"), "AGREED_SHARE": [1.0, 0.25],
                  "SOURCE": "bench"}).to_parquet(folder / "tool_adoption.parquet", index=False)
    return n * len(years)


def child(extracts: str, out: str, memory_limit: str) -> None:
    """Run derive in this process and print its time and peak memory as JSON."""
    from impact import derive

    start = time.perf_counter()
    result = derive.derive(extracts, out, memory_limit=memory_limit or None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_gb": usage.ru_maxrss / 1024**2,
                      "cpu_s": usage.ru_utime + usage.ru_stime, "rows": result.rows}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--person-years", type=int, default=20_000_000)
    ap.add_argument("--memory-limit", default="8GB")
    ap.add_argument("--data", type=Path, help="keep the generated extracts in this folder")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp) / "extracts"
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / f"bef{FIRST}.parquet").exists():
            t0 = time.perf_counter()
            n = generate(folder, args.person_years)
            print(f"generated {n:,} person-years in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        out = Path(tmp) / "registers"
        run = subprocess.run([sys.executable, __file__, "--child", str(folder), str(out),
                              args.memory_limit], capture_output=True, text=True, check=True)
        res = json.loads(run.stdout.strip().splitlines()[-1])
    rows = res["rows"]
    print(f"{'step':<16}{'person-years':>14}{'seconds':>9}{'peak GB':>9}{'CPU s':>8}"
          f"  memory limit {args.memory_limit}")
    print(f"{'impact derive':<16}{rows['persons']:>14,}{res['seconds']:>9.1f}{res['peak_gb']:>9.2f}"
          f"{res['cpu_s']:>8.1f}")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
