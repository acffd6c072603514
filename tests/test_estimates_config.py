"""The study's choices come from the configuration: every ``[study]`` and ``[did.*]`` key that
:func:`impact.estimates.estimate_all` uses reaches its estimator (checked against direct calls)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from impact import did
from impact.errors import EstimationError
from impact.workflow import config
from impact.workflow.estimates import CLUSTER, estimate_all, prepare, primary_options
from tests import _small_world as world

ONE = {"run": {"seed": 3, "n_boot": 0, "primary_boot": 0},
       "study": {"tools": ["flexible_letting"], "outcomes": ["share_employed"]}}


def cfg(**tables: dict) -> config.StudyConfig:
    raw = {k: dict(v) for k, v in ONE.items()}
    for table, values in tables.items():
        if table == "did":
            raw["did"] = values
        else:
            raw[table] = {**raw.get(table, {}), **values}
    return config.from_dict(raw)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_twfe_treatments_bacon_outcomes_and_cluster_come_from_the_config() -> None:
    c = cfg(did={"twfe": {"treatments": ["intensity"]},
                 "bacon": {"outcomes": ["share_non_western"]}},
            study={"cluster": "municipality_id", "alpha": 0.1})
    est = quiet(estimate_all, world.panel(), c, parts=("twfe", "bacon"))
    assert set(est.twfe["treatment"]) == {"intensity_flexible_letting"}
    assert set(est.twfe["cluster"]) == {"municipality_id"}
    data = prepare(world.panel(), cluster="municipality_id")
    assert data[CLUSTER].str.startswith("municipality:").all()
    direct = quiet(did.twfe, data, "share_employed", "intensity_flexible_letting",
                   cluster=CLUSTER, alpha=0.1).tidy()
    np.testing.assert_array_equal(est.twfe["estimate"], direct["estimate"])
    np.testing.assert_array_equal(est.twfe["upper"], direct["upper"])  # the 90% interval
    assert set(est.bacon["outcome"]) == {"share_non_western"}
    assert est.att_gt.empty and est.headline.empty and est.dose_response.empty  # parts not run


def test_att_gt_options_and_aggregations_come_from_the_config() -> None:
    c = cfg(did={"att_gt": {"method": "reg", "control": "not_yet", "aggregations": ["simple"]}},
            study={"covariates": []})
    est = quiet(estimate_all, world.panel(), c, parts=("att_gt",))
    assert set(est.aggregates["aggregation"]) == {"simple"}
    assert set(est.aggregates["covariates"]) == {"none"}  # no conditional specification
    data = prepare(world.panel())
    res = quiet(did.att_gt, data, "share_employed", "department_id", "year",
                "cohort_flexible_letting", method="reg", control="not_yet", n_boot=0,
                unbalanced="drop", cluster=CLUSTER)
    assert est.aggregates["estimate"].iloc[0] == res.aggregate("simple", na_rm=True).overall.att
    other = quiet(estimate_all, world.panel(), cfg(study={"covariates": []}), parts=("att_gt",))
    simple = other.aggregates[other.aggregates["aggregation"] == "simple"]
    assert simple["estimate"].iloc[0] != est.aggregates["estimate"].iloc[0]  # dr, never-treated differ


def test_conditional_specification_names_its_covariates_or_says_why_not() -> None:
    c = cfg(study={"covariates": ["supported_department"]},
            did={"att_gt": {"aggregations": ["simple"]}})
    est = quiet(estimate_all, world.panel(), c, parts=("att_gt",))
    assert set(est.aggregates["covariates"]) == {"none", "supported_department"}
    c = cfg(study={"covariates": ["no_such_column"]}, did={"att_gt": {"aggregations": ["simple"]}})
    est = quiet(estimate_all, world.panel(), c, parts=("att_gt",))
    assert set(est.aggregates["covariates"]) == {"none"}
    row = est.problems[est.problems["kind"] == "not run"]
    assert len(row) == 1 and "no_such_column" in row["message"].iloc[0]


def test_primary_specification_comes_from_the_config() -> None:
    spec = {"onset_lag": 0, "effect_by": "", "strata": ["supported_department"],
            "baselines": ["share_employed"], "placebo_shifts": [],
            "min_treated_clusters": 10**6}
    c = cfg(did={"primary": spec})
    est = quiet(estimate_all, world.panel(), c, parts=("primary", "placebo"))
    data = prepare(world.panel(), baselines=["share_employed"])
    opts = primary_options(data, c.did.primary, ("flexible_letting",))
    assert opts["onset_lag"] == 0 and opts["effect_by"] is None
    assert opts["strata"] == ["supported_department"]
    assert opts["covariates"] == ["baseline_share_employed"]
    res = quiet(did.imputation, data, "share_employed", **opts, n_boot=0, seed=3)
    assert est.headline["estimate"].iloc[0] == res.overall["estimate"].iloc[0]
    assert set(est.headline["verdict"]) == {"too few clusters"}
    assert est.placebo.empty  # placebo_shifts = []
    default = quiet(estimate_all, world.panel(), cfg(), parts=("primary",))
    assert default.headline["estimate"].iloc[0] != est.headline["estimate"].iloc[0]


def test_an_incomplete_stratum_is_left_out_with_a_warning() -> None:
    data = prepare(world.panel())
    data.loc[data.index[0], "market_type"] = None
    with pytest.warns(UserWarning, match="'market_type' is missing or incomplete"):
        opts = primary_options(data)
    assert opts["strata"] == ["supported_department"] and opts["effect_by"] is None


def test_dose_response_options_come_from_the_config() -> None:
    c = cfg(did={"dose_response": {"n_boot": 0, "method": "binned", "bins": 2}})
    est = quiet(estimate_all, world.panel(), c, parts=("dose_response",))
    tidy = est.dose_response.set_index("term")
    assert tidy["se"].isna().all()  # n_boot = 0: no bootstrap
    assert (tidy["parameter"] == "ATT").sum() == 2  # two dose bins
    assert np.isnan(tidy.loc["ACR^o", "estimate"])  # not defined for bins
    spline = quiet(estimate_all, world.panel(), cfg(did={"dose_response": {"n_boot": 0}}),
                   parts=("dose_response",)).dose_response.set_index("term")
    assert np.isfinite(spline.loc["ACR^o", "estimate"])
    assert spline.loc["ATT^o", "estimate"] == tidy.loc["ATT^o", "estimate"]  # same cells
    none = quiet(estimate_all, world.panel(), cfg(did={"dose_response": {"tools": []}}),
                 parts=("dose_response",))
    assert none.dose_response.empty
    bad = quiet(estimate_all, world.panel(), cfg(did={"dose_response": {"dose": "no_dose"}}),
                parts=("dose_response",))
    assert bad.dose_response.empty and "no_dose_flexible_letting" in bad.problems["message"].iloc[0]


def test_unknown_part_is_an_error() -> None:
    with pytest.raises(EstimationError, match="unknown part"):
        estimate_all(pd.DataFrame(), parts=("everything",))


def test_bayes_takes_the_primary_untreated_model_and_its_error_options_from_the_config() -> None:
    from impact.workflow.estimates import bayes_inputs

    two = {"study": {"tools": ["flexible_letting", "municipal_referral"]}}
    panel = world.panel()
    data, opts, problems = quiet(bayes_inputs, panel, cfg(**two))  # the defaults
    assert opts["time_by"] == ["market_type", "supported_department"]
    assert opts["effect_mean_by"] == "market_type"
    assert opts["covariates"] == [f"baseline_{m}" for m in config.OUTCOMES]
    assert opts["controls"] == ["exposure_municipal_referral"]
    assert opts["errors"] == "iid" and opts["weights"] is None and opts["unit_effects"] is False
    # every row left out and every capped value is a problem row
    kept = panel["n_labour_force_18_64"] > 0
    assert len(data) == int(kept.sum())
    reported = {p["kind"]: p["message"] for p in problems}
    if not kept.all():
        assert reported["dropped rows"].startswith(f"{int((~kept).sum())} department-years")
    assert data[["exposure_flexible_letting", "exposure_municipal_referral"]].max().max() <= 1
    over = int((panel.loc[kept, "exposure_municipal_referral"] > 1).sum())
    assert (over > 0) == any("exposure_municipal_referral above 1" in m
                             for m in reported.values())
    c = cfg(**two, bayes={"untreated": "twfe", "errors": "ar1", "weighted": True,
                          "effect_mean_by": "", "unit_effects": True})
    _, opts, _ = quiet(bayes_inputs, panel, c)
    assert opts["unit_effects"] is True
    assert "time_by" not in opts and "controls" not in opts and opts["effect_mean_by"] is None
    assert opts["errors"] == "ar1" and opts["weights"] == "n_labour_force_18_64"
    with pytest.raises(config.ConfigError, match=r"\[bayes\]\.errors"):
        cfg(bayes={"errors": "ar2"})
    # market effects have no market mean to pool towards: the key is ignored there
    _, opts, _ = quiet(bayes_inputs, panel, cfg(**two, bayes={"effect_by": "market_type"}))
    assert opts["effect_mean_by"] is None


def test_a_treatment_column_names_its_tool() -> None:
    from impact.workflow.estimates import treatment_tool

    assert treatment_tool("exposure_flexible_letting") == "flexible_letting"
    assert treatment_tool("in_force_municipal_referral") == "municipal_referral"
    assert treatment_tool("share_employed") == ""
