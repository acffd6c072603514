"""Bad input never ends in a traceback: unreadable files and contradictory survey records give a
clear message naming the table (and column), exit status 2, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from impact import io, spec
from impact.cli import app
from impact.errors import DataSpecError
from tests.fixtures import tiny_registers


def _write(folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tiny_registers().tables().items():
        getattr(frame, f"to_{fmt}")(folder / f"{name}.{fmt}", index=False)
    return folder


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 40)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _csv_in_parquet(path: Path) -> None:
    path.write_text("department_id,organisation_id\n1,2\n")


def _latin1(path: Path) -> None:
    frame = pd.read_csv(path)
    frame["source"] = ["kommunens spørgeskema", "aftale"]
    frame.to_csv(path, index=False, encoding="latin-1")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _ragged(path: Path) -> None:
    path.write_text(path.read_text() + '1,2,"unterminated\n')


# case: (format, table, how the file is spoiled, words the message must contain)
BROKEN: dict[str, tuple[str, str, Callable[[Path], None], str]] = {
    "corrupt-parquet": ("parquet", "persons", _garbage, "parquet"),
    "truncated-parquet": ("parquet", "households", _truncate, "parquet"),
    "csv-named-parquet": ("parquet", "departments", _csv_in_parquet, "parquet"),
    "corrupt-csv": ("csv", "lettings", _garbage, "csv"),
    "latin-1-csv": ("csv", "tool_adoption", _latin1, "UTF-8"),
    "empty-csv": ("csv", "households", _empty, "csv"),
    "ragged-csv": ("csv", "lettings", _ragged, "csv"),
}


def _args(command: str, folder: Path, out: Path) -> list[str]:
    return {"validate": ["validate", str(folder)],
            "panel": ["panel", "--data", str(folder), "--out", str(out / "panel.parquet")],
            "run": ["run", "--data", str(folder), "--out", str(out)]}[command]


@pytest.mark.parametrize("command", ["validate", "panel", "run"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_unreadable_file_exits_2_naming_the_table(tmp_path: Path, case: str, command: str
                                                   ) -> None:
    fmt, table, spoil, words = BROKEN[case]
    folder = _write(tmp_path / "data", fmt)
    spoil(folder / f"{table}.{fmt}")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, _args(command, folder, out))
    assert result.exit_code == 2, result.output
    assert f"{table}.*: readable file" in result.output and words in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not out.exists()


def test_unreadable_file_is_a_data_spec_error(tmp_path: Path) -> None:
    folder = _write(tmp_path, "parquet")
    _truncate(folder / "persons.parquet")
    with pytest.raises(DataSpecError) as info:
        io.read_registers(folder)
    (violation,) = info.value.violations
    assert (violation.table, violation.rule, violation.examples) == (
        "persons", "readable file", ("persons.parquet",))


def _overlapping() -> pd.DataFrame:
    adoption = tiny_registers().tool_adoption
    extra = adoption.iloc[[1, 0]].assign(  # a second flexible spell 2008- and referral 2011-
        start_year=[2008, 2011], end_year=pd.array([None, None], dtype="Int64"),
        agreed_share=[0.5, 0.3])
    touching = adoption.iloc[[1]].assign(start_year=2010, end_year=pd.array([2012], dtype="Int64"))
    return pd.concat([adoption, extra], ignore_index=True), touching


def test_overlapping_spells_are_named_with_their_rows() -> None:
    overlapping, _ = _overlapping()
    found = [v for v in spec.check(tiny_registers().replace(tool_adoption=overlapping))
             if v.rule == "overlapping spells"]
    assert len(found) == 1 and found[0].table == "tool_adoption"
    # rows 0 (plan 7 referral 2006-) and 3 (plan 7 referral 2011-); 1 (dept 2 flexible 2004-2009)
    # and 2 (dept 2 flexible 2008-): all four rows are involved
    assert found[0].n_rows == 4
    assert found[0].examples[1] == "row 1: department_id=2, flexible_letting 2004-2009"


def test_spells_that_only_follow_each_other_are_fine() -> None:
    adoption = tiny_registers().tool_adoption
    _, touching = _overlapping()  # flexible 2010-2012 after 2004-2009: no overlap
    other_tool = adoption.iloc[[1]].assign(tool="combined_letting")  # same years, another tool
    ok = pd.concat([adoption, touching, other_tool], ignore_index=True)
    assert spec.check(tiny_registers().replace(tool_adoption=ok)) == []


@pytest.mark.parametrize("command", ["validate", "panel"])
def test_overlapping_spells_exit_2_via_the_cli(tmp_path: Path, command: str) -> None:
    overlapping, _ = _overlapping()
    folder = _write(tmp_path / "data", "parquet")
    overlapping.to_parquet(folder / "tool_adoption.parquet", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, _args(command, folder, out))
    assert result.exit_code == 2, result.output
    assert "tool_adoption.department_id/plan_id+tool+start_year+end_year: overlapping spells" in (
        result.output)
    assert "Traceback" not in result.output and not out.exists()
