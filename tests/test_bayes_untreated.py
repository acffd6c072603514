"""The hierarchical model's untreated terms and error models (issue 15, item 4).

Exact identities at fixed parameter values, no sampling: the AR(1) and count-weighted normal
log-likelihood against the multivariate normal density it stands for, and the linear predictor
of the stratum-year effects, covariate slopes and controls against its definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from impact.bayes import ModelConfig
from impact.bayes.design import prepare
from impact.bayes.model import build_model
from impact.errors import EstimationError


def _panel() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for dept in range(6):
        years = [2004, 2005, 2006, 2008, 2009] if dept == 2 else list(range(2004, 2010))
        for year in years:  # department 2 has a gap of two years (2006 -> 2008)
            rows.append({"department_id": f"d{dept}", "year": year,
                         "municipality_id": f"m{dept % 2}", "plan_id": None,
                         "market": "a" if dept < 3 else "b",
                         "d": 0.5 if (dept % 3 == 0 and year >= 2007) else 0.0,
                         "other": 0.2 if year >= 2006 and dept < 4 else 0.0,
                         "base": float(dept), "n": 20.0 + 10 * dept + year % 3,
                         "y": rng.normal()})
    return pd.DataFrame(rows)


def _point(model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    point = model.initial_point()
    return {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in point.items()}


def _values(model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The free variables and deterministics at ``point``, and the likelihood (``"loglik"``),
    from one compiled function."""
    names = [v.name for v in model.free_RVs + model.deterministics]
    outs = model.replace_rvs_by_values(
        [model.logp(vars=[model["y"]], sum=True), *(model[n] for n in names)])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore",
                          point_fn=False)
    values = fn(*(point[v.name] for v in model.value_vars))
    return dict(zip(["loglik", *names], values, strict=True))


