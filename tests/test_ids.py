"""Identifiers as they come: integer and text ids give the same validation and the same panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impact import io, panel, spec
from impact.cli import app
from impact.panel._persons import ID_DOMAINS
from impact.registers import Registers
from tests.fixtures import tiny_registers

ID_COLUMNS = {t: [c.name for c in spec.load().tables[t].columns if c.dtype == "id"]
              for t in spec.load().tables}


def text_ids(reg: Registers, seed: int = 0) -> tuple[Registers, dict[str, dict[int, str]]]:
    """The same registers with every id replaced by a text code; the codes' sorted order is a
    random permutation of the integers' order (so nothing can lean on the order), and one code
    has leading zeros."""
    rng = np.random.default_rng(seed)
    tables = reg.tables()
    maps: dict[str, dict[int, str]] = {}
    for column in {c for cols in ID_COLUMNS.values() for c in cols}:
        ints = sorted({int(v) for t, cols in ID_COLUMNS.items() if column in cols
                       for v in tables[t][column].dropna()})
        labels = [f"{column[0].upper()}-{k:07d}" for k in rng.permutation(len(ints))]
        maps[column] = dict(zip(ints, labels, strict=True))
    for t, cols in ID_COLUMNS.items():
        frame = tables[t].copy()
        for c in cols:
            keys = np.fromiter(maps[c], dtype="int64", count=len(maps[c]))  # sorted
            labels = np.array([*maps[c].values(), None], dtype=object)
            values = frame[c].to_numpy(dtype="float64", na_value=np.nan)
            known = ~np.isnan(values)
            pos = np.full(len(values), len(keys))
            pos[known] = np.searchsorted(keys, values[known].astype("int64"))
            frame[c] = labels[pos]
        tables[t] = frame
    return reg.replace(**tables), maps


def test_id_columns_are_one_documented_type() -> None:
    # every column the panel numbers is of dtype id, and ids are never range-checked or coded
    for columns in ID_DOMAINS.values():
        for t, c in columns:
            cspec = spec.load().tables[t].column(c)
            assert cspec.dtype == "id" and cspec.codes is None and cspec.min is None
    assert "### Identifiers: dtype `id`" in (spec.load().folder / "README.md").read_text()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_text_ids_validate_and_keep_their_values(tmp_path: Path, fmt: str) -> None:
    reg, maps = text_ids(tiny_registers())
    reg.departments.loc[0, "department_id"] = "0101-003"  # leading zero: must survive CSV
    reg.persons["department_id"] = reg.persons["department_id"].replace(
        maps["department_id"][1], "0101-003")
    reg.lettings["department_id"] = reg.lettings["department_id"].replace(
        maps["department_id"][1], "0101-003")
    spec.validate(reg)
    for name, frame in reg.tables().items():
        getattr(frame, f"to_{fmt}")(tmp_path / f"{name}.{fmt}", index=False)
    back = io.read_registers(tmp_path)
    spec.validate(back)
    assert back.departments["department_id"].tolist() == reg.departments["department_id"].tolist()
    assert CliRunner().invoke(app, ["validate", str(tmp_path)]).exit_code == 0


def test_csv_integer_ids_stay_integers(tmp_path: Path) -> None:
    for name, frame in tiny_registers().tables().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    back = io.read_registers(tmp_path)
    assert back.persons["person_id"].dtype == np.int64
    assert back.persons["department_id"].dtype == "Int64"


def test_integer_and_text_ids_in_one_domain_are_named() -> None:
    reg = tiny_registers()
    persons = reg.persons.assign(department_id=reg.persons["department_id"].map(
        lambda v: None if pd.isna(v) else str(v)).astype(object))
    found = spec.check(reg.replace(persons=persons))
    fk = [v for v in found if (v.table, v.column, v.rule) == ("persons", "department_id",
                                                              "foreign key")]
    assert fk and fk[0].n_rows == 7 and "different ids" in fk[0].detail


def test_mixed_id_column_names_its_rows() -> None:
    reg = tiny_registers()
    persons = reg.persons.astype({"person_id": object})
    persons.loc[0, "person_id"] = "P1"
    hits = [v for v in spec.check(reg.replace(persons=persons)) if v.column == "person_id"]
    assert [(v.rule, v.n_rows) for v in hits] == [("dtype", 7)]


def test_every_broken_column_is_named_at_once() -> None:
    """A column whose values have the wrong type still has its nulls reported, and every column
    of every table with a broken rule appears in one message."""
    reg = tiny_registers()
    persons = reg.persons.astype({"age": object, "household_id": object})
    persons.loc[0, "age"] = "old"
    persons.loc[1, "age"] = None
    persons.loc[2, "household_id"] = 1.5
    departments = reg.departments.assign(n_dwellings=[0, 80, 50])
    found = spec.check(reg.replace(persons=persons, departments=departments))
    named = {(v.table, v.column, v.rule) for v in found}
    assert {("persons", "age", "dtype"), ("persons", "age", "not null"),
            ("persons", "household_id", "dtype"),
            ("departments", "n_dwellings", "range")} <= named


def _mapped_back(frame: pd.DataFrame, maps: dict[str, dict[int, str]]) -> pd.DataFrame:
    inverse = {c: {v: k for k, v in m.items()} for c, m in maps.items()}
    out = frame.copy()
    for c in ("department_id", "plan_id", "organisation_id"):
        out[c] = out[c].map(lambda v, m=inverse[c]: pd.NA if v is None or pd.isna(v) else m[v])
    out["department_id"] = out["department_id"].astype("int64")
    out["organisation_id"] = out["organisation_id"].astype("int64")
    out["plan_id"] = out["plan_id"].astype("Int64")
    return out.sort_values(["department_id", "year"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def simulated() -> Registers:
    from impact import simulate

    return simulate.registers(seed=3, scale="small")


def test_panel_from_text_ids_equals_integer_panel(simulated: Registers) -> None:
    """Exact identity: the panel is a function of which rows share an id, not of the ids' type,
    so text ids give the integer panel once the ids are mapped back."""
    reference = panel.build(simulated)
    reg, maps = text_ids(simulated, seed=1)
    built = panel.build(reg)
    assert set(built.frame["department_id"]) == set(maps["department_id"].values())
    frame = _mapped_back(built.frame, maps)
    pd.testing.assert_frame_equal(frame, reference.frame.astype({"plan_id": "Int64"}),
                                  check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(built.attrition, reference.attrition, check_exact=True)


def test_cli_panel_from_text_id_files_keeps_the_ids(tmp_path: Path) -> None:
    reg, maps = text_ids(tiny_registers())
    io.write_registers(reg, tmp_path / "data")
    result = CliRunner().invoke(app, ["panel", "--data", str(tmp_path / "data"),
                                      "--out", str(tmp_path / "panel.parquet")])
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(tmp_path / "panel.parquet")
    expected = panel.build(tiny_registers()).frame
    pd.testing.assert_frame_equal(_mapped_back(written, maps), expected, check_exact=True,
                                  check_dtype=False)


def test_sparse_integer_ids_give_the_violations_of_dense_ones() -> None:
    """Dense ids are checked with slot tables, sparse ones by hashing: the same rules break."""
    reg = tiny_registers()
    persons = pd.concat([reg.persons, reg.persons.iloc[[0]]], ignore_index=True)  # dup key
    persons.loc[1, "household_id"] = 999  # no such household-year
    lettings = reg.lettings.assign(person_id=pd.array([1, 77], dtype="Int64"))  # no person 77
    dense = reg.replace(persons=persons, lettings=lettings)
    big = 10**15

    def sparse(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for c in ("person_id", "household_id", "department_id"):
            if c in out:
                out[c] = out[c] * big + 7
        return out

    sparse_reg = dense.replace(**{t: sparse(f) for t, f in dense.tables().items()})
    summary = [[(v.table, v.column, v.rule, v.n_rows) for v in spec.check(r)]
               for r in (dense, sparse_reg)]
    assert summary[0] == summary[1] == [
        ("persons", "person_id+year", "unique key", 2),
        ("lettings", "person_id", "foreign key", 1),
        ("persons", "household_id+year", "foreign key (household-year)", 1)]
