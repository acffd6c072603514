"""Benchmark :func:`impact.did.att_gt` (doubly robust, 999 bootstrap draws) against other packages.

Simulated staggered adoption panels (seeded): ``n_units`` units over 10 years, cohorts first
treated in years 3-9 or never, a time-invariant covariate ``x`` that shifts both adoption and
trends, and dynamic effects. Compared, when importable, with ``moderndid``, ``csdid`` and
``differences`` (install them in a scratch environment, never as project dependencies; missing
ones are skipped). Prints seconds per run and the largest absolute difference of their ATT(g,t)
from ours (same cells).

Usage::

    .venv/bin/python benchmarks/bench_att_gt.py [--sizes 600 60000] [--n-boot 999] [--repeat 1]

Other packages can be timed from a separate venv with ``--python /tmp/bench-venv/bin/python``
(our own package is then imported from this checkout via ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd


def simulate(n_units: int, n_periods: int = 10, seed: int = 0) -> pd.DataFrame:
    """Staggered-adoption panel with a confounding covariate and heterogeneous dynamic effects.

    Parameters
    ----------
    n_units, n_periods
        Panel size.
    seed
        Seed of the numpy Generator.

    Returns
    -------
    pandas.DataFrame
        Columns ``unit, year, y, x, cohort`` (cohort 0 = never treated).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_units)
    cohorts = np.array([0, 3, 4, 5, 6, 7, 8, 9], dtype=float)
    logits = np.outer(x, np.linspace(-0.5, 0.5, cohorts.size))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cohort = cohorts[(probs.cumsum(axis=1) > rng.random(n_units)[:, None]).argmax(axis=1)]
    years = np.arange(1, n_periods + 1, dtype=float)
    unit_fe = rng.normal(size=n_units) + 0.5 * x
    year_fe = rng.normal(size=n_periods)
    e = years[None, :] - cohort[:, None]
    treated = (cohort[:, None] > 0) & (e >= 0)
    effect = np.where(treated, 1.0 + 0.2 * e + 0.1 * cohort[:, None], 0.0)
    y = (
        unit_fe[:, None]
        + year_fe[None, :]
        + 0.3 * x[:, None] * years[None, :] / n_periods
        + effect
        + rng.normal(size=(n_units, n_periods))
    )
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(1, n_units + 1), n_periods),
            "year": np.tile(years, n_units),
            "y": y.ravel(),
            "x": np.repeat(x, n_periods),
            "cohort": np.repeat(cohort, n_periods),
        }
    )


def run_impact(df: pd.DataFrame, n_boot: int) -> pd.Series:
    """Our estimator; returns ATT(g,t) indexed by (cohort, time)."""
    from impact.did import att_gt

    r = att_gt(
        df, "y", "unit", "year", "cohort", covariates="x", method="dr", n_boot=n_boot, seed=1
    )
    return r.att_gt.set_index(["cohort", "time"])["att"]


def run_moderndid(df: pd.DataFrame, n_boot: int) -> pd.Series:
    """moderndid's att_gt (Python port of R's did)."""
    import moderndid as md

    r = md.att_gt(
        df,
        yname="y",
        tname="year",
        idname="unit",
        gname="cohort",
        xformla="~x",
        est_method="dr",
        boot=n_boot > 0,
        biters=max(n_boot, 1),
        random_state=1,
    )
    idx = pd.MultiIndex.from_arrays([np.asarray(r.groups, float), np.asarray(r.times, float)])
    return pd.Series(np.asarray(r.att_gt), index=idx)


def run_csdid(df: pd.DataFrame, n_boot: int) -> pd.Series:
    """csdid (Python port of Stata's csdid)."""
    from csdid.att_gt import ATTgt

    d = df.assign(
        unit=df["unit"].astype(int), year=df["year"].astype(int), cohort=df["cohort"].astype(int)
    )
    out = ATTgt(
        yname="y", gname="cohort", idname="unit", tname="year", xformla="y ~ x", data=d
    ).fit(est_method="dr", bstrap=n_boot > 0)
    res = out.summ_attgt().summary2
    idx = pd.MultiIndex.from_arrays([res["Group"].astype(float), res["Time"].astype(float)])
    return pd.Series(res["ATT(g, t)"].to_numpy(float), index=idx)


def run_differences(df: pd.DataFrame, n_boot: int) -> pd.Series:
    """differences' ATTgt."""
    from differences import ATTgt

    d = df.assign(
        year=df["year"].astype(int), cohort=df["cohort"].replace(0, np.nan).astype("Int64")
    ).set_index(["unit", "year"])
    att = ATTgt(data=d, cohort_column="cohort", base_period="varying")
    att.fit(
        formula="y ~ x",
        est_method="dr",
        control_group="never_treated",
        boot_iterations=n_boot,
        random_state=1,
        progress_bar=False,
    )
    res = att.results(to_dataframe=True)
    res.columns = ["_".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in res.columns]
    res = res.reset_index()
    est = res[next(c for c in res.columns if c.endswith("ATT"))]
    idx = pd.MultiIndex.from_arrays([res["cohort"].astype(float), res["time"].astype(float)])
    return pd.Series(est.to_numpy(float), index=idx)


RUNNERS: dict[str, Callable[[pd.DataFrame, int], pd.Series]] = {
    "impact": run_impact,
    "moderndid": run_moderndid,
    "csdid": run_csdid,
    "differences": run_differences,
}


def bench(sizes: list[int], n_boot: int, repeat: int, which: list[str]) -> pd.DataFrame:
    """Time every available runner on every size; report the largest ATT difference to ours."""
    rows = []
    warm = simulate(200)
    for name in which:  # import each package once so that timings exclude imports
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                RUNNERS[name](warm, 0)
        except Exception:  # reported below on the real run
            pass
    for n in sizes:
        df = simulate(n)
        ours = None
        for name in which:
            times, est, err = [], None, ""
            for _ in range(repeat):
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est = RUNNERS[name](df, n_boot)
                except ImportError as exc:
                    err = f"not installed ({exc.name})"
                    break
                except Exception as exc:  # another package failing must not stop the benchmark
                    err = f"failed: {type(exc).__name__}: {str(exc)[:60]}"
                    break
                times.append(time.perf_counter() - t0)
            if name == "impact" and est is not None:
                ours = est
            diff = np.nan
            if est is not None and ours is not None and not err:
                common = ours.index.intersection(est.index)
                if len(common):
                    diff = float(np.nanmax(np.abs(ours.loc[common] - est.loc[common])))
            rows.append(
                {
                    "units": n,
                    "periods": 10,
                    "n_boot": n_boot,
                    "package": name,
                    "seconds": min(times) if times and not err else np.nan,
                    "max_abs_diff_att": diff,
                    "note": err,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[600, 60_000])
    parser.add_argument("--n-boot", type=int, default=999)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--packages", nargs="+", default=list(RUNNERS))
    args = parser.parse_args()
    table = bench(args.sizes, args.n_boot, args.repeat, args.packages)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
