"""Difference-in-differences estimators (names fixed in ARCHITECTURE.md), one module per estimator.

- :func:`twfe`, :func:`event_study` (``fixed_effects.py``): two-way fixed effects on linearmodels'
  PanelOLS.
- :func:`att_gt` (``callaway_santanna/``): Callaway-Sant'Anna group-time ATTs and aggregations.
- :func:`dose_response` (``dose_response.py``): effects of a continuous dose of a staggered
  adoption (Callaway, Goodman-Bacon & Sant'Anna 2024).
- :func:`switchers` (``switchers.py``): effects of a time-varying intensity (de Chaisemartin &
  D'Haultfoeuille).
- :func:`bacon` (``bacon.py``): Goodman-Bacon decomposition of the TWFE estimate.
- :func:`imputation` (``imputation.py``): the imputation estimator of the primary specification.

``impact.did.<name>`` is always the function; where a module has the function's name
(``dose_response``, ``switchers``, ``bacon``, ``imputation``), import from the module with
``from impact.did.bacon import BaconResult`` (``import impact.did.bacon as m`` gives the function).
"""

from __future__ import annotations

from impact.did.bacon import bacon
from impact.did.callaway_santanna import att_gt
from impact.did.dose_response import dose_response
from impact.did.fixed_effects import event_study, twfe
from impact.did.imputation import imputation
from impact.did.switchers import switchers

__all__ = ["att_gt", "bacon", "dose_response", "event_study", "imputation", "switchers", "twfe"]