@pytest.mark.parametrize("weights", [None, "n"])
def test_ar1_log_likelihood_is_the_multivariate_normal_density(weights: str | None) -> None:
    data = _panel()
    config = ModelConfig("y", "d", levels=("plan_id", "municipality_id"), errors="ar1",
                         weights=weights, centred_effects=True)
    design = prepare(data, config)
    model = build_model(design, config)
    point = _point(model, np.random.default_rng(0))
    v = _values(model, point)
    loglik = v["loglik"]
    rho = float(v["rho"])
    order = np.lexsort((design.time_idx, design.unit_idx))
    y = (design.y[order] - design.y_loc) / design.y_scale
    unit, time = design.unit_idx[order], design.time_idx[order]
    eta = (v["a_unit"][unit] + v["time_effect"][time]
           + v["effect_lin"][design.effect_idx[order]] * design.d[order])
    if weights is None:
        s = np.full(len(y), float(v["sigma"]))
    else:
        w = data["n"].to_numpy()[order] / data["n"].mean()
        s = np.sqrt(v["sigma_common"] ** 2 + v["sigma_count"] ** 2 / w)
    years = data["year"].to_numpy()[order]
    expected = 0.0
    for u in np.unique(unit):
        idx = np.flatnonzero(unit == u)
        lag = np.abs(years[idx][:, None] - years[idx][None, :])
        # the panel's years are consecutive but for department 2's gap: a step of k years
        cov = np.outer(s[idx], s[idx]) * rho ** lag
        expected += multivariate_normal(eta[idx], cov).logpdf(y[idx])
    assert loglik == pytest.approx(expected, rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("covariates", [("base",), ("base", "n")],
                         ids=["constant-within-units", "time-varying"])
def test_untreated_terms_enter_the_linear_predictor_as_defined(covariates: tuple) -> None:
    # a covariate constant within departments (the baselines) takes a unit x covariate product,
    # a time-varying one (n) the unit x year grid: the same linear predictor
    data = _panel()
    config = ModelConfig("y", "d", levels=("plan_id", "municipality_id"), time_by=("market",),
                         covariates=covariates, controls=("other",), centred_effects=True)
    design = prepare(data, config)
    model = build_model(design, config, fused_binomial=False)
    point = _point(model, np.random.default_rng(1))
    v = _values(model, point)
    order = np.lexsort((design.time_idx, design.unit_idx))
    y = (design.y[order] - design.y_loc) / design.y_scale
    unit, time = design.unit_idx[order], design.time_idx[order]
    base = data["base"].to_numpy()[order]
    stratum = (data["market"].to_numpy()[order] == "b").astype(int)
    eta = (v["a_unit"][unit] + v["time_effect"][time]
           + v["effect_lin"][design.effect_idx[order]] * data["d"].to_numpy()[order] / 0.5
           + v["time_by_effect"][stratum, time]
           + (design.covariate_x[order] * v["slope"][:, time].T).sum(axis=1)
           + v["control_lin"][0] * data["other"].to_numpy()[order] / 0.2)
    # the treatment and the control enter per typical dose: their mean where not 0 (0.5, 0.2),
    # and the reported effects are per unit of the treatment on the outcome scale
    assert (design.d_scale, *design.control_scale) == pytest.approx((0.5, 0.2))
    assert v["control_effect"][0] == pytest.approx(v["control_lin"][0] * design.y_scale / 0.2)
    assert v["effect"] == pytest.approx(v["effect_lin"] * design.y_scale / 0.5)
    expected = -0.5 * np.sum(((y - eta) / v["sigma"]) ** 2) - len(y) * (
        np.log(v["sigma"]) + 0.5 * np.log(2 * np.pi))
    assert v["loglik"] == pytest.approx(expected, rel=1e-10)
    fused = build_model(design, config, fused_binomial=True)
    assert _values(fused, point)["loglik"] == pytest.approx(expected, rel=1e-10)
    if covariates == ("base",):
        # the covariate's basis: the covariate net of its stratum means, scaled to unit variance
        net = base - pd.Series(base).groupby(stratum).transform("mean").to_numpy()
        np.testing.assert_allclose(np.abs(design.covariate_x[order, 0]), np.abs(net) / net.std(),
                                   atol=1e-12)
    else:
        assert design.covariate_x.shape[1] == 2
    # zero-sum constraints: the stratum-year effects on both axes, the slopes over years
    assert np.allclose(v["time_by_effect"].sum(axis=0), 0) and np.allclose(
        v["time_by_effect"].sum(axis=1), 0)
    assert np.allclose(v["slope"].sum(axis=1), 0)
    np.testing.assert_allclose(v["control_effect"], v["control_lin"] * design.y_scale / 0.2)


@pytest.mark.parametrize(("change", "message"), [
    ({"errors": "ar2"}, "errors must be one of"),
    ({"errors": "ar1", "likelihood": "binomial", "trials": "n"}, "options of the normal"),
    ({"controls": ("d",)}, "cannot also be a control"),
    ({"covariates": "base"}, "list of distinct column names"),
])
def test_bad_options_are_clear_errors(change: dict, message: str) -> None:
    config = ModelConfig("y", "d", levels=("plan_id", "municipality_id"), **change)
    with pytest.raises(EstimationError, match=message):
        prepare(_panel(), config)


def test_bad_untreated_columns_are_clear_errors() -> None:
    data = _panel()
    bad_weight = data.assign(n=np.where(data.index == 3, 0.0, data["n"]))
    with pytest.raises(EstimationError, match="weights 'n' must be positive; 1 row"):
        prepare(bad_weight, ModelConfig("y", "d", weights="n"))
    with pytest.raises(EstimationError, match=r"controls .* must be in"):
        prepare(data.assign(other=2.0), ModelConfig("y", "d", controls=("other",)))
    with pytest.raises(EstimationError, match="do not vary"):
        prepare(data.assign(base=1.0), ModelConfig("y", "d", covariates=("base",)))
    with pytest.raises(EstimationError, match="constant within"):
        prepare(data.assign(market=data["year"].astype(str)), ModelConfig("y", "d",
                                                                           time_by=("market",)))
