"""Turn a world's records into the five register tables of ``data_spec/``.

Persons who leave the sector keep one row with ``department_id`` null in the year after they leave
(then they are no longer followed: their absence later is not a death). Persons who move in from
outside the sector have one row with ``department_id`` null in the year before (the household they
arrive with, its income deflated one year). Arrivals from abroad have no row the year before;
emigrants and the dead have no row the year after. Only rows of the study window 2003-2013 are
written; lettings of 2013 have tenants who first appear in 2014, so their ``person_id`` is null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.simulate.config import FIRST_YEAR, LAST_YEAR, SimulationConfig
from impact.simulate.dynamics import (
    CHANNELS,
    DEST_OTHER,
    DEST_OUTSIDE,
    ORIGIN_OTHER,
    ORIGIN_OUTSIDE,
    WorldRecord,
)
from impact.simulate.linking import Links
from impact.simulate.population import DWELL_BITS, wage_index

_COLS = ("pid", "year", "hh", "dept", "dwell", "age", "nw", "lf", "emp", "edu", "hhinc")


def _growth(cfg: SimulationConfig, year: np.ndarray, step: int) -> np.ndarray:
    idx = {y: wage_index(cfg, y + step) / wage_index(cfg, y) for y in range(FIRST_YEAR - 1, LAST_YEAR + 2)}
    return np.array([idx[int(y)] for y in range(FIRST_YEAR - 1, LAST_YEAR + 2)])[
        year.astype(np.int64) - (FIRST_YEAR - 1)]


def build_tables(rec: WorldRecord, links: Links, departments: pd.DataFrame,
                 cfg: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Persons, households and lettings of one world.

    Returns
    -------
    (persons, households, lettings)
    """
    R, E, L = rec.rows, rec.entrants, rec.leavers
    parts = [{k: R[k] for k in _COLS}]

    # Leavers out of the sector: one row (department null) the year after.
    out = (L["dest"] == DEST_OUTSIDE) | ((L["dest"] == DEST_OTHER) & ~links.leaver_linked)
    li = np.flatnonzero(out)
    g = _growth(cfg, L["year"][li] - 1, 1)
    parts.append({
        "pid": L["pid"][li], "year": L["year"][li], "hh": L["hh"][li],
        "dept": np.full(li.size, -1), "dwell": np.full(li.size, -1), "age": L["age"][li] + 1,
        "nw": L["nw"][li], "lf": L["lf"][li], "emp": L["emp"][li], "edu": L["edu"][li],
        "hhinc": L["hhinc_after"][li] * g})

    # Entrants from outside the sector: one row (department null) the year before.
    inn = (((E["origin"] == ORIGIN_OUTSIDE) | ((E["origin"] == ORIGIN_OTHER) & ~links.entrant_linked))
           & (E["age"] >= 1))
    ei = np.flatnonzero(inn)
    g = _growth(cfg, E["year"][ei], -1)
    parts.append({
        "pid": E["pid"][ei], "year": E["year"][ei] - 1, "hh": E["hh"][ei],
        "dept": np.full(ei.size, -1), "dwell": np.full(ei.size, -1), "age": E["age"][ei] - 1,
        "nw": E["nw"][ei], "lf": E["lf"][ei], "emp": E["emp"][ei], "edu": E["edu"][ei],
        "hhinc": E["hhinc"][ei] * g})

    cat = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in _COLS}
    pid = links.final(cat["pid"].astype(np.int64))
    year = cat["year"].astype(np.int64)
    order = np.lexsort((year, pid))
    dept_ids = departments["department_id"].to_numpy()
    dept = cat["dept"].astype(np.int64)[order]
    in_sector = dept >= 0
    dep_id = np.where(in_sector, dept_ids[np.maximum(dept, 0)], 0)
    dwelling = np.where(in_sector, np.maximum(dept, 0) * DWELL_BITS + cat["dwell"][order], 0)
    hh = cat["hh"].astype(np.int64)[order]
    persons = pd.DataFrame({
        "person_id": pid[order],
        "year": year[order],
        "household_id": hh,
        "department_id": pd.arrays.IntegerArray(dep_id, ~in_sector),
        "dwelling_id": pd.arrays.IntegerArray(dwelling.astype(np.int64), ~in_sector),
        "age": cat["age"].astype(np.int64)[order],
        "non_western": cat["nw"].astype(bool)[order],
        "in_labour_force": cat["lf"].astype(bool)[order],
        "employed": cat["emp"].astype(bool)[order],
        "education": cat["edu"].astype(np.int64)[order],
    })

    # Households: one row per household and year.
    hy = hh * 16 + (year[order] - 2000)
    uniq, first, counts = np.unique(hy, return_index=True, return_counts=True)
    households = pd.DataFrame({
        "household_id": hh[first],
        "year": year[order][first],
        "disposable_income": np.round(cat["hhinc"].astype(np.float64)[order][first], 0),
        "n_persons": counts.astype(np.int64),
    }).sort_values(["household_id", "year"], kind="stable").reset_index(drop=True)
    del uniq

    Lt = rec.lettings
    keep = Lt["year"] <= LAST_YEAR
    ly = Lt["year"][keep].astype(np.int64)
    ld = Lt["dept"][keep].astype(np.int64)
    lp = links.final(Lt["pid"][keep].astype(np.int64))
    linked = ly < LAST_YEAR
    letting_id = (ly - 2000) * 100_000_000 + ld * 10_000 + Lt["dwell"][keep].astype(np.int64)
    lettings = pd.DataFrame({
        "letting_id": letting_id,
        "department_id": dept_ids[ld].astype(np.int64),
        "year": ly,
        "channel": pd.array(np.array(CHANNELS, dtype=object)[Lt["channel"][keep].astype(np.int64)],
                            dtype="str"),
        "person_id": pd.arrays.IntegerArray(np.where(linked, lp, 0), ~linked),
    }).sort_values("letting_id", kind="stable").reset_index(drop=True)
    return persons, households, lettings
