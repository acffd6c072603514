"""Diagnostics of the study's estimates (issue 12).

- :func:`pretrends` (``pre_trends.py``): joint Wald test of the pre-period coefficients.
- :func:`pretrend_power` (``pre_trends.py``): power of the pre-test against a violation of
  parallel trends, or the linear violation it detects with a given probability (Roth 2022).
- :func:`honest` (``honest_did.py``): robust confidence intervals under relative-magnitude or
  smoothness bounds on the violation of parallel trends (Rambachan and Roth 2023).
- :func:`placebo_time`, :func:`placebo_space`, :func:`placebo_outcome` and :func:`placebo`
  (``placebo.py``): placebos in time (adoption moved earlier on the untreated years), in space
  (adoption permuted among plans within municipality; permutation p-value) and on outcomes the
  tools should not move, as tidy tables.
- :func:`power` (``power.py``): simulated power of an estimator on the real design of a panel,
  ``.table`` and ``.mde(target)``; :func:`fit_outcome_model`, :func:`power_design`.

Each event-study diagnostic takes a result (``event_time``, ``estimate``, ``vcov()``) or plain
``betahat, sigma`` arrays with the reference period omitted. Module names differ from the function
names so that ``impact.diagnostics.<function>`` is always the function (``power`` is bound after
its module is imported).
"""

from __future__ import annotations

from impact.diagnostics.honest_did import honest
from impact.diagnostics.placebo import (
    PlaceboFit,
    att_gt_overall,
    permuted_cohorts,
    placebo,
    placebo_outcome,
    placebo_space,
    placebo_time,
    primary_estimator,
    truncate_untreated,
)
from impact.diagnostics.power import (
    MinimumDetectableEffect,
    OutcomeModel,
    PowerDesign,
    PowerResult,
    att_gt_estimator,
    fit_outcome_model,
    power,
    power_design,
)
from impact.diagnostics.pre_trends import PretrendPower, PretrendTest, pretrend_power, pretrends

__all__ = [
    "MinimumDetectableEffect",
    "OutcomeModel",
    "PlaceboFit",
    "PowerDesign",
    "PowerResult",
    "PretrendPower",
    "PretrendTest",
    "att_gt_estimator",
    "att_gt_overall",
    "fit_outcome_model",
    "honest",
    "permuted_cohorts",
    "placebo",
    "placebo_outcome",
    "placebo_space",
    "placebo_time",
    "power",
    "power_design",
    "pretrend_power",
    "pretrends",
    "primary_estimator",
    "truncate_untreated",
]
