"""Person-year counting for :mod:`impact.panel`: every person-year into one cell of the panel.

A person-year's cell is its department-year, its trait state (non-Western, 18-64, labour force,
qualifying education, employed, household income known, age > 0) and where its person was at *t-1*
and is at *t+1* (absent, outside social housing, another department, the same department). The
panel's measures are sums over cells, so nothing here depends on the row order of ``persons``: the
previous and next year of a person come from a dense (person, year) table, household incomes from
a dense (household, year) table, and cells are counted with ``np.bincount`` of one combined integer
key (incomes in whole øre, so the float64 sums are exact).

Rows come in chunks (the row groups of a parquet file, read in parallel and kept as zero-copy
views of the Arrow buffers, or ``CHUNK_ROWS`` slices of an in-memory table); row-wise work runs
chunk by chunk on a thread pool (NumPy and Arrow release the GIL), and every chunk writes its own
rows, so the result does not depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from impact.registers import factorize_ids

# bits of the move flags of a cell
MOVED_IN, FROM_SOCIAL_HOUSING, ARRIVED, STAYED, MOVED_OUT, TO_SOCIAL_HOUSING, EXITED = (
    1, 2, 4, 8, 16, 32, 64)
# bits of the trait code: 1 non-Western, 2 aged 18-64, 4 18-64 in the labour force, 8 qualifying
# education, 16 employed, 32 household income known, 64 age > 0
NON_WESTERN, ADULT, LABOUR_FORCE, QUALIFYING, EMPLOYED, INCOME_KNOWN, OLDER = (
    1, 2, 4, 8, 16, 32, 64)
PERSON_COLUMNS = ("person_id", "year", "household_id", "department_id", "age", "non_western",
                  "in_labour_force", "employed", "education")
# a dense lookup table is used while it has at most this many slots per row it serves (else hashing)
_DENSE_SLOTS_PER_ROW = 4
_DENSE_MIN_SLOTS = 1 << 22
# a chunk counts its cells with a bincount over the range of its keys up to this many bins (32 MiB
# of float64), else it numbers its keys by hashing first
_MAX_CHUNK_BINS = 1 << 22
# the chunks' cells are added up with a bincount over all keys up to this many (else hashing)
_MAX_MERGE_BINS = 1 << 25
# rows per chunk of an in-memory table
CHUNK_ROWS = 1 << 20

# Where a person is in a neighbouring year (t-1 or t+1), seen from a department at t. The
# (person, year) table holds 0 (absent), 1 (outside social housing) or 2 + department position;
# ``min(neighbour, 2) + (neighbour == here)`` gives these codes.
ABSENT, OUTSIDE, OTHER_DEPARTMENT, SAME_DEPARTMENT = 0, 1, 2, 3
# move flags from the t-1 code (arrival: only after the first year) and the t+1 code (exit: only
# before the last year)
_FROM_PREV = np.array([ARRIVED, MOVED_IN, MOVED_IN | FROM_SOCIAL_HOUSING, STAYED], dtype=np.uint8)
_FROM_NEXT = np.array([EXITED, MOVED_OUT, MOVED_OUT | TO_SOCIAL_HOUSING, 0], dtype=np.uint8)
_MOVED_IN_FROM = (_FROM_PREV & MOVED_IN) > 0


def _trait_states() -> tuple[np.ndarray, np.ndarray]:
    """Canonical trait codes (bits that no measure reads set to zero) and a dense state per code.

    Education and employment count only inside the labour force, income only at 18-64, and every
    adult is older than 0, so of the 128 codes 24 remain. Returns the lookup code -> state and the
    code of each state.
    """
    codes = np.arange(128)
    adult, lf = codes & ADULT > 0, codes & LABOUR_FORCE > 0
    canonical = ((codes & NON_WESTERN) | (codes & ADULT) | np.where(adult, codes & LABOUR_FORCE, 0)
                 | np.where(adult & lf, codes & (QUALIFYING | EMPLOYED), 0)
                 | np.where(adult, codes & INCOME_KNOWN, 0) | np.where(adult, OLDER, codes & OLDER))
    state_codes, state = np.unique(canonical, return_inverse=True)
    return state.astype(np.int16), state_codes.astype(np.uint8)


CODE_STATE, STATE_CODE = _trait_states()
N_STATES = len(STATE_CODE)
# the part of the cell key below the department-year: (t-1 code * 4 + t+1 code) * N_STATES + state
N_SUB = 16 * N_STATES


@dataclass
class PersonChunk:
    """The columns of ``persons`` the panel needs, for one chunk of rows in the table's order.

    Attributes
    ----------
    person_id, year, household_id
        int64.
    department_id
        float64, NaN where the person is not in social housing.
    code
        uint8 trait code without the income bit (``NON_WESTERN`` ... ``OLDER``).
    """

    person_id: np.ndarray
    year: np.ndarray
    household_id: np.ndarray
    department_id: np.ndarray
    code: np.ndarray


@dataclass
class HouseholdChunk:
    """``household_id``, ``year`` (int64) and ``disposable_income`` (float64, NaN = unknown)."""

    household_id: np.ndarray
    year: np.ndarray
    income: np.ndarray


def _bits_by_value(size: int, bits: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    values = np.arange(size)
    return bits(values).astype(np.uint8)


# trait bits by age 0..121 and education code 0..91 (other values are clipped to the ends, which
# carry the bits of every value beyond them)
_AGE_BITS = _bits_by_value(122, lambda a: np.where((a >= 18) & (a <= 64), ADULT, 0)
                           | np.where(a > 0, OLDER, 0))
_EDUCATION_BITS = _bits_by_value(92, lambda e: np.where((e >= 20) & (e <= 80), QUALIFYING, 0))


def trait_code(age: np.ndarray, education: np.ndarray, non_western: np.ndarray,
               in_labour_force: np.ndarray, employed: np.ndarray) -> np.ndarray:
    """Trait bits of person-years (all but ``INCOME_KNOWN``) as uint8."""
    u8 = np.uint8
    code = np.take(_AGE_BITS, age, mode="clip")
    code |= np.take(_EDUCATION_BITS, education, mode="clip")
    code |= non_western.view(u8)
    lf = code >> 1            # bit 0: aged 18-64
    lf &= in_labour_force.view(u8)
    lf <<= 2
    code |= lf
    code |= employed.view(u8) << 4
    return code


def _arrow_numpy(table: pa.Table, name: str) -> np.ndarray:
    """A column of an Arrow table as NumPy: a view of the Arrow buffer where possible (no nulls),
    nulls as NaN otherwise."""
    return table.column(name).combine_chunks().to_numpy(zero_copy_only=False)


def _read_row_groups(path: Path, columns: list[str], pool: Executor,
                     convert: Callable[[pa.Table], object]) -> Callable[[], list]:
    """Start reading the row groups of a parquet file side by side on the pool; returns a function
    that waits for them and gives ``convert`` of each (as an Arrow table)."""
    import pyarrow.parquet as pq

    n_groups = pq.ParquetFile(path).metadata.num_row_groups

    def read(i: int) -> object:
        group = pq.ParquetFile(path).read_row_group(i, columns=columns,
                                                    use_threads=n_groups == 1)
        return convert(group)

    futures = [pool.submit(read, i) for i in range(n_groups)]
    return lambda: [f.result() for f in futures]


def persons_from_parquet(path: Path, pool: Executor) -> list[PersonChunk]:
    """The panel's columns of a ``persons.parquet``, one chunk per row group."""

    def convert(t: pa.Table) -> PersonChunk:
        col = {name: _arrow_numpy(t, name) for name in PERSON_COLUMNS}
        return PersonChunk(
            person_id=col["person_id"].astype(np.int64, copy=False),
            year=col["year"].astype(np.int64, copy=False),
            household_id=col["household_id"].astype(np.int64, copy=False),
            department_id=col["department_id"].astype(np.float64, copy=False),
            code=trait_code(col["age"], col["education"], col["non_western"],
                            col["in_labour_force"], col["employed"]))

    return _read_row_groups(path, list(PERSON_COLUMNS), pool, convert)()


