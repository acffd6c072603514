"""Find, read and type the register extracts of a folder: one DuckDB view per register.

Each register of ``data_spec/registers/registers.toml`` is read from ``<name>.<ext>`` (stacked, the
year in ``AAR``) or ``<name><YYYY>.<ext>`` (one file per year) with ext parquet, csv, sas7bdat or xpt.
Parquet and CSV are read by DuckDB straight from the files (out of core); SAS files are converted
chunk by chunk to parquet first (pyreadstat), so no register is ever held in memory whole.

Columns are typed once, in the view ``r_<name>``: identifiers per domain (a person number is one type
in every register: integers when every value in every register is a whole number, text otherwise),
whole numbers, codes (text; ``1001.0`` from SAS becomes ``"1001"``) and amounts.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from impact import spec as spec_mod
from impact.errors import DataSpecError, Violation

FORMATS = (".parquet", ".csv", ".sas7bdat", ".xpt")
MAX_EXAMPLES = 10
_CANONICAL_INT = r"-?[1-9][0-9]{0,17}|0"

# Identifier columns and the domain they share: one SQL type per domain.
ID_DOMAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "person": (("bef", "PNR"), ("iepe", "PNR"), ("udda", "PNR"), ("akm", "PNR"), ("ind", "PNR"),
               ("lbf_udlejninger", "PNR")),
    "family": (("bef", "FAMILIE_ID"), ("faik", "FAMILIE_ID")),
    "address": (("bef", "ADRESSE_ID"), ("lbf_adresser", "ADRESSE_ID")),
    "department": (("lbf_adresser", "AFDELING"), ("lbf_afdelinger", "AFDELING"),
                   ("lbf_udlejninger", "AFDELING"), ("tool_adoption", "AFDELING")),
    "plan": (("lbf_afdelinger", "HELHEDSPLAN"), ("tool_adoption", "HELHEDSPLAN")),
    "organisation": (("lbf_afdelinger", "ORGNR"),),
    "letting": (("lbf_udlejninger", "UDLEJNING_ID"),),
}
# Other typed columns: whole numbers, codes (text), amounts.
INTEGERS = {"AAR", "ALDER", "IE_TYPE", "SOCIO13", "KOM", "LEJEMAAL", "START_YEAR", "END_YEAR"}
CODES = {"OPR_LAND", "ISO", "HFAUDD", "AUDD", "H1", "KANAL", "TOOL", "SOURCE", "MARKED"}
AMOUNTS = {"FAMDISPON_NY", "DISPON_NY", "AGREED_SHARE"}


@dataclass(frozen=True)
class RegisterSpec:
    """One register of ``registers.toml``."""

    name: str
    title: str
    yearly: bool
    lag: int
    key: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]


@functools.cache
def _load(folder: Path) -> tuple[dict[str, RegisterSpec], dict[str, Any]]:
    with open(folder / "registers" / "registers.toml", "rb") as fh:
        raw = tomllib.load(fh)
    registers = {
        name: RegisterSpec(name=name, title=r["title"], yearly=bool(r["yearly"]),
                           lag=int(r.get("lag", 0)), key=tuple(r["key"]),
                           required=tuple(r["required"]), optional=tuple(r["optional"]))
        for name, r in raw["registers"].items()}
    return registers, raw["codes"]


def registers_spec() -> dict[str, RegisterSpec]:
    """The registers ``impact derive`` reads (``data_spec/registers/registers.toml``)."""
    return _load(spec_mod.spec_dir())[0]


def codes() -> dict[str, Any]:
    """The ``[codes]`` table of ``registers.toml``."""
    return _load(spec_mod.spec_dir())[1]


def quote(path: Path | str) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def fail(violations: list[Violation], context: str = "") -> DataSpecError:
    """The error of bad extracts."""
    return DataSpecError(violations, context=context or "the register extracts cannot be derived")


class Extracts:
    """The register extracts of one folder, as typed DuckDB views ``r_<name>``.

    Parameters
    ----------
    folder
        The folder of extract files.
    con
        The DuckDB connection the views live in.
    scratch
        A folder for SAS files converted to parquet.
    """

    def __init__(self, folder: Path, con: duckdb.DuckDBPyConnection, scratch: Path) -> None:
        if not folder.is_dir():
            raise fail([Violation("*", "*", "extract folder", 0, (str(folder),),
                                  "folder does not exist")])
        self.folder, self.con, self.scratch = folder, con, scratch
        self.specs = registers_spec()
        self._files: dict[str, list[tuple[int | None, Path]]] = {}
        pattern = re.compile(r"^([a-z_0-9]+?)(\d{4})?$")
        for path in sorted(folder.iterdir()):
            match = pattern.match(path.stem.lower())
            if path.suffix.lower() in FORMATS and path.is_file() and match and (
                    match.group(1) in self.specs):
                year = match.group(2)
                self._files.setdefault(match.group(1), []).append(
                    (int(year) if year else None, path))
        self.columns: dict[str, list[str]] = {}
        self.years: dict[str, list[int]] = {}

    def has(self, name: str) -> bool:
        """Whether the folder holds the register."""
        return name in self._files

    def require(self, *names: str) -> None:
        """Raise if a register is missing (rule ``required register``)."""
        missing = [n for n in names if not self.has(n)]
        if missing:
            raise fail([Violation(n, "*", "required register", 0, (),
                                  f"{n}.parquet/.csv/.sas7bdat/.xpt or {n}<YYYY>.* : "
                                  f"{self.specs[n].title}") for n in missing],
                       context=f"the extract folder {self.folder} is incomplete")

    # ----------------------------------------------------------------------- reading

    def _source_sql(self, name: str, path: Path) -> str:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return f"read_parquet({quote(path)})"
        if suffix == ".csv":
            return f"read_csv({quote(path)}, header = true, all_varchar = true)"
        return f"read_parquet({quote(self._sas_to_parquet(name, path))})"

    def _sas_to_parquet(self, name: str, path: Path) -> Path:
        try:
            import pyreadstat
        except ImportError:  # pragma: no cover - depends on the installation
            raise fail([Violation(name, "*", "readable file", 0, (path.name,),
                                  "reading SAS files needs pyreadstat: pip install "
                                  "'impact[sas]'")]) from None
        import pyarrow as pa
        import pyarrow.parquet as pq

        reader = pyreadstat.read_sas7bdat if path.suffix.lower() == ".sas7bdat" else (
            pyreadstat.read_xport)
        target = self.scratch / f"{path.stem}.parquet"
        writer = None
        try:
            for chunk, _ in pyreadstat.read_file_in_chunks(reader, str(path), chunksize=1 << 20):
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema)
                writer.write_table(table.cast(writer.schema))
        except (pyreadstat.ReadstatError, OSError, ValueError, pa.ArrowException) as err:
            raise fail([Violation(name, "*", "readable file", 0, (path.name,),
                                  f"cannot be read as SAS: {err}")]) from None
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise fail([Violation(name, "*", "readable file", 0, (path.name,), "no rows")])
        return target

    def _describe(self, name: str, sql: str, path: Path) -> list[str]:
        try:
            return [row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()]
        except duckdb.Error as err:
            raise fail([Violation(name, "*", "readable file", 0, (path.name,),
                                  f"cannot be read: {str(err).splitlines()[0]}")]) from None

    def load(self, name: str) -> None:
        """Create the raw view ``src_<name>`` (upper-case column names; ``AAR`` from the file name
        of a yearly file) and check the required columns."""
        rspec = self.specs[name]
        parts: list[str] = []
        names_seen: dict[str, None] = {}
        for year, path in sorted(self._files[name], key=lambda f: (f[0] or 0, str(f[1]))):
            sql = self._source_sql(name, path)
            cols = self._describe(name, sql, path)
            upper = {c.upper(): c for c in cols}
            wanted = [c for c in (*rspec.required, *rspec.optional, "AAR") if c in upper]
            missing = [c for c in rspec.required if c not in upper]
            if rspec.yearly and year is None and "AAR" not in upper:
                missing.append("AAR")
            if missing:
                raise fail([Violation(name, c, "required column", 0, (path.name,),
                                      "column is missing") for c in missing])
            select = [f'"{upper[c]}" AS "{c}"' for c in wanted if not (c == "AAR" and year)]
            if rspec.yearly and year is not None:
                select.append(f"{year}::BIGINT AS AAR")
            names_seen.update(dict.fromkeys(wanted))
            if rspec.yearly:
                names_seen["AAR"] = None
            parts.append(f"SELECT {', '.join(select)} FROM {sql}")
        self.con.execute(f"CREATE OR REPLACE VIEW src_{name} AS "
                         + " UNION ALL BY NAME ".join(parts))
        self.columns[name] = list(names_seen)

    def load_all(self) -> None:
        """Load every register present, then type the columns (:meth:`type_views`)."""
        for name in self.specs:
            if self.has(name):
                self.load(name)
        self.type_views()

    # ----------------------------------------------------------------------- typing

    def _types(self, name: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE src_{name}").fetchall()
        return {r[0]: r[1] for r in rows}

    def _integral(self, name: str, column: str, sql_type: str) -> bool:
        """Whether every value of a column is a whole number (text: written as one)."""
        c = f'"{column}"'
        if sql_type in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER",
                        "USMALLINT", "UTINYINT", "HUGEINT"):
            return True
        if sql_type in ("DOUBLE", "FLOAT") or sql_type.startswith("DECIMAL"):
            test = f"bool_and({c} = floor({c}) AND abs({c}) < 1e15)"
        else:
            test = f"bool_and(regexp_full_match({c}::VARCHAR, '{_CANONICAL_INT}'))"
        (ok,) = self.con.execute(f"SELECT coalesce({test}, true) FROM src_{name}").fetchall()[0]
        return bool(ok)

    def type_views(self) -> None:
        """Create ``r_<name>`` for every loaded register: ids per domain, numbers, codes."""
        types = {name: self._types(name) for name in self.columns}
        id_type: dict[tuple[str, str], str] = {}
        for columns in ID_DOMAINS.values():
            present = [(t, c) for t, c in columns if t in types and c in types[t]]
            integer = all(self._integral(t, c, types[t][c]) for t, c in present)
            for t, c in present:
                id_type[(t, c)] = "BIGINT" if integer else "VARCHAR"
        for name, cols in self.columns.items():
            select = []
            for c in cols:
                q, sql_type = f'"{c}"', types[name][c]
                numeric = sql_type in ("DOUBLE", "FLOAT") or sql_type.startswith("DECIMAL")
                if (name, c) in id_type:
                    if id_type[(name, c)] == "BIGINT":
                        expr = f"CAST({q} AS BIGINT)"
                    elif numeric:
                        expr = f"CAST(CAST({q} AS BIGINT) AS VARCHAR)"
                    else:
                        expr = f"CAST({q} AS VARCHAR)"
                elif c in INTEGERS:
                    expr = f"TRY_CAST({q} AS BIGINT)"
                elif c in AMOUNTS:
                    expr = f"TRY_CAST({q} AS DOUBLE)"
                elif c in CODES and numeric:
                    expr = (f"CASE WHEN {q} = floor({q}) THEN CAST(CAST({q} AS BIGINT) AS VARCHAR)"
                            f" ELSE CAST({q} AS VARCHAR) END")
                else:
                    expr = f"nullif(trim(CAST({q} AS VARCHAR)), '')"
                select.append(f"{expr} AS {q}")
                if c in INTEGERS or c in AMOUNTS:
                    select.append(f"{q} AS \"raw_{c}\"")
            self.con.execute(f"CREATE OR REPLACE VIEW r_{name} AS SELECT {', '.join(select)} "
                             f"FROM src_{name}")

    # ----------------------------------------------------------------------- checks

    def examples(self, sql: str) -> tuple[int, tuple[str, ...]]:
        """Rows of a query (``SELECT <label text> ...``): how many and up to 10 of their labels."""
        (n,) = self.con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0]
        if not n:
            return 0, ()
        rows = self.con.execute(f"SELECT * FROM ({sql}) LIMIT {MAX_EXAMPLES}").fetchall()
        return int(n), tuple(str(r[0]) for r in rows)

    def check_basic(self, name: str) -> Iterator[Violation]:
        """Numbers that are not numbers, null keys and duplicate keys (per year) of a register."""
        rspec = self.specs[name]
        cols = self.columns[name]
        for c in cols:
            if c in INTEGERS or c in AMOUNTS:
                kind = "whole number" if c in INTEGERS else "number"
                n, ex = self.examples(
                    f"SELECT CAST(\"raw_{c}\" AS VARCHAR) FROM r_{name} "
                    f"WHERE \"{c}\" IS NULL AND \"raw_{c}\" IS NOT NULL "
                    f"AND trim(CAST(\"raw_{c}\" AS VARCHAR)) <> ''")
                if n:
                    yield Violation(name, c, "dtype", n, ex, f"expected a {kind}")
        key = [*rspec.key, *(["AAR"] if rspec.yearly else [])]
        for c in key:
            n, ex = self.examples(f"SELECT 'row' FROM r_{name} WHERE \"{c}\" IS NULL")
            if n:
                yield Violation(name, c, "not null", n, ex)
        if key:
            cols_sql = ", ".join(f'"{c}"' for c in key)
            label = " || ', ' || ".join(f"'{c}=' || \"{c}\"::VARCHAR" for c in key)
            n, ex = self.examples(
                f"SELECT {label} FROM r_{name} WHERE ({cols_sql}) IN ("
                f"SELECT ({cols_sql}) FROM r_{name} GROUP BY ALL HAVING count(*) > 1)")
            if n:
                yield Violation(name, "+".join(key), "unique key", n, ex,
                                f"one row per {'+'.join(key)}")

    def year_list(self, name: str) -> list[int]:
        """The years a yearly register holds."""
        if name not in self.years:
            rows = self.con.execute(f"SELECT DISTINCT AAR FROM r_{name} WHERE AAR IS NOT NULL "
                                    "ORDER BY 1").fetchall()
            self.years[name] = [int(r[0]) for r in rows]
        return self.years[name]

    def check_years(self, name: str, persons_years: list[int]) -> Iterator[Violation]:
        """Every year the persons years need (``t - lag``) must be in the register."""
        lag = self.specs[name].lag
        have = set(self.year_list(name))
        missing = [t - lag for t in persons_years if t - lag not in have]
        if missing:
            yield Violation(name, "AAR", "required year", len(missing),
                            tuple(f"{y} (for persons of {y + lag})" for y in missing[:10]),
                            f"year t-{lag} of every BEF year t" if lag else "every BEF year")

    def check_codes(self, name: str, column: str, allowed_sql: str, detail: str,
                    where: str = "TRUE") -> Iterator[Violation]:
        """Values of a code column outside ``allowed_sql`` (a subquery or a list)."""
        n, ex = self.examples(
            f"SELECT DISTINCT \"{column}\"::VARCHAR FROM r_{name} WHERE \"{column}\" IS NOT NULL "
            f"AND ({where}) AND \"{column}\" NOT IN ({allowed_sql})")
        if n:
            (rows,) = self.con.execute(
                f"SELECT count(*) FROM r_{name} WHERE \"{column}\" IS NOT NULL AND ({where}) "
                f"AND \"{column}\" NOT IN ({allowed_sql})").fetchall()[0]
            yield Violation(name, column, "allowed codes", int(rows), ex, detail)
