"""The paper's generated inputs (numbers as macros, the headline table) and `impact paper`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impact.cli import app
from impact.errors import ImpactError
from impact.report import paper


def _headline() -> pd.DataFrame:
    return pd.DataFrame([
        {"tool": "flexible_letting", "outcome": "share_employed", "estimate": 0.0162,
         "se": 0.0094, "lower": -0.0022, "upper": 0.0346, "n_departments": 95,
         "n_treated_clusters": 37, "pretest_p_value": 0.1617, "verdict": "credible"},
        {"tool": "municipal_referral", "outcome": "mean_household_income", "estimate": np.nan,
         "se": np.nan, "lower": np.nan, "upper": np.nan, "n_departments": 2,
         "n_treated_clusters": 2, "pretest_p_value": 0.5, "verdict": "too few clusters"}])


def test_macro_names_are_letters_only() -> None:
    assert paper.macro_name("flexible_letting", "share_employed") == "FlexibleLettingShareEmployed"
    with pytest.raises(ImpactError):
        paper.macro_name("tool_2", "x")


def test_numbers_are_the_released_values(tmp_path) -> None:
    comp = pd.DataFrame({"design": ["2015", "panel", "follow-up"], "mde": [0.0473, 0.03, 0.0199],
                         "n_departments": [220, 220, 330]})
    files = paper.write_inputs(tmp_path, {"headline": _headline(), "followup_comparison": comp})
    assert [f.name for f in files] == ["numbers.tex", "headline_table.tex"]
    text = (tmp_path / "numbers.tex").read_text()
    for line in (r"\newcommand{\FlexibleLettingShareEmployedEstimate}{0.016}",
                 r"\newcommand{\FlexibleLettingShareEmployedLower}{$-$0.002}",
                 r"\newcommand{\FlexibleLettingShareEmployedDepartments}{95}",
                 r"\newcommand{\FlexibleLettingShareEmployedPretest}{0.16}",
                 # a suppressed (or not estimable) estimate is printed as --, never a number
                 r"\newcommand{\MunicipalReferralMeanHouseholdIncomeEstimate}{--}",
                 r"\newcommand{\MunicipalReferralMeanHouseholdIncomeVerdict}{too few clusters}",
                 r"\newcommand{\FollowupMdeReport}{0.0473}",
                 r"\newcommand{\FollowupDepartments}{330}"):
        assert line in text.splitlines(), line
    table = (tmp_path / "headline_table.tex").read_text()
    assert r"[$-$0.002, 0.035]" in table and r"[--, --]" in table


def test_no_inputs_without_a_released_headline(tmp_path) -> None:
    assert paper.write_inputs(tmp_path / "p", {}) == []
    assert not (tmp_path / "p").exists()


def test_paper_command_without_latexmk_exits_2(tmp_path, monkeypatch) -> None:
    (tmp_path / "release" / "paper").mkdir(parents=True)
    (tmp_path / "release" / "paper" / "numbers.tex").write_text("")
    monkeypatch.setattr(paper.shutil, "which", lambda name: None)
    result = CliRunner().invoke(app, ["paper", "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "latexmk is not installed" in result.output
    missing = CliRunner().invoke(app, ["paper", "--results", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "run `impact run --out" in missing.output
