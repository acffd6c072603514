"""The data contract: load ``data_spec/`` and validate register tables against it.

``data_spec/`` holds one TOML file per input table (columns, dtypes, nullability, codes, ranges, units and
the Statistics Denmark register each column comes from) and ``study.toml`` (study window, price base).
This module is the only place that knows the column lists; everything else asks it.

Examples
--------
>>> import impact
>>> spec = impact.spec.load()
>>> spec.tables["persons"].key
('person_id', 'year')
>>> impact.spec.validate(registers)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impact.errors import DataSpecError, Violation
from impact.registers import TABLES, Registers, factorize_ids

MAX_EXAMPLES = 10
DTYPES = ("int", "float", "bool", "str", "id")
"""Column types of the contract. ``id`` is an identifier: integers or text, as delivered (see
:func:`id_kind`); the same value means the same unit in every table."""


def spec_dir() -> Path:
    """The folder of the data contract.

    In this order: ``$IMPACT_DATA_SPEC``; ``impact/data_spec/`` inside the installed package (a
    wheel carries the contract as package data, mapped from the top-level folder by
    ``pyproject.toml``); ``data_spec/`` beside the package in a source checkout.
    """
    env = os.environ.get("IMPACT_DATA_SPEC")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    packaged = here / "data_spec"
    return packaged if (packaged / "study.toml").is_file() else here.parent / "data_spec"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of an input table, as written in ``data_spec/<table>.toml``."""

    name: str
    dtype: str
    nullable: bool
    description: str
    source: str
    unit: str = ""
    required: bool = True
    codes: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    finite: bool = False
    foreign_key: str | None = None
    in_study_window: bool = False
    is_adoption_year: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One input table: its key, description, register source and columns."""

    name: str
    description: str
    source: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column the spec knows, required or optional."""
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The columns every input must have."""
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r} in the data spec")


@dataclass(frozen=True)
class StudySpec:
    """Study-wide settings (``data_spec/study.toml``)."""

    first_year: int
    last_year: int
    report_group_first_year: int
    report_group_last_year: int
    price_base_year: int
    first_tool_year: int


@dataclass(frozen=True)
class Spec:
    """The whole data contract."""

    tables: Mapping[str, TableSpec]
    study: StudySpec
    folder: Path

    def codes(self, table: str, column: str) -> tuple[Any, ...]:
        """The allowed codes of a coded column (e.g. ``spec.codes("lettings", "channel")``)."""
        codes = self.tables[table].column(column).codes
        if codes is None:
            raise KeyError(f"{table}.{column} is not a coded column")
        return codes


def _column_from_toml(raw: dict[str, Any], table: str) -> ColumnSpec:
    dtype = raw["dtype"]
    if dtype not in DTYPES:
        raise ValueError(f"data_spec/{table}.toml: column {raw['name']} has unknown dtype {dtype!r}")
    codes = raw.get("codes")
    return ColumnSpec(
        name=raw["name"],
        dtype=dtype,
        nullable=bool(raw["nullable"]),
        description=raw["description"],
        source=raw["source"],
        unit=raw.get("unit", ""),
        required=bool(raw.get("required", True)),
        codes=tuple(codes) if codes is not None else None,
        min=raw.get("min"),
        max=raw.get("max"),
        finite=bool(raw.get("finite", False)),
        foreign_key=raw.get("foreign_key"),
        in_study_window=bool(raw.get("in_study_window", False)),
        is_adoption_year=bool(raw.get("is_adoption_year", False)),
    )


@functools.cache
def _load(folder: Path) -> Spec:
    tables: dict[str, TableSpec] = {}
    for name in TABLES:
        with open(folder / f"{name}.toml", "rb") as fh:
            raw = tomllib.load(fh)
        meta = raw["table"]
        tables[name] = TableSpec(
            name=meta["name"],
            description=meta["description"],
            source=meta["source"],
            key=tuple(meta["key"]),
            columns=tuple(_column_from_toml(c, name) for c in raw["columns"]),
        )
    with open(folder / "study.toml", "rb") as fh:
        study = StudySpec(**tomllib.load(fh)["study"])
    return Spec(tables=tables, study=study, folder=folder)


def load(folder: str | Path | None = None) -> Spec:
    """Load the data contract.

    Parameters
    ----------
    folder
        Folder with the TOML files; default :func:`spec_dir`.
    """
    return _load(Path(folder) if folder is not None else spec_dir())


@functools.cache
def _cpi(folder: Path) -> pd.Series:
    frame = pd.read_csv(folder / "cpi.csv", comment="#")
    return frame.set_index("year")["cpi"].astype(float)


def cpi(folder: str | Path | None = None) -> pd.Series:
    """Consumer price index by year (``data_spec/cpi.csv``), index = year."""
    return _cpi(Path(folder) if folder is not None else spec_dir()).copy()


def deflator(years: Iterable[int] | pd.Series, *, base_year: int | None = None) -> np.ndarray:
    """Factor that turns nominal DKK of each year into fixed prices of ``base_year``.

    Raises
    ------
    DataSpecError
        If a year is not covered by the CPI series.
    """
    spec = load()
    base = spec.study.price_base_year if base_year is None else base_year
    series = cpi()
    years_arr = np.asarray(list(years) if not isinstance(years, pd.Series) else years, dtype="int64")
    missing = sorted(set(np.unique(years_arr).tolist()) - set(series.index.tolist()))
    if missing or base not in series.index:
        bad = missing or [base]
        raise DataSpecError(
            [Violation("cpi", "year", "covered by CPI", len(bad), tuple(map(str, bad[:10])))],
            context="data_spec/cpi.csv does not cover every year",
        )
    return series.loc[base] / series.reindex(years_arr).to_numpy()


# --------------------------------------------------------------------------- validation


def _examples(frame: pd.DataFrame, mask: np.ndarray, key: tuple[str, ...]) -> tuple[str, ...]:
    idx = np.flatnonzero(mask)[:MAX_EXAMPLES]
    if not key or any(k not in frame.columns for k in key):
        return tuple(f"row {i}" for i in idx)
    sub = frame.iloc[idx]
    return tuple(
        ", ".join(f"{k}={v}" for k, v in zip(key, row, strict=True))
        for row in sub[list(key)].itertuples(index=False, name=None)
    )


class _Collector:
    """Collects violations for one table."""

    def __init__(self, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> None:
        self.table, self.frame, self.key = table, frame, key
        self.violations: list[Violation] = []

    def add(self, column: str, rule: str, mask: np.ndarray, detail: str = "") -> None:
        n = int(np.count_nonzero(mask))
        if n:
            self.violations.append(
                Violation(self.table, column, rule, n, _examples(self.frame, mask, self.key), detail)
            )


def id_kind(series: pd.Series) -> str | None:
    """The kind of an identifier column: ``"int"`` (an integer dtype), ``"str"`` (text only) or
    ``None`` (anything else: floats, booleans, integers mixed with text).

    Identifiers (dtype ``id`` in ``data_spec/``) are taken as they come: pseudonymised integers, or
    text such as Statistics Denmark's string PNRs or Landsbyggefonden's ``"0101-003"`` department
    codes. A value is compared as it is: the integer 5 and the text ``"5"`` are different ids.
    """
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_string_dtype(series) and series.dtype != object:
        return "str"
    if series.dtype == object and _all_text(series):
        return "str"
    return None


def _all_text(series: pd.Series) -> bool:
    """Whether every non-null value is a ``str`` (one pass in C: national-scale id columns)."""
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _dtype_ok(series: pd.Series, dtype: str) -> tuple[bool, np.ndarray]:
    """Whether a column holds the kind of values ``dtype`` asks for; the mask marks the bad rows."""
    nonnull = series.notna().to_numpy()
    none = np.zeros(len(series), dtype=bool)
    if dtype == "id":
        if id_kind(series) is not None:
            return True, none
        if series.dtype == object:  # integers mixed with text (or other objects): the non-text rows
            bad = nonnull & ~series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            return False, bad if bad.any() else nonnull
        return _dtype_ok(series, "int")  # numbers: the rows that are not whole numbers
    if dtype == "str":
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            if _all_text(series):
                return True, none
            bad = nonnull & ~series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            return not bad.any(), bad
        return False, nonnull
    if dtype == "bool":
        if pd.api.types.is_bool_dtype(series):
            return True, none
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            bad = nonnull & ~np.isin(values, (0.0, 1.0))
            return not bad.any(), bad
        # Text: the rows that do not even read as a boolean are the offending ones.
        text = series.astype(str).str.strip().str.lower()
        readable = text.isin(("true", "false", "0", "1", "t", "f", "yes", "no")).to_numpy()
        bad = nonnull & ~readable
        return False, bad if bad.any() else nonnull
    if pd.api.types.is_bool_dtype(series):
        return False, nonnull
    if pd.api.types.is_integer_dtype(series) or (
        dtype == "float" and pd.api.types.is_numeric_dtype(series)
    ):
        return True, none
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        fine = ~np.isnan(values) | np.isin(series.astype(str).str.lower(), ("inf", "-inf"))
        if dtype == "int":
            fine &= np.isfinite(values) & (np.floor(values) == values)
    bad = nonnull & ~fine
    # A column stored as text is never accepted for numbers; the unreadable rows are named.
    return False, bad if bad.any() else nonnull


def _check_table(name: str, frame: pd.DataFrame, spec: Spec) -> tuple[list[Violation], set[str]]:
    """Column-level rules of one table. Returns the violations and the columns fit for further checks."""
    tspec = spec.tables[name]
    col = _Collector(name, frame, tspec.key)
    usable: set[str] = set()
    for cspec in tspec.columns:
        if cspec.name not in frame.columns:
            if cspec.required:
                col.violations.append(
                    Violation(name, cspec.name, "required column", len(frame), (), "column is missing")
                )
            continue
        series = frame[cspec.name]
        isnull = series.isna().to_numpy()
        if not cspec.nullable:  # checked whatever the values' type, so it is never hidden
            col.add(cspec.name, "not null", isnull)
        nonnull = ~isnull
        ok, bad = _dtype_ok(series, cspec.dtype)
        if not ok:
            expected = "integers or text" if cspec.dtype == "id" else cspec.dtype
            col.add(cspec.name, "dtype", bad if bad.any() else series.notna().to_numpy(),
                    f"expected {expected}, found {_found(series)}")
            continue
        usable.add(cspec.name)
        if cspec.codes is not None:
            allowed = pd.Series(cspec.codes)
            if cspec.dtype == "int":
                inside = series.astype("float64").isin(allowed.astype("float64")).to_numpy()
            else:
                inside = series.isin(allowed).to_numpy()
            col.add(cspec.name, "allowed codes", nonnull & ~inside,
                    "allowed: " + ", ".join(map(str, cspec.codes)))
        if cspec.dtype in ("int", "float"):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            if cspec.finite:
                col.add(cspec.name, "finite", nonnull & ~np.isfinite(values), "no inf or NaN")
            with np.errstate(invalid="ignore"):
                if cspec.min is not None:
                    col.add(cspec.name, "range", nonnull & (values < cspec.min), f">= {cspec.min}")
                if cspec.max is not None:
                    col.add(cspec.name, "range", nonnull & (values > cspec.max), f"<= {cspec.max}")
                if cspec.in_study_window:
                    lo, hi = spec.study.first_year, spec.study.last_year
                    col.add(cspec.name, "study window", nonnull & ((values < lo) | (values > hi)),
                            f"years {lo}-{hi}")
                if cspec.is_adoption_year:
                    lo, hi = spec.study.first_tool_year, 2100
                    col.add(cspec.name, "adoption year", nonnull & ((values < lo) | (values > hi)),
                            f"years {lo}-{hi}")
    if tspec.key and all(k in usable for k in tspec.key):
        dup = _duplicated(frame, list(tspec.key))
        col.add("+".join(tspec.key), "unique key", dup)
    return col.violations, usable


def _found(series: pd.Series) -> str:
    """The type a column was found to hold, for messages (``str`` rather than ``object``)."""
    if series.dtype == object:
        kinds = sorted({type(v).__name__ for v in series[series.notna()].head(10_000)})
        return f"object ({' and '.join(kinds)} values)" if kinds else "object"
    return str(series.dtype)


def _id_codes(child: pd.Series, parent: pd.Series
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integers for the values of two id columns, equal where the values are equal, and where
    each is set (not null).

    Integer ids are their own codes; other ids are numbered jointly (hashing, once).
    """
    cset, pset = child.notna().to_numpy(), parent.notna().to_numpy()
    if pd.api.types.is_integer_dtype(child) and pd.api.types.is_integer_dtype(parent):
        return (child.to_numpy(dtype="int64", na_value=0), cset,
                parent.to_numpy(dtype="int64", na_value=0), pset)
    (ccodes, pcodes), _ = factorize_ids([child, parent], sort=False)
    return ccodes, cset, pcodes, pset