def persons_from_frame(persons: pd.DataFrame) -> list[PersonChunk]:
    """The panel's columns of an in-memory ``persons`` table, in chunks of ``CHUNK_ROWS``."""
    col = persons.__getitem__
    code = trait_code(col("age").to_numpy(dtype=np.int64), col("education").to_numpy(dtype=np.int64),
                      col("non_western").to_numpy(dtype=bool),
                      col("in_labour_force").to_numpy(dtype=bool),
                      col("employed").to_numpy(dtype=bool))
    whole = PersonChunk(col("person_id").to_numpy(dtype=np.int64),
                        col("year").to_numpy(dtype=np.int64),
                        col("household_id").to_numpy(dtype=np.int64),
                        col("department_id").to_numpy(dtype=np.float64, na_value=np.nan), code)
    return [PersonChunk(*(getattr(whole, f)[rows] for f in PersonChunk.__dataclass_fields__))
            for rows in _slices(len(code))]


def households_from_parquet(path: Path, pool: Executor) -> Callable[[], list[HouseholdChunk]]:
    """Start reading ``household_id``, ``year`` and ``disposable_income`` of a
    ``households.parquet`` on the pool; returns a function that waits for the chunks (one per row
    group)."""

    def convert(t: pa.Table) -> HouseholdChunk:
        return HouseholdChunk(_arrow_numpy(t, "household_id").astype(np.int64, copy=False),
                              _arrow_numpy(t, "year").astype(np.int64, copy=False),
                              _arrow_numpy(t, "disposable_income").astype(np.float64, copy=False))

    return _read_row_groups(path, ["household_id", "year", "disposable_income"], pool, convert)


