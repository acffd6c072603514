"""Slow: the study's primary specification on its own default world and on that world's placebo.

24 seeds of the default (report-scale) world, as ``impact run`` simulates it (selected adoption,
both tools mostly together); see ``tests/simstudy/default_world.py``. For every tool x outcome:

- placebo world (no effect anywhere, the real adoption): the 95% interval covers 0;
- factual world: it covers the truth of its own estimand (the tool-specific effect over the
  department-years behind the estimate).

Tolerances (derived, not tuned): with 24 replications the Monte Carlo SE of a mean z-score is
1/sqrt(24) = 0.204, so |mean bias| < 3.5 x 0.204 = 0.71 SE per cell (false alarm 5e-4 per cell,
under 1% over the 16 cells); a cell's coverage must not fall below the 0.05% quantile of
Binomial(24, 0.95); pooled over the 16 cells (384 intervals, correlated within a seed) coverage
within 0.95 +- 3 x sqrt(0.95 x 0.05 / 384) = [0.917, 0.983]. 24 seeds, not 50, keep CI within
its time budget; the 2-3x overstatement this test was written against is many times these
tolerances, and the 50-seed table stays reproducible with ``tests/simstudy/default_world.py
--seeds 0 50``. The naive contrast (att_gt without conditioning, ignoring the other tool) must
show the bias the primary specification removes: its placebo estimate of flexible letting on the
employment share is positive by more than 1 SE on average (measured: see the issue note). The
test is deterministic (fixed seeds).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.simstudy.default_world import run, summarise

N_SEEDS = 24


@pytest.fixture(scope="module")
def summary():
    reps = run(range(N_SEEDS), workers=2, scale="report", n_boot=99, naive=True)
    return reps, summarise(reps)


@pytest.mark.slow
def test_primary_is_unbiased_and_covers_on_placebo_and_factual(summary) -> None:
    _reps, table = summary
    prim = table[table["spec"] == "primary"]
    assert len(prim) == 16 and (prim["n"] == N_SEEDS).all()
    worst = prim.loc[prim["mean_bias_in_se"].abs().idxmax()]
    assert prim["mean_bias_in_se"].abs().max() < 3.5 / np.sqrt(N_SEEDS), worst.to_dict()
    floor = stats.binom.ppf(0.0005, N_SEEDS, 0.95) / N_SEEDS
    assert prim["coverage"].min() >= floor, prim.loc[prim["coverage"].idxmin()].to_dict()
    pooled = float((prim["coverage"] * prim["n"]).sum() / prim["n"].sum())
    half = 3 * np.sqrt(0.95 * 0.05 / prim["n"].sum())
    assert 0.95 - half <= pooled <= 0.95 + half, pooled


@pytest.mark.slow
def test_naive_contrast_is_biased_on_the_placebo(summary) -> None:
    _, table = summary
    naive = table[(table["spec"] == "naive att_gt") & (table["tool"] == "flexible_letting")
                  & (table["outcome"] == "share_employed")].iloc[0]
    assert naive["mean_bias_in_se"] > 1.0, naive.to_dict()
