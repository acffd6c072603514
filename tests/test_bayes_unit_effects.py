"""Department effects that deviate from their municipality's (``unit_effects``, issue 15, item 4).

On the default world the effect of flexible letting differs between the departments of one
municipality; without department deviations they sit in the errors, which the model takes for
independent noise, and the municipality intervals cover their truth too rarely (see
``benchmarks/RESULTS.md``). Exact identities at fixed parameter values, no sampling: the
log-likelihood with the deviations against the normal density it stands for, fused and
unfused, and which departments get a deviation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from impact.bayes import ModelConfig
from impact.bayes.design import prepare
from impact.bayes.model import build_model
from impact.bayes.parameterisation import unit_effect_weights
from tests.test_bayes_effect_means import _panel
from tests.test_bayes_untreated import _point, _values


@pytest.mark.parametrize("fused", [True, False])
def test_unit_deviations_enter_the_likelihood_as_defined(fused: bool) -> None:
    data = _panel()
    config = ModelConfig("y", "d", effect_mean_by="market", unit_effects=True,
                         centred_effects=False)
    design = prepare(data, config)
    model = build_model(design, config, fused_binomial=fused)
    # departments d0-d5 but those of m3 (d3) are treated; one deviation each, in unit order
    treated = model.coords["treated_unit"]
    assert list(treated) == ["d0", "d1", "d2", "d4", "d5"]
    v = _values(model, _point(model, np.random.default_rng(4)))
    tau = v["effect_lin"][[design.effect_groups.index(f"m{u % 4}") for u in range(12)]]
    units = [design.units.index(u) for u in treated]
    per_unit = np.zeros(len(design.units))
    per_unit[units] = v["sigma_unit_effect"] * v["unit_effect_z"]
    tau_unit = tau[[int(u[1:]) for u in design.units]] + per_unit
    y = (design.y - design.y_loc) / design.y_scale
    eta = (v["a_unit"][design.unit_idx] + v["time_effect"][design.time_idx]
           + tau_unit[design.unit_idx] * design.d)
    expected = norm(eta, float(v["sigma"])).logpdf(y).sum()
    assert v["loglik"] == pytest.approx(expected, rel=1e-10)
    # the reported group effect is that of its own departments, weighted as least squares
    # weights them; the pooled effect their mean over the treated groups m0-m2
    weights = unit_effect_weights(design)
    # (per unit of the treatment: the model's effects are per typical dose, design.d_scale)
    scale = design.y_scale / design.d_scale
    expected = (v["effect_lin"] + weights @ per_unit) * scale
    np.testing.assert_allclose(v["effect"], expected, atol=1e-12)
    assert v["effect_pooled"] == pytest.approx(expected[:3].mean(), abs=1e-12)
    assert not np.allclose(expected, v["effect_lin"] * scale)


def test_unit_deviations_only_with_partial_pooling() -> None:
    for pooling in ("complete", "none"):
        config = ModelConfig("y", "d", unit_effects=True, pooling=pooling)
        model = build_model(prepare(_panel(), config), config)
        assert "sigma_unit_effect" not in model.named_vars
        assert "treated_unit" not in model.coords
    off = ModelConfig("y", "d")
    assert "unit_effect_z" not in build_model(prepare(_panel(), off), off).named_vars


def _least_squares_group_effects(data: pd.DataFrame, tau_unit: dict[str, float],
                                 untreated: list[str]) -> np.ndarray:
    """Group coefficients of ``y = sum_i tau_i * d * 1[unit = i]`` on dummies (no FWL)."""
    y = data["d"] * data["department_id"].map(tau_unit)
    unit = pd.get_dummies(data["department_id"], dtype=float)
    year = pd.get_dummies(data["year"], dtype=float).iloc[:, 1:]
    groups = sorted(data.loc[data["d"] > 0, "municipality_id"].unique())
    cols = [np.where(data["municipality_id"] == g, data["d"], 0.0) for g in groups]
    x = np.column_stack([unit, year, data[untreated].to_numpy(dtype=float), *cols])
    return np.linalg.lstsq(x, y.to_numpy(), rcond=None)[0][-len(groups):]


@pytest.mark.parametrize("controls", [(), ("other",)])
def test_unit_weights_are_the_least_squares_weights(controls: tuple[str, ...]) -> None:
    data = _panel()
    rng = np.random.default_rng(9)
    # a control correlated with the treatment, so the weights are not the two-way ones alone
    data["other"] = data["d"] * rng.uniform(0.5, 1.0, len(data)) + rng.uniform(0, 0.2, len(data))
    design = prepare(data, ModelConfig("y", "d", controls=controls))
    weights = unit_effect_weights(design)
    groups = [design.effect_groups.index(f"m{m}") for m in range(4)]
    unit_group = np.array([design.effect_groups.index(f"m{int(u[1:]) % 4}")
                           for u in design.units])
    # each row sums to 1 over its own group's units and to 0 over the others'; m3: no treatment
    for g in groups[:3]:
        for h in groups:
            assert weights[g, unit_group == h].sum() == pytest.approx(float(g == h), abs=1e-10)
    assert not weights[groups[3]].any()
    tau = {f"d{i}": 0.1 * i - 0.2 for i in range(12)}
    expected = _least_squares_group_effects(data, tau, list(controls))
    got = weights @ np.array([tau[u] for u in design.units])
    np.testing.assert_allclose(got[groups[:3]], expected, atol=1e-10)
