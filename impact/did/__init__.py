"""Difference-in-differences estimators (names fixed in ARCHITECTURE.md).

- :func:`twfe`, :func:`event_study` (``fixed_effects.py``): two-way fixed effects on linearmodels'
  PanelOLS.
- :func:`att_gt` (``callaway_santanna.py``): Callaway-Sant'Anna group-time ATTs and aggregations.
- :func:`dose_response` (``intensity.py``): effects of a continuous intensity of use.
- :func:`bacon` (``bacon_decomposition.py``): Goodman-Bacon decomposition of the TWFE estimate.

Modules are named after their method, not their function, so that ``impact.did.twfe`` is always the
function.
"""

from __future__ import annotations

from impact.did.bacon_decomposition import bacon
from impact.did.callaway_santanna import att_gt
from impact.did.fixed_effects import event_study, twfe
from impact.did.imputation import imputation
from impact.did.intensity import dose_response

__all__ = ["att_gt", "bacon", "dose_response", "event_study", "imputation", "twfe"]
