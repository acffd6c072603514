"""``impact derive``: the five contract tables from the registers' own extracts.

One module per source register: :mod:`~impact.derive.bef` (persons, families),
:mod:`~impact.derive.origin` (IE_TYPE / OPR_LAND), :mod:`~impact.derive.education` (UDDA HFAUDD),
:mod:`~impact.derive.employment` (AKM SOCIO13), :mod:`~impact.derive.income` (FAIK / IND) and
:mod:`~impact.derive.lbf` (Landsbyggefonden's address link, departments, lettings, the survey);
:mod:`~impact.derive.extracts` finds, reads and types the files. The expected files, variable names,
codes and years are in ``data_spec/registers/``.

DuckDB runs every derivation over the files and writes the tables to parquet, so the extracts are
never held in memory whole; the tables written are then validated with :func:`impact.spec.validate`
(as ``impact validate`` does). Bad extracts (a missing register, year or column, an unknown code, a
duplicate PNR-year, an unreadable file) raise :class:`~impact.errors.DataSpecError` naming the register
and column, and nothing is written.

Examples
--------
>>> from impact import derive
>>> result = derive.derive("extracts/", "registers/")  # doctest: +SKIP
>>> result.attrition  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from impact import io
from impact import spec as spec_mod
from impact.derive import bef, education, employment, income, lbf, origin
from impact.derive.extracts import Extracts, fail, quote
from impact.errors import DataSpecError, Violation
from impact.registers import TABLES, Registers

__all__ = ["Derived", "derive"]

ATTRITION_FILE = "derive_attrition.csv"


@dataclass(frozen=True)
class Derived:
    """What :func:`derive` wrote.

    Attributes
    ----------
    folder
        The register folder (``<table>.parquet`` and ``derive_attrition.csv``).
    rows
        Rows per contract table.
    attrition
        Every unmatched or dropped row: columns ``step``, ``filter``, ``rows_in``,
        ``rows_removed``, ``rows_out``, ``note``.
    """

    folder: Path
    rows: dict[str, int]
    attrition: pd.DataFrame


def _persons_sql(origin_on: str) -> str:
    return f"""SELECT b.PNR AS person_id, b.AAR AS year, b.FAMILIE_ID AS household_id,
            a.AFDELING AS department_id,
            CASE WHEN a.AFDELING IS NOT NULL THEN b.ADRESSE_ID END AS dwelling_id,
            b.ALDER AS age, coalesce(o.non_western, false) AS non_western,
            coalesce(s.in_labour_force, false) AS in_labour_force,
            coalesce(s.employed, false) AS employed, coalesce(e.education, 90) AS education,
            s.socio13
        FROM r_bef b
        LEFT JOIN r_lbf_adresser a ON a.ADRESSE_ID = b.ADRESSE_ID
        LEFT JOIN origin o ON {origin_on}
        LEFT JOIN education e ON e.PNR = b.PNR AND e.AAR = b.AAR
        LEFT JOIN employment s ON s.PNR = b.PNR AND s.AAR = b.AAR
        ORDER BY person_id, year"""


HOUSEHOLDS_SQL = f"""SELECT f.FAMILIE_ID AS household_id, f.AAR AS year,
        i.disposable_income, f.n_persons
    FROM ({bef.families_sql()}) f
    LEFT JOIN income i ON i.FAMILIE_ID = f.FAMILIE_ID AND i.AAR = f.AAR
    ORDER BY household_id, year"""


def _row(step: str, name: str, rows_in: int, removed: int, note: str) -> dict[str, object]:
    return {"step": step, "filter": name, "rows_in": int(rows_in), "rows_removed": int(removed),
            "rows_out": int(rows_in - removed), "note": note}


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    (n,) = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0]
    return int(n)


def _attrition(con: duckdb.DuckDBPyConnection, ex: Extracts, folder: Path) -> pd.DataFrame:
    persons = f"read_parquet({quote(folder / 'persons.parquet')})"
    n_bef = _count(con, "SELECT 1 FROM r_bef")
    n_linked = _count(con, f"SELECT 1 FROM {persons} WHERE department_id IS NOT NULL")
    n_edu = _count(con, "SELECT 1 FROM r_bef b JOIN education e ON e.PNR = b.PNR AND "
                        "e.AAR = b.AAR")
    n_emp = _count(con, "SELECT 1 FROM r_bef b JOIN employment s ON s.PNR = b.PNR AND "
                        "s.AAR = b.AAR")
    households = f"read_parquet({quote(folder / 'households.parquet')})"
    n_fam = _count(con, f"SELECT 1 FROM {households}")
    n_noinc = _count(con, f"SELECT 1 FROM {households} WHERE disposable_income IS NULL")
    lettings = f"read_parquet({quote(folder / 'lettings.parquet')})"
    n_let = _count(con, "SELECT 1 FROM r_lbf_udlejninger")
    n_tenant = _count(con, f"SELECT 1 FROM {lettings} WHERE person_id IS NULL")
    inc = income.source(ex)
    rows = [
        _row("persons", "BEF address not in the LBF address link", n_bef, n_bef - n_linked,
             "outside social housing: department_id and dwelling_id null"),
        _row("persons", "not in UDDA t-1", n_bef, n_bef - n_edu, "education 90 (unknown)"),
        _row("persons", "not in AKM t-1", n_bef, n_bef - n_emp,
             "outside the labour force, socio13 null"),
        _row("households", f"no income in {inc.upper()} t-1", n_fam, n_noinc,
             "disposable_income null"),
        _row("lettings", "tenant not in BEF (or no PNR)", n_let, n_tenant, "person_id null"),
    ]
    if origin.source(ex) == "iepe":
        n_origin = _count(con, "SELECT 1 FROM r_bef b JOIN origin o ON o.PNR = b.PNR")
        rows.insert(1, _row("persons", "not in IEPE", n_bef, n_bef - n_origin,
                            "origin unknown: not non-Western"))
    for name, key, note in (("udda", "PNR", "education"), ("akm", "PNR", "employment")):
        lag = ex.specs[name].lag
        n_src = _count(con, f"SELECT 1 FROM r_{name}")
        unused = _count(con, f"SELECT 1 FROM r_{name} r WHERE NOT EXISTS (SELECT 1 FROM r_bef b "
                             f"WHERE b.{key} = r.{key} AND b.AAR = r.AAR + {lag})")
        rows.append(_row(name, "no BEF person-year at t+1", n_src, unused, f"{note} not used"))
    return pd.DataFrame(rows, columns=["step", "filter", "rows_in", "rows_removed", "rows_out",
                                       "note"])


def _unreadable(folder: Path, err: duckdb.Error) -> DataSpecError:
    """A DuckDB error while reading the extracts, naming the file (and register) it mentions."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    named = [p for p in sorted(folder.iterdir()) if p.name in str(err)] if folder.is_dir() else []
    register = named[0].stem.rstrip("0123456789").lower() if named else "*"
    return fail([Violation(register, "*", "readable file", 0, tuple(p.name for p in named[:1]),
                           f"cannot be read: {message}")])


