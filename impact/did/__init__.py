"""Difference-in-differences estimators (names fixed in ARCHITECTURE.md).

- :func:`twfe`, :func:`event_study`: two-way fixed effects on linearmodels' PanelOLS.
- :func:`att_gt`: Callaway-Sant'Anna group-time ATTs and their aggregations.
- :func:`dose_response`: effects of a continuous intensity of use.
- :func:`bacon`: Goodman-Bacon decomposition of the TWFE estimate.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "twfe": "impact.did.twfe",
    "event_study": "impact.did.twfe",
    "att_gt": "impact.did.callaway_santanna",
    "dose_response": "impact.did.dose_response",
    "bacon": "impact.did.bacon",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        obj = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = obj
        return obj
    raise AttributeError(f"module 'impact.did' has no attribute {name!r}")
