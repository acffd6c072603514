"""Read and write register folders: one file per table, ``<table>.parquet`` (CSV also read)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import spec as spec_mod
from impact.errors import DataSpecError, Violation
from impact.registers import TABLES, Registers

_TRUE = {"true", "t", "1", "yes", "1.0"}
_FALSE = {"false", "f", "0", "no", "0.0"}


def table_path(folder: Path, table: str) -> Path | None:
    """The file holding ``table`` in ``folder`` (parquet preferred over CSV), or ``None``."""
    for suffix in (".parquet", ".csv"):
        path = folder / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def _conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Cast columns to the spec's dtypes where this loses nothing; leave the rest for validation.

    Integer columns with missing values become pandas ``Int64``; ``true``/``false``/``0``/``1``
    text becomes bool. A value that cannot be cast is left as it is, so that
    :func:`impact.spec.validate` reports it with its row.
    """
    tspec = spec_mod.load().tables[table]
    out = frame.copy(deep=False)  # columns are replaced, never written into
    for cspec in tspec.columns:
        if cspec.name not in out.columns:
            continue
        s = out[cspec.name]
        if isinstance(s.dtype, pd.CategoricalDtype):  # dictionary-encoded parquet: the values
            s = out[cspec.name] = s.astype(s.cat.categories.dtype)
        if cspec.dtype == "id":
            out[cspec.name] = _conform_id(s)
        elif cspec.dtype == "int" and not pd.api.types.is_integer_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            valid = num.isna() == s.isna()
            values = num.to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                integral = np.isnan(values) | (np.floor(values) == values)
            if valid.all() and integral.all():
                out[cspec.name] = num.astype("Int64") if num.isna().any() else num.astype("int64")
        elif cspec.dtype == "int" and s.dtype.name == "Int64" and not s.isna().any():
            out[cspec.name] = s.astype("int64")
        elif cspec.dtype == "float" and not pd.api.types.is_float_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            if (num.isna() == s.isna()).all():
                out[cspec.name] = num.astype("float64")
        elif cspec.dtype == "bool" and not pd.api.types.is_bool_dtype(s):
            text = s.astype(str).str.strip().str.lower()
            if s.notna().all() and text.isin(_TRUE | _FALSE).all():
                out[cspec.name] = text.isin(_TRUE).to_numpy()
        elif cspec.dtype == "str" and pd.api.types.is_string_dtype(s) and s.dtype != object:
            out[cspec.name] = s.astype(object).where(s.notna(), None)
    return out


_CANONICAL_INT = r"-?[1-9][0-9]{0,17}|0"


def _conform_id(s: pd.Series) -> pd.Series:
    """An identifier column as it came: integers as int64 (``Int64`` with nulls), text as Python
    strings (object). Whole-number floats (integers with nulls, as parquet gives them to pandas)
    become integers; text is kept as text except from CSV (see :func:`read_table`)."""
    if pd.api.types.is_integer_dtype(s):
        return s.astype("int64") if s.dtype.name == "Int64" and not s.hasnans else s
    if pd.api.types.is_float_dtype(s) or (s.dtype == object and s.isna().all()):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if (np.isnan(values) | (np.floor(values) == values)).all():
                as_int = pd.array(s.astype("float64"), dtype="Int64")
                return pd.Series(as_int, index=s.index, name=s.name) if s.hasnans else (
                    s.astype("int64"))
        return s
    if pd.api.types.is_string_dtype(s) and s.dtype != object:
        return s.astype(object).where(s.notna(), None)
    return s


def _ids_from_text(s: pd.Series) -> pd.Series:
    """A CSV id column read as text: integers when every value is written as one (no sign but
    minus, no leading zeros, no spaces), else the text itself (``"0101"`` stays ``"0101"``)."""
    values = s[s.notna()]
    if len(values) and values.str.fullmatch(_CANONICAL_INT).all():
        ints = pd.to_numeric(s, dtype_backend="numpy_nullable")  # exact beyond 2**53
        return ints.astype("Int64") if s.hasnans else ints.astype("int64")
    return s.astype(object).where(s.notna(), None)


def read_table(path: Path, table: str) -> pd.DataFrame:
    """Read one table file and conform its dtypes to the spec.

    Identifier columns of a CSV file are read as text, so that ``"00123"`` keeps its zeros; they
    become integers when every value is a plain integer.

    Raises
    ------
    DataSpecError
        If the file cannot be read (rule ``readable file``: corrupt, truncated, another format,
        not UTF-8 text).
    """
    ids = [c.name for c in spec_mod.load().tables[table].columns if c.dtype == "id"]
    try:
        if path.suffix == ".parquet":
            # one block per column (no consolidation copy), Arrow buffers freed as converted:
            # about half the time and peak memory of pandas.read_parquet for the persons table
            frame = pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)
        else:
            frame = pd.read_csv(path, low_memory=False, encoding="utf-8",
                                dtype={c: str for c in ids})
            for c in ids:
                if c in frame.columns:
                    frame[c] = _ids_from_text(frame[c])
    except (OSError, ValueError, NotImplementedError, pa.ArrowException) as err:
        # pyarrow: ArrowInvalid (corrupt, truncated, not parquet); pandas: ParserError,
        # EmptyDataError and UnicodeDecodeError are ValueErrors
        raise unreadable(table, path, err) from None
    return _conform(frame, table)


def unreadable(table: str, path: Path, err: BaseException) -> DataSpecError:
    """The error for a table file that cannot be read, naming the table and the file."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, UnicodeDecodeError):
        reason = f"not UTF-8 text (byte {err.start}: {err.reason}); save the file as UTF-8"
    return DataSpecError(
        [Violation(table, "*", "readable file", 0, (path.name,),
                   f"cannot be read as {path.suffix.lstrip('.') or 'a table'}: {reason}")],
        context=f"cannot read {path}")


def read_registers(folder: str | Path) -> Registers:
    """Read the five tables from a folder of ``<table>.parquet`` or ``<table>.csv`` files.

    Raises
    ------
    DataSpecError
        If the folder or a table file is missing (rule ``required file``). Column-level checks are
        :func:`impact.spec.validate`'s job.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataSpecError(
            [Violation("*", "*", "data folder", 0, (str(folder),), "folder does not exist")],
            context=f"cannot read registers from {folder}",
        )
    missing = [t for t in TABLES if table_path(folder, t) is None]
    if missing:
        raise DataSpecError(
            [Violation(t, "*", "required file", 0, (), f"{t}.parquet or {t}.csv") for t in missing],
            context=f"register folder {folder} is incomplete",
        )
    tables = {t: read_table(table_path(folder, t), t) for t in TABLES}  # type: ignore[arg-type]
    truth_path = folder / "truth.parquet"
    truth = None
    if truth_path.exists():
        try:
            truth = pd.read_parquet(truth_path)
        except (OSError, ValueError, NotImplementedError, pa.ArrowException) as err:
            raise unreadable("truth", truth_path, err) from None
    return Registers(**tables, truth=truth)


def write_registers(registers: Registers, folder: str | Path) -> dict[str, Path]:
    """Write each table as ``<table>.parquet`` (and ``truth.parquet`` when present).

    Returns
    -------
    dict
        Table name to the path written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    tables = registers.tables()
    if registers.truth is not None:
        tables["truth"] = registers.truth
    for name, frame in tables.items():
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written[name] = path
    return written


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's content (values, column names, dtypes), independent of file format."""
    digest = hashlib.sha256()
    digest.update(repr(list(zip(frame.columns, map(str, frame.dtypes), strict=True))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
