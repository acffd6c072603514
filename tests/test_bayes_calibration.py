"""Slow: the hierarchical model ``impact run`` fits, against the truth of its own estimand.

The default world (``[run].seed = 0``, report scale, selected adoption) and its placebo (the
counterfactual persons with the real adoption: every effect 0), fitted as the pipeline fits
them (:func:`impact.workflow.estimates.bayes_inputs` with the package's ``[bayes]`` defaults),
with 4 chains x 500 draws after 500 tuning steps (the pipeline draws 1,000: the same model and
estimand, a larger Monte Carlo error here). The truth of each municipality's effect and of the
pooled effect is defined in ``tests/simstudy/calibration_bayes.py`` (the GLS projection of the
true effect of every tool onto the model's mean structure, least squares' pseudo-true value;
``truth_tool``, the projection of the tool's own effect, differs from it by contamination from
the other tool; the model's priors on its nuisance terms make it a different estimator, see
``benchmarks/RESULTS.md``), which also runs the 40-seed study whose results are in
``benchmarks/simstudy/``. On seed 0 the factual municipality intervals cover 35 of 40 truths
(0.875; 0.825 against ``truth_tool``).

Tolerances: a seed's ~40 municipality intervals at a nominal 90% have a binomial SD of
``sqrt(0.9 * 0.1 / 40) = 0.047`` in their coverage, so a coverage below 0.75 (3 SD under 0.90)
fails; the pooled 90% interval must cover the pooled truth, and on the placebo its mean must be
within 2 posterior SDs of 0.
"""

from __future__ import annotations

import pytest

from impact.workflow.config import StudyConfig
from tests.simstudy.calibration_bayes import replicate


@pytest.mark.slow
@pytest.mark.parametrize("placebo", [False, True], ids=["factual", "placebo"])
def test_bayes_intervals_cover_their_truth_on_the_default_world(placebo: bool) -> None:
    rows = replicate(0, StudyConfig(), placebo=placebo, draws=500, tune=500)
    pooled, groups = rows.iloc[0], rows.iloc[1:]
    assert pooled["group"] == "pooled" and len(groups) >= 30
    assert bool(pooled["converged"])
    assert pooled["lower_90"] <= pooled["truth"] <= pooled["upper_90"], pooled.to_dict()
    assert groups["covered"].mean() >= 0.75, groups["covered"].mean()
    if placebo:
        sd = (pooled["upper_90"] - pooled["lower_90"]) / (2 * 1.645)
        assert abs(pooled["mean"]) < 2 * sd
