"""impact: did flexible letting and municipal referral change who lives in Danish social housing?

Submodules follow the data flow (see ``ARCHITECTURE.md``): :mod:`impact.spec`, :mod:`impact.io`,
:mod:`impact.simulate`, :mod:`impact.panel`, :mod:`impact.describe`, :mod:`impact.did`,
:mod:`impact.bayes`. They are imported lazily so that ``import impact`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from impact.errors import (
    ConfigError,
    ConvergenceWarning,
    DataSpecError,
    DisclosureError,
    DroppedRowsWarning,
    EstimationError,
    EstimationWarning,
    ImpactError,
    ImpactWarning,
    Violation,
)
from impact.registers import Registers

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "ConvergenceWarning",
    "DataSpecError",
    "DisclosureError",
    "DroppedRowsWarning",
    "EstimationError",
    "EstimationWarning",
    "ImpactError",
    "ImpactWarning",
    "Registers",
    "Violation",
    "__version__",
]

_SUBMODULES = {"spec", "io", "simulate", "panel", "describe", "did", "bayes", "estimates",
               "pipeline", "provenance", "cli", "config", "report", "diagnostics", "followup"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"impact.{name}")
    raise AttributeError(f"module 'impact' has no attribute {name!r}")
