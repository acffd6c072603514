"""Coverage of the hierarchical model's 90% intervals on the register simulator (issue 15, item 4).

Each replication simulates a world (``scale="small"``: 20 municipalities, 220 departments,
2003-2013), builds its panel and fits :func:`impact.bayes.hierarchical` to ``share_employed``
as the pipeline does (department-years with residents 18-64 in the labour force; normal
likelihood by default, or binomial on ``n_employed`` of ``n_labour_force_18_64``).

Estimands, from the simulator's truth (``share_employed_effect`` = factual - counterfactual per
department-year): the model's effect of group ``m`` multiplies the treatment ``d``, so its truth
is the effect per unit of treatment over the group's treated department-years,
``sum(effect) / sum(d)`` (d > 0); the pooled truth is the mean of the groups' truths. The binomial
effects are compared on the percentage-point scale (``*_pp`` columns, / 100).

``placebo=True``: the outcome of the counterfactual world (no tool anywhere) with the factual
adoption and treatment, so every truth is 0.

Treatments: ``"intensity"`` (the same year's share of lettings through flexible letting, the
pipeline's current column), ``"lagged"`` (last year's share: a tool in use in year t first
changes the composition on 1 January t + 1) or ``"cumulative"`` (sum of past years' shares,
capped at 1).

Usage (slow; keep the seed count small on a shared machine)::

    PYTHONPATH=. python -m tests.simstudy.calibration_bayes --seeds 0 40 --treatment lagged
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from impact import panel, simulate

TOOL = "flexible_letting"
OUTCOME = "share_employed"


def _treatment(frame: pd.DataFrame, kind: str) -> pd.Series:
    share = frame[f"intensity_{TOOL}"].fillna(0.0)
    if kind == "intensity":
        return share
    by = share.groupby(frame["department_id"], sort=False)
    lagged = by.shift(1).fillna(0.0)
    if kind == "lagged":
        return lagged
    if kind == "cumulative":
        return lagged.groupby(frame["department_id"], sort=False).cumsum().clip(upper=1.0)
    raise ValueError(f"treatment must be intensity, lagged or cumulative, not {kind!r}")


def world(seed: int, *, placebo: bool = False, treatment: str = "lagged") -> pd.DataFrame:
    """The panel of one replication with ``d`` (treatment), ``y`` (outcome) and ``effect``."""
    reg = simulate.registers(seed=seed, scale="small")
    frame = panel.build(reg, validate=False).frame.sort_values(["department_id", "year"])
    frame = frame.reset_index(drop=True)
    frame["d"] = _treatment(frame, treatment)
    truth = reg.truth[["department_id", "year", f"{OUTCOME}_effect"]]
    frame = frame.merge(truth, on=["department_id", "year"], how="left", validate="1:1")
    frame["effect"] = frame.pop(f"{OUTCOME}_effect").fillna(0.0)
    if placebo:
        cf = panel.build(reg.counterfactual, validate=False).frame
        cols = [OUTCOME, "n_employed", "n_labour_force_18_64"]
        frame = frame.drop(columns=cols).merge(
            cf[["department_id", "year", *cols]], on=["department_id", "year"], validate="1:1"
        )
        frame["effect"] = 0.0
    frame = frame[frame["n_labour_force_18_64"] > 0].reset_index(drop=True)
    return frame


def truths(frame: pd.DataFrame, by: str = "municipality_id") -> pd.Series:
    """Per-group truth ``sum(effect) / sum(d)`` over treated cells; ``"pooled"``: their mean."""
    treated = frame[frame["d"] > 0]
    sums = treated.groupby(treated[by].astype(str))[["effect", "d"]].sum()
    per_group = sums["effect"] / sums["d"]
    return pd.concat([pd.Series({"pooled": per_group.mean()}), per_group])


def replicate(
    seed: int,
    *,
    placebo: bool = False,
    treatment: str = "lagged",
    likelihood: str = "normal",
    **sampling: object,
) -> pd.DataFrame:
    """One fit: per group the 90% interval, the truth and whether it covers it."""
    from impact import bayes

    frame = world(seed, placebo=placebo, treatment=treatment)
    kw: dict[str, object] = {"likelihood": likelihood, "seed": seed, **sampling}
    if likelihood == "binomial":
        outcome, kw["trials"] = "n_employed", "n_labour_force_18_64"
    else:
        outcome = OUTCOME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayes.hierarchical(frame, outcome, "d", **kw)
    sfx, scale = ("_pp", 100.0) if likelihood == "binomial" else ("", 1.0)
    eff = fit.effects.set_index("group")
    truth = truths(frame)
    out = pd.DataFrame({
        "lower_90": eff[f"lower_90{sfx}"] / scale,
        "upper_90": eff[f"upper_90{sfx}"] / scale,
        "mean": eff[f"mean{sfx}"] / scale,
    }).join(truth.rename("truth"), how="inner")
    out["covered"] = (out["lower_90"] <= out["truth"]) & (out["truth"] <= out["upper_90"])
    out["seed"], out["placebo"], out["converged"] = seed, placebo, fit.converged
    out["attempts"] = int(fit.diagnostics["n_attempts"].iloc[0])
    return out.rename_axis("group").reset_index()


def coverage(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the pooled and the municipality intervals, by world."""
    kind = np.where(rows["group"] == "pooled", "pooled", "municipality")
    return (
        rows.assign(kind=kind)
        .groupby(["placebo", "kind"])
        .agg(n=("covered", "size"), coverage=("covered", "mean"), converged=("converged", "mean"))
    )


def main() -> None:
    """Run the study over a seed range and print the coverage table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs=2, type=int, default=[0, 40], metavar=("FIRST", "STOP"))
    ap.add_argument("--treatment", default="lagged")
    ap.add_argument("--likelihood", default="normal")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--out", default=None, help="CSV of every group of every replication")
    args = ap.parse_args()
    rows = []
    for seed in range(*args.seeds):
        for placebo in (False, True):
            rows.append(
                replicate(
                    seed,
                    placebo=placebo,
                    treatment=args.treatment,
                    likelihood=args.likelihood,
                    draws=args.draws,
                    tune=args.tune,
                    chains=args.chains,
                )
            )
            print(rows[-1].iloc[:1].to_string(index=False), flush=True)
    table = pd.concat(rows, ignore_index=True)
    if args.out:
        table.to_csv(args.out, index=False)
    print(coverage(table).to_string())


if __name__ == "__main__":
    main()
