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


def test_relation_to_zero_in_words() -> None:
    assert paper.relation_to_zero(0.01, 0.03) == "lies above zero"
    assert paper.relation_to_zero(-0.03, -0.01) == "lies below zero"
    assert paper.relation_to_zero(-0.01, 0.03) == "includes zero"
    assert paper.relation_to_zero(np.nan, 0.03) == "is not available"


def test_macros_of_the_appendix_contrasts_bayes_and_settings(tmp_path) -> None:
    head = _headline().assign(pretrend_slope_80=[0.0132, np.nan],
                              honest_breakdown_mbar=[0.25, np.nan], mde_80=[0.0248, np.nan],
                              truth=[0.0172, np.nan])
    groups = pd.DataFrame({"year": [2003, 2003, 2013], "report_group": ["Both tools",
                                                                        "All four groups",
                                                                        "Neither"],
                           "n_departments": [74.0, 130.0, np.nan],
                           "n_residents": [19221.0, 30808.0, np.nan],
                           "share_employed": [0.6368, 0.6441, np.nan]})
    dose = pd.DataFrame({"term": ["ATT^o", "ACR^o"], "outcome": ["share_employed"] * 2,
                         "estimate": [0.0085, 0.1393], "lower": [-0.0114, 0.0448],
                         "upper": [0.0284, 0.2338], "truth": [0.0147, np.nan]})
    bayes = pd.DataFrame({"group": ["pooled", "101", "161"], "estimate": [0.0222, 0.078, np.nan],
                          "lower": [-0.0577, 0.02, np.nan], "upper": [0.0978, 0.14, np.nan],
                          "p_positive": [0.71, 0.99, np.nan], "converged": [True] * 3})
    attrition = pd.DataFrame({"step": ["stock (person-years)", "stock (person-years)",
                                       "lettings"],
                              "filter": ["person without department", "age 18-64",
                                         "unknown department"],
                              "rows_in": [661091.0, 603095.0, 35592.0],
                              "rows_out": [603095.0, 318544.0, 35592.0]})
    paper.write_inputs(tmp_path, {"headline": head, "appendix_group_descriptives": groups,
                                  "did_dose_response": dose, "bayes_effects": bayes,
                                  "appendix_attrition": attrition},
                       settings={"simulated": True, "primary_boot": 199,
                                 "interval_level": "95%", "scale": "small"})
    lines = (tmp_path / "numbers.tex").read_text().splitlines()
    for line in (r"\newcommand{\FlexibleLettingShareEmployedZero}{includes zero}",
                 r"\newcommand{\FlexibleLettingShareEmployedCovers}{covers}",
                 r"\newcommand{\FlexibleLettingShareEmployedSlope}{0.013}",
                 r"\newcommand{\FlexibleLettingShareEmployedMbar}{0.25}",
                 r"\newcommand{\FlexibleLettingShareEmployedMde}{0.025}",
                 r"\newcommand{\MunicipalReferralMeanHouseholdIncomeZero}{is not available}",
                 r"\newcommand{\DescFirstYear}{2003}", r"\newcommand{\DescLastYear}{2013}",
                 r"\newcommand{\DescBothShareEmployedFirst}{0.637}",
                 r"\newcommand{\DescAllNResidentsFirst}{30{,}808}",
                 r"\newcommand{\DescNeitherShareEmployedLast}{--}",  # suppressed
                 r"\newcommand{\PersonYearsAll}{661{,}091}",
                 r"\newcommand{\PersonYearsSocial}{603{,}095}",
                 r"\newcommand{\LettingsAll}{35{,}592}",
                 r"\newcommand{\DoseShareEmployedAtt}{0.009}",
                 r"\newcommand{\DoseShareEmployedAttZero}{includes zero}",
                 r"\newcommand{\DoseShareEmployedAttTruth}{0.015}",
                 r"\newcommand{\DoseShareEmployedAcrZero}{lies above zero}",
                 r"\newcommand{\BayesPooledMean}{0.022}",
                 r"\newcommand{\BayesMunicipalities}{2}",
                 r"\newcommand{\BayesMunicipalitiesShown}{1}",
                 r"\newcommand{\BayesConverged}{converged}",
                 r"\simulatedtrue", r"\newcommand{\SettingPrimaryBoot}{199}",
                 r"\newcommand{\SettingIntervalLevel}{95\%}",
                 r"\newcommand{\SettingScale}{small}"):
        assert line in lines, line
    # every macro defined once
    names = [x.split("}")[0] for x in lines if x.startswith(r"\newcommand{")]
    assert len(names) == len(set(names))
