"""Diagnostics of the study's estimates (issue 12).

- :func:`pretrends` (``pre_trends.py``): joint Wald test of the pre-period coefficients.
- :func:`pretrend_power` (``pre_trends.py``): power of the pre-test against a violation of
  parallel trends, or the linear violation it detects with a given probability (Roth 2022).
- :func:`honest` (``honest_did.py``): robust confidence intervals under relative-magnitude or
  smoothness bounds on the violation of parallel trends (Rambachan and Roth 2023).
- :func:`power` (``power.py``): simulated power of an estimator on the real design of a panel,
  ``.table`` and ``.mde(target)``; :func:`fit_outcome_model`, :func:`power_design`.

Each event-study diagnostic takes a result (``event_time``, ``estimate``, ``vcov()``) or plain
``betahat, sigma`` arrays with the reference period omitted. Module names differ from the function
names so that ``impact.diagnostics.<function>`` is always the function (``power`` is bound after
its module is imported).
"""

from __future__ import annotations

from impact.diagnostics.honest_did import honest
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
    "PowerDesign",
    "PowerResult",
    "PretrendPower",
    "PretrendTest",
    "att_gt_estimator",
    "fit_outcome_model",
    "honest",
    "power",
    "power_design",
    "pretrend_power",
    "pretrends",
]
