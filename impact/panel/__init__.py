"""From register microdata to the department-year panel: stock and mover composition, tool intensity,
adoption timing and the 2015 report's groups.

Definitions (also in ``data_spec/README.md``)
---------------------------------------------
Stock (beboere) in year *t*
    Persons with that ``department_id`` in ``persons`` at year *t* (status at 1 January).
``share_qualifying_edu``, ``share_employed``
    Among residents aged 18-64 in the labour force (``in_labour_force``): education code 20-80
    (kompetencegivende uddannelse; 90 = unknown counts as not qualifying), resp. ``employed``.
    Base: ``n_labour_force_18_64``; numerators ``n_qualifying_edu``, ``n_employed``.
``mean_household_income``
    Mean over residents aged 18-64 of their household's disposable income in fixed prices of
    ``price_base_year`` (``data_spec/cpi.csv``); ``mean_household_income_nominal`` in current DKK.
    Each household-year's income is rounded once to whole øre (0.01 DKK; in fixed prices after
    applying its year's price factor), and incomes are summed exactly in øre, so the means do not
    depend on the order in which rows or threads add them up (byte-identical panels for the same
    input).
    Persons whose household income is missing are left out and counted (``n_income_18_64`` is the
    base; the attrition ledger counts the rest).
``share_non_western``
    All residents, children included. Base ``n_residents``; numerator ``n_non_western``.
In-movers (tilflyttere) to *d* in year *t*
    Persons in *d* at *t* who are in ``persons`` at *t-1* with another department or none. A move
    inside one department is not a move. Persons absent at *t-1* are arrivals (``n_arrivals``),
    newborns (age 0 at *t*) are neither (``n_newborns``). Described by their attributes at *t*.
Out-movers (fraflyttere) from *d* in year *t*
    Persons in *d* at *t-1* who are in ``persons`` at *t* with another department or none. Persons
    absent at *t* (deaths, emigration) are counted as ``n_exits``. Described by their attributes
    (and household income) at *t-1*.
Intensity
    ``n_lettings`` and ``intensity_<channel>`` = share of the department's lettings in calendar year
    *t* through each channel (NaN when there were no lettings). Tenants let in year *t* appear in
    ``persons`` at 1 January *t+1*, so lettings of year *t-1* fill the in-movers of year *t*:
    ``in_channel_share_<channel>`` is the share of year-*t* in-movers (whole households) linked to a
    letting of year *t-1* in that department through each channel, among the linked ones
    (``n_in_movers_linked``).
Exposure (what can have moved the stock at 1 January *t*)
    ``intensity_<channel>_lag1`` = ``intensity_<channel>`` of *t-1* (NaN in the first year, after a
    gap, or without lettings in *t-1*); ``exposure_<channel>`` = lettings through the channel in
    the panel's years before *t*, per dwelling of the department (cumulative: 0.3 = as many
    dwellings as 30% of the department were let through the channel up to *t-1*; 0 in the first
    year: earlier lettings are not observed). A channel tied to a tool is used only while the tool
    is in force, so this is the exposure since adoption. ``agreed_share_at_adoption_<tool>`` = the
    agreed share in force in the first year of the tool (predetermined: fixed when the plan was
    agreed, unlike the realised intensity; NaN if never or not stated).
Adoption
    A plan-level spell of ``tool_adoption`` applies to every department of the plan.
    ``first_year_<tool>`` (NaN if never), ``in_force_<tool>`` (bool, per year),
    ``agreed_share_<tool>`` (agreed share in force, NaN if none or not stated),
    ``cohort_<tool>`` (first year in force; 0 = never; the DiD cohort), and ``report_group`` from use
    in 2006-2010 as in the 2015 report (both / referral_only / flexible_only / neither) for supported
    departments (``plan_id`` set); unsupported departments get no group.

Engine
------
NumPy over the person-years (``impact/panel/_persons.py``), DuckDB for the lettings. Every
person-year falls into one cell: department-year, trait state and where its person was at *t-1* and
is at *t+1*; the measures are sums over cells. The previous and next year of a person come from a
dense (person, year) table and household incomes from a dense (household, year) table (hashing
replaces the offsets when ids are sparse), so no sort and no join over the person-years is needed and
the row order of ``persons`` does not matter; ``np.bincount`` counts the cells. Parquet row groups
are read side by side with pyarrow (kept as zero-copy views) and every row-wise step runs chunk by
chunk on a thread pool.

Speed and memory against hand-written DuckDB queries: ``benchmarks/bench_panel.py`` (results in
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from impact import spec as spec_mod
from impact.errors import DataSpecError, Violation
from impact.panel import _persons as pp
from impact.panel._persons import (
    ARRIVED,
    EXITED,
    FROM_SOCIAL_HOUSING,
    MOVED_IN,
    MOVED_OUT,
    STAYED,
    TO_SOCIAL_HOUSING,
)
from impact.registers import Registers

REPORT_GROUPS = ("both", "referral_only", "flexible_only", "neither")


@dataclass(frozen=True)
class Panel:
    """The department-year panel.

    Attributes
    ----------
    frame
        One row per (department_id, year): every department of ``departments`` in every year of
        ``persons``; column names as in ARCHITECTURE.md.
    attrition
        Every filter with the rows it removed: columns ``step``, ``filter``, ``rows_in``,
        ``rows_removed``, ``rows_out``, ``note``.
    """

    frame: pd.DataFrame
    attrition: pd.DataFrame

    def __repr__(self) -> str:
        f = self.frame
        return (f"Panel({f['department_id'].nunique()} departments x {f['year'].nunique()} years, "
                f"{f.shape[1]} columns)")


def _shares(frame: pd.DataFrame, prefix: str, residents: str) -> None:
    """Turn the counts of a prefix into shares (NaN where the base is empty), in place."""
    p = prefix
    with np.errstate(invalid="ignore", divide="ignore"):
        lf = frame[f"{p}n_labour_force_18_64"].to_numpy(dtype="float64", na_value=np.nan)
        res = frame[residents].to_numpy(dtype="float64", na_value=np.nan)
        frame[f"{p}share_qualifying_edu"] = np.where(
            lf > 0, frame[f"{p}n_qualifying_edu"].to_numpy(dtype="float64", na_value=np.nan) / lf, np.nan)
        frame[f"{p}share_employed"] = np.where(
            lf > 0, frame[f"{p}n_employed"].to_numpy(dtype="float64", na_value=np.nan) / lf, np.nan)
        frame[f"{p}share_non_western"] = np.where(
            res > 0, frame[f"{p}n_non_western"].to_numpy(dtype="float64", na_value=np.nan) / res, np.nan)
        n_inc = frame[f"{p}n_income_18_64"].to_numpy(dtype="float64", na_value=np.nan)
        for measure, total in (("mean_household_income", "sum_income_real_ore"),
                               ("mean_household_income_nominal", "sum_income_nominal_ore")):
            sums = frame.pop(f"{p}{total}").to_numpy(dtype="float64", na_value=np.nan)
            frame[f"{p}{measure}"] = np.where(n_inc > 0, sums / 100.0 / n_inc, np.nan)


def _group_sums(cells: pp.Cells, group: np.ndarray, n_groups: int) -> pd.DataFrame:
    """Counts and income sums of stock, in-movers and out-movers per (department, year) group.

    ``cells`` holds one entry per group, trait code and move-flag combination with its number of
    persons ``n`` and its income sums in øre. Trait bits: 1 non-Western, 2 aged 18-64, 4 18-64 in
    the labour force, 8 qualifying education, 16 employed, 32 household income known, 64 age > 0.
    """
    code = cells.code.astype("int64")
    moves = cells.moves.astype("int64")
    n = cells.n.astype("float64")
    real, nom = cells.real_ore, cells.nom_ore
    nw, adult, lf, qual, emp, inc, older = ((code >> b) & 1 > 0 for b in range(7))

    def total(mask: np.ndarray, values: np.ndarray = n) -> np.ndarray:
        return np.bincount(group, weights=np.where(mask, values, 0.0), minlength=n_groups)

    out: dict[str, np.ndarray] = {}
    for prefix, subset in (("", np.ones(len(code), dtype=bool)), ("in_", moves & MOVED_IN > 0),
                           ("out_", moves & MOVED_OUT > 0)):
        out[f"{prefix}n_residents"] = total(subset)
        out[f"{prefix}n_non_western"] = total(subset & nw)
        out[f"{prefix}n_18_64"] = total(subset & adult)
        out[f"{prefix}n_labour_force_18_64"] = total(subset & lf)
        out[f"{prefix}n_qualifying_edu"] = total(subset & lf & qual)
        out[f"{prefix}n_employed"] = total(subset & lf & emp)
        out[f"{prefix}n_income_18_64"] = total(subset & adult & inc)
        out[f"{prefix}n_income_missing_18_64"] = total(subset & adult & ~inc)
        out[f"{prefix}sum_income_real_ore"] = total(subset & adult & inc, real)
        out[f"{prefix}sum_income_nominal_ore"] = total(subset & adult & inc, nom)
    out["in_n_from_social_housing"] = total(moves & FROM_SOCIAL_HOUSING > 0)
    out["out_n_to_social_housing"] = total(moves & TO_SOCIAL_HOUSING > 0)
    out["n_arrivals"] = total((moves & ARRIVED > 0) & older)
    out["n_newborns"] = total((moves & ARRIVED > 0) & ~older)
    out["n_stayers"] = total(moves & STAYED > 0)
    out["out_n_exits"] = total(moves & EXITED > 0)
    return pd.DataFrame({k: np.rint(v).astype("int64") for k, v in out.items()})


def _ledger_row(step: str, name: str, rows_in: int, removed: int, note: str) -> dict[str, object]:
    return {"step": step, "filter": name, "rows_in": int(rows_in), "rows_removed": int(removed),
            "rows_out": int(rows_in - removed), "note": note}


def build(registers: Registers | str | Path, *, validate: bool = True, threads: int | None = None
          ) -> Panel:
    """Build the department-year panel from register tables.

    Parameters
    ----------
    registers
        The five input tables (see ``data_spec/``), or a folder of ``<table>.parquet`` files. With a
        folder and ``validate=False`` the large tables are read straight from parquet, row group by
        row group (fastest, least memory: national scale); otherwise the folder is read with
        :func:`impact.io.read_registers`.
    validate
        Check the tables against the data contract first (default). Pass ``False`` only for tables
        that were just validated.
    threads
        Threads for DuckDB and for the row-wise NumPy work (default: one per CPU). The panel is the
        same for any number.

    Returns
    -------
    Panel
        ``.frame`` (one row per department-year) and ``.attrition`` (every filter, rows removed).

    Raises
    ------
    DataSpecError
        If the tables break the data contract, or persons refer to unknown departments.
    """
    from impact import io

    spec = spec_mod.load()
    con = duckdb.connect(config={"threads": threads} if threads else {})
    # threads for chunks of rows (NumPy and Arrow release the GIL)
    pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
    try:
        if isinstance(registers, str | Path):
            folder = Path(registers)
            big = ("persons", "households", "lettings")
            small = {}
            if not validate and all((folder / f"{t}.parquet").exists() for t in big) and (
                    pp.integer_id_files(folder)):
                for t in ("departments", "tool_adoption"):
                    path = io.table_path(folder, t)
                    if path is None:
                        io.read_registers(folder)  # raises the missing-file error
                    small[t] = io.read_table(path, t)  # type: ignore[arg-type]
            if not small or not pp.integer_ids(small):  # text ids: numbered in memory
                registers = io.read_registers(folder)
            else:
                path = str(folder / "lettings.parquet").replace("'", "''")
                con.execute(f"CREATE VIEW lettings_src AS SELECT * FROM read_parquet('{path}')")
                # row groups of both files are read side by side on the pool
                households = pp.households_from_parquet(folder / "households.parquet", pool)
                persons = pp.persons_from_parquet(folder / "persons.parquet", pool)
                return _build(con, pool, small["departments"], small["tool_adoption"], spec,
                              persons, households)
        if validate:
            spec_mod.validate(registers, spec=spec)
        # text ids numbered once (integer ids are used as they are); the output keeps the values
        tables, id_values = pp.encode_ids(registers.tables())
        con.register("lettings_src", tables["lettings"])
        result = _build(con, pool, tables["departments"], tables["tool_adoption"], spec,
                        pp.persons_from_frame(tables["persons"]),
                        lambda: pp.households_from_frame(tables["households"]))
        if id_values:
            result = Panel(frame=pp.decode_ids(result.frame, id_values),
                           attrition=result.attrition)
        return result
    finally:
        pool.shutdown(cancel_futures=True)
        con.close()


def _build(con: duckdb.DuckDBPyConnection, pool: ThreadPoolExecutor, departments: pd.DataFrame,
           tool_adoption: pd.DataFrame, spec: spec_mod.Spec, persons: list[pp.PersonChunk],
           households: Callable[[], list[pp.HouseholdChunk]]) -> Panel:
    """The panel from the person-years and household incomes (chunks of rows) and the registered
    ``lettings_src``."""
    persons = [c for c in persons if len(c.year)]
    if not persons:
        raise DataSpecError([Violation("persons", "year", "not empty", 0, (), "no person-years")])
    lo = min(int(c.year.min()) for c in persons)
    hi = max(int(c.year.max()) for c in persons)
    year_counts = np.sum([np.bincount(c.year - lo, minlength=hi - lo + 1) for c in persons],
                         axis=0)
    years = np.flatnonzero(year_counts) + lo
    first_year, last_year = int(years[0]), int(years[-1])
    nspan = last_year - first_year + 1
    factors = np.asarray(spec_mod.deflator(np.arange(first_year, last_year + 1),
                                           base_year=spec.study.price_base_year), dtype="float64")
    ledger: list[dict[str, object]] = []
    dept_ids = np.sort(departments["department_id"].to_numpy(dtype="int64"))
    located = pp.Located.allocate(persons, dept_ids, first_year, nspan)
    income = pp.IncomeTables.allocate(households(), persons, factors, first_year)
    pp.run_chunks(pool, (located.fill, len(persons)), (income.fill, len(income.households)))
    n_rows = int(year_counts.sum())
    n_here = n_rows - sum(int(np.isnan(c.department_id).sum()) for c in persons)
    n_unknown = n_here - sum(int(np.count_nonzero(h >= 2)) for h in located.here)
    ledger.append(_ledger_row("stock", "person without department", n_rows, n_rows - n_here,
                              "not in social housing (used only to define movers)"))
    ledger.append(_ledger_row("stock", "unknown department", n_here, n_unknown,
                              "department_id not in departments"))
    if n_unknown:
        examples = [f"person_id={c.person_id[i]}, year={c.year[i]}, "
                    f"department_id={int(c.department_id[i])}"
                    for c, h in zip(persons, located.here, strict=True)
                    for i in np.flatnonzero(~np.isnan(c.department_id) & (h < 2))]
        raise DataSpecError([Violation(
            "persons", "department_id", "foreign key", n_unknown, tuple(examples[:10]),
            "must exist in departments.department_id")])
    # Each person-year's household income in whole øre (fixed prices: factor of its year), where
    # its person was at t-1 and is at t+1, and its trait code give its cell; bincounts count
    # persons and sum incomes per cell (chunk by chunk, then added up); numpy then adds the cells
    # up into every measure of the stock, the in-movers and the out-movers.
    cells, moved_in = pp.count_cells(located, income, len(dept_ids), pool)
    del located, income
    dept_index = pd.Index(np.sort(departments["department_id"].to_numpy()))
    grid = pd.MultiIndex.from_product(
        [dept_index, np.arange(first_year, last_year + 1)], names=["department_id", "year"]
    ).to_frame(index=False)
    sums = _group_sums(cells, cells.dep_pos * nspan + cells.year_offset, len(grid))
    grouped = pd.concat([grid, sums], axis=1)
    out_cols = [c for c in grouped.columns if c.startswith("out_")]
    stock = grouped.drop(columns=out_cols).rename(columns={"in_n_residents": "n_in_movers"})
    out_movers = grouped[["department_id", "year", *out_cols]].assign(
        year=grouped["year"] + 1).rename(columns={"out_n_residents": "n_out_movers",
                                                  "out_n_exits": "n_exits"})
    stock = stock[stock["year"].isin(years)]
    _filters_ledger(stock, ledger, first_year)
    con.register("departments", departments[["department_id"]])
    # person-years for linking lettings, and the in-movers, for DuckDB (zero-copy)
    con.register("pm", pa.table({
        name: pa.chunked_array([getattr(c, name) for c in persons])
        for name in ("person_id", "year", "household_id", "department_id")}))
    movers = [np.flatnonzero(m) for m in moved_in]

    def movers_column(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name)[m] for c, m in zip(persons, movers, strict=True)])

    con.register("in_movers", pa.table({
        "department_id": movers_column("department_id").astype("int64"),
        "year": movers_column("year"), "household_id": movers_column("household_id")}))
    del moved_in

    grid = pd.MultiIndex.from_product(
        [np.sort(departments["department_id"].to_numpy()), years], names=["department_id", "year"]
    ).to_frame(index=False)
    frame = grid
    for part in (stock, out_movers):
        frame = frame.merge(part, on=["department_id", "year"], how="left")
    first = frame["year"].to_numpy() == first_year
    for c in ("n_arrivals", "n_newborns", "n_stayers"):
        frame.loc[first, c] = np.nan
    _finish_counts(frame, first_year)
    for prefix, residents in (("", "n_residents"), ("in_", "n_in_movers"),
                              ("out_", "n_out_movers")):
        _shares(frame, prefix, residents)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["in_share_from_social_housing"] = frame["in_n_from_social_housing"] / frame["n_in_movers"]
        frame["out_share_to_social_housing"] = frame["out_n_to_social_housing"] / frame["n_out_movers"]
    frame = _add_intensity(con, frame, spec, ledger, first_year)
    frame = _add_adoption(frame, departments, tool_adoption, spec, ledger)
    frame = _add_department_columns(frame, departments)
    frame = _add_exposure(frame, spec)
    attrition = pd.DataFrame(ledger, columns=["step", "filter", "rows_in", "rows_removed",
                                              "rows_out", "note"])
    return Panel(frame=_order(frame), attrition=attrition)


def _filters_ledger(stock: pd.DataFrame, ledger: list[dict[str, object]], first_year: int) -> None:
    """Ledger rows of the stock and in-mover filters, from the grouped counts."""
    tot = stock.sum(numeric_only=True)
    later = stock[stock["year"] > first_year].sum(numeric_only=True)
    n_stock, n_adult = int(tot["n_residents"]), int(tot["n_18_64"])
    n_lf, n_inc = int(tot["n_labour_force_18_64"]), int(tot["n_income_18_64"])
    n_all, n_first = int(later["n_residents"]), n_stock - int(later["n_residents"])
    n_stay, n_arr, n_born = (int(later[c]) for c in ("n_stayers", "n_arrivals", "n_newborns"))
    ledger += [
        _ledger_row("stock", "age 18-64", n_stock, n_stock - n_adult,
                    "education, employment and income measures (non-Western: all residents)"),
        _ledger_row("stock", "in labour force", n_adult, n_adult - n_lf,
                    "education and employment measures"),
        _ledger_row("stock", "missing household income", n_adult, n_adult - n_inc,
                    "income measure (18-64)"),
        _ledger_row("in_movers", "first year (no t-1)", n_stock, n_first,
                    f"{first_year}: movers undefined"),
        _ledger_row("in_movers", "stayed in department", n_all, n_stay, "not a move"),
        _ledger_row("in_movers", "absent at t-1 (arrival)", n_all - n_stay, n_arr,
                    "counted as n_arrivals"),
        _ledger_row("in_movers", "newborn (age 0, absent at t-1)", n_all - n_stay - n_arr, n_born,
                    "counted as n_newborns"),
    ]


def _finish_counts(frame: pd.DataFrame, first_year: int) -> None:
    """Counts are 0 where nothing happened; mover counts are missing in the first year."""
    count_cols = [c for c in frame.columns if c.startswith(("n_", "in_n_", "out_n_"))]
    first = frame["year"].to_numpy() == first_year
    for c in count_cols:
        values = frame[c].fillna(0).astype("int64")
        if c.startswith(("in_", "out_")) or c in ("n_in_movers", "n_out_movers", "n_arrivals",
                                                   "n_newborns", "n_stayers", "n_exits"):
            frame[c] = pd.array(np.where(first, 0, values), dtype="Int64")
            frame.loc[first, c] = pd.NA
        else:
            frame[c] = values


def _add_intensity(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, spec: spec_mod.Spec,
                   ledger: list[dict[str, object]], first_year: int) -> pd.DataFrame:
    channels = spec.codes("lettings", "channel")
    share_sql = ", ".join(
        f"avg((channel = '{c}')::DOUBLE) AS intensity_{c}" for c in channels)
    per_dept = con.execute(f"""
        SELECT department_id, year, count(*) AS n_lettings, {share_sql}
        FROM lettings_src GROUP BY 1, 2
    """).df()
    (n_let,) = con.execute("SELECT count(*) FROM lettings_src").fetchone()
    n_unknown = con.execute("""SELECT count(*) FROM lettings_src l
        WHERE l.department_id NOT IN (SELECT department_id FROM departments)""").fetchone()[0]
    (n_outside,) = con.execute(f"""SELECT count(*) FROM lettings_src
        WHERE year < {first_year} OR year > {int(frame['year'].max())}""").fetchone()
    ledger.append(_ledger_row("lettings", "unknown department", n_let, n_unknown,
                              "department_id not in departments"))
    ledger.append(_ledger_row("lettings", "outside panel years", n_let - n_unknown, n_outside,
                              "letting year not among the persons years"))
    # Whole households of a linked main tenant: in-movers of t linked to lettings of t-1.
    link_sql = ", ".join(
        f"avg((l.channel = '{c}')::DOUBLE) AS in_channel_share_{c}" for c in channels)
    linked = con.execute(f"""
        WITH tenants AS (
            SELECT l.department_id, l.year + 1 AS year, p.household_id, min(l.channel) AS channel
            FROM lettings_src l JOIN pm p ON p.person_id = l.person_id AND p.year = l.year + 1
                                          AND p.department_id = l.department_id
            GROUP BY 1, 2, 3
        )
        SELECT l.department_id, l.year, count(*) AS n_in_movers_linked, {link_sql}
        FROM in_movers a JOIN tenants l ON l.department_id = a.department_id AND l.year = a.year
                                       AND l.household_id = a.household_id
        GROUP BY 1, 2
    """).df()
    out = frame.merge(per_dept, on=["department_id", "year"], how="left")
    out["n_lettings"] = out["n_lettings"].fillna(0).astype("int64")
    out = out.merge(linked, on=["department_id", "year"], how="left")
    first = out["year"].to_numpy() == first_year
    out["n_in_movers_linked"] = pd.array(
        np.where(first, 0, out["n_in_movers_linked"].fillna(0).to_numpy()), dtype="Int64")
    out.loc[first, "n_in_movers_linked"] = pd.NA
    return out


def _spells(adoption: pd.DataFrame, departments: pd.DataFrame) -> pd.DataFrame:
    """Tool spells per department: plan-level rows expanded to every department of their plan."""
    depts = departments[["department_id", "plan_id"]]
    direct = adoption[adoption["department_id"].notna()].copy()
    via_plan = adoption[adoption["department_id"].isna() & adoption["plan_id"].notna()]
    via_plan = via_plan.drop(columns=["department_id"]).merge(
        depts.dropna(subset=["plan_id"]), on="plan_id", how="inner")
    spells = pd.concat([direct, via_plan], ignore_index=True)
    spells["department_id"] = spells["department_id"].astype("int64")
    spells["end"] = spells["end_year"].astype("float64").fillna(np.inf)
    return spells[["department_id", "tool", "start_year", "end", "agreed_share"]]


def _add_adoption(frame: pd.DataFrame, departments: pd.DataFrame, adoption: pd.DataFrame,
                  spec: spec_mod.Spec,
                  ledger: list[dict[str, object]]) -> pd.DataFrame:
    spells = _spells(adoption, departments)
    n_plan_rows = int((adoption["department_id"].isna()).sum())
    ledger.append(_ledger_row("adoption", "plan-level spells expanded to departments",
                              len(adoption), 0,
                              f"{n_plan_rows} plan rows -> {len(spells)} department spells"))
    tools = spec.codes("tool_adoption", "tool")
    keys = frame[["department_id", "year"]]
    new: dict[str, object] = {}
    for tool in tools:
        s = spells[spells["tool"] == tool]
        first = s.groupby("department_id")["start_year"].min()
        fy = keys["department_id"].map(first).astype("float64").to_numpy()
        in_force = np.zeros(len(keys), dtype=bool)
        share = np.full(len(keys), np.nan)
        if len(s):
            m = keys.reset_index().merge(s, on="department_id", how="inner")
            active = (m["start_year"].to_numpy() <= m["year"].to_numpy()) & (
                m["year"].to_numpy() <= m["end"].to_numpy())
            act = m[active]
            in_force[act["index"].unique()] = True
            best = act.groupby("index")["agreed_share"].max()
            share[best.index.to_numpy()] = best.to_numpy(dtype="float64")
        new[f"first_year_{tool}"] = fy
        new[f"in_force_{tool}"] = in_force
        new[f"agreed_share_{tool}"] = share
        new[f"cohort_{tool}"] = np.nan_to_num(fy, nan=0.0).astype("int64")
    out = pd.concat([frame.reset_index(drop=True), pd.DataFrame(new)], axis=1)
    lo, hi = spec.study.report_group_first_year, spec.study.report_group_last_year

    def used(tool: str) -> pd.Series:
        s = spells[(spells["tool"] == tool) & (spells["start_year"] <= hi) & (spells["end"] >= lo)]
        return out["department_id"].isin(s["department_id"].unique())

    ka, fu = used("municipal_referral"), used("flexible_letting")
    group = np.select([ka & fu, ka & ~fu, ~ka & fu], ["both", "referral_only", "flexible_only"],
                      default="neither").astype(object)
    supported = out["department_id"].map(
        departments.set_index("department_id")["plan_id"].notna()).to_numpy(dtype=bool)
    group[~supported] = None
    out["report_group"] = group
    out["supported"] = supported
    return out


def _add_exposure(frame: pd.DataFrame, spec: spec_mod.Spec) -> pd.DataFrame:
    """Exposure that can have moved the 1-January stock of year t (lettings up to t-1)."""
    out = frame.sort_values(["department_id", "year"], kind="stable").reset_index(drop=True)
    dept = out["department_id"].to_numpy()
    year = out["year"].to_numpy(dtype="int64")
    same = np.r_[False, (dept[1:] == dept[:-1]) & (year[1:] == year[:-1] + 1)]
    start = np.r_[True, dept[1:] != dept[:-1]]
    n_let = out["n_lettings"].to_numpy(dtype="float64")
    dwellings = out["n_dwellings"].to_numpy(dtype="float64")
    new: dict[str, np.ndarray] = {}
    for channel in spec.codes("lettings", "channel"):
        share = out[f"intensity_{channel}"].to_numpy(dtype="float64")
        lag = np.full(len(out), np.nan)
        lag[1:] = share[:-1]
        new[f"intensity_{channel}_lag1"] = np.where(same, lag, np.nan)
        count = np.nan_to_num(share * n_let)
        before = np.cumsum(count) - count  # lettings of earlier rows of all departments
        offset = np.maximum.accumulate(np.where(start, before, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            new[f"exposure_{channel}"] = (before - offset) / dwellings
    for tool in spec.codes("tool_adoption", "tool"):
        first = out[f"first_year_{tool}"].to_numpy(dtype="float64")
        at_first = year == first
        by_dept = pd.Series(out[f"agreed_share_{tool}"].to_numpy(dtype="float64")[at_first],
                            index=dept[at_first])
        new[f"agreed_share_at_adoption_{tool}"] = (
            pd.Series(dept).map(by_dept).to_numpy(dtype="float64"))
    return pd.concat([out, pd.DataFrame(new)], axis=1)


def _add_department_columns(frame: pd.DataFrame, departments: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in departments.columns if c != "department_id"]
    return frame.merge(departments[["department_id", *keep]], on="department_id", how="left")


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    front = ["department_id", "year", "organisation_id", "municipality_id", "plan_id", "supported",
             "report_group", "n_dwellings"]
    front = [c for c in front if c in frame.columns]
    rest = [c for c in frame.columns if c not in front]
    return frame[front + rest].sort_values(["department_id", "year"]).reset_index(drop=True)
