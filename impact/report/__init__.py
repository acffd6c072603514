"""Publication outputs: disclosure control (:mod:`impact.report.disclosure`), table export
(:mod:`impact.report.tables`) and the release writer (:mod:`impact.report.release`).

Submodules are imported lazily so that ``import impact.report`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = {"disclosure", "tables", "release"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"impact.report.{name}")
    raise AttributeError(f"module 'impact.report' has no attribute {name!r}")