def _key_codes(cframe: pd.DataFrame, cols: list[str], pframe: pd.DataFrame, pcols: list[str]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One int64 per row of a (possibly composite: id, year) key of the child table, whether it is
    set, and the parent's keys (the set ones)."""
    ckey, cset, pkey, pset = _id_codes(cframe[cols[0]], pframe[pcols[0]])
    if len(cols) == 2:  # code * 10_000 + year: years are 4-digit, codes stay far below 9e14
        ckey = ckey * 10_000 + cframe[cols[1]].to_numpy(dtype="int64")
        pkey = pkey * 10_000 + pframe[pcols[1]].to_numpy(dtype="int64")
    return ckey, cset, pkey[pset]


# Dense slot tables (one slot per id and year) serve keys while they have at most this many slots
# per row (or this many in all); else hashing.
_DENSE_SLOTS_PER_ROW = 2
_DENSE_MIN_SLOTS = 1 << 20


def _dense_slots(ids: list[np.ndarray], years: list[np.ndarray] | None
                 ) -> tuple[list[np.ndarray], int] | None:
    """One slot per row for (integer id[, year]) keys of several arrays, jointly numbered:
    ``(id - lo) * width + year - first year``, and the number of slots; ``None`` when the ids are
    too sparse for a table (then hashing serves)."""
    nonempty = [a for a in ids if len(a)]
    if not nonempty:
        return None
    lo, hi = min(int(a.min()) for a in nonempty), max(int(a.max()) for a in nonempty)
    ylo, width = 0, 1
    if years is not None:
        ys = [y for y in years if len(y)]
        ylo = min(int(y.min()) for y in ys)
        width = max(int(y.max()) for y in ys) - ylo + 1
    size = (hi - lo + 1) * width
    if size > max(_DENSE_SLOTS_PER_ROW * sum(len(a) for a in ids), _DENSE_MIN_SLOTS):
        return None
    slots = []
    for i, a in enumerate(ids):
        slot = a - lo
        if years is not None:
            slot = slot * width + (years[i] - ylo)
        slots.append(slot)
    return slots, size


def _int_key(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The id (and year) arrays of a key of one or two non-null integer columns, else ``None``."""
    if not 1 <= len(columns) <= 2 or not all(
            pd.api.types.is_integer_dtype(frame[c]) and not frame[c].hasnans for c in columns):
        return None
    ids = frame[columns[0]].to_numpy(dtype="int64")
    return ids, frame[columns[1]].to_numpy(dtype="int64") if len(columns) == 2 else None


def _duplicated(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Rows whose key occurs more than once (all of them): a count per slot of a dense table for
    integer keys (no hashing: the cost of national-scale validation), else pandas hashing."""
    key = _int_key(frame, columns)
    dense = _dense_slots([key[0]], None if key[1] is None else [key[1]]) if key else None
    if dense is None:
        return frame.duplicated(columns, keep=False).to_numpy()
    (slot,), size = dense
    counts = np.bincount(slot, minlength=size)
    return counts[slot] > 1


def _check_relations(tables: dict[str, pd.DataFrame], usable: dict[str, set[str]], spec: Spec
                     ) -> list[Violation]:
    out: list[Violation] = []

    def fk(child: str, cols: list[str], parent: str, pcols: list[str], rule: str) -> None:
        if not (set(cols) <= usable.get(child, set()) and set(pcols) <= usable.get(parent, set())):
            return
        cframe, pframe = tables[child], tables[parent]
        inside = present = None
        ck, pk = _int_key(cframe, cols[:1]), _int_key(pframe, pcols)
        if ck is None and pk is not None and len(pk[0]) and pd.api.types.is_integer_dtype(
                cframe[cols[0]]) and (len(cols) == 1 or not cframe[cols[1]].hasnans):
            present = cframe[cols[0]].notna().to_numpy()  # a nullable integer id: nulls read
            ck = (cframe[cols[0]].to_numpy(dtype="int64", na_value=int(pk[0][0])), None)  # as
            # a parent's id, so that every slot is in the table; `present` leaves them out
        if ck is not None and pk is not None:
            cyear = cframe[cols[1]].to_numpy(dtype="int64") if len(cols) == 2 else None
            dense = _dense_slots([ck[0], pk[0]], None if cyear is None else [cyear, pk[1]])
            if dense is not None:  # a table of the parent's keys (no hashing)
                (cslot, pslot), size = dense
                table = np.zeros(size, dtype=bool)
                table[pslot] = True
                inside = table[cslot]
                present = np.ones(len(cslot), dtype=bool) if present is None else present
        if inside is None:
            ckey, present, pkey = _key_codes(cframe, cols, pframe, pcols)
            inside = pd.Index(pkey).unique().get_indexer(ckey) >= 0
        detail = f"must exist in {parent}.{'+'.join(pcols)}"
        kinds = id_kind(cframe[cols[0]]), id_kind(pframe[pcols[0]])
        if kinds[0] != kinds[1]:
            detail += (f"; {child}.{cols[0]} holds {kinds[0]} ids and {parent}.{pcols[0]} "
                       f"{kinds[1]} ids: the integer 5 and the text '5' are different ids")
        c = _Collector(child, cframe, spec.tables[child].key)
        c.add("+".join(cols), rule, present & ~inside, detail)
        out.extend(c.violations)

    for tname, tspec in spec.tables.items():
        for cspec in tspec.columns:
            if cspec.foreign_key:
                ptable, pcol = cspec.foreign_key.split(".")
                fk(tname, [cspec.name], ptable, [pcol], "foreign key")
    fk("persons", ["household_id", "year"], "households", ["household_id", "year"],
       "foreign key (household-year)")

    persons = tables["persons"]
    if {"employed", "in_labour_force"} <= usable["persons"]:
        c = _Collector("persons", persons, spec.tables["persons"].key)
        emp = persons["employed"].astype(bool).to_numpy()
        lf = persons["in_labour_force"].astype(bool).to_numpy()
        c.add("employed", "consistency", emp & ~lf, "employed persons must be in the labour force")
        out.extend(c.violations)

    adoption = tables["tool_adoption"]
    au = usable["tool_adoption"]
    c = _Collector("tool_adoption", adoption, ())
    if {"department_id", "plan_id"} <= au:
        n_set = adoption["department_id"].notna().to_numpy().astype(int) + adoption[
            "plan_id"].notna().to_numpy().astype(int)
        c.add("department_id/plan_id", "exactly one unit", n_set != 1,
              "set exactly one of department_id and plan_id")
    if {"start_year", "end_year"} <= au:
        start = adoption["start_year"].to_numpy(dtype="float64", na_value=np.nan)
        end = adoption["end_year"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            c.add("end_year", "adoption years", end < start, "end_year must be >= start_year")
            c.add("start_year", "adoption years", start > spec.study.last_year,
                  f"start_year must be <= {spec.study.last_year}")
    out.extend(c.violations)
    if {"department_id", "plan_id", "tool", "start_year", "end_year"} <= au:
        out.extend(_overlapping_spells(adoption))
    return out


def _overlapping_spells(adoption: pd.DataFrame) -> list[Violation]:
    """Spells of one tool for one unit (department or plan) whose years overlap: survey answers or
    agreements that contradict each other (which share, which start?). Every row involved is
    counted; examples name the row, its unit, tool and years."""
    dept, plan = adoption["department_id"], adoption["plan_id"]
    unit = np.where(dept.notna(), "department_id=" + dept.astype(str),
                    "plan_id=" + plan.astype(str))
    frame = pd.DataFrame({
        "unit": unit, "tool": adoption["tool"].to_numpy(),
        "start": adoption["start_year"].to_numpy(dtype="float64", na_value=np.nan),
        "end": adoption["end_year"].to_numpy(dtype="float64", na_value=np.nan),
        "row": np.arange(len(adoption))})
    frame = frame[frame["start"].notna() & frame["tool"].notna()]
    frame["end"] = frame["end"].fillna(np.inf)  # null = still in force
    frame = frame.sort_values(["unit", "tool", "start", "end"], kind="stable")
    groups = frame.groupby(["unit", "tool"], sort=False)
    reach = groups["end"].cummax()  # the latest end so far within the unit and tool
    later = frame["start"] <= reach.groupby([frame["unit"], frame["tool"]]).shift()
    earlier = groups["start"].shift(-1) <= reach
    bad = frame[later.to_numpy() | earlier.to_numpy()].sort_values("row")
    if bad.empty:
        return []

    def years(r: pd.Series) -> str:
        return f"{int(r.start)}-{'' if np.isinf(r.end) else int(r.end)}"

    examples = tuple(f"row {r.row}: {r.unit}, {r.tool} {years(r)}"
                     for r in bad.head(MAX_EXAMPLES).itertuples())
    return [Violation("tool_adoption", "department_id/plan_id+tool+start_year+end_year",
                      "overlapping spells", len(bad), examples,
                      "two spells of one tool for one unit must not overlap in years")]


def check(registers: Registers | Mapping[str, pd.DataFrame], *, spec: Spec | None = None
          ) -> list[Violation]:
    """Every violation of the data contract, as a list (empty when the data are valid).

    Parameters
    ----------
    registers
        A :class:`~impact.Registers` or a mapping from table name to DataFrame.
    spec
        The contract; default :func:`load`.
    """
    spec = spec or load()
    tables = registers.tables() if isinstance(registers, Registers) else dict(registers)
    violations: list[Violation] = []
    usable: dict[str, set[str]] = {}
    for name in TABLES:
        frame = tables.get(name)
        if frame is None:
            violations.append(Violation(name, "*", "required table", 0, (), "table is missing"))
            usable[name] = set()
            continue
        v, u = _check_table(name, frame, spec)
        violations += v
        usable[name] = u
    present = {n: t for n, t in tables.items() if t is not None}
    if set(TABLES) <= set(present):
        violations += _check_relations(present, usable, spec)
    return violations


def validate(registers: Registers | Mapping[str, pd.DataFrame], *, spec: Spec | None = None) -> None:
    """Check register tables against the data contract.

    Checks required tables and columns, dtypes, nulls, allowed codes, ranges (age 0-120, finite
    income), unique keys, foreign keys (department, household-year, a letting's person, a tool
    spell's unit), years inside the study window, adoption years and channel/tool codes. Extra
    columns are kept, not rejected.

    Raises
    ------
    DataSpecError
        Listing every violated rule with table, column, rule, number of rows and up to 10
        example keys.
    """
    violations = check(registers, spec=spec)
    if violations:
        raise DataSpecError(violations)
