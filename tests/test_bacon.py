"""Goodman-Bacon decomposition: exact identity, the paper's Figure 2 weights, bacondecomp's castle."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from impact.did import bacon, twfe
from impact.errors import EstimationError

# Cheng & Hoekstra (2013, JHR) castle-doctrine panel as shipped in R bacondecomp (`castle`,
# github:evanjflack/bacondecomp data/castle.rda): state id (sid), first year with post == 1
# (0 = never), then l_homicide for 2000..2010, rounded to 6 decimals.
CASTLE = """
1 2006 2.027356 2.164867 1.936334 1.919567 1.749841 2.130440 2.079652 2.145690 2.043598 1.938684 1.747940
2 2006 1.491518 1.846246 1.665124 1.823279 1.760948 1.606748 1.681332 1.872017 1.377100 1.169510 1.487916
3 2006 1.967152 2.040707 1.979376 2.087027 1.994462 2.032500 2.143614 2.188708 1.968010 1.793097 1.863345
4 0 1.866063 1.732164 1.684416 1.915789 1.883624 1.945380 2.015778 1.969190 1.756988 1.841651 1.560761
5 0 1.838978 1.879402 1.943616 1.938234 1.920375 1.959379 1.921304 1.829697 1.771833 1.692166 1.587793
6 0 1.160574 1.297976 1.402365 1.425340 1.496951 1.332892 1.280223 1.179089 1.169413 1.188741 0.881420
7 0 1.089180 1.152275 0.919168 1.200633 1.081908 1.129145 1.363260 1.173512 1.329454 1.109667 1.294771
8 0 1.192022 1.092224 1.201129 0.974508 1.246010 1.508508 1.593522 1.520337 1.889194 1.557364 1.683139
10 2005 1.756288 1.697463 1.719649 1.715632 1.717022 1.625275 1.831149 1.897956 1.860869 1.719375 1.664930
11 2006 2.102422 1.992987 1.984882 2.052330 1.966172 1.855318 1.880544 2.058431 1.922122 1.784963 1.758683
12 0 1.090852 0.990362 0.686058 0.588063 0.989344 0.661844 0.490791 0.631320 0.708438 0.585861 0.577204
13 0 0.236944 0.844364 1.012190 0.667956 0.823806 0.919414 0.780296 1.208706 0.431644 0.474967 0.301489
14 0 2.004585 2.088815 2.057497 1.982307 1.839777 1.822860 1.804769 1.772031 1.817739 1.799418 1.707924
15 2006 1.785699 1.939734 1.800491 1.725798 1.651624 1.765144 1.746366 1.725894 1.625783 1.593150 1.508810
16 0 0.488556 0.573071 0.440483 0.565680 0.433877 0.334585 0.647843 0.297037 0.947825 0.243454 0.251371
17 2006 1.869318 1.258844 1.085574 1.554288 1.525574 1.333226 1.524896 1.374320 1.402856 1.504057 1.261137
18 2006 1.592238 1.522018 1.568883 1.508859 1.767199 1.543593 1.437035 1.645482 1.562299 1.464961 1.465792
19 2006 2.559089 2.448584 2.612976 2.594552 2.572793 2.327391 2.573150 2.675913 2.522365 2.484178 2.429864
20 0 0.190345 0.417315 0.105720 0.230513 0.341923 0.392128 0.554086 0.419478 0.857513 0.680626 0.590875
21 0 2.119793 2.141205 2.265843 2.279525 2.262724 2.313273 2.274463 2.292198 2.171904 2.054764 2.014825
22 0 0.712880 0.842295 1.024453 0.811485 1.014301 1.057418 1.071764 1.071676 0.948268 0.977186 1.170475
23 2006 1.932254 1.931419 1.934466 1.829131 1.875184 1.852494 1.968720 1.882246 1.707435 1.825463 1.744362
24 0 1.149502 0.900375 0.830297 0.948378 0.823649 0.834942 0.899290 0.810971 0.743579 0.355020 0.597913
25 2006 2.227352 2.323159 2.252631 2.260239 2.090951 2.025181 2.075814 1.948717 2.081567 1.892923 1.950145
26 2007 1.854220 1.917470 1.793702 1.652795 1.846428 1.965418 1.845723 1.838964 2.049316 1.880145 1.952530
27 2009 0.823902 1.352019 0.592638 1.212344 1.201863 0.681382 1.280735 0.887561 1.238401 1.207879 0.971882
28 0 1.333464 0.950366 1.051026 1.199423 0.857719 0.946881 1.097671 1.378252 1.360036 0.838808 1.091326
29 0 1.881948 2.161669 2.135202 2.188725 2.011480 2.157653 2.203449 2.048257 1.868745 1.812841 1.773827
30 0 0.605930 0.328801 -0.031916 0.306228 0.297954 0.400881 -0.011393 -0.087899 0.064692 -0.178845 -0.012426
31 0 1.257329 1.399525 1.395736 1.570303 1.528223 1.587917 1.588057 1.480367 1.468443 1.304983 1.443866
32 0 2.024539 1.708743 2.123163 1.842176 2.205213 2.032134 1.954484 2.259007 2.033971 2.310261 1.941372
33 0 1.643847 1.650186 1.588129 1.613701 1.562506 1.544366 1.565702 1.427907 1.459283 1.391486 1.500991
34 0 1.971814 1.851024 1.916296 1.826362 1.861421 1.939481 1.807832 1.888076 1.901377 1.687487 1.617856
35 2007 -0.435944 0.136322 -0.199252 0.390189 0.271659 0.677200 0.229622 0.786345 -0.244691 0.629038 0.406945
36 2008 1.330102 1.406464 1.553781 1.552648 1.512171 1.665595 1.546698 1.529244 1.569068 1.521238 1.418156
37 2006 1.695966 1.709509 1.573433 1.802459 1.695804 1.694945 1.759810 1.830082 1.771347 1.869008 1.657743
38 0 0.738770 0.905823 0.737403 0.669219 0.940538 0.809650 0.866214 0.695990 0.822178 0.859039 0.871845
39 0 1.625534 1.703274 1.657235 1.691374 1.692997 1.842289 1.795187 1.779512 1.739238 1.668642 1.646420
40 0 1.494619 1.341074 1.380689 0.879770 0.919178 1.191635 0.927829 0.581639 1.078519 1.107356 1.012264
41 2006 2.015683 2.128382 2.015264 2.022717 1.952264 2.032422 2.128273 2.128786 1.941937 1.932296 1.809402
42 2006 -0.037056 -0.039177 0.407335 0.307410 0.829735 0.880772 1.310715 1.369354 1.536794 1.326124 1.046643
43 2007 2.001336 2.023447 2.006950 1.940249 1.826233 2.003841 1.939464 1.897343 1.902945 2.027977 1.734056
44 2007 1.808504 1.858610 1.814340 1.886960 1.828550 1.843382 1.774261 1.803718 1.748365 1.719864 1.617101
45 0 0.673486 1.100422 0.725204 0.954705 0.671866 0.835966 0.712541 0.828472 0.406653 0.385732 0.666717
46 0 0.425554 0.167032 0.780171 0.919041 0.979777 0.283873 0.808225 0.739451 1.007474 0.254225 0.113367
47 0 1.767549 1.654925 1.703515 1.760714 1.686219 1.831953 1.662576 1.692735 1.569862 1.566880 1.537808
48 0 1.224985 1.118477 1.132275 1.111327 1.142226 1.204568 1.124977 1.004653 1.095547 1.077919 0.825468
49 2008 0.957794 0.821693 1.176235 1.419046 1.345715 1.532166 1.506139 1.294413 1.308583 1.534130 1.210796
50 0 1.177172 1.297461 1.069381 1.236139 1.057144 1.343393 1.088391 1.194670 0.958531 0.958358 1.006163
51 0 0.916918 0.627917 1.129416 1.055264 0.803502 1.039213 0.925945 1.407384 0.830815 0.741671 0.362429"""

# Published output of bacondecomp's README (github:evanjflack/bacondecomp README.Rmd,
# `bacon(l_homicide ~ post, data = castle, id_var = "state", time_var = "year")`):
# type, weight, avg_est; and "Weighted sum of decomposition = 0.0818".
CASTLE_PUBLISHED = {
    "Earlier vs Later Treated": (0.05976, -0.00554),
    "Later vs Earlier Treated": (0.03190, 0.07032),
    "Treated vs Untreated": (0.90834, 0.08796),
}


def castle() -> pd.DataFrame:
    rows = []
    for line in CASTLE.strip().splitlines():
        sid, first, *values = line.split()
        for i, v in enumerate(values):
            year = 2000 + i
            rows.append((int(sid), year, float(v), float(int(first) > 0 and year >= int(first))))
    return pd.DataFrame(rows, columns=["sid", "year", "l_homicide", "post"])


def test_castle_matches_bacondecomp() -> None:
    res = bacon(castle(), "l_homicide", "post", unit="sid", time="year")
    by = res.by_type().set_index("type")
    for kind, (weight, avg) in CASTLE_PUBLISHED.items():
        assert by.loc[kind, "weight"] == pytest.approx(weight, abs=5e-6)
        assert by.loc[kind, "avg_estimate"] == pytest.approx(avg, abs=5e-6)
    assert round(res.twfe_estimate, 4) == 0.0818
    assert abs(res.identity_error) < 1e-12
    assert res.comparisons["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    # the TWFE coefficient of impact.did.twfe (PanelOLS) is the decomposed quantity
    fit = twfe(castle(), "l_homicide", "post", unit="sid", time="year", cluster="sid")
    assert fit.estimate == pytest.approx(res.twfe_estimate, abs=1e-10)


def test_figure2_weights() -> None:
    """Goodman-Bacon (2021) Figure 2: T=100, early group treated at 34, late at 85, one untreated.

    The paper's weights (also bacondecomp's test_bacon_weights.R): .365 (early vs untreated),
    .222 (late vs untreated), .278 (early vs late), .135 (late vs early).
    """
    rng = np.random.default_rng(5)
    df = pd.DataFrame({
        "time": np.tile(np.arange(1, 101), 3),
        "id": np.repeat([1, 2, 3], 100),
        "d": np.r_[np.zeros(100), np.zeros(33), np.ones(67), np.zeros(84), np.ones(16)],
        "y": rng.normal(size=300),
    })
    c = bacon(df, "y", "d", unit="id", time="time").comparisons.set_index("term")
    got = c.loc[["34 vs never", "85 vs never", "34 vs 85", "85 vs 34"], "weight"].round(3)
    assert got.tolist() == [0.365, 0.222, 0.278, 0.135]


def staggered(seed: int, always: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    years = np.arange(2006, 2016)
    choices = [0, 2008, 2010, 2011, 2014] + ([2006] if always else [])
    cohort = rng.choice(choices, size=80)
    rows = []
    for u, g in enumerate(cohort):
        a = rng.normal()
        for t in years:
            d = float(g > 0 and t >= g)
            # heterogeneous, dynamic effects: TWFE is a mix of good and forbidden comparisons
            y = a + 0.2 * (t - 2006) + d * (0.3 + 0.1 * (t - g)) + rng.normal(scale=0.3)
            rows.append((u, t, y, d))
    return pd.DataFrame(rows, columns=["department_id", "year", "y", "d"])


@pytest.mark.parametrize("always", [False, True])
def test_identity_with_always_treated(always: bool) -> None:
    df = staggered(11, always)
    # a boolean in_force_<tool> column and a (unit, year) index work as they are
    res = bacon(df.assign(d=df["d"].astype(bool)).set_index(["department_id", "year"]), "y", "d")
    fit = twfe(df, "y", "d")
    assert res.comparisons["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (res.comparisons["weight"] >= 0).all()
    assert abs((res.comparisons["weight"] * res.comparisons["estimate"]).sum() - fit.estimate) < 1e-10
    assert ("Later vs Always Treated" in set(res.comparisons["type"])) is always
    assert "identity error" in str(res.summary())
    assert res.plot().axes


def test_bacon_input_errors() -> None:
    df = staggered(3, False)
    with pytest.raises(EstimationError, match="balanced"):
        bacon(df.iloc[1:], "y", "d")
    bad = df.copy()
    bad.loc[(bad["d"] == 1).idxmax(), "d"] = 0.5
    with pytest.raises(EstimationError, match="0/1"):
        bacon(bad, "y", "d")
    off = df.copy()
    unit = off.loc[(off["d"] == 1), "department_id"].iloc[0]
    off.loc[(off["department_id"] == unit) & (off["year"] == 2015), "d"] = 0.0
    with pytest.raises(EstimationError, match="absorbing"):
        bacon(off, "y", "d")
    with pytest.warns(UserWarning, match="missing"), pytest.raises(EstimationError, match="balanced"):
        bacon(df.assign(y=df["y"].where(df.index != 5)), "y", "d")
