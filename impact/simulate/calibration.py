"""Calibration of the simulated register against the 2015 report's figures (DIGEST section 7).

:func:`calibration` recomputes each figure from the simulated tables with simple code of its own
and compares it with a target interval read from the report (or, where the report is silent, an
assumption stated in the ``source`` column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.registers import Registers
from impact.simulate.config import price_index

GROUP_TARGETS = {"both": 296, "referral_only": 98, "flexible_only": 35, "neither": 69}


def _groups(reg: Registers) -> pd.Series:
    """Report group per department from plan-level use of KA/FU in 2006-2010."""
    ta = reg.tool_adoption
    deps = reg.departments
    end = ta["end_year"].fillna(9999)
    used = ta[(ta["start_year"] <= 2010) & (end >= 2006) & ta["plan_id"].notna()]
    ka = set(used.loc[used["tool"] == "municipal_referral", "plan_id"].astype(int))
    fu = set(used.loc[used["tool"] == "flexible_letting", "plan_id"].astype(int))
    plan = deps["plan_id"]
    out = []
    for p in plan:
        if pd.isna(p):
            out.append("unsupported")
            continue
        a, b = int(p) in ka, int(p) in fu
        out.append("both" if a and b else "referral_only" if a else "flexible_only" if b else "neither")
    return pd.Series(out, index=deps["department_id"].to_numpy())


def _stock(persons: pd.DataFrame) -> pd.DataFrame:
    p = persons[persons["department_id"].notna()]
    return p


def calibration(reg: Registers) -> pd.DataFrame:
    """Simulated calibration figures against the report's targets.

    Parameters
    ----------
    reg
        Registers from :func:`impact.simulate.registers` (report scale for the department counts).

    Returns
    -------
    DataFrame
        One row per figure: ``figure``, ``value``, ``target_low``, ``target_high``, ``ok``,
        ``source``. Shares are in percent, incomes in nominal DKK.
    """
    rows: list[tuple[str, float, float, float, str]] = []
    groups = _groups(reg)
    for g, n in GROUP_TARGETS.items():
        rows.append((f"departments in group {g}", float((groups == g).sum()), n, n,
                     "ch7: 296/98/35/69 departments"))
    deps = reg.departments
    n_plans = deps["plan_id"].nunique()
    rows.append(("departments per plan", float(deps["plan_id"].notna().sum() / n_plans), 3.0, 3.8,
                 "ch0: 545 departments in 162 plans (3.4)"))
    fu_plans = deps.loc[groups.to_numpy() == "flexible_only", "plan_id"].nunique()
    rows.append(("plans in group flexible_only", float(fu_plans), 10, 10, "ch7 fn22: 10 plans"))

    p = reg.persons
    res = p[p["department_id"].notna()]
    hh = reg.households.set_index(["household_id", "year"])["disposable_income"]
    a1864 = res["age"].between(18, 64)
    lf = res[a1864 & res["in_labour_force"]]
    edu = lf["education"].between(20, 80).groupby(lf["year"]).mean() * 100
    emp = lf["employed"].groupby(lf["year"]).mean() * 100
    adults = res[a1864]
    inc_vals = hh.reindex(pd.MultiIndex.from_arrays([adults["household_id"], adults["year"]])).to_numpy()
    inc = pd.Series(inc_vals, index=adults.index).groupby(adults["year"]).mean()
    inc = inc / pd.Series({y: price_index(y) for y in inc.index})  # 2013 prices
    nw = res["non_western"].groupby(res["year"]).mean() * 100
    emp_all = res["employed"].groupby(res["year"]).mean() * 100
    under18 = (res["age"] < 18).groupby(res["year"]).mean() * 100
    over64 = (res["age"] > 64).groupby(res["year"]).mean() * 100

    rows += [
        ("qualifying education 18-64 in labour force 2004 (%)", edu[2004], 45, 55, "fig 7.1"),
        ("qualifying education 18-64 in labour force 2013 (%)", edu[2013], 48, 60, "fig 7.1"),
        ("qualifying education change 2004-2013 (pp)", edu[2013] - edu[2004], 1, 7,
         "fig 7.1: small rise"),
        ("employed among 18-64 in labour force 2004 (%)", emp[2004], 58, 70, "fig 7.4"),
        ("employed among 18-64 in labour force 2013 (%)", emp[2013], 58, 70, "fig 7.4"),
        ("employment rise 2004-2008 (pp)", emp[2008] - emp[2004], 1, 8, "fig 7.4: rise 2004-08"),
        ("employment dip 2008-2011 (pp)", emp[2008] - emp[2011], 1, 8, "fig 7.4: fall 2009-11/12"),
        ("household disposable income 18-64 2004 (DKK, 2013 prices)", inc[2004], 145_000, 165_000,
         "fig 7.7 / B1.2: 147,197"),
        ("household disposable income 18-64 2013 (DKK, 2013 prices)", inc[2013], 155_000, 175_000,
         "fig 7.7: just over 160,000-170,000"),
        ("non-Western origin, all residents 2004 (%)", nw[2004], 20, 30, "fig 7.10"),
        ("non-Western origin, all residents 2013 (%)", nw[2013], 23, 32, "fig 7.10"),
        ("non-Western change 2004-2013 (pp)", nw[2013] - nw[2004], 0.5, 6, "fig 7.10: slight rise"),
        ("employed among all residents 2004 (%)", emp_all[2004], 22, 33, "ch7: 25-30%"),
        ("under 18, all residents 2013 (%)", under18[2013], 20, 32, "B1.2: 27.0%"),
        ("over 64, all residents 2013 (%)", over64[2013], 8, 20, "B1.2: 11.4%, B1.1: 23.6%"),
    ]

    movers = _movers(p)
    ins, outs = movers
    emp_in = _mean_by_year(ins, "employed")
    emp_out = _mean_by_year(outs, "employed")
    inc_in = _income(ins, hh)
    inc_out = _income(outs, hh)
    rows += [
        ("in-movers minus out-movers, employment 2004-13 (pp)", (emp_in - emp_out) * 100, -10, -0.5,
         "figs 7.5/7.6: in-movers slightly below"),
        ("in-movers / out-movers, household income 2004-13 (ratio)", inc_in / inc_out, 0.85, 0.995,
         "figs 7.8/7.9: in-movers slightly below"),
    ]
    # Moves and turnover.
    n_between, n_moves = _move_shares(p)
    rows.append(("moves between departments / all moves (%)", 100 * n_between / n_moves, 35, 45,
                 "ch7: about 40%"))
    lets = reg.lettings
    lets_per_year = lets[lets["year"].between(2004, 2012)].groupby("year").size().mean()
    rows.append(("turnover: lettings per dwelling and year (%)",
                 100 * lets_per_year / deps["n_dwellings"].sum(), 10, 15,
                 "assumption (report gives none): 10-15%"))
    out = pd.DataFrame(rows, columns=["figure", "value", "target_low", "target_high", "source"])
    out["value"] = out["value"].astype(float)
    out["ok"] = (out["value"] >= out["target_low"]) & (out["value"] <= out["target_high"])
    return out[["figure", "value", "target_low", "target_high", "ok", "source"]]


def _movers(p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """In-movers (measured at t) and out-movers (measured at t - 1), 2004-2013, 18-64 in LF."""
    prev = p[["person_id", "year", "department_id"]].copy()
    prev["year"] = prev["year"] + 1
    prev = prev.rename(columns={"department_id": "prev_department"})
    cur = p.merge(prev, on=["person_id", "year"], how="inner")
    moved = cur["department_id"].astype("float64").fillna(-1) != cur["prev_department"].astype(
        "float64").fillna(-1)
    ins = cur[moved & cur["department_id"].notna() & (cur["year"] >= 2004)]
    nxt = p[["person_id", "year", "department_id"]].copy()
    nxt["year"] = nxt["year"] - 1
    nxt = nxt.rename(columns={"department_id": "next_department"})
    cur2 = p.merge(nxt, on=["person_id", "year"], how="inner")
    moved2 = cur2["department_id"].astype("float64").fillna(-1) != cur2["next_department"].astype(
        "float64").fillna(-1)
    outs = cur2[moved2 & cur2["department_id"].notna() & (cur2["year"] >= 2003)]
    return ins, outs


def _mean_by_year(frame: pd.DataFrame, col: str) -> float:
    f = frame[frame["age"].between(18, 64) & frame["in_labour_force"]]
    return float(f[col].mean())


def _income(frame: pd.DataFrame, hh: pd.Series) -> float:
    f = frame[frame["age"].between(18, 64)]
    vals = hh.reindex(pd.MultiIndex.from_arrays([f["household_id"], f["year"]])).to_numpy()
    return float(np.nanmean(vals))


def _move_shares(p: pd.DataFrame) -> tuple[int, int]:
    prev = p[["person_id", "year", "department_id"]].copy()
    prev["year"] = prev["year"] + 1
    cur = p[["person_id", "year", "department_id"]].merge(prev, on=["person_id", "year"],
                                                            suffixes=("", "_prev"))
    a = cur["department_id"].astype("float64").fillna(-1).to_numpy()
    b = cur["department_id_prev"].astype("float64").fillna(-1).to_numpy()
    moved = (a != b) & ((a >= 0) | (b >= 0))
    between = moved & (a >= 0) & (b >= 0)
    return int(between.sum()), int(moved.sum())


def format_calibration(table: pd.DataFrame) -> str:
    """The calibration table as aligned text (for ``impact simulate --calibration``)."""
    lines = [f"{'figure':<58} {'value':>12} {'target':>23}  ok"]
    for row in table.itertuples(index=False):
        lines.append(f"{row.figure:<58} {row.value:>12,.2f} {row.target_low:>10,.1f}-{row.target_high:<12,.1f}"
                     f"  {'yes' if row.ok else 'NO'}")
    return "\n".join(lines)
