"""The primary specification by subgroup (impact.subgroups) on a small simulated world."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact.did
import impact.estimates
from impact.errors import EstimationError
from impact.subgroups import VULNERABILITY_LABELS, by_subgroup, headline, subgroup_labels
from tests import _small_world as world

N_BOOT = 29


@pytest.fixture(scope="module")
def market():
    return by_subgroup(world.prepared(), "share_employed", "market_type", n_boot=N_BOOT, seed=1,
                       truth=world.registers().truth)


def test_pooled_row_is_the_primary_specification(market) -> None:
    """``subgroup == "all"`` reproduces ``impact.estimates.primary`` exactly (point estimates)."""
    data = world.prepared()
    prim = impact.estimates.primary(data, "share_employed", n_boot=2, seed=0)
    mine = market.overall[market.overall["subgroup"] == "all"].set_index("tool")["estimate"]
    ref = prim.overall.set_index("tool")["estimate"]
    np.testing.assert_allclose(mine.loc[ref.index], ref, rtol=1e-12, atol=1e-14)


def test_market_subgroup_drops_the_market_stratum(market) -> None:
    """Inside a market the fit is imputation on its departments with ``primary``'s options less
    the market stratum and effect cell; its comparison departments are inside the market."""
    data = world.prepared()
    sub = data[data["market_type"] == "vacancies"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = impact.did.imputation(
            sub, "share_employed", cohorts=["cohort_flexible_letting",
                                            "cohort_municipal_referral"],
            onset_lag=1, strata=["supported_department"],
            covariates=[f"baseline_{o}" for o in impact.estimates.OUTCOMES],
            cluster="cluster_plan", n_boot=0)
    mine = market.estimates[market.estimates["subgroup"] == "vacancies"]
    np.testing.assert_allclose(mine["estimate"].to_numpy(), ref.tidy()["estimate"].to_numpy(),
                               rtol=1e-12)
    n = market.overall.set_index(["subgroup", "tool"])["n_departments"]
    assert n.loc[("vacancies", "flexible_letting")] + n.loc[("waiting_list", "flexible_letting")] \
        == n.loc[("all", "flexible_letting")] == data["department_id"].nunique()


def test_subgroup_truth_follows_the_mechanism(market) -> None:
    """The simulator's flexible letting draws from a deep applicant pool in waiting-list markets
    (``flexible_pool`` 0.9) and a thin one in vacancy markets (0.15): the truth of the
    waiting-list subgroup's estimand is the larger. Each estimate lies within 4 bootstrap SEs of
    its own truth (P(|z| > 4) < 1e-4 per estimate if centred; 29 draws give the SE to about
    +-26%, so 4 SE stays above 2.9 true SEs)."""
    o = market.overall.set_index(["subgroup", "tool"])
    assert o.loc[("waiting_list", "flexible_letting"), "truth"] > \
        2 * o.loc[("vacancies", "flexible_letting"), "truth"] > 0
    z = (o["estimate"] - o["truth"]) / o["se"]
    assert (z.abs() < 4).all(), z
    assert o["truth"].notna().all() and (o["se"] > 0).all()


def test_wald_test_uses_joint_draws(market) -> None:
    """Two subgroups: the statistic is the squared difference over its joint-bootstrap
    variance (the covariance between subgroups included)."""
    t = market.tests.set_index("tool")
    assert (t["df"] == 1).all() and (t["n_boot_used"] == N_BOOT).all()
    o = market.overall.set_index(["subgroup", "tool"])["estimate"]
    for tool in ("flexible_letting", "municipal_referral"):
        diff = o.loc[("waiting_list", tool)] - o.loc[("vacancies", tool)]
        var = np.var(market.draws[f"waiting_list:{tool}"] - market.draws[f"vacancies:{tool}"],
                     ddof=1)
        assert t.loc[tool, "stat"] == pytest.approx(diff ** 2 / var, rel=1e-9)
        assert 0 <= t.loc[tool, "p_value"] <= 1


def test_vulnerability_terciles() -> None:
    data = world.prepared()
    lab = subgroup_labels(data, "vulnerability")
    dept = pd.DataFrame({"d": data["department_id"], "lab": lab,
                         "b": data["baseline_share_employed"]}).drop_duplicates("d")
    counts = dept["lab"].value_counts()
    assert set(counts.index) == set(VULNERABILITY_LABELS)
    assert counts.max() - counts.min() <= 1
    means = dept.groupby("lab")["b"].agg(["min", "max"]).loc[list(VULNERABILITY_LABELS)]
    assert (means["max"].to_numpy()[:-1] <= means["min"].to_numpy()[1:]).all()
    res = by_subgroup(data, "share_employed", "vulnerability", n_boot=9, seed=2)
    assert set(res.overall["subgroup"]) == {"all", *VULNERABILITY_LABELS}
    assert (res.tests["df"] == 2).all() and res.tests["p_value"].between(0, 1).all()
    assert "truth" not in res.estimates


def test_bad_arguments() -> None:
    data = world.prepared()
    with pytest.raises(EstimationError, match="n_boot"):
        by_subgroup(data, "share_employed", "market_type", n_boot=1, seed=0)
    with pytest.raises(EstimationError, match="no column"):
        by_subgroup(data, "share_employed", "no_such_column", n_boot=5, seed=0)
    with pytest.raises(EstimationError, match="varies within"):
        by_subgroup(data, "share_employed", "year", n_boot=5, seed=0)
    with pytest.raises(EstimationError, match="prepare first"):
        by_subgroup(world.panel(), "share_employed", "market_type", n_boot=5, seed=0)
    with pytest.raises(EstimationError, match="fewer than two"):
        by_subgroup(data.assign(one="x"), "share_employed", "one", n_boot=5, seed=0)


def test_headline_rows() -> None:
    data = world.prepared()
    h = headline(data, n_boot=5, seed=0, outcomes=("share_employed",), subgroups=("market_type",))
    assert list(h["subgroup"]) == ["all", "all", "vacancies", "vacancies", "waiting_list",
                                   "waiting_list"]
    assert set(h["verdict"]) <= {"credible", "pre-trends rejected", "too few clusters",
                                 "not estimable"}
    assert (h["n_treated_clusters"] <= h["n_clusters_in_subgroup"]).all()
    assert (h["n_departments"] <= h["n_departments_in_subgroup"]).all()
    assert h.groupby("tool")["equal_effects_p_value"].nunique().eq(1).all()


@pytest.mark.slow
def test_simstudy_replication_small() -> None:
    """One replication of ``tests/simstudy/subgroups.py`` on a small world (seed 3): in the
    placebo every subgroup truth is 0 and every estimate lies within 4 SEs of it, every channel
    contrast too; in the factual world the flexible-letting truth is larger in waiting-list
    markets (``flexible_pool`` 0.9 vs 0.15)."""
    from tests.simstudy.subgroups import replicate

    reps = pd.DataFrame(replicate(3, scale="small", n_boot=29, outcomes=("share_employed",)))
    est = reps[reps["kind"] != "wald"]
    plac = est[est["world"] == "placebo"]
    assert (plac["truth"] == 0).all()
    z = (plac["estimate"] / plac["se"]).abs()
    assert (z < 4).all(), plac[z >= 4]
    fact = est[(est["world"] == "factual") & (est["kind"] == "estimate")
               & (est["tool"] == "flexible_letting")].set_index("subgroup")["truth"]
    assert fact["waiting_list"] > fact["vacancies"]
    wald = reps[reps["kind"] == "wald"]
    assert wald["p_value"].between(0, 1).all() and len(wald) == 8
