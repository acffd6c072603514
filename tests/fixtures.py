"""Tiny hand-made register tables shared by the tests (valid against data_spec/)."""

from __future__ import annotations

import pandas as pd

from impact.registers import Registers


def tiny_registers() -> Registers:
    """Two departments in one plan plus one unsupported department, years 2003-2005.

    A deliberately small world that every validation test breaks in one place.
    """
    departments = pd.DataFrame({
        "department_id": [1, 2, 3],
        "organisation_id": [10, 10, 20],
        "municipality_id": [101, 101, 851],
        "plan_id": pd.array([7, 7, None], dtype="Int64"),
        "n_dwellings": [100, 80, 50],
    })
    persons = pd.DataFrame({
        "person_id": [1, 1, 1, 2, 2, 3, 3, 3],
        "year": [2003, 2004, 2005, 2003, 2004, 2003, 2004, 2005],
        "household_id": [100, 100, 100, 200, 201, 300, 300, 300],
        "department_id": pd.array([1, 1, 2, 1, None, 3, 3, 3], dtype="Int64"),
        "dwelling_id": pd.array([11, 11, 21, 12, None, 31, 31, 31], dtype="Int64"),
        "age": [30, 31, 32, 17, 18, 64, 65, 66],
        "non_western": [False, False, False, True, True, False, False, False],
        "in_labour_force": [True, True, True, False, True, True, False, False],
        "employed": [True, False, True, False, True, True, False, False],
        "education": [30, 30, 30, 10, 10, 90, 90, 90],
    })
    households = pd.DataFrame({
        "household_id": [100, 100, 100, 200, 201, 300, 300, 300],
        "year": [2003, 2004, 2005, 2003, 2004, 2003, 2004, 2005],
        "disposable_income": [200_000.0, 210_000.0, 220_000.0, 150_000.0, 90_000.0,
                              180_000.0, 170_000.0, 160_000.0],
        "n_persons": [1, 1, 1, 1, 1, 1, 1, 1],
    })
    lettings = pd.DataFrame({
        "letting_id": [1, 2],
        "department_id": [2, 1],
        "year": [2004, 2004],
        "channel": ["flexible_letting", "municipal_referral"],
        "person_id": pd.array([1, None], dtype="Int64"),
    })
    tool_adoption = pd.DataFrame({
        "department_id": pd.array([None, 2], dtype="Int64"),
        "plan_id": pd.array([7, None], dtype="Int64"),
        "tool": ["municipal_referral", "flexible_letting"],
        "start_year": [2006, 2004],
        "end_year": pd.array([None, 2009], dtype="Int64"),
        "agreed_share": [0.25, 1.0],
        "source": ["survey_municipality", "agreement"],
    })
    return Registers(persons=persons, households=households, departments=departments,
                     lettings=lettings, tool_adoption=tool_adoption)
