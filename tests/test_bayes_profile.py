"""The effect's dose scale and its profile over time since adoption (issue 15, item 4).

Exact identities at fixed parameter values, no sampling: the treatment enters per typical dose
with the reported effects per unit of it; with ``effect_profile`` the linear predictor holds each
treated observation's group effect plus the shared profile at its time since adoption, and a
group's reported effect times its mean treatment is the mean of that treatment term over its
treated observations (what the implied ATT of ``impact run`` reports).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impact.bayes import ModelConfig
from impact.bayes.design import dose_scale, prepare, profile_weights
from impact.bayes.model import build_model
from impact.errors import EstimationError
from tests.test_bayes_untreated import _point, _values


def _panel() -> pd.DataFrame:
    """10 departments x 8 years; departments 0-5 adopt (2006 or 2008) and accumulate exposure."""
    rng = np.random.default_rng(5)
    rows = []
    for dept in range(10):
        first = (2006 if dept < 3 else 2008) if dept < 6 else None
        for year in range(2004, 2012):
            since = None if first is None else year - first
            d = 0.0 if since is None or since < 0 else min(0.08 * (since + 1) * (1 + dept % 2), 1.0)
            rows.append({"department_id": f"d{dept}", "year": year,
                         "municipality_id": f"m{dept % 3}", "plan_id": None, "d": d,
                         "since": np.nan if since is None else float(since),
                         "y": rng.normal()})
    return pd.DataFrame(rows)


def test_dose_scale_is_the_mean_treated_dose() -> None:
    assert dose_scale(np.array([0.0, 1.0, 1.0, 0.0])) == 1.0  # a 0/1 treatment: unchanged
    assert dose_scale(np.array([0.0, 0.1, 0.3, 0.0])) == pytest.approx(0.2)
    assert dose_scale(np.zeros(3)) == 1.0
    data = _panel()
    design = prepare(data, ModelConfig("y", "d", levels=("municipality_id",)))
    treated = data["d"].to_numpy() > 0
    assert design.d_scale == pytest.approx(data["d"][treated].mean())
    np.testing.assert_allclose(design.d * design.d_scale, data["d"].to_numpy())


@pytest.mark.parametrize("fused", [False, True], ids=["pymc", "fused"])
def test_profile_enters_the_linear_predictor_and_the_group_effects(fused: bool) -> None:
    data = _panel()
    config = ModelConfig("y", "d", levels=("municipality_id",), effect_profile="since",
                         profile_last=4, centred_effects=True)
    design = prepare(data, config)
    # bins: times since adoption 0..4 among the treated rows (4 = 4 and later)
    assert design.profile_times == [0, 1, 2, 3, 4]
    since = data["since"].to_numpy()
    treated = data["d"].to_numpy() > 0
    np.testing.assert_array_equal(design.profile_idx[treated], np.minimum(since[treated], 4))
    assert (design.profile_idx[~treated] == -1).all()
    model = build_model(design, config, fused_binomial=fused)
    v = _values(model, _point(model, np.random.default_rng(2)))
    per_unit = design.y_scale / design.d_scale
    profile = v["effect_profile"] / per_unit - v["effect_mu"]  # deviation per typical dose
    # the profile's treatment-weighted mean over all treated rows is 0
    d_raw = data["d"].to_numpy()
    bins = design.profile_idx
    w = np.bincount(bins[treated], weights=d_raw[treated], minlength=5)
    assert w @ profile == pytest.approx(0.0, abs=1e-12)
    # the likelihood: the group effect plus the profile at the row's time since adoption
    order = np.lexsort((design.time_idx, design.unit_idx))
    y = (design.y[order] - design.y_loc) / design.y_scale
    unit, time, g = design.unit_idx[order], design.time_idx[order], design.effect_idx[order]
    step = np.where(bins[order] >= 0, profile[np.maximum(bins[order], 0)], 0.0)
    eta = (v["a_unit"][unit] + v["time_effect"][time]
           + (v["effect_lin"][g] + step) * d_raw[order] / design.d_scale)
    expected = -0.5 * np.sum(((y - eta) / v["sigma"]) ** 2) - len(y) * (
        np.log(v["sigma"]) + 0.5 * np.log(2 * np.pi))
    assert v["loglik"] == pytest.approx(expected, rel=1e-10)
    # a group's effect times its mean treatment = the mean treatment term over its treated rows
    for k, group in enumerate(design.effect_groups):
        rows = treated & (design.effect_idx == k)
        term = (v["effect_lin"][k] + profile[bins[rows]]) * d_raw[rows] / design.d_scale
        assert v["effect"][k] * d_raw[rows].mean() == pytest.approx(
            design.y_scale * term.mean(), rel=1e-10), group


def test_profile_needs_the_time_since_adoption_of_every_treated_row() -> None:
    data = _panel()
    data.loc[data["d"] > 0, "since"] = np.nan
    with pytest.raises(EstimationError, match="effect_profile 'since' is null in"):
        prepare(data, ModelConfig("y", "d", levels=("municipality_id",), effect_profile="since"))


def test_profile_options_are_checked() -> None:
    data = _panel()
    with pytest.raises(EstimationError, match="give one of them"):
        prepare(data, ModelConfig("y", "d", levels=("municipality_id",), effect_profile="since",
                                  event_time="since"))
    with pytest.raises(EstimationError, match="profile_last must be at least 1"):
        prepare(data, ModelConfig("y", "d", levels=("municipality_id",), effect_profile="since",
                                  profile_last=0))
    # a single time since adoption among the treated rows: no profile
    one = data.assign(d=np.where(data["since"] == 2, data["d"], 0.0))
    design = prepare(one, ModelConfig("y", "d", levels=("municipality_id",),
                                      effect_profile="since"))
    assert design.profile_idx is None


def test_profile_with_unit_effects_and_a_gap_in_the_times() -> None:
    # no treated row two years after adoption: that bin has no deviation; with unit effects the
    # pooled effect is the mean of the treated groups' reported effects
    data = _panel()
    data.loc[data["since"] == 2, "d"] = 0.0
    config = ModelConfig("y", "d", levels=("municipality_id",), effect_profile="since",
                         profile_last=5, unit_effects=True, centred_effects=True)
    design = prepare(data, config)
    assert design.profile_times == [0, 1, 3, 4, 5]
    basis = design.profile_basis
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-12)
    model = build_model(design, config)
    v = _values(model, _point(model, np.random.default_rng(3)))
    treated_groups = sorted(set(design.effect_idx[design.d > 0]))
    assert v["effect_pooled"] == pytest.approx(v["effect"][treated_groups].mean(), abs=1e-12)


def test_profile_weights_are_each_groups_treatment_shares_by_bin() -> None:
    # group 0: bins 0, 1, 1 with treatment 1, 2, 1 -> shares 1/4, 3/4; group 1: untreated rows
    # only (bin -1) -> zeros; a row outside the groups (-1) is left out
    group = np.array([0, 0, 0, 1, 1, -1])
    bins = np.array([0, 1, 1, -1, -1, 0])
    d = np.array([1.0, 2.0, 1.0, 0.0, 0.0, 5.0])
    w = profile_weights(group, bins, d, n_groups=2, n_bins=2)
    np.testing.assert_array_equal(w, [[0.25, 0.75], [0.0, 0.0]])
