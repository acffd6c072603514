"""Tests of impact.bayes: input checks, tables, save/load, determinism, eight schools, coverage.

The default tests use tiny chains (shapes and plumbing only); real sampling (the eight-schools
model at full length, the statistical checks on simulated hierarchical DiD data) is ``slow``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact.bayes as bayes
from impact.bayes import arviz_io
from impact.bayes.design import ModelConfig, prepare
from impact.bayes.fit import resolve_sampler, sample
from impact.errors import EstimationError
from tests.bayes_synthetic import synthetic_panel
from tests.eight_schools import eight_schools_model

EFFECT_COLUMNS = [
    "group",
    "mean",
    "sd",
    "lower_90",
    "upper_90",
    "lower_95",
    "upper_95",
    "p_positive",
    "p_above_threshold",
]
TINY = {"draws": 20, "tune": 20, "chains": 2, "seed": 11, "max_attempts": 1}
NORMAL = {"threshold": 0.01, "event_time": "event_time", "event_window": (-3, 2)}


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return synthetic_panel(3, n_municipalities=4, departments_per_municipality=6).frame


def _fit(panel: pd.DataFrame, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.ConvergenceWarning)
        return bayes.hierarchical(panel, "log_income", "in_force", **{**TINY, **kwargs})


@pytest.fixture(scope="module")
def normal_fit(panel: pd.DataFrame):
    return _fit(panel, **NORMAL)


@pytest.fixture(scope="module")
def binomial_fit(panel: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.ConvergenceWarning)
        return bayes.hierarchical(
            panel,
            "n_employed",
            "intensity",
            likelihood="binomial",
            trials="n_labour_force",
            effect_by_extra="housing_market",
            threshold=1.0,
            **TINY,
        )


# ---------------------------------------------------------------- input validation (no sampling)


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{"outcome": "log_income", "treatment": "in_force", **kw})


def test_missing_column_is_named(panel: pd.DataFrame) -> None:
    with pytest.raises(EstimationError, match="not_there"):
        prepare(panel, _cfg(outcome="not_there"))


def test_nan_counted_never_dropped(panel: pd.DataFrame) -> None:
    bad = panel.copy()
    bad.loc[bad.index[:3], "log_income"] = np.nan
    with pytest.raises(EstimationError, match=r"log_income: 3 of"):
        prepare(bad, _cfg())


def test_trials_below_outcome(panel: pd.DataFrame) -> None:
    bad = panel.copy()
    bad.loc[bad.index[:2], "n_employed"] = bad.loc[bad.index[:2], "n_labour_force"] + 1
    cfg = _cfg(outcome="n_employed", likelihood="binomial", trials="n_labour_force")
    with pytest.raises(EstimationError, match=r"trials < outcome: 2 row"):
        prepare(bad, cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"likelihood": "poisson"}, "likelihood must be one of"),
        ({"likelihood": "binomial"}, "needs trials"),
        ({"trials": "n_labour_force"}, "only used with"),
    ],
)
def test_bad_options(panel: pd.DataFrame, change: dict, message: str) -> None:
    with pytest.raises(EstimationError, match=message):
        prepare(panel, _cfg(**change))


def test_treatment_checks(panel: pd.DataFrame) -> None:
    bad = panel.assign(in_force=panel["in_force"] * 2)
    with pytest.raises(EstimationError, match=r"in \[0, 1\]"):
        prepare(bad, _cfg())
    with pytest.raises(EstimationError, match="both treated"):
        prepare(panel.assign(in_force=0), _cfg())


def test_duplicates_and_varying_levels(panel: pd.DataFrame) -> None:
    with pytest.raises(EstimationError, match="duplicated"):
        prepare(pd.concat([panel, panel.iloc[:1]]), _cfg())
    bad = panel.copy()
    bad.loc[bad.index[0], "municipality_id"] = "elsewhere"
    with pytest.raises(EstimationError, match="constant within"):
        prepare(bad, _cfg())


def test_null_plan_is_a_none_group_per_municipality(panel: pd.DataFrame) -> None:
    design = prepare(panel, _cfg())
    plans = design.level_groups[0]
    n_muni = panel["municipality_id"].nunique()
    assert sum(g.endswith("/none") for g in plans) == n_muni
    assert len(design.level_groups[1]) == n_muni
    # every plan maps to the municipality it is in
    assert (design.level_parent[0] >= 0).all() and (design.level_parent[1] == -1).all()


def test_nulls_in_coarsest_level_are_errors(panel: pd.DataFrame) -> None:
    bad = panel.copy()
    bad.loc[bad.index[:5], "municipality_id"] = None
    with pytest.raises(EstimationError, match="municipality_id: 5 of"):
        prepare(bad, _cfg())


def test_config_hash_is_stable() -> None:
    assert _cfg().hash() == _cfg().hash()
    assert _cfg().hash() != _cfg(centred_effects=True).hash()


def test_sampler_resolution() -> None:
    import importlib.util

    expected = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    assert resolve_sampler("auto") == expected
    assert resolve_sampler("pymc") == "pymc"
    with pytest.raises(EstimationError, match="sampler must be"):
        resolve_sampler("hmc")


def test_sampler_always_passed_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    import pymc as pm

    seen = {}

    def fake_sample(**kwargs):
        seen.update(kwargs)
        return "idata"

    monkeypatch.setattr(pm, "sample", fake_sample)
    _, run = sample(eight_schools_model(), sampler="pymc", seed=3, draws=5, tune=5, chains=2)
    assert seen["nuts_sampler"] == "pymc" and run.sampler == "pymc"
    assert seen["nuts"] == {"target_accept": 0.95} and seen["random_seed"] == 3


# --------------------------------------------------------------------- tiny fits: plumbing


def test_effects_table(normal_fit, panel: pd.DataFrame) -> None:
    eff = normal_fit.effects
    assert list(eff.columns[: len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    assert eff["group"].iloc[0] == "pooled"
    assert sorted(eff["group"].iloc[1:]) == sorted(panel["municipality_id"].unique())
    assert (eff["lower_95"] <= eff["lower_90"]).all() and (eff["upper_90"] <= eff["upper_95"]).all()
    assert eff["p_positive"].between(0, 1).all() and (eff["scale"] == "outcome").all()
    assert "converged" in eff and "converged" in normal_fit.tidy()
    assert normal_fit.sampler in ("nutpie", "pymc")


def test_diagnostics_and_gate(normal_fit) -> None:
    d = normal_fit.diagnostics
    for col in ("r_hat", "ess_bulk", "ess_tail", "divergences", "bfmi", "converged"):
        assert col in d
    assert len(d) == 1
    assert not normal_fit.converged  # 20 draws cannot pass ESS >= 400
    assert not normal_fit.effects["converged"].any()
    assert not normal_fit.summary().frame["converged"].any()
    p = normal_fit.parameter_diagnostics
    assert {"effect_pooled", "sigma_unit"} <= set(p.loc[p["in_gate"], "variable"])
    assert "sigma_plan_id" in set(p.loc[~p["in_gate"], "variable"])
    assert {"r_hat_nuisance", "ess_bulk_nuisance", "ess_tail_nuisance"} <= set(d.columns)
    assert "a_unit" in set(p.loc[~p["in_gate"], "variable"])


def test_failed_gate_warns_loudly(normal_fit) -> None:
    from impact.bayes.results import warn_if_not_converged

    with pytest.warns(bayes.ConvergenceWarning, match="FAILED the convergence gate.*ess_bulk"):
        warn_if_not_converged(normal_fit.diagnostics, normal_fit.sampler)


def test_same_seed_same_draws() -> None:
    runs = [sample(eight_schools_model(), draws=30, tune=30, chains=2, seed=5)[0] for _ in range(2)]
    other = sample(eight_schools_model(), draws=30, tune=30, chains=2, seed=6)[0]
    a, b, c = (r["posterior"]["mu"].to_numpy() for r in (*runs, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_binomial_reports_percentage_points(binomial_fit, panel: pd.DataFrame) -> None:
    eff = binomial_fit.effects
    assert list(eff.columns[: len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    for col in ("mean_pp", "lower_90_pp", "upper_95_pp", "p_above_threshold"):
        assert col in eff
    assert (eff["scale"] == "log_odds").all()
    # AME on the probability scale has the sign of the log-odds effect, |pp| <= 100 |log-odds| / 4
    assert (np.sign(eff["mean_pp"]) == np.sign(eff["mean"])).mean() > 0.8
    # per draw |pp| <= 25 |log-odds|, so E|pp| <= 25 E|tau| <= 25 (|E tau| + sd(tau))
    assert (eff["mean_pp"].abs() <= 25 * (eff["mean"].abs() + eff["sd"])).all()
    extra = binomial_fit.extra_effects
    assert sorted(extra["group"]) == sorted(panel["housing_market"].unique())


def test_save_load_roundtrip(normal_fit, tmp_path) -> None:
    path = tmp_path / ("fit.nc" if arviz_io.netcdf_engine() else "fit.zarr")
    normal_fit.save(path)
    back = bayes.load(path, config_hash=normal_fit.config.hash())
    assert back.config == normal_fit.config
    pd.testing.assert_frame_equal(back.effects, normal_fit.effects, check_dtype=False)
    np.testing.assert_allclose(
        back.idata["posterior"]["effect_pooled"].to_numpy(),
        normal_fit.idata["posterior"]["effect_pooled"].to_numpy(),
    )
    assert back.converged == normal_fit.converged and back.sampler == normal_fit.sampler
    assert back.parameterisation == normal_fit.parameterisation
    assert back.attempts is not None and normal_fit.attempts is not None
    pd.testing.assert_frame_equal(back.attempts, normal_fit.attempts, check_dtype=False)
    with pytest.raises(EstimationError, match="fitted with configuration"):
        bayes.load(path, config_hash="0" * 16)


def test_netcdf_without_engine_is_a_clear_error(normal_fit, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(arviz_io, "netcdf_engine", lambda: None)
    with pytest.raises(EstimationError, match="h5netcdf"):
        normal_fit.save(tmp_path / "fit.nc")


def test_plots(normal_fit, binomial_fit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert normal_fit.plot() is not None
    assert binomial_fit.plot(scale="pp") is not None
    with pytest.raises(EstimationError, match="binomial"):
        normal_fit.plot(scale="pp")
    assert normal_fit.plot_ppc(num_samples=5, seed=1) is not None
    plt.close("all")


def test_result_protocol(normal_fit, binomial_fit, panel: pd.DataFrame) -> None:
    """tidy(): the posterior mean, sd and 95% interval under the protocol's names, the support
    counts (the binomial's persons are its trials); summary() a Summary; plot() draws the means."""
    from matplotlib.figure import Figure

    from impact.results import Summary

    tidy = normal_fit.tidy()
    assert list(tidy.columns[:7]) == ["term", "estimate", "se", "lower", "upper", "n_units",
                                      "n_persons"]
    eff = normal_fit.effects
    pooled = tidy[(tidy["term"] == "effect") & (tidy["group"] == "pooled")].iloc[0]
    assert pooled["estimate"] == eff["mean"].iloc[0] and pooled["se"] == eff["sd"].iloc[0]
    assert (pooled["lower"], pooled["upper"]) == (eff["lower_95"].iloc[0],
                                                  eff["upper_95"].iloc[0])
    assert "lower_90" in tidy and "mean" not in tidy
    n_departments = panel["department_id"].nunique()
    treated = panel.loc[panel["in_force"] > 0, "department_id"].nunique()
    assert pooled["n_units"] == n_departments and pooled["n_units_treated"] == treated
    assert tidy["n_persons"].isna().all()  # a normal model without persons=
    by_group = panel.groupby("municipality_id")["department_id"].nunique()
    groups = tidy[(tidy["term"] == "effect") & (tidy["group"] != "pooled")]
    assert groups["n_units"].tolist() == by_group.reindex(groups["group"].astype(
        by_group.index.dtype)).tolist()
    trials = binomial_fit.tidy()
    pooled_b = trials[(trials["term"] == "effect") & (trials["group"] == "pooled")].iloc[0]
    on = panel["intensity"] > 0
    assert pooled_b["n_persons_treated"] == panel[on].groupby("year")["n_labour_force"].sum().max()
    summary = normal_fit.summary()
    assert isinstance(summary, Summary) and not summary.frame["converged"].any()
    assert "R-hat" in str(summary)
    fig = normal_fit.plot()
    assert isinstance(fig, Figure)
    shown = fig.axes[0].collections[-1].get_offsets()[:, 0]
    np.testing.assert_array_equal(shown, eff["mean"].to_numpy()[::-1])


def test_prior_predictive(panel: pd.DataFrame) -> None:
    idata = bayes.prior_predictive(panel, "log_income", "in_force", draws=50, seed=2)
    y = idata["prior_predictive"]["y"].to_numpy()
    # standardised outcome: the weakly informative priors keep it within a few sd, not 1e3
    assert np.median(np.abs(y)) < 5
    assert bayes.plot_prior_predictive(idata) is not None
    with pytest.raises(TypeError, match="unknown option"):
        bayes.prior_predictive(panel, "log_income", "in_force", draws=5, chain=2)


# ------------------------------------------------------------------------ eight schools


@pytest.mark.slow
def test_eight_schools_noncentred_reproduces_published_posterior() -> None:
    """Posterior means mu ≈ 4.4, tau ≈ 3.6 (BDA3 / Stan case study, non-centred).

    Tolerance: 4 Monte Carlo standard errors of this run plus 0.05 for the rounding of the
    published values to one decimal.
    """
    idata, run = sample(eight_schools_model(centred=False), draws=1000, tune=1000, chains=4, seed=8)
    post = idata["posterior"]
    for var, published in (("mu", 4.4), ("tau", 3.6)):
        est = float(post[var].mean())
        tol = 4 * arviz_io.mcse_mean(idata, var) + 0.05
        assert abs(est - published) < tol, (var, est, tol, run.sampler)
    worst, _ = arviz_io.diagnostics(idata, ["mu", "tau", "theta"])
    assert worst["divergences"].iloc[0] == 0


# ------------------------------------------------------------------ slow: statistical checks


@pytest.mark.slow
def test_coverage_on_simulated_hierarchical_did() -> None:
    """Known truth: pooled 95% interval covers it; 80-97% of municipality 90% intervals do."""
    sim = synthetic_panel(2024, n_municipalities=60, departments_per_municipality=10)
    fit = bayes.hierarchical(
        sim.frame, "log_income", "in_force", draws=1000, tune=1000, chains=4, seed=5
    )
    assert fit.converged, fit.diagnostics
    eff = fit.effects.set_index("group")
    pooled = eff.loc["pooled"]
    assert pooled["lower_95"] <= sim.effect_pooled <= pooled["upper_95"]
    groups = eff.drop(index="pooled").loc[sim.effects.index]
    covered = (groups["lower_90"] <= sim.effects) & (sim.effects <= groups["upper_90"])
    assert 0.80 <= covered.mean() <= 0.97, covered.mean()


@pytest.mark.slow
def test_binomial_coverage_on_simulated_hierarchical_did() -> None:
    sim = synthetic_panel(7, n_municipalities=60, departments_per_municipality=10)
    fit = bayes.hierarchical(
        sim.frame,
        "n_employed",
        "in_force",
        likelihood="binomial",
        trials="n_labour_force",
        draws=1000,
        tune=1000,
        chains=4,
        seed=6,
    )
    assert fit.converged, fit.diagnostics
    eff = fit.effects.set_index("group")
    assert eff.loc["pooled", "lower_95"] <= sim.effect_pooled_logit <= eff.loc["pooled", "upper_95"]
    groups = eff.drop(index="pooled").loc[sim.effects_logit.index]
    covered = (groups["lower_90"] <= sim.effects_logit) & (sim.effects_logit <= groups["upper_90"])
    assert 0.80 <= covered.mean() <= 0.97, covered.mean()


@pytest.mark.slow
def test_compare_pooling_prefers_partial_pooling() -> None:
    sim = synthetic_panel(9, n_municipalities=20, departments_per_municipality=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.ConvergenceWarning)  # short chains
        table = bayes.compare_pooling(
            sim.frame,
            "log_income",
            "in_force",
            draws=500,
            tune=500,
            chains=2,
            seed=1,
            max_attempts=1,  # short chains on purpose: no refits
        )
    assert set(table.index) == {"complete", "none", "partial"}
    assert {"elpd", "weight", "converged"} <= set(table.columns)
    # effects differ by municipality: complete pooling must not win
    assert table.index[0] != "complete"


def test_event_time_dynamics(normal_fit, panel: pd.DataFrame) -> None:
    dyn = normal_fit.dynamics
    assert list(dyn["term"]) == ["lead", "lead", "lag", "lag", "lag"]
    assert list(dyn["event_time"]) == [-3, -2, 0, 1, 2]
    assert {"mean", "lower_95", "upper_95", "converged"} <= set(dyn.columns)
    assert "event_lag" in set(normal_fit.tidy()["term"])
    bad = panel.assign(event_time=np.nan)
    with pytest.raises(EstimationError, match="null in"):
        prepare(bad, _cfg(event_time="event_time"))
