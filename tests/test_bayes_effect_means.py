"""Group effects pooled towards a mean per category (``effect_mean_by``, issue 15, item 4).

On the default world the municipality effects of flexible letting differ by housing market
(seed 0: mean truth 0.093 in waiting-list markets, 0.020 in vacancy markets); one common mean
shrank both towards 0.06. Exact identities, no sampling: the DerSimonian-Laird estimator with
categories against the matrix form of the meta-regression moment estimator, the model's pooled
mean against its definition, and the errors of bad options.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact.bayes import ModelConfig
from impact.bayes.design import prepare
from impact.bayes.model import build_model
from impact.bayes.parameterisation import between_variance
from impact.errors import EstimationError
from tests.test_bayes_untreated import _point, _values


def _dl_matrix(est: np.ndarray, se: np.ndarray, x: np.ndarray) -> float:
    """Method-of-moments between variance of a meta-regression on ``x`` (matrix form)."""
    w = np.diag(1.0 / se**2)
    xtwx_inv = np.linalg.inv(x.T @ w @ x)
    beta = xtwx_inv @ x.T @ w @ est
    resid = est - x @ beta
    q = float(resid @ w @ resid)
    denom = float(np.trace(w) - np.trace(xtwx_inv @ x.T @ w @ w @ x))
    return max(0.0, (q - (len(est) - x.shape[1])) / denom)


def test_between_variance_is_the_dersimonian_laird_estimator() -> None:
    rng = np.random.default_rng(5)
    se = rng.uniform(0.02, 0.08, 30)
    cat = np.repeat([0, 1, 2], 10)
    est = np.array([0.0, 0.1, 0.05])[cat] + rng.normal(0, 0.04, 30) + se * rng.normal(size=30)
    ones = np.ones((30, 1))
    assert between_variance(est, se) == pytest.approx(_dl_matrix(est, se, ones), rel=1e-12)
    dummies = np.eye(3)[cat]
    with_cat = between_variance(est, se, cat)
    assert with_cat == pytest.approx(_dl_matrix(est, se, dummies), rel=1e-12)
    # the category means explain part of the spread
    assert with_cat < between_variance(est, se)
    # no spread beyond sampling error: truncated at 0
    assert between_variance(np.zeros(5), np.ones(5)) == 0.0


def _panel() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for dept in range(12):
        muni = dept % 4  # m0, m2 market a; m1, m3 market b
        for year in range(2004, 2010):
            rows.append({"department_id": f"d{dept}", "year": year,
                         "municipality_id": f"m{muni}", "plan_id": None,
                         "market": "a" if muni % 2 == 0 else "b",
                         # m3 has no treated department-year
                         "d": 0.6 if (dept < 6 and muni != 3 and year >= 2007) else 0.0,
                         "y": rng.normal()})
    return pd.DataFrame(rows)


def test_the_pooled_effect_averages_the_category_means_over_treated_groups() -> None:
    data = _panel()
    config = ModelConfig("y", "d", effect_mean_by="market", centred_effects=False)
    design = prepare(data, config)
    assert design.effect_mean_groups == ["a", "b"]
    assert design.effect_mean_idx.tolist() == [0, 1, 0, 1]
    model = build_model(design, config)
    v = _values(model, _point(model, np.random.default_rng(1)))
    mu_by = v["effect_mu_by"]
    # treated groups m0, m1, m2: two in market a, one in market b
    assert v["effect_mu"] == pytest.approx((2 * mu_by[0] + mu_by[1]) / 3, abs=1e-12)
    np.testing.assert_allclose(
        v["effect_lin"], mu_by[[0, 1, 0, 1]] + v["sigma_effect"] * v["effect_lin_z"],
        atol=1e-12)
    # per unit of the treatment: the model's effects are per typical dose (0.6 here)
    per_unit = design.y_scale / 0.6
    assert design.d_scale == pytest.approx(0.6)
    np.testing.assert_allclose(v["effect_mean"], mu_by * per_unit, atol=1e-12)
    np.testing.assert_allclose(v["effect_pooled"], v["effect_mu"] * per_unit, atol=1e-12)


def test_complete_pooling_gives_each_group_its_category_effect() -> None:
    config = ModelConfig("y", "d", effect_mean_by="market", pooling="complete")
    design = prepare(_panel(), config)
    model = build_model(design, config)
    v = _values(model, _point(model, np.random.default_rng(2)))
    np.testing.assert_allclose(v["effect_lin"], v["effect_mu_by"][[0, 1, 0, 1]], atol=1e-12)
    assert v["effect_mu"] == pytest.approx((2 * v["effect_mu_by"][0] + v["effect_mu_by"][1]) / 3)
    # no pooling: independent effects, the key has no mean to pool towards
    none = ModelConfig("y", "d", effect_mean_by="market", pooling="none")
    assert "effect_mu_by" not in build_model(prepare(_panel(), none), none).named_vars


def test_effect_mean_by_errors() -> None:
    data = _panel()
    bad = data.assign(market=np.where(data["department_id"] == "d0", "b", data["market"]))
    with pytest.raises(EstimationError, match="varies within 1 'municipality_id' group"):
        prepare(bad, ModelConfig("y", "d", effect_mean_by="market"))
    with pytest.raises(EstimationError, match="other than effect_by"):
        prepare(data, ModelConfig("y", "d", effect_mean_by="municipality_id"))
    with pytest.raises(EstimationError, match=r"\[.region.\] not in the data"):
        prepare(data, ModelConfig("y", "d", effect_mean_by="region"))
