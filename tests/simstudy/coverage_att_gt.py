"""Replications of the register simulator with random staggered adoption, for coverage checks.

Each replication draws a world (``scale="small"``), assigns flexible letting to a random half of the
departments with random start years (2005-2010) and agreed shares (50% or 100%), simulates the registers
with their counterfactual, builds the panel and estimates the simple ATT of ``att_gt`` on
``share_employed``. The truth is the mean true effect over the treated department-years from adoption
on: exactly what the simple aggregation targets in a balanced panel.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from impact import did, panel, simulate
from impact.estimates import true_simple_att
from impact.simulate.world import build_world


def random_adoption(seed: int) -> pd.DataFrame:
    """Random staggered flexible letting for half of the departments of a small world."""
    departments = build_world(seed, simulate.config_for_scale("small")).departments
    rng = np.random.default_rng([seed, 7])
    ids = departments["department_id"].to_numpy()
    treated = rng.choice(ids, size=ids.size // 2, replace=False)
    return pd.DataFrame(
        {
            "department_id": treated,
            "tool": "flexible_letting",
            "start_year": rng.integers(2005, 2011, treated.size),
            "agreed_share": rng.choice([0.5, 1.0], treated.size),
        }
    )


def replicate(seed: int, outcome: str = "share_employed") -> dict[str, float]:
    """One replication: estimate, SE, 95% interval and truth of the simple ATT."""
    reg = simulate.registers(seed=seed, scale="small", adoption=random_adoption(seed))
    frame = panel.build(reg, validate=False).frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = did.att_gt(
            frame,
            outcome,
            "department_id",
            "year",
            "cohort_flexible_letting",
            n_boot=0,
            unbalanced="drop",
        )
    overall = res.aggregate("simple").overall
    return {"seed": seed, "att": overall.att, "se": overall.se, "lower": float(overall.lower),
            "upper": float(overall.upper),
            "truth": true_simple_att(frame, reg.truth, outcome, "flexible_letting")}


def run(seeds: range, workers: int = 2, *, estimator: str = "att_gt") -> pd.DataFrame:
    """All replications, in ``workers`` processes (``estimator``: att_gt or dose_response)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fn = {"att_gt": replicate, "dose_response": replicate_dose}[estimator]
    # spawn, not fork: the parent runs threaded libraries (BLAS, DuckDB)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        rows = list(pool.map(fn, seeds))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    out = run(range(n))
    out.to_csv(sys.argv[2] if len(sys.argv) > 2 else "coverage_att_gt.csv", index=False)
    covered = ((out["lower"] <= out["truth"]) & (out["truth"] <= out["upper"])).mean()
    bias = (out["att"] - out["truth"]).mean()
    print(
        f"replications {n}: coverage {covered:.3f}, mean bias {bias:.5f} "
        f"= {bias / out['se'].mean():.3f} SE, sd(z) {((out['att'] - out['truth']) / out['se']).std():.3f}"
    )


def replicate_dose(seed: int, outcome: str = "share_employed") -> dict[str, float]:
    """One replication for ``dose_response``: the overall ATT^o of the intensity design.

    The dose is the realised share of lettings through flexible letting (``intensity_...``); the
    truth is the same mean true effect over treated department-years as for :func:`replicate`.
    """
    reg = simulate.registers(seed=seed, scale="small", adoption=random_adoption(seed))
    frame = panel.build(reg, validate=False).frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = did.dose_response(frame, outcome, dose="intensity_flexible_letting",
                                cohort="cohort_flexible_letting", n_boot=199, seed=seed)
    row = res.tidy().set_index("term").loc["ATT^o"]
    return {"seed": seed, "att": float(row["estimate"]), "se": float(row["se"]),
            "lower": float(row["lower"]), "upper": float(row["upper"]),
            "truth": true_simple_att(frame, reg.truth, outcome, "flexible_letting")}
