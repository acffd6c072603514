"""Composition measures of one world per department and year, and the truth table.

Computed by the simulator's own simple code from its own records (not by a panel builder), with the
definitions of the 2015 report (ch. 7):

- ``share_qualifying_edu``: share with a qualifying education (kompetencegivende uddannelse,
  DISCED 20-80) among residents aged 18-64 in the labour force; count ``n_labour_force``;
- ``share_employed``: share employed among residents aged 18-64 in the labour force;
- ``mean_household_income``: mean household disposable income (nominal DKK) over residents aged
  18-64; count ``n_18_64``;
- ``share_non_western``: share of non-Western origin among all residents; count ``n_residents``.

Movers (a move inside a department is not a move): in-movers to d in t are persons in d at 1 January
t who were elsewhere (another department or outside the sector) a year before, measured at t;
arrivals from abroad and newborns are not in-movers. Out-movers from d in t are persons in d at t - 1
who at t live elsewhere (another department or outside the sector), measured at t - 1 (their last
status in d); deaths and emigrants are not out-movers. The same four measures are computed for both
with prefixes ``in_`` and ``out_`` and counts ``n_in_movers`` / ``n_out_movers``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.simulate.config import FIRST_YEAR, LAST_YEAR
from impact.simulate.dynamics import (
    CHANNELS,
    DEST_EMIGRATE,
    ORIGIN_ABROAD,
    WorldRecord,
)
from impact.simulate.population import qualifying

YEARS = np.arange(FIRST_YEAR, LAST_YEAR + 1)
MEASURES = ("share_qualifying_edu", "share_employed", "mean_household_income", "share_non_western")
COUNTS = ("n_labour_force", "n_18_64", "n_residents")


def _measures(n_dept: int, dept: np.ndarray, year: np.ndarray, age: np.ndarray, lf: np.ndarray,
              emp: np.ndarray, edu: np.ndarray, nw: np.ndarray, hhinc: np.ndarray
              ) -> dict[str, np.ndarray]:
    """The four measures and their counts on the department x year grid (NaN where no one)."""
    g = dept.astype(np.int64) * YEARS.size + (year.astype(np.int64) - FIRST_YEAR)
    size = n_dept * YEARS.size
    a1864 = (age >= 18) & (age <= 64)
    inlf = a1864 & lf

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g, mask.astype(np.float64), minlength=size)

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(g, np.where(mask, values, 0.0), minlength=size)

    n_lf = count(inlf)
    n_a = count(a1864)
    n_all = count(np.ones(g.size, dtype=bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "share_qualifying_edu": total(qualifying(edu), inlf) / n_lf,
            "share_employed": total(emp, inlf) / n_lf,
            "mean_household_income": total(hhinc.astype(np.float64), a1864) / n_a,
            "share_non_western": total(nw, np.ones(g.size, dtype=bool)) / n_all,
            "n_labour_force": n_lf,
            "n_18_64": n_a,
            "n_residents": n_all,
        }
    return out


def world_measures(rec: WorldRecord, n_dept: int) -> dict[str, np.ndarray]:
    """Stock, in-mover and out-mover measures of one world, flattened department-major."""
    R = rec.rows
    res = _measures(n_dept, R["dept"], R["year"], R["age"], R["lf"], R["emp"], R["edu"], R["nw"],
                    R["hhinc"])
    E = rec.entrants
    m = (E["origin"] != ORIGIN_ABROAD) & (E["age"] >= 1)
    ins = _measures(n_dept, E["dept"][m], E["year"][m], E["age"][m], E["lf"][m], E["emp"][m],
                    E["edu"][m], E["nw"][m], E["hhinc"][m])
    L = rec.leavers
    m = L["dest"] != DEST_EMIGRATE
    outs = _measures(n_dept, L["dept"][m], L["year"][m], L["age"][m], L["lf"][m], L["emp"][m],
                     L["edu"][m], L["nw"][m], L["hhinc"][m])
    for name, vals in ins.items():
        res["in_" + name.replace("n_residents", "n_movers")] = vals
    for name, vals in outs.items():
        res["out_" + name.replace("n_residents", "n_movers")] = vals
    res["n_in_movers"] = res.pop("in_n_movers")
    res["n_out_movers"] = res.pop("out_n_movers")
    first = np.tile(YEARS == FIRST_YEAR, n_dept)
    for name in list(res):
        if name.startswith(("in_", "out_", "n_in", "n_out")):
            res[name] = np.where(first, np.nan, res[name])  # 2003 is the baseline: no movers
    return res


def intensities(rec: WorldRecord, n_dept: int) -> dict[str, np.ndarray]:
    """Lettings per department and calendar year, and the share through each channel."""
    Lt = rec.lettings
    keep = Lt["year"] <= LAST_YEAR
    g = Lt["dept"][keep].astype(np.int64) * YEARS.size + (Lt["year"][keep] - FIRST_YEAR)
    size = n_dept * YEARS.size
    n = np.bincount(g, minlength=size).astype(np.float64)
    out = {"n_lettings": n}
    with np.errstate(invalid="ignore", divide="ignore"):
        for code, name in enumerate(CHANNELS):
            out[f"intensity_{name}"] = np.bincount(
                g, (Lt["channel"][keep] == code).astype(np.float64), minlength=size) / n
    return out


def world_summary(rec: WorldRecord, n_dept: int) -> dict[str, np.ndarray]:
    """Measures and letting intensities of one world (what :func:`truth_table` needs from it)."""
    out = world_measures(rec, n_dept)
    out.update({f"lettings:{k}": v for k, v in intensities(rec, n_dept).items()})
    return out


def _price_factors() -> np.ndarray:
    """Nominal -> fixed prices of the contract's price base, per year of :data:`YEARS`."""
    from impact import spec

    return np.asarray(spec.deflator(YEARS), dtype="float64")


