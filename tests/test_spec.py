"""The data contract: every validation rule meets a crafted bad input, in parquet and CSV folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import impact
from impact import io, spec
from impact.cli import app
from impact.registers import TABLES, Registers
from tests.fixtures import tiny_registers

FORMATS = ("parquet", "csv")


def write(registers: Registers, folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in registers.tables().items():
        if fmt == "parquet":
            frame = frame.copy()
            for col in frame.select_dtypes(include=["object", "str"]).columns:
                kinds = {type(v) for v in frame[col].dropna()}
                if len(kinds) > 1:  # a column with text among numbers is stored as text
                    frame[col] = frame[col].map(lambda v: None if pd.isna(v) else str(v))
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def violations_of(registers: Registers, tmp_path: Path, fmt: str) -> list[impact.Violation]:
    folder = write(registers, tmp_path / fmt, fmt)
    with pytest.raises(impact.DataSpecError) as info:
        spec.validate(io.read_registers(folder))
    return list(info.value.violations)


def edit(table: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Registers:
    reg = tiny_registers()
    return reg.replace(**{table: fn(reg.tables()[table].copy())})


def set_value(table: str, column: str, row: int, value: object) -> Registers:
    def fn(frame: pd.DataFrame) -> pd.DataFrame:
        if column in frame and not isinstance(value, type(None)):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return edit(table, fn)


def test_spec_files_cover_architecture_core_columns() -> None:
    s = spec.load()
    assert set(s.tables) == set(TABLES)
    core = {
        "persons": {"person_id", "year", "household_id", "department_id", "dwelling_id", "age",
                    "non_western", "in_labour_force", "employed", "education"},
        "households": {"household_id", "year", "disposable_income", "n_persons"},
        "departments": {"department_id", "organisation_id", "municipality_id", "plan_id",
                        "n_dwellings"},
        "lettings": {"letting_id", "department_id", "year", "channel", "person_id"},
        "tool_adoption": {"department_id", "plan_id", "tool", "start_year", "end_year",
                          "agreed_share", "source"},
    }
    for table, cols in core.items():
        assert cols <= set(s.tables[table].required_columns), table
        for c in s.tables[table].columns:
            assert c.source and c.description, f"{table}.{c.name} lacks a source or description"
    assert s.codes("lettings", "channel") == (
        "waiting_list", "internal_transfer", "municipal_referral", "flexible_letting",
        "combined_letting", "public_advertising")
    assert len(s.codes("tool_adoption", "tool")) == 7


def test_cpi_deflator_is_one_in_base_year_and_follows_ratios() -> None:
    base = spec.load().study.price_base_year
    d = spec.deflator([base, 2004])
    assert d[0] == 1.0
    cpi = spec.cpi()
    assert d[1] == pytest.approx(cpi[base] / cpi[2004])
    with pytest.raises(impact.DataSpecError, match="cpi"):
        spec.deflator([1950])


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_folder_passes_and_round_trips(tmp_path: Path, fmt: str) -> None:
    reg = tiny_registers()
    folder = write(reg, tmp_path / fmt, fmt)
    back = io.read_registers(folder)
    spec.validate(back)
    for name, frame in reg.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], frame, check_dtype=False)
    assert CliRunner().invoke(app, ["validate", str(folder)]).exit_code == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_extra_columns_are_kept(tmp_path: Path, fmt: str) -> None:
    reg = edit("persons", lambda f: f.assign(my_extra=np.arange(len(f))))
    folder = write(reg, tmp_path / fmt, fmt)
    back = io.read_registers(folder)
    spec.validate(back)
    assert back.persons["my_extra"].tolist() == list(range(len(reg.persons)))


CASES: list[tuple[str, Callable[[], Registers], str, str, str, int]] = [
    # id, bad input, table, column, rule, rows
    ("age-range-high", lambda: set_value("persons", "age", 0, 130), "persons", "age", "range", 1),
    ("age-range-low", lambda: set_value("persons", "age", 1, -1), "persons", "age", "range", 1),
    ("age-dtype", lambda: set_value("persons", "age", 2, "abc"), "persons", "age", "dtype", 1),
    ("age-not-integral", lambda: set_value("persons", "age", 2, 30.5), "persons", "age", "dtype", 1),
    ("household-null", lambda: set_value("persons", "household_id", 3, None), "persons",
     "household_id", "not null", 1),
    ("education-code", lambda: set_value("persons", "education", 0, 55), "persons", "education",
     "allowed codes", 1),
    ("bool-dtype", lambda: set_value("persons", "non_western", 0, "maybe"), "persons", "non_western",
     "dtype", 1),
    ("income-inf", lambda: set_value("households", "disposable_income", 0, np.inf), "households",
     "disposable_income", "finite", 1),
    ("person-year-dup", lambda: edit("persons", lambda f: pd.concat([f, f.iloc[[0]]])), "persons",
     "person_id+year", "unique key", 2),
    ("household-year-dup", lambda: edit("households", lambda f: pd.concat([f, f.iloc[[0, 1]]])),
     "households", "household_id+year", "unique key", 4),
    ("letting-dup", lambda: set_value("lettings", "letting_id", 1, 1), "lettings", "letting_id",
     "unique key", 2),
    ("department-dup", lambda: set_value("departments", "department_id", 2, 1), "departments",
     "department_id", "unique key", 2),
    ("person-department-fk", lambda: set_value("persons", "department_id", 0, 99), "persons",
     "department_id", "foreign key", 1),
    ("household-year-fk", lambda: set_value("persons", "household_id", 0, 999), "persons",
     "household_id+year", "foreign key (household-year)", 1),
    ("letting-person-fk", lambda: set_value("lettings", "person_id", 0, 424242), "lettings",
     "person_id", "foreign key", 1),
    ("letting-department-fk", lambda: set_value("lettings", "department_id", 0, 55), "lettings",
     "department_id", "foreign key", 1),
    ("adoption-plan-fk", lambda: set_value("tool_adoption", "plan_id", 0, 8), "tool_adoption",
     "plan_id", "foreign key", 1),
    ("persons-window", lambda: set_value("persons", "year", 0, 2020), "persons", "year",
     "study window", 1),
    ("lettings-window", lambda: set_value("lettings", "year", 0, 1999), "lettings", "year",
     "study window", 1),
    ("channel-code", lambda: set_value("lettings", "channel", 0, "lottery"), "lettings", "channel",
     "allowed codes", 1),
    ("tool-code", lambda: set_value("tool_adoption", "tool", 0, "magic"), "tool_adoption", "tool",
     "allowed codes", 1),
    ("adoption-year-early", lambda: set_value("tool_adoption", "start_year", 0, 1950),
     "tool_adoption", "start_year", "adoption year", 1),
    ("adoption-end-before-start", lambda: set_value("tool_adoption", "end_year", 1, 2001),
     "tool_adoption", "end_year", "adoption years", 1),
    ("adoption-start-after-window", lambda: set_value("tool_adoption", "start_year", 0, 2030),
     "tool_adoption", "start_year", "adoption years", 1),
    ("adoption-two-units", lambda: set_value("tool_adoption", "department_id", 0, 1),
     "tool_adoption", "department_id/plan_id", "exactly one unit", 1),
    ("agreed-share-range", lambda: set_value("tool_adoption", "agreed_share", 0, 1.5),
     "tool_adoption", "agreed_share", "range", 1),
    ("employed-outside-labour-force", lambda: set_value("persons", "employed", 3, True), "persons",
     "employed", "consistency", 1),
    ("missing-column", lambda: edit("persons", lambda f: f.drop(columns="age")), "persons", "age",
     "required column", 8),
    ("municipality-range", lambda: set_value("departments", "municipality_id", 0, 5), "departments",
     "municipality_id", "range", 1),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "make", "table", "column", "rule", "rows"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_rule_names_table_column_rule_and_rows(
    tmp_path: Path, fmt: str, case: str, make: Callable[[], Registers], table: str, column: str,
    rule: str, rows: int,
) -> None:
    found = violations_of(make(), tmp_path, fmt)
    hits = [v for v in found if (v.table, v.column, v.rule) == (table, column, rule)]
    assert hits, f"{case}: expected {table}.{column} {rule}, got {found}"
    assert hits[0].n_rows == rows
    if rows and rule != "required column":
        assert 1 <= len(hits[0].examples) <= 10


def test_examples_name_keys_and_are_capped_at_ten() -> None:
    reg = tiny_registers()
    persons = pd.concat([reg.persons.assign(year=2003 + i % 11, person_id=1000 + i)
                         for i in range(15)], ignore_index=True)
    persons["age"] = 200
    bad = reg.replace(persons=persons)
    hits = [v for v in spec.check(bad) if v.rule == "range" and v.column == "age"]
    assert hits[0].n_rows == 15 * len(reg.persons)
    assert len(hits[0].examples) == 10
    assert hits[0].examples[0].startswith("person_id=1000, year=")


def test_every_problem_is_listed_at_once() -> None:
    reg = tiny_registers()
    persons = reg.persons.copy()
    persons.loc[0, "age"] = 130
    lettings = reg.lettings.copy()
    lettings.loc[0, "channel"] = "lottery"
    with pytest.raises(impact.DataSpecError) as info:
        spec.validate(reg.replace(persons=persons, lettings=lettings))
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "persons.age: range" in message and "lettings.channel: allowed codes" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_file_is_reported(tmp_path: Path, fmt: str) -> None:
    folder = write(tiny_registers(), tmp_path / fmt, fmt)
    (folder / f"lettings.{fmt}").unlink()
    with pytest.raises(impact.DataSpecError, match=r"lettings\.\*: required file"):
        io.read_registers(folder)


@pytest.mark.parametrize("command", ["validate", "run", "panel"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_bad_input_exits_2_without_traceback_and_writes_nothing(
    tmp_path: Path, fmt: str, command: str
) -> None:
    bad = set_value("persons", "age", 0, 130)
    folder = write(bad, tmp_path / "data", fmt)
    out = tmp_path / "out"
    args = {
        "validate": ["validate", str(folder)],
        "run": ["run", "--data", str(folder), "--out", str(out)],
        "panel": ["panel", "--data", str(folder), "--out", str(out / "panel.parquet")],
    }[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "persons.age: range" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_cli_missing_folder_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "folder does not exist" in result.output