def households_from_frame(households: pd.DataFrame) -> list[HouseholdChunk]:
    """As :func:`households_from_parquet`, from an in-memory table."""
    hid = households["household_id"].to_numpy(dtype=np.int64)
    year = households["year"].to_numpy(dtype=np.int64)
    income = households["disposable_income"].to_numpy(dtype=np.float64, na_value=np.nan)
    return [HouseholdChunk(hid[r], year[r], income[r]) for r in _slices(len(hid))]


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to whole numbers, halves away from zero (C's ``round``, as SQL engines do), exactly;
    NaN stays NaN. Overwrites and returns ``x``."""
    r = np.trunc(x)
    np.subtract(x, r, out=x)       # the fraction, exact
    np.abs(x, out=x)
    half = x >= 0.5
    np.copysign(half, r, out=x)    # +-1 where the fraction is at least a half (sign of r, or of
    np.add(r, x, out=x)            # the fraction's zero: trunc keeps the sign of -0.3 -> -0.0)
    return x


def _slices(n: int) -> list[slice]:
    """Row ranges of at most ``CHUNK_ROWS`` rows covering ``0..n``."""
    return [slice(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)] or [slice(0, 0)]


def run_chunks(pool: Executor, *jobs: tuple[Callable[[int], object], int]) -> None:
    """Each ``(fn, n)``: ``fn(i)`` for every chunk ``i < n``, all on the pool at once; waits and
    re-raises the first error."""
    futures = [pool.submit(fn, i) for fn, n in jobs for i in range(n)]
    for future in futures:
        future.result()


@dataclass
class IdCodes:
    """Integer ids mapped to ``0..k-1``: ``id - lo`` when they are dense enough for a lookup table,
    else codes by hashing (``pandas.factorize``) of the chunks given (``codes``, ``other``)."""

    lo: int
    k: int
    codes: list[np.ndarray] | None = None
    other: list[np.ndarray] | None = None

    @classmethod
    def of(cls, ids: list[np.ndarray], slots_per_id: int, other: list[np.ndarray] | None = None
           ) -> IdCodes:
        """Codes of the chunks ``ids`` (and ``other`` jointly) for a table with ``slots_per_id``
        slots per id: dense while it has at most ``_DENSE_SLOTS_PER_ROW`` slots per row of
        ``ids``."""
        both = [a for a in [*ids, *(other or [])] if len(a)]
        if not both:
            return cls(lo=0, k=0)
        lo, hi = min(int(a.min()) for a in both), max(int(a.max()) for a in both)
        n = sum(len(a) for a in ids)
        if (hi - lo + 1) * slots_per_id <= max(_DENSE_SLOTS_PER_ROW * n, _DENSE_MIN_SLOTS):
            return cls(lo=lo, k=hi - lo + 1)
        parts = [*ids, *(other or [])]
        codes, uniques = pd.factorize(np.concatenate(parts))
        split = np.split(codes.astype(np.int64, copy=False), np.cumsum([len(a) for a in parts])[:-1])
        return cls(lo=0, k=len(uniques), codes=split[:len(ids)],
                   other=split[len(ids):] if other is not None else None)

    def code(self, ids: np.ndarray, i: int, *, other: bool = False) -> np.ndarray:
        """A new array of the codes of chunk ``i`` (``ids``; ``other``: of the second list)."""
        codes = self.other if other else self.codes
        return ids - self.lo if codes is None else codes[i].copy()


def position_lookup(keys: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the position (int32) of each value among sorted unique integer ``keys``,
    -1 where the value is NaN or not a key; values are float64 holding integers (NaN = none)."""
    if len(keys) == 0:
        return lambda values: np.full(len(values), -1, dtype=np.int32)
    lo, hi = int(keys[0]), int(keys[-1])
    if hi - lo + 1 <= max(_DENSE_SLOTS_PER_ROW * len(keys), _DENSE_MIN_SLOTS):
        # a lookup table; slot 0: NaN or below the keys, slot hi - lo + 2: above
        lut = np.full(hi - lo + 3, -1, dtype=np.int32)
        lut[keys - lo + 1] = np.arange(len(keys))

        def dense(values: np.ndarray) -> np.ndarray:
            v = values - (lo - 1)
            np.fmax(v, 0, out=v)   # NaN -> 0
            np.fmin(v, hi - lo + 2, out=v)
            return lut[v.astype(np.int64)]

        return dense

    def search(values: np.ndarray) -> np.ndarray:
        valid = ~np.isnan(values)
        v = np.where(valid, values, lo).astype(np.int64)
        pos = np.minimum(np.searchsorted(keys, v), len(keys) - 1)
        return np.where(valid & (keys[pos] == v), pos, -1).astype(np.int32)

    return search


@dataclass
class Located:
    """Departments of the person-years and the dense (person, year) table of them; filled chunk by
    chunk with :meth:`fill`.

    Attributes
    ----------
    here
        Per chunk and row: 1 outside social housing (or an unknown department), 2 + position of
        the department among the sorted department ids otherwise (int16, or int32 beyond 32,765
        departments).
    table
        One slot per person and calendar year, plus an empty year at either end: ``here`` of that
        person-year, 0 where absent. A row's own slot is ``ids.code(person) * width + year offset
        + 1``. Assumes unique (person_id, year) keys (data contract).
    """

    persons: list[PersonChunk]
    ids: IdCodes
    position: Callable[[np.ndarray], np.ndarray]
    first_year: int
    width: int
    here: list[np.ndarray]
    table: np.ndarray

    @classmethod
    def allocate(cls, persons: list[PersonChunk], dept_ids: np.ndarray, first_year: int,
                 nspan: int) -> Located:
        """The empty table and the person codes."""
        width = nspan + 2
        ids = IdCodes.of([c.person_id for c in persons], width)
        dtype = np.int16 if len(dept_ids) + 2 <= np.iinfo(np.int16).max else np.int32
        return cls(persons=persons, ids=ids, position=position_lookup(dept_ids),
                   first_year=first_year, width=width,
                   here=[np.empty(len(c.year), dtype=dtype) for c in persons],
                   table=np.zeros(ids.k * width, dtype=dtype))

    def fill(self, i: int) -> None:
        """Departments of chunk ``i`` into ``here`` and ``table``."""
        c, here = self.persons[i], self.here[i]
        np.add(self.position(c.department_id), 2, out=here, casting="unsafe")
        slot = self.ids.code(c.person_id, i)
        slot *= self.width
        slot += c.year
        slot += 1 - self.first_year
        self.table[slot] = here


@dataclass
class IncomeTables:
    """Household incomes in whole øre per (household, year) slot ``ids.code(h) * nspan + year
    offset`` (NaN where the household-year is absent or its income unknown); filled chunk by chunk
    of households with :meth:`fill`.

    Each household-year's income is rounded once, ``round(income * 100)`` and ``round(income *
    factor * 100)`` (``factors[year - first_year]``: fixed prices), halves away from zero.
    Household-years outside the panel years are left out.
    """

    households: list[HouseholdChunk]
    factors: np.ndarray
    first_year: int
    ids: IdCodes
    nominal: np.ndarray
    real: np.ndarray

    @classmethod
    def allocate(cls, households: list[HouseholdChunk], persons: list[PersonChunk],
                 factors: np.ndarray, first_year: int) -> IncomeTables:
        """The empty tables and the household codes (of the households and, as ``other``, of the
        person-years' households)."""
        nspan = len(factors)
        ids = IdCodes.of([h.household_id for h in households], nspan,
                         [c.household_id for c in persons])
        return cls(households=households, factors=factors, first_year=first_year, ids=ids,
                   nominal=np.full(ids.k * nspan, np.nan), real=np.full(ids.k * nspan, np.nan))

    def fill(self, i: int) -> None:
        """Round the incomes of household chunk ``i`` into the tables."""
        h = self.households[i]
        nspan = len(self.factors)
        hoff = h.year - self.first_year
        slot = self.ids.code(h.household_id, i)
        income = h.income
        use = (hoff >= 0) & (hoff < nspan)
        if not use.all():
            hoff, slot, income = hoff[use], slot[use], income[use]
        slot *= nspan
        slot += hoff
        self.nominal[slot] = round_half_away(income * 100)
        real = income * self.factors[hoff]
        real *= 100
        self.real[slot] = round_half_away(real)


@dataclass
class Cells:
    """Persons and income sums per (department position, year offset, trait code, move flags).

    Every array has one entry per cell; ``real_ore`` and ``nom_ore`` are exact sums in øre
    (float64), ``moves`` holds the ``MOVED_IN`` ... ``EXITED`` bits.
    """

    dep_pos: np.ndarray
    year_offset: np.ndarray
    code: np.ndarray
    moves: np.ndarray
    n: np.ndarray
    real_ore: np.ndarray
    nom_ore: np.ndarray


def _chunk_cells(key: np.ndarray, real: np.ndarray, nom: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cells (keys) that occur in a chunk, with their rows and income sums."""
    lo = int(key.min())
    n_bins = int(key.max()) - lo + 1
    if n_bins <= _MAX_CHUNK_BINS:
        key -= lo
        counts = np.bincount(key, minlength=n_bins)
        cell = np.flatnonzero(counts)
        return (cell + lo, counts[cell], np.bincount(key, real, n_bins)[cell],
                np.bincount(key, nom, n_bins)[cell])
    ids, cell = pd.factorize(key)
    return cell, np.bincount(ids), np.bincount(ids, real), np.bincount(ids, nom)


def count_cells(located: Located, income: IncomeTables, n_departments: int, pool: Executor
                ) -> tuple[Cells, list[np.ndarray]]:
    """Count person-years in social housing per cell; also whether each row moved in.

    Each row reads its household's incomes (NaN where unknown), and its person's department at
    *t-1* and *t+1* from ``located.table``; its cell key is ``(year offset * (n_departments + 2) +
    here) * N_SUB + (t-1 code * 4 + t+1 code) * N_STATES + trait state``. Rows outside social
    housing get their own keys and are dropped. Every chunk counts its own cells; the chunks' cells
    are then added up (income sums in whole øre: exact in any order). Income sums are NaN in cells
    of unknown incomes; they are set to 0 (no income to add).

    Returns
    -------
    Cells, list of ndarray
        The cells and, per chunk and row, whether the person-year is an in-mover (in a department,
        and at *t-1* outside social housing or in another department).
    """
    persons = located.persons
    table, width, n_here = located.table, located.width, n_departments + 2
    nspan = width - 2
    prev_table, next_table = table[:-2], table[2:]   # indexed by own slot - 1
    moved_in = [np.empty(len(c.year), dtype=bool) for c in persons]
    parts: list[tuple[np.ndarray, ...]] = [()] * len(persons)

    def neighbour(values: np.ndarray, here: np.ndarray) -> np.ndarray:
        code = np.minimum(values, OTHER_DEPARTMENT)
        np.add(code, values == here, out=code)
        return code

    def count(i: int) -> None:
        c, here = persons[i], located.here[i]
        year_offset = c.year - located.first_year
        slot = located.ids.code(c.person_id, i)
        slot *= width
        slot += year_offset   # own slot - 1
        prev = neighbour(prev_table[slot], here)
        np.logical_and(_MOVED_IN_FROM[prev], here >= 2, out=moved_in[i])
        sub = prev * 4
        sub += neighbour(next_table[slot], here)
        slot = income.ids.code(c.household_id, i, other=True)
        slot *= nspan
        slot += year_offset
        # slots are in range: mode "clip" skips the bounds check and the buffer
        nom = np.take(income.nominal, slot, mode="clip")
        real = np.take(income.real, slot, mode="clip")
        code = c.code | (~np.isnan(nom)).view(np.uint8) << 5
        sub *= N_STATES
        sub += CODE_STATE[code]
        key = year_offset
        key *= n_here
        key += here
        key *= N_SUB
        key += sub
        parts[i] = _chunk_cells(key, real, nom)

    run_chunks(pool, (count, len(persons)))
    cell, counts, real_sum, nom_sum = (np.concatenate(p) for p in zip(*parts, strict=True))
    if len(persons) > 1:  # add up cells that several chunks have
        n_keys = nspan * n_here * N_SUB
        if n_keys <= _MAX_MERGE_BINS:  # by key
            counts, real_sum, nom_sum = (np.bincount(cell, w, n_keys)
                                         for w in (counts, real_sum, nom_sum))
            cell = np.flatnonzero(counts)
            counts, real_sum, nom_sum = counts[cell], real_sum[cell], nom_sum[cell]
        else:  # numbering the keys by hashing
            ids, cell = pd.factorize(cell)
            counts, real_sum, nom_sum = (np.bincount(ids, w) for w in (counts, real_sum, nom_sum))
    group, sub = np.divmod(cell, N_SUB)
    year_offset, here = np.divmod(group, n_here)
    keep = here >= 2
    year_offset, sub = year_offset[keep], sub[keep]
    neighbours, state = np.divmod(sub, N_STATES)
    prev, nxt = np.divmod(neighbours, 4)
    moves = (np.where((prev == ABSENT) & (year_offset == 0), 0, _FROM_PREV[prev])
             | np.where((nxt == ABSENT) & (year_offset == nspan - 1), 0, _FROM_NEXT[nxt]))
    cells = Cells(dep_pos=here[keep] - 2, year_offset=year_offset, code=STATE_CODE[state],
                  moves=moves.astype(np.uint8), n=counts[keep],
                  real_ore=np.nan_to_num(real_sum[keep], nan=0.0),
                  nom_ore=np.nan_to_num(nom_sum[keep], nan=0.0))
    return cells, moved_in


# --------------------------------------------------------------------------- identifiers

# Columns that hold the same kind of unit, so that they are numbered together (a letting's tenant
# is a person of ``persons``, a person's department one of ``departments``, ...).
ID_DOMAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "person": (("persons", "person_id"), ("lettings", "person_id")),
    "household": (("persons", "household_id"), ("households", "household_id")),
    "department": (("departments", "department_id"), ("persons", "department_id"),
                   ("lettings", "department_id"), ("tool_adoption", "department_id")),
    "plan": (("departments", "plan_id"), ("tool_adoption", "plan_id")),
}


def integer_ids(tables: dict[str, pd.DataFrame]) -> bool:
    """Whether every id column the panel computes with (of the tables given) holds integers."""
    return all(pd.api.types.is_integer_dtype(tables[t][c]) for columns in ID_DOMAINS.values()
               for t, c in columns if t in tables and c in tables[t])


def integer_id_files(folder: Path) -> bool:
    """Whether the id columns of ``persons``, ``households`` and ``lettings`` parquet files in
    ``folder`` are numbers, not text (their schemas are read, not the data)."""
    import pyarrow.parquet as pq

    for table in ("persons", "households", "lettings"):
        schema = pq.read_schema(folder / f"{table}.parquet")
        for columns in ID_DOMAINS.values():
            for t, c in columns:
                kind = schema.field(c).type if t == table and c in schema.names else None
                if kind is not None and not (pa.types.is_integer(kind)
                                             or pa.types.is_floating(kind)):
                    return False
    return True


def encode_ids(tables: dict[str, pd.DataFrame]
               ) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    """Number the ids of every domain that is not all integers, once, jointly over its columns.

    Integer ids are used as they are (no copy, no cost). Other ids (text) get the codes
    ``0..k-1`` in the sorted order of their values, so that the panel's order by code is its
    order by value.

    Returns
    -------
    tables, values
        The tables with int64 codes (``Int64`` where a column has nulls) in place of the text ids,
        and per numbered domain the original value of each code (for :func:`decode_ids`).
    """
    out = dict(tables)
    values: dict[str, np.ndarray] = {}
    for domain, columns in ID_DOMAINS.items():
        present = [(t, c) for t, c in columns if c in out[t]]
        if all(pd.api.types.is_integer_dtype(out[t][c]) for t, c in present):
            continue
        codes, values[domain] = factorize_ids([out[t][c] for t, c in present], sort=True)
        for (t, c), part in zip(present, codes, strict=True):
            column = (pd.array(np.where(part < 0, 0, part), dtype="Int64") if (part < 0).any()
                      else part)
            if (part < 0).any():
                column[part < 0] = pd.NA
            out[t] = out[t].assign(**{c: column})
    return out, values


def decode_ids(frame: pd.DataFrame, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The panel frame with the original department and plan ids in place of their codes."""
    for domain, column in (("department", "department_id"), ("plan", "plan_id")):
        if domain not in values or column not in frame:
            continue
        codes = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(codes)
        decoded = np.full(len(codes), None, dtype=object)
        decoded[known] = values[domain][codes[known].astype(np.int64)]
        frame = frame.assign(**{column: decoded})
    return frame
