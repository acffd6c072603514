"""Panel definitions on a hand-computed fixture: every kind of move, age boundaries, labour force,
missing income, intensity and adoption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import impact
from impact import panel, spec
from impact.registers import Registers

# person: (dept 2003, dept 2004, age 2004, in_lf, employed, education, non_western, household)
# None = not in social housing; "absent" = not in persons that year.
PEOPLE = {
    1: (1, 1, 31, True, True, 30, False, 1),        # moves within department 1: not a move
    2: (1, 2, 41, True, True, 10, True, 2),         # between departments 1 -> 2
    3: (None, 2, 25, True, False, 60, False, 3),    # in from outside social housing
    4: (2, None, 51, True, True, 70, False, 4),     # out to outside social housing
    5: ("absent", 1, 33, True, False, 90, True, 5),  # arrival from abroad
    6: ("absent", 1, 0, False, False, 90, True, 5),  # newborn (same household as 5)
    7: (1, "absent", 81, False, False, 10, False, 7),  # death
    8: (1, 1, 17, True, True, 10, False, 8),        # aged 17 (in labour force, but too young)
    9: (1, 1, 18, True, True, 20, False, 8),        # aged 18 (17 in 2003)
    10: (1, 1, 64, True, False, 50, False, 8),      # aged 64
    11: (1, 1, 65, True, True, 70, False, 8),       # aged 65 (64 in 2003)
    12: (1, 1, 45, False, False, 30, True, 12),     # outside the labour force
}
INCOME = {  # household: (2003, 2004) nominal DKK; None = missing
    1: (200_000, 210_000), 2: (300_000, 310_000), 3: (100_000, 120_000), 4: (250_000, 260_000),
    5: (None, 150_000), 7: (90_000, None), 8: (400_000, 420_000), 12: (80_000, None),
}


def fixture_registers() -> Registers:
    rows = []
    for pid, (d03, d04, age, lf, emp, edu, nw, hh) in PEOPLE.items():
        for year, dept in ((2003, d03), (2004, d04)):
            if dept == "absent":
                continue
            rows.append({"person_id": pid, "year": year, "household_id": hh,
                         "department_id": dept, "dwelling_id": None,
                         "age": age - (2004 - year), "non_western": nw, "in_labour_force": lf,
                         "employed": emp, "education": edu})
    persons = pd.DataFrame(rows)
    persons["department_id"] = persons["department_id"].astype("Int64")
    persons["dwelling_id"] = persons["dwelling_id"].astype("Int64")
    present = persons[["household_id", "year"]].drop_duplicates()
    households = present.assign(
        disposable_income=[INCOME[h][y - 2003] for h, y in present.itertuples(index=False)],
        n_persons=present.merge(persons, on=["household_id", "year"]).groupby(
            ["household_id", "year"]).size().to_numpy(),
    )
    households["disposable_income"] = households["disposable_income"].astype("float64")
    departments = pd.DataFrame({"department_id": [1, 2, 3], "organisation_id": [10, 10, 20],
                                "municipality_id": [101, 101, 851],
                                "plan_id": pd.array([7, 7, None], dtype="Int64"),
                                "n_dwellings": [10, 10, 10]})
    lettings = pd.DataFrame({
        "letting_id": [1, 2, 3, 4],
        "department_id": [2, 2, 1, 1],
        "year": [2003, 2003, 2003, 2004],
        "channel": ["flexible_letting", "municipal_referral", "internal_transfer", "waiting_list"],
        "person_id": pd.array([2, 3, 1, None], dtype="Int64"),
    })
    adoption = pd.DataFrame({
        "department_id": pd.array([None, 2], dtype="Int64"),
        "plan_id": pd.array([7, None], dtype="Int64"),
        "tool": ["municipal_referral", "flexible_letting"],
        "start_year": [2006, 2004], "end_year": pd.array([None, 2009], dtype="Int64"),
        "agreed_share": [0.25, 1.0], "source": ["survey", "agreement"],
    })
    return Registers(persons=persons, households=households, departments=departments,
                     lettings=lettings, tool_adoption=adoption)


@pytest.fixture(scope="module")
def built() -> impact.panel.Panel:
    reg = fixture_registers()
    spec.validate(reg)
    return panel.build(reg)


def row(p: impact.panel.Panel, dept: int, year: int) -> pd.Series:
    f = p.frame
    return f[(f["department_id"] == dept) & (f["year"] == year)].iloc[0]


def real(nominal: float, year: int) -> float:
    return nominal * float(spec.deflator([year])[0])


def test_one_row_per_department_year(built: impact.panel.Panel) -> None:
    assert len(built.frame) == 3 * 2
    assert not built.frame.duplicated(["department_id", "year"]).any()


def test_stock_department_1_2004(built: impact.panel.Panel) -> None:
    r = row(built, 1, 2004)
    assert r["n_residents"] == 8          # 1, 5, 6 (newborn), 8, 9, 10, 11, 12
    assert r["share_non_western"] == pytest.approx(3 / 8)  # 5, 6, 12 (children count)
    assert r["n_labour_force_18_64"] == 4  # 1, 5, 9 (18), 10 (64); not 8 (17), 11 (65), 12 (no lf)
    assert r["share_qualifying_edu"] == pytest.approx(3 / 4)  # 30, 20, 50 yes; 90 unknown no
    assert r["share_employed"] == pytest.approx(2 / 4)
    # 18-64: 1 (210k), 5 (150k), 9 and 10 (household 8: 420k), 12 (missing income: left out)
    assert r["n_income_18_64"] == 4
    assert r["n_income_missing_18_64"] == 1
    assert r["mean_household_income_nominal"] == pytest.approx(300_000)
    assert r["mean_household_income"] == pytest.approx(real(300_000, 2004))


def test_stock_age_boundaries_2003(built: impact.panel.Panel) -> None:
    r = row(built, 1, 2003)
    # 1, 2, 7, 8 (16), 9 (17), 10 (63), 11 (64), 12: in lf 18-64 = 1, 2, 10, 11
    assert r["n_residents"] == 8
    assert r["n_labour_force_18_64"] == 4
    assert r["share_employed"] == pytest.approx(3 / 4)  # 1, 2, 11 employed; 10 not
    assert r["mean_household_income_nominal"] == pytest.approx(
        (200_000 + 300_000 + 400_000 + 400_000 + 80_000) / 5)


def test_empty_department_has_missing_shares(built: impact.panel.Panel) -> None:
    r = row(built, 3, 2004)
    assert r["n_residents"] == 0
    assert np.isnan(r["share_non_western"]) and np.isnan(r["mean_household_income"])


def test_in_movers(built: impact.panel.Panel) -> None:
    a, b = row(built, 1, 2004), row(built, 2, 2004)
    assert a["n_in_movers"] == 0            # 1 moved within the department
    assert a["n_arrivals"] == 1 and a["n_newborns"] == 1
    assert b["n_in_movers"] == 2            # 2 from department 1, 3 from outside social housing
    assert b["in_share_from_social_housing"] == pytest.approx(0.5)
    assert b["in_share_employed"] == pytest.approx(0.5)
    assert b["in_share_qualifying_edu"] == pytest.approx(0.5)
    assert b["in_share_non_western"] == pytest.approx(0.5)
    assert b["in_mean_household_income_nominal"] == pytest.approx((310_000 + 120_000) / 2)


def test_out_movers_described_at_t_minus_1(built: impact.panel.Panel) -> None:
    a, b = row(built, 1, 2004), row(built, 2, 2004)
    assert a["n_out_movers"] == 1 and a["n_exits"] == 1  # 2 left for dept 2; 7 died
    assert a["out_share_to_social_housing"] == 1.0
    assert a["out_share_non_western"] == 1.0 and a["out_share_qualifying_edu"] == 0.0
    assert a["out_mean_household_income_nominal"] == pytest.approx(300_000)  # 2003 income
    assert a["out_mean_household_income"] == pytest.approx(real(300_000, 2003))
    assert b["n_out_movers"] == 1 and b["out_share_to_social_housing"] == 0.0
    assert b["out_share_qualifying_edu"] == 1.0 and b["out_share_employed"] == 1.0


def test_movers_undefined_in_first_year(built: impact.panel.Panel) -> None:
    r = row(built, 1, 2003)
    assert pd.isna(r["n_in_movers"]) and pd.isna(r["n_out_movers"])
    assert np.isnan(r["in_share_employed"])


def test_intensity_and_linked_in_movers(built: impact.panel.Panel) -> None:
    b03, a03, a04, b04 = (row(built, 2, 2003), row(built, 1, 2003), row(built, 1, 2004),
                          row(built, 2, 2004))
    assert b03["n_lettings"] == 2
    assert b03["intensity_flexible_letting"] == 0.5 and b03["intensity_municipal_referral"] == 0.5
    assert a03["intensity_internal_transfer"] == 1.0 and a04["intensity_waiting_list"] == 1.0
    assert b04["n_lettings"] == 0 and np.isnan(b04["intensity_flexible_letting"])
    # lettings of 2003 fill the in-movers of 2004
    assert b04["n_in_movers_linked"] == 2
    assert b04["in_channel_share_flexible_letting"] == 0.5
    assert b04["in_channel_share_municipal_referral"] == 0.5


def test_adoption_plan_rows_apply_to_every_department(built: impact.panel.Panel) -> None:
    f = built.frame.set_index(["department_id", "year"])
    assert f.loc[(1, 2004), "first_year_municipal_referral"] == 2006
    assert f.loc[(2, 2004), "first_year_municipal_referral"] == 2006
    assert np.isnan(f.loc[(3, 2004), "first_year_municipal_referral"])
    assert not f.loc[(2, 2003), "in_force_flexible_letting"]
    assert f.loc[(2, 2004), "in_force_flexible_letting"]
    assert f.loc[(2, 2004), "agreed_share_flexible_letting"] == 1.0
    assert f.loc[(2, 2004), "cohort_flexible_letting"] == 2004
    assert f.loc[(1, 2004), "cohort_flexible_letting"] == 0
    assert f.loc[(1, 2004), "report_group"] == "referral_only"
    assert f.loc[(2, 2004), "report_group"] == "both"
    assert pd.isna(f.loc[(3, 2004), "report_group"])


def test_attrition_ledger_counts_every_filter(built: impact.panel.Panel) -> None:
    led = built.attrition.set_index(["step", "filter"])
    assert led.loc[("stock", "person without department"), "rows_removed"] == 2  # 3 (2003), 4 (2004)
    assert led.loc[("stock", "missing household income"), "rows_removed"] == 1
    assert led.loc[("stock", "in labour force"), "rows_removed"] == 2  # 12 in 2003 and 2004
    assert led.loc[("in_movers", "absent at t-1 (arrival)"), "rows_removed"] == 1
    assert led.loc[("in_movers", "newborn (age 0, absent at t-1)"), "rows_removed"] == 1
    assert (led["rows_out"] == led["rows_in"] - led["rows_removed"]).all()


def test_build_validates_by_default() -> None:
    reg = fixture_registers()
    bad = reg.persons.copy()
    bad.loc[0, "department_id"] = 99
    with pytest.raises(impact.DataSpecError, match="foreign key"):
        panel.build(reg.replace(persons=bad))
    with pytest.raises(impact.DataSpecError, match="foreign key"):
        panel.build(reg.replace(persons=bad), validate=False)


def test_describe_pools_persons_within_groups(built: impact.panel.Panel, tmp_path) -> None:
    from impact import describe

    tidy = describe.trends(built.frame)
    t = tidy.set_index(["figure", "report_group", "year"])
    # Figure 7.4 (employment, stock): department 2 is the only "both" department
    assert t.loc[("7.4", "both", 2004), "value"] == pytest.approx(0.5)
    assert t.loc[("7.4", "referral_only", 2004), "value"] == pytest.approx(2 / 4)
    assert t.loc[("7.4", "referral_only", 2004), "n_persons"] == 4
    assert t.loc[("7.7", "referral_only", 2004), "value"] == pytest.approx(real(300_000, 2004))
    assert t.loc[("7.5", "both", 2004), "value"] == pytest.approx(0.5)      # in-movers
    assert t.loc[("7.6", "referral_only", 2004), "value"] == pytest.approx(1.0)  # out-movers
    assert set(tidy["figure"]) <= {f"7.{i}" for i in range(1, 13)}
    paths = describe.write_figures(tidy, tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_describe_pooling_weights_by_persons() -> None:
    from impact import describe

    frame = pd.DataFrame({
        "department_id": [1, 2], "year": [2005, 2005], "report_group": ["both", "both"],
        "n_residents": [10, 30], "n_non_western": [1, 15], "n_labour_force_18_64": [4, 12],
        "n_qualifying_edu": [4, 0], "n_employed": [2, 12], "n_income_18_64": [1, 3],
        "mean_household_income": [100.0, 200.0],
        **{f"{p}{c}": [np.nan, np.nan] for p in ("in_", "out_") for c in (
            "n_non_western", "n_labour_force_18_64", "n_qualifying_edu", "n_employed",
            "n_income_18_64", "mean_household_income")},
        "n_in_movers": [0, 0], "n_out_movers": [0, 0],
    })
    t = describe.trends(frame).set_index(["figure", "report_group", "year"])["value"]
    assert t[("7.10", "both", 2005)] == pytest.approx(16 / 40)   # not (0.1 + 0.5) / 2
    assert t[("7.1", "both", 2005)] == pytest.approx(4 / 16)
    assert t[("7.4", "both", 2005)] == pytest.approx(14 / 16)
    assert t[("7.7", "both", 2005)] == pytest.approx((100 + 600) / 4)


def test_folder_path_equals_in_memory(built: impact.panel.Panel, tmp_path) -> None:
    from impact import io

    io.write_registers(fixture_registers(), tmp_path)
    direct = panel.build(tmp_path, validate=False)   # read straight from parquet (pyarrow)
    via_pandas = panel.build(tmp_path)               # read, validate, build
    pd.testing.assert_frame_equal(direct.frame, built.frame, check_dtype=False)
    pd.testing.assert_frame_equal(via_pandas.frame, built.frame, check_dtype=False)
    pd.testing.assert_frame_equal(direct.attrition, built.attrition)


@pytest.fixture(scope="module")
def simulated() -> tuple[Registers, impact.panel.Panel]:
    from impact import simulate

    reg = simulate.registers(seed=3, scale="small")
    return reg, panel.build(reg)


STOCK_AND_MOVERS = ["share_qualifying_edu", "share_employed", "share_non_western",
                    "in_share_qualifying_edu", "in_share_employed", "in_share_non_western",
                    "out_share_qualifying_edu", "out_share_employed", "out_share_non_western"]


def test_panel_agrees_with_what_the_simulator_recorded(simulated) -> None:
    """Two independent codings of the definitions: the simulator's own (truth) and the panel's."""
    reg, built = simulated
    m = built.frame.merge(reg.truth, on=["department_id", "year"], suffixes=("", "_sim"))
    assert len(m) == len(reg.truth)
    for measure in STOCK_AND_MOVERS:
        ours, theirs = m[measure], m[f"{measure}_factual"]
        assert (ours.isna() == theirs.isna()).all(), measure
        np.testing.assert_allclose(ours.dropna(), theirs.dropna(), rtol=0, atol=1e-12)
    for prefix in ("", "in_", "out_"):  # the simulator records nominal DKK
        # the panel sums incomes in whole øre: each person's income is off by at most 0.005 DKK
        np.testing.assert_allclose(m[f"{prefix}mean_household_income_nominal"].dropna(),
                                   m[f"{prefix}mean_household_income_factual"].dropna(),
                                   rtol=0, atol=0.005)
    np.testing.assert_array_equal(m["n_in_movers"].dropna().astype(int),
                                  m.loc[m["n_in_movers"].notna(), "n_in_movers_factual"])
    np.testing.assert_array_equal(m["n_out_movers"].dropna().astype(int),
                                  m.loc[m["n_out_movers"].notna(), "n_out_movers_factual"])


def test_intensity_equals_the_simulators_letting_shares(simulated) -> None:
    reg, built = simulated
    m = built.frame.merge(reg.truth, on=["department_id", "year"], suffixes=("", "_sim"))
    np.testing.assert_array_equal(m["n_lettings"], m["n_lettings_sim"])
    for channel in ("waiting_list", "internal_transfer", "municipal_referral", "flexible_letting"):
        ours, theirs = m[f"intensity_{channel}"], m[f"intensity_{channel}_sim"]
        both = ours.notna() & theirs.notna()
        assert (ours.notna() == (m["n_lettings"] > 0)).all()
        np.testing.assert_allclose(ours[both], theirs[both], rtol=0, atol=1e-12)
    for tool in ("municipal_referral", "flexible_letting"):
        # a tool in use (effective share > 0) is formally in force in tool_adoption
        assert (m[f"in_force_{tool}"] | ~m[f"in_use_{tool}"]).all()
        np.testing.assert_array_equal(m[f"in_force_{tool}"] & (m[f"effective_share_{tool}"] > 0),
                                      m[f"in_use_{tool}"])


def test_no_lettings_and_no_tools() -> None:
    reg = fixture_registers()
    built = panel.build(reg.replace(lettings=reg.lettings.iloc[:0],
                                    tool_adoption=reg.tool_adoption.iloc[:0]))
    f = built.frame
    assert (f["n_lettings"] == 0).all() and f["intensity_flexible_letting"].isna().all()
    assert (f["cohort_flexible_letting"] == 0).all() and not f["in_force_flexible_letting"].any()
    supported = f[f["supported"]]
    assert (supported["report_group"] == "neither").all()
    assert row(built, 2, 2004)["n_in_movers"] == 2  # composition does not depend on lettings


def test_panel_does_not_depend_on_row_order_id_coding_or_chunking(simulated, monkeypatch) -> None:
    """Shuffled rows, sparse ids (hashed instead of dense lookup tables), many small chunks and
    cells numbered by hashing give the same panel, exactly."""
    from impact.panel import _persons as _panel_persons

    reg, built = simulated
    big = 1_000_003  # ids far apart: no dense table fits
    perm = np.random.default_rng(5).permutation(len(reg.persons))
    persons = reg.persons.iloc[perm].reset_index(drop=True)
    persons["person_id"] = persons["person_id"] * big + 11
    persons["household_id"] = persons["household_id"] * big + 13
    persons["department_id"] = persons["department_id"] * big
    households = reg.households.assign(household_id=reg.households["household_id"] * big + 13)
    departments = reg.departments.assign(department_id=reg.departments["department_id"] * big)
    lettings = reg.lettings.assign(department_id=reg.lettings["department_id"] * big,
                                   person_id=reg.lettings["person_id"] * big + 11)
    adoption = reg.tool_adoption.assign(department_id=reg.tool_adoption["department_id"] * big)
    monkeypatch.setattr(_panel_persons, "CHUNK_ROWS", 4_096)
    monkeypatch.setattr(_panel_persons, "_MAX_CHUNK_BINS", 1_000)
    monkeypatch.setattr(_panel_persons, "_MAX_MERGE_BINS", 1_000)
    other = panel.build(reg.replace(persons=persons, households=households,
                                    departments=departments, lettings=lettings,
                                    tool_adoption=adoption), validate=False, threads=3)
    frame = other.frame.assign(department_id=other.frame["department_id"] // big)
    pd.testing.assert_frame_equal(frame, built.frame, check_exact=True)
    pd.testing.assert_frame_equal(other.attrition, built.attrition, check_exact=True)


def test_unknown_department_is_refused_with_examples() -> None:
    reg = fixture_registers()
    bad = reg.persons.copy()
    bad.loc[bad["person_id"] == 5, "department_id"] = 99
    with pytest.raises(impact.DataSpecError, match="person_id=5"):
        panel.build(reg.replace(persons=bad), validate=False)