def derive(extracts: str | Path, out: str | Path, *, threads: int | None = None,
           memory_limit: str | None = None) -> Derived:
    """Derive the five contract tables from a folder of register extracts and write them.

    Parameters
    ----------
    extracts
        Folder of extract files (``data_spec/registers/registers.toml``).
    out
        Register folder to write (``<table>.parquet`` and ``derive_attrition.csv``); files of the
        same names are replaced, nothing else is touched. Written only when everything is valid.
    threads, memory_limit
        DuckDB's settings (default: every CPU, 80% of memory); DuckDB spills to disk beyond
        ``memory_limit``.

    Returns
    -------
    Derived
        Where the tables are, their rows and the attrition table.

    Raises
    ------
    DataSpecError
        If an extract is missing or bad, or the derived tables break the data contract.
    """
    extracts, out = Path(extracts), Path(out)
    config: dict[str, object] = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.derive-", dir=out.parent))
    con = duckdb.connect(config=config)
    try:
        con.execute(f"SET temp_directory = {quote(scratch / 'spill')}")
        ex = Extracts(extracts, con, scratch)
        ex.require("bef")
        inc = income.source(ex)
        ex.require("udda", "akm", inc, "lbf_adresser", "lbf_afdelinger", "lbf_udlejninger",
                   "tool_adoption")
        ex.load_all()
        years = bef.years(ex)
        if not years:
            raise fail([Violation("bef", "AAR", "not empty", 0, (), "no person-years")])
        violations = [*bef.checks(ex), *origin.checks(ex), *education.checks(ex, years),
                      *employment.checks(ex, years), *income.checks(ex, years), *lbf.checks(ex)]
        if violations:
            raise fail(violations)
        origin_on = origin.view(ex)
        education.view(ex)
        employment.view(ex)
        income.view(ex)
        tables = scratch / "tables"
        tables.mkdir()
        queries = {"persons": _persons_sql(origin_on), "households": HOUSEHOLDS_SQL,
                   "departments": lbf.departments_sql(ex), "lettings": lbf.lettings_sql(),
                   "tool_adoption": lbf.tool_adoption_sql(ex)}
        for name, sql in queries.items():
            con.execute(f"COPY ({sql}) TO {quote(tables / f'{name}.parquet')} (FORMAT parquet)")
        attrition = _attrition(con, ex, tables)
        con.close()
        registers = io.read_registers(tables)
        try:
            spec_mod.validate(registers)
        except DataSpecError as err:
            raise DataSpecError(err.violations, context="the derived tables break the data "
                                "contract (check the extracts named below)") from None
        rows = {name: len(frame) for name, frame in registers.tables().items()}
        del registers
        out.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            shutil.move(tables / f"{name}.parquet", out / f"{name}.parquet")
        attrition.to_csv(out / ATTRITION_FILE, index=False)
        return Derived(folder=out, rows=rows, attrition=attrition)
    except duckdb.Error as err:  # a file that fails beyond what DESCRIBE reads (e.g. bad UTF-8
        raise _unreadable(extracts, err) from None  # far down a CSV)
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def read(folder: str | Path) -> Registers:
    """The tables a :func:`derive` wrote (:func:`impact.io.read_registers`)."""
    return io.read_registers(folder)
