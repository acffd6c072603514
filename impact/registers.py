"""The `Registers` container: the five input tables (and, from the simulator, the truth)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

TABLES: tuple[str, ...] = ("persons", "households", "departments", "lettings", "tool_adoption")


@dataclass(frozen=True)
class Registers:
    """The register inputs of a study, one DataFrame per table of ``data_spec/``.

    Attributes
    ----------
    persons, households, departments, lettings, tool_adoption
        The five input tables (see ``data_spec/README.md``).
    truth
        Only from :func:`impact.simulate.registers`: the true effects (``None`` for real data).
    counterfactual
        Only from the simulator: the same world without any letting tool (``None`` otherwise).
    """

    persons: pd.DataFrame
    households: pd.DataFrame
    departments: pd.DataFrame
    lettings: pd.DataFrame
    tool_adoption: pd.DataFrame
    truth: pd.DataFrame | None = None
    counterfactual: Registers | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five input tables by name (truth and counterfactual left out)."""
        return {name: getattr(self, name) for name in TABLES}

    def replace(self, **changes: object) -> Registers:
        """A copy with some tables replaced."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Registers(**current)  # type: ignore[arg-type]
