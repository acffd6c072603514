"""Diagnostics of the study's estimates: simulation power and minimum detectable effects.

- :func:`power` (``power.py``): simulated power of an estimator on the real design of a panel,
  ``.table`` and ``.mde(target)``; :func:`fit_outcome_model`, :func:`power_design`.

Stub: the lead merges this with the pre-trend and HonestDiD diagnostics. The function ``power``
is bound after its module is imported, so ``impact.diagnostics.power`` is always the function.
"""

from __future__ import annotations

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

__all__ = [
    "MinimumDetectableEffect",
    "OutcomeModel",
    "PowerDesign",
    "PowerResult",
    "att_gt_estimator",
    "fit_outcome_model",
    "power",
    "power_design",
]
