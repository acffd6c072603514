"""impact: did flexible letting and municipal referral change who lives in Danish social housing?

Submodules follow the data flow (see ``ARCHITECTURE.md``): :mod:`impact.spec`, :mod:`impact.io`,
:mod:`impact.simulate`, :mod:`impact.panel`, :mod:`impact.describe`, :mod:`impact.did`,
:mod:`impact.bayes`, and the study layer :mod:`impact.workflow` (configuration, runner, CLI). They
are imported lazily so that ``import impact`` stays fast.

Modules that moved keep their old import path (:data:`MOVED`): ``import impact.estimates`` gives
the very module object ``impact.workflow.estimates`` (so attributes, ``isinstance`` checks and
monkeypatching agree), without a file at the old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
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
               "pipeline", "provenance", "cli", "config", "report", "diagnostics", "followup",
               "workflow", "results"}

#: Old import path -> the module's home since the layout of issue #13 (item 7).
MOVED: dict[str, str] = {
    **{f"impact.{m}": f"impact.workflow.{m}"
       for m in ("estimates", "pipeline", "cli", "provenance", "config", "outputs")},
    "impact.did.intensity": "impact.did.dose_response",
    "impact.did.bacon_decomposition": "impact.did.bacon",
    # private modules: kept only for code written against the old layout; import the new paths
    "impact._panel_persons": "impact.panel._persons",
    **{f"impact.did._cs_{m}": f"impact.did.callaway_santanna._{m}"
       for m in ("aggregate", "bootstrap", "cells", "data", "estimators", "report", "results")},
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path of :data:`MOVED` as the module at its new path (one module object)."""

    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self._specs[spec.name] = module.__spec__  # the import system overwrites it: restored below
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs.pop(module.__spec__.name)


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())  # before any finder that knows the old files


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"impact.{name}")
    raise AttributeError(f"module 'impact' has no attribute {name!r}")
