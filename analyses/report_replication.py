"""Replicate the 2015 report's figures 7.1-7.12 from register data (or the embedded simulator).

Usage: ``python analyses/report_replication.py [--data DIR] [--out results/report] [--seed 0]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from impact import describe, io, panel, simulate, spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="register folder (default: simulate)")
    ap.add_argument("--out", type=Path, default=Path("results/report"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    registers = io.read_registers(args.data) if args.data else simulate.registers(seed=args.seed)
    spec.validate(registers)
    built = panel.build(registers, validate=False)
    tidy = describe.trends(built.frame)
    paths = describe.write_figures(tidy, args.out)
    describe.group_sizes(built.frame).to_csv(args.out / "group_sizes.csv", index=False)
    print(f"wrote {len(paths)} figures and their data to {args.out}")


if __name__ == "__main__":
    main()
