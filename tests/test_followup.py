"""Tests of impact.followup.design: the documents quote the computed tables; MDE falls with
more departments (and, without shared shocks, exactly as 1/sqrt(departments))."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
import pytest

import impact
from impact.diagnostics import power_design
from impact.errors import EstimationError
from impact.followup import FollowupDesign, design
from impact.followup.render import FORMATS, TABLES

TOOL, OUTCOME = "flexible_letting", "share_employed"


@cache
def small_panel() -> pd.DataFrame:
    """Department-year panel of the simulator at scale "small"."""
    return impact.panel.build(impact.simulate.registers(0, "small")).frame


@cache
def small_design() -> FollowupDesign:
    return design(small_panel(), n_reps=2, department_factors=(0.5, 1.0, 2.0, 4.0),
                  extra_years=(0, 3))


def markdown_tables(md: str) -> dict[str, pd.DataFrame]:
    """Every Markdown table under a '## i. Title' heading, as text cells keyed by title."""
    out: dict[str, pd.DataFrame] = {}
    for block in re.split(r"^## \d+\. ", md, flags=re.M)[1:]:
        title = block.splitlines()[0].strip()
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if not rows:
            continue
        cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
        out[title] = pd.DataFrame(cells[2:], columns=cells[0])
    return out


def test_markdown_numbers_equal_computed_tables():
    d = small_design()
    md = d.markdown
    shown = markdown_tables(md)
    for key, frame in [("comparison", d.comparison), ("grid", d.grid), ("strata", d.strata),
                       ("simulated", d.simulated)]:
        title, cols = TABLES[key]
        table = shown[title]
        assert len(table) == len(frame)
        for c in cols:
            if c not in FORMATS:
                assert list(table[c]) == [str(v) for v in frame[c]]
                continue
            decimals = int(m.group(1)) if (m := re.search(r"\.(\d)f", FORMATS[c])) else 0
            got = pd.to_numeric(table[c].replace("--", np.nan)).to_numpy(float)
            want = frame[c].to_numpy(float)
            np.testing.assert_allclose(got, want, atol=0.5 * 10.0**-decimals + 1e-12,
                                       err_msg=f"{key}.{c}")
    # the running text quotes the MDEs of the 2015 design and of the recommended follow-up
    assert f"only effects of {d.comparison['mde'].iloc[0]:.4f} or more" in md
    assert f"recommended follow-up detects {d.comparison['mde'].iloc[-1]:.4f}" in md
    assert f"{int(d.recommended['n_departments'])} departments followed for " \
           f"{int(d.recommended['n_years'])} years" in md


def test_recommended_is_the_cheapest_design_reaching_target():
    d = small_design()
    ok = d.grid[d.grid["power_at_effect"] >= d.settings["target_power"]]
    assert bool(d.recommended["reaches_target"]) == (len(ok) > 0)
    if len(ok):
        assert d.recommended["department_years"] == ok["department_years"].min()
    assert d.strata["n_to_follow"].sum() == d.recommended["n_departments"]
    assert d.strata["n_departments_panel"].sum() == d.model.n_departments
    # the 2015 contrast uses only supported departments (report_group set) in 2003-2010
    panel = small_panel()
    n_groups = panel.groupby("department_id")["report_group"].first().notna().sum()
    assert d.comparison["n_departments"].iloc[0] == n_groups
    assert d.comparison["n_years"].iloc[0] == int((panel["year"].unique() <= 2010).sum())


def test_mde_decreases_with_more_departments():
    d = small_design()
    for _, g in d.grid.groupby("n_years"):
        g = g.sort_values("n_departments")
        assert np.all(np.diff(g["mde"].to_numpy()) < 0)


def test_mde_scales_as_inverse_root_departments_without_shared_shocks():
    """Copies of the departments are independent when nothing is shared within municipality or
    plan: doubling them halves the variance (exact identity)."""
    base = power_design(small_panel(), outcome=OUTCOME, tool=TOOL)
    alone = replace(base, model=replace(base.model, sigma2_municipality=0.0, sigma2_plan=0.0))
    mdes = [alone.resized(f).analytic_mde() for f in (1.0, 2.0, 4.0)]
    np.testing.assert_allclose(np.array(mdes[1:]) / mdes[0], [2**-0.5, 0.5], rtol=1e-10)
    # with shared shocks the municipality part does not shrink: the ratio stays above 1/sqrt(2)
    shared = [base.resized(f).analytic_mde() for f in (1.0, 2.0)]
    assert 2**-0.5 < shared[1] / shared[0] < 1


def test_write_creates_documents_tables_and_figure(tmp_path):
    d = small_design()
    paths = d.write(tmp_path)
    for name in ("design.md", "design.tex", "comparison.csv", "grid.csv", "strata.csv",
                 "curves.csv", "power_curve.png"):
        assert paths[name].exists() and paths[name].stat().st_size > 0
    assert paths["design.md"].read_text() == d.markdown
    tex = paths["design.tex"].read_text()
    assert r"\begin{tabular}" in tex and r"\includegraphics" in tex
    assert f"{d.comparison['mde'].iloc[0]:.4f}" in tex
    back = pd.read_csv(paths["grid.csv"])
    np.testing.assert_allclose(back["mde"], d.grid["mde"], rtol=1e-12)
    assert paths["power_curve.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_raises():
    panel = small_panel()
    with pytest.raises(EstimationError, match="tool must be"):
        design(panel, tool="empty_dwellings", n_reps=0)
    with pytest.raises(EstimationError, match="report_group"):
        design(panel.drop(columns="report_group"), n_reps=0)
    with pytest.raises(EstimationError, match="effect_of_interest"):
        design(panel, effect_of_interest=0.0, n_reps=0)
