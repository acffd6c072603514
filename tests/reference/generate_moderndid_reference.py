"""Regenerate ``moderndid_mpdta_*.csv``: Callaway-Sant'Anna results on mpdta from ``moderndid``.

``moderndid`` (PyPI, version recorded in the CSV) is a Python port of R's ``did`` that claims
parity with it; it is NOT a dependency of ``impact``. These values are a secondary, machine-made
reference (the published R output in ``r_did_*.csv`` is the primary one); they pin every
configuration to 1e-8, including analytic standard errors, which R's documentation never prints.

Run in a scratch virtual environment, never in the project's::

    PYENV_VERSION=3.12.1 python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install moderndid
    /tmp/bench-venv/bin/python tests/reference/generate_moderndid_reference.py
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "mpdta.csv"

AGGREGATIONS = [
    ("simple", {}),
    ("group", {}),
    ("calendar", {}),
    ("dynamic", {}),
    ("dynamic", {"balance_e": 1}),
    ("dynamic", {"min_e": -2, "max_e": 2}),
]


def configs() -> list[dict]:
    """All configurations: control x method x covariates x base period, plus extras."""
    out = []
    for control, method, cov, base in itertools.product(
        ["never", "not_yet"], ["dr", "ipw", "reg"], [None, "lpop"], ["varying", "universal"]
    ):
        out.append(
            {
                "control": control,
                "method": method,
                "covariates": cov,
                "base_period": base,
                "anticipation": 0,
                "weights": None,
            }
        )
    for method in ["dr", "ipw", "reg"]:
        out.append(
            {
                "control": "never",
                "method": method,
                "covariates": "lpop",
                "base_period": "varying",
                "anticipation": 1,
                "weights": None,
            }
        )
        out.append(
            {
                "control": "not_yet",
                "method": method,
                "covariates": "lpop",
                "base_period": "varying",
                "anticipation": 0,
                "weights": "w",
            }
        )
    return out


def config_id(c: dict) -> str:
    """Stable name of a configuration."""
    return (
        f"{c['control']}_{c['method']}_{c['covariates'] or 'nocov'}_{c['base_period']}"
        f"_ant{c['anticipation']}_{c['weights'] or 'unweighted'}"
    )


def mpdta_with_weights() -> pd.DataFrame:
    """mpdta plus a deterministic unit-level weight ``w`` in {1, 2, 3}."""
    d = pd.read_csv(DATA)
    d["w"] = 1.0 + (d["countyreal"] % 3)
    return d


def main() -> None:
    import moderndid as md

    warnings.simplefilter("ignore")
    d = mpdta_with_weights()
    cells, aggs, pre = [], [], []
    for c in configs():
        cid = config_id(c)
        r = md.att_gt(
            d,
            yname="lemp",
            tname="year",
            idname="countyreal",
            gname="first.treat",
            xformla=f"~{c['covariates']}" if c["covariates"] else None,
            control_group="nevertreated" if c["control"] == "never" else "notyettreated",
            est_method=c["method"],
            base_period=c["base_period"],
            anticipation=c["anticipation"],
            weightsname=c["weights"],
            boot=False,
        )
        for g, t, a, s in zip(r.groups, r.times, r.att_gt, r.se_gt, strict=True):
            cells.append({"config": cid, "cohort": g, "time": t, "att": a, "se": s})
        pre.append({"config": cid, "stat": r.wald_stat, "p_value": r.wald_pvalue})
        for kind, kw in AGGREGATIONS:
            a = md.aggte(r, type=kind, boot=False, **kw)
            tag = ",".join(f"{k}={v}" for k, v in kw.items())
            aggs.append(
                {
                    "config": cid,
                    "aggregation": kind,
                    "options": tag,
                    "key": "overall",
                    "att": a.overall_att,
                    "se": a.overall_se,
                }
            )
            if kind != "simple":
                for k, v, s in zip(a.event_times, a.att_by_event, a.se_by_event, strict=True):
                    aggs.append(
                        {
                            "config": cid,
                            "aggregation": kind,
                            "options": tag,
                            "key": str(float(k)),
                            "att": v,
                            "se": s,
                        }
                    )
    version = md.__version__
    for name, rows in [("cells", cells), ("aggte", aggs), ("pretest", pre)]:
        frame = pd.DataFrame(rows)
        frame.insert(0, "generator", f"moderndid {version}")
        frame.to_csv(HERE / f"moderndid_mpdta_{name}.csv", index=False, float_format="%.12g")
    print(f"wrote {len(cells)} cells, {len(aggs)} aggregates, {len(pre)} pre-tests")
    assert np.isfinite(pd.DataFrame(cells)["att"]).any()


if __name__ == "__main__":
    main()
