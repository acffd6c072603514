"""``impact derive``: register extracts -> the five contract tables.

End to end: the simulator's tables written as raw extracts (``impact.derive.synthetic``) and derived
back must give the same tables, exactly, and the same panel; bad extracts get the clear errors of
``impact validate`` (exit 2, nothing written).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impact import derive, panel
from impact.cli import app
from impact.derive.synthetic import write_extracts
from impact.errors import DataSpecError
from impact.registers import Registers
from tests.fixtures import tiny_registers

KEYS = {"persons": ["person_id", "year"], "households": ["household_id", "year"],
        "departments": ["department_id"], "lettings": ["letting_id"],
        "tool_adoption": ["tool", "start_year", "department_id", "plan_id"]}


def assert_same_tables(derived: Registers, expected: Registers) -> None:
    """Every table equal (rows sorted by key; derived extras such as socio13 left out)."""
    for name, want in expected.tables().items():
        got = derived.tables()[name]
        got = got[list(want.columns)].sort_values(KEYS[name]).reset_index(drop=True)
        want = want.sort_values(KEYS[name]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True,
                                      obj=name)


@pytest.fixture(scope="module")
def simulated() -> Registers:
    from impact import simulate

    return simulate.registers(seed=4, scale="small")


@pytest.mark.slow
def test_simulated_extracts_derive_back_to_the_same_tables_and_panel(
        simulated: Registers, tmp_path: Path) -> None:
    write_extracts(simulated, tmp_path / "extracts")
    result = CliRunner().invoke(app, ["derive", "--extracts", str(tmp_path / "extracts"),
                                      "--out", str(tmp_path / "registers")])
    assert result.exit_code == 0, result.output
    derived = derive.read(tmp_path / "registers")
    assert_same_tables(derived, simulated)
    pd.testing.assert_frame_equal(panel.build(derived).frame, panel.build(simulated).frame,
                                  check_exact=True, check_dtype=False)
    # the attrition counts follow from how write_extracts encodes the tables
    p = simulated.persons
    pid = p["person_id"]
    attrition = pd.read_csv(tmp_path / "registers" / derive.ATTRITION_FILE).set_index("filter")
    removed = attrition["rows_removed"]
    assert removed["BEF address not in the LBF address link"] == p["department_id"].isna().sum()
    assert removed["not in UDDA t-1"] == ((p["education"] == 90) & (pid % 2 == 0)).sum()
    assert removed["not in AKM t-1"] == ((~p["in_labour_force"]) & (pid % 11 == 0)).sum()
    assert removed["tenant not in BEF (or no PNR)"] == simulated.lettings["person_id"].isna().sum()
    # socio13 comes from AKM: employed exactly for 110-139
    socio = derived.persons["socio13"]
    employed = derived.persons["employed"]
    assert (socio[employed].between(110, 139)).all() and not socio[~employed].between(
        110, 139).any()


def test_tiny_extracts_derive_back_to_the_same_tables_and_panel(tmp_path: Path) -> None:
    reg = tiny_registers()
    write_extracts(reg, tmp_path / "x")
    result = derive.derive(tmp_path / "x", tmp_path / "out")
    derived = derive.read(tmp_path / "out")
    assert_same_tables(derived, reg)
    pd.testing.assert_frame_equal(panel.build(derived).frame, panel.build(reg).frame,
                                  check_exact=True, check_dtype=False)
    removed = result.attrition.set_index("filter")["rows_removed"]
    # person 2 lives outside social housing in 2004; letting 2 has no tenant
    assert removed["BEF address not in the LBF address link"] == 1
    assert removed["tenant not in BEF (or no PNR)"] == 1
    assert removed["not in UDDA t-1"] == 0  # person 3 (education 90, odd id) is in UDDA


@pytest.mark.parametrize(("fmt", "yearly", "country_key"),
                         [("csv", False, True), ("xpt", True, False), ("parquet", False, False)])
def test_formats_and_layouts_derive_the_same(tmp_path: Path, fmt: str, yearly: bool,
                                             country_key: bool) -> None:
    reg = tiny_registers()
    write_extracts(reg, tmp_path / "x", fmt=fmt, yearly=yearly, country_key=country_key)
    derive.derive(tmp_path / "x", tmp_path / "out")
    assert_same_tables(derive.read(tmp_path / "out"), reg)


def test_income_from_ind_when_there_is_no_faik(tmp_path: Path) -> None:
    """IND's DISPON_NY summed over the BEF family: two members' 100 + 50 give the family 150."""
    reg = tiny_registers()
    persons = reg.persons.copy()
    persons.loc[persons["person_id"] == 2, "household_id"] = 100  # person 2 joins family 100
    households = reg.households[~reg.households["household_id"].isin([200, 201])].copy()
    households.loc[households["household_id"] == 100, "n_persons"] = [2, 2, 1]
    reg = reg.replace(persons=persons, households=households)
    folder = write_extracts(reg, tmp_path / "x", yearly=False)
    (folder / "faik.parquet").unlink()
    bef = pd.read_parquet(folder / "bef.parquet")
    ind = pd.DataFrame({"PNR": bef["PNR"], "AAR": bef["AAR"] - 1,
                        "DISPON_NY": np.where(bef["PNR"] == 2, 50.0, 100.0)})
    ind.to_parquet(folder / "ind.parquet", index=False)
    derive.derive(folder, tmp_path / "out")
    got = derive.read(tmp_path / "out").households.set_index(["household_id", "year"])
    assert got.loc[(100, 2003), "disposable_income"] == 150.0
    assert got.loc[(100, 2005), "disposable_income"] == 100.0
    assert got.loc[(300, 2004), "n_persons"] == 1


def test_text_person_numbers_keep_their_zeros(tmp_path: Path) -> None:
    reg = tiny_registers()
    folder = write_extracts(reg, tmp_path / "x", fmt="csv", yearly=False)
    for name in ("bef", "udda", "akm", "lbf_udlejninger"):
        frame = pd.read_csv(folder / f"{name}.csv", dtype=str)
        frame["PNR"] = frame["PNR"].map(lambda v: v if pd.isna(v) else f"00{v}")
        frame.to_csv(folder / f"{name}.csv", index=False)
    derive.derive(folder, tmp_path / "out")
    got = derive.read(tmp_path / "out")
    assert sorted(got.persons["person_id"].unique()) == ["001", "002", "003"]
    assert got.lettings["person_id"].dropna().tolist() == ["001"]


def _spoil_year(folder: Path) -> None:
    (folder / "udda2002.parquet").unlink()


def _spoil_code(name: str, column: str, value: object) -> object:
    def spoil(folder: Path) -> None:
        path = next(folder.glob(f"{name}*.parquet"))
        frame = pd.read_parquet(path)
        if isinstance(value, str):
            frame[column] = frame[column].astype(str)
        frame.loc[0, column] = value
        if column == "OPR_LAND":  # an immigrant, whose country must be known
            frame.loc[0, "IE_TYPE"] = 2
        frame.to_parquet(path, index=False)
    return spoil


def _duplicate_pnr(folder: Path) -> None:
    path = folder / "bef2004.parquet"
    frame = pd.read_parquet(path)
    pd.concat([frame, frame.iloc[[0]]]).to_parquet(path, index=False)


def _drop_column(folder: Path) -> None:
    path = folder / "bef2003.parquet"
    pd.read_parquet(path).drop(columns="ALDER").to_parquet(path, index=False)


def _corrupt(folder: Path) -> None:
    (folder / "akm2003.parquet").write_bytes(b"PAR1 not really parquet")


BAD = {  # case: (spoil, words the message must contain)
    "missing-year": (_spoil_year, "udda.AAR: required year"),
    "unknown-hfaudd": (_spoil_code("udda", "HFAUDD", 4242), "udda.HFAUDD: allowed codes"),
    "unknown-socio13": (_spoil_code("akm", "SOCIO13", 999), "akm.SOCIO13: allowed codes"),
    "unknown-ie-type": (_spoil_code("bef", "IE_TYPE", 7), "bef.IE_TYPE: allowed codes"),
    "unknown-country": (_spoil_code("bef", "OPR_LAND", 1), "bef.OPR_LAND: allowed codes"),
    "unknown-kanal": (_spoil_code("lbf_udlejninger", "KANAL", "lottery"),
                      "lbf_udlejninger.KANAL: allowed codes"),
    "age-not-a-number": (_spoil_code("bef", "ALDER", "old"), "bef.ALDER: dtype"),
    "duplicate-pnr-year": (_duplicate_pnr, "bef.PNR+AAR: unique key"),
    "missing-column": (_drop_column, "bef.ALDER: required column"),
    "missing-register": (lambda f: [p.unlink() for p in f.glob("akm*")],
                         "akm.*: required register"),
    "unreadable-file": (_corrupt, "akm.*: readable file"),
    "contract-broken": (_spoil_code("lbf_afdelinger", "KOM", 5),
                        "departments.municipality_id: range"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_extracts_exit_2_naming_register_and_column(tmp_path: Path, case: str) -> None:
    spoil, words = BAD[case]
    folder = write_extracts(tiny_registers(), tmp_path / "x")
    spoil(folder)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["derive", "--extracts", str(folder), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.derive-*"))


def test_bad_extracts_are_a_data_spec_error_listing_every_problem(tmp_path: Path) -> None:
    folder = write_extracts(tiny_registers(), tmp_path / "x")
    _spoil_code("udda", "HFAUDD", 4242)(folder)
    _spoil_code("akm", "SOCIO13", 999)(folder)
    with pytest.raises(DataSpecError) as info:
        derive.derive(folder, tmp_path / "out")
    found = {(v.table, v.column, v.rule) for v in info.value.violations}
    assert found == {("udda", "HFAUDD", "allowed codes"), ("akm", "SOCIO13", "allowed codes")}


def test_bad_text_far_down_a_csv_extract_is_named(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 after the rows DuckDB samples: still a clear error, exit 2."""
    folder = write_extracts(tiny_registers(), tmp_path / "x", fmt="csv")
    path = folder / "akm2003.csv"
    extra = "".join(f"{10_000 + i},131\n" for i in range(50_000)).encode()
    path.write_bytes(path.read_bytes() + extra + b"\xff\xfe,131\n")
    result = CliRunner().invoke(app, ["derive", "--extracts", str(folder),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "akm.*: readable file" in result.output and "akm2003.csv" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