def effect_column(outcome: str, tool: str | None = None) -> str:
    """Truth column holding the true effect on a panel outcome.

    Parameters
    ----------
    outcome
        Panel measure (``share_employed``, ``mean_household_income`` (fixed prices),
        ``mean_household_income_nominal``, ``in_share_employed``, ...).
    tool
        ``None``: against the world without any tool; a tool: against the world without that
        tool alone.
    """
    if outcome.endswith("mean_household_income_nominal"):
        base = outcome.removesuffix("_nominal")
    elif outcome.endswith("mean_household_income"):
        base = outcome + "_real"
    else:
        base = outcome
    return f"{base}_effect" + (f"_{tool}" if tool else "")


def truth_table(departments: pd.DataFrame, factual: dict[str, np.ndarray],
                counterfactual: dict[str, np.ndarray], referral: np.ndarray, flexible: np.ndarray,
                *, without: dict[str, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """One row per department_id x year (2003-2013).

    Parameters
    ----------
    departments
        The departments table (its row order is the department index of the summaries).
    factual, counterfactual
        :func:`world_summary` of the two worlds.
    referral, flexible
        Agreed shares in force per department and letting year (:func:`.world.schedule`).
    without
        :func:`world_summary` of the world without one tool, keyed by tool: the factual world
        with that tool's spells removed (the other tool as agreed, so flexible letting takes the
        vacancies that referral took from it), on the same random numbers.

    Returns
    -------
    DataFrame
        ``<measure>_factual``, ``<measure>_counterfactual``, ``<measure>_effect`` (factual -
        counterfactual) for the stock and for ``in_`` / ``out_`` movers; the counts behind them in
        both worlds (``n_labour_force``, ``n_18_64``, ``n_residents``, ``n_in_movers``,
        ``n_out_movers``, ``in_n_labour_force``, ...); realised letting intensities of the factual
        world (``n_lettings``, ``intensity_<channel>``: share of the calendar year's lettings); the
        shares of vacancies effectively reserved for each tool in the calendar year
        (``effective_share_municipal_referral``, ``effective_share_flexible_letting``: the agreed
        shares after flexible letting gives way to referral where the agreements add up to more
        than all vacancies) and ``in_use_<tool>`` (effective share > 0; a tool can be formally in
        force in ``tool_adoption`` and still not in use). A tool in use in year t first changes the
        composition at 1 January t + 1.

        With ``without``: ``<measure>_effect_<tool>`` = factual - world without that tool alone,
        the truth of a tool-specific estimand (the other tool at its factual path); it is exactly
        zero for departments that never had the tool (SUTVA) and up to the first year in force.

        Income measures are nominal DKK (as the households table); each also comes in fixed prices
        of ``data_spec/study.toml``'s price base (as the panel's ``mean_household_income``), named
        ``<prefix>mean_household_income_real_<kind>``. :func:`effect_column` maps a panel outcome
        to its truth column.
    """
    n = len(departments)
    frame: dict[str, np.ndarray] = {
        "department_id": np.repeat(departments["department_id"].to_numpy(), YEARS.size),
        "year": np.tile(YEARS, n).astype(np.int64),
    }
    for name in factual:
        if name.startswith("lettings:"):
            continue
        if name.startswith("n_") or "_n_" in name:
            frame[f"{name}_factual"] = factual[name].astype(np.float64)
            frame[f"{name}_counterfactual"] = counterfactual[name].astype(np.float64)
        else:
            frame[f"{name}_factual"] = factual[name]
            frame[f"{name}_counterfactual"] = counterfactual[name]
            frame[f"{name}_effect"] = factual[name] - counterfactual[name]
    for name in factual:
        if name.startswith("lettings:"):
            frame[name.split(":", 1)[1]] = factual[name]
    for tool, summary in (without or {}).items():
        for name in factual:
            if name.startswith("lettings:") or name.startswith("n_") or "_n_" in name:
                continue
            frame[f"{name}_effect_{tool}"] = factual[name] - summary[name]
    factor = np.tile(_price_factors(), n)
    for name in [c for c in frame if "mean_household_income" in c]:
        if not name.endswith(("_factual", "_counterfactual")):
            continue
        frame[name.replace("mean_household_income", "mean_household_income_real")] = (
            frame[name] * factor)
    for name in [c for c in frame if "mean_household_income_effect" in c]:
        real = name.replace("mean_household_income", "mean_household_income_real")
        base = name.split("mean_household_income_effect")[0] + "mean_household_income_real"
        if name.endswith("_effect"):  # factual - counterfactual, in fixed prices
            frame[real] = frame[f"{base}_factual"] - frame[f"{base}_counterfactual"]
        else:  # factual - world without one tool: the nominal difference in fixed prices
            frame[real] = frame[name] * factor
    ti = YEARS - FIRST_YEAR
    frame["effective_share_municipal_referral"] = referral[:, ti].ravel()
    frame["effective_share_flexible_letting"] = flexible[:, ti].ravel()
    frame["in_use_municipal_referral"] = frame["effective_share_municipal_referral"] > 0
    frame["in_use_flexible_letting"] = frame["effective_share_flexible_letting"] > 0
    out = pd.DataFrame(frame)
    return out.sort_values(["department_id", "year"], kind="stable").reset_index(drop=True)
