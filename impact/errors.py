"""Exception types of `impact`: every data problem ends in one of these, never in a stray traceback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Violation:
    """One broken rule of the data contract.

    Parameters
    ----------
    table, column, rule
        Where the rule is broken and which rule (e.g. ``"dtype"``, ``"not null"``, ``"foreign key"``).
    n_rows
        How many rows break it.
    examples
        Up to 10 keys of offending rows, rendered as strings.
    detail
        A short explanation of what was expected.
    """

    table: str
    column: str
    rule: str
    n_rows: int
    examples: tuple[str, ...] = field(default_factory=tuple)
    detail: str = ""

    def __str__(self) -> str:
        ex = ", ".join(self.examples)
        more = f"; e.g. {ex}" if ex else ""
        det = f" ({self.detail})" if self.detail else ""
        rows = f": {self.n_rows} row(s)" if self.column != "*" else ""
        return f"{self.table}.{self.column}: {self.rule}{det}{rows}{more}"


class ImpactError(Exception):
    """Base class of all errors `impact` raises on purpose."""


class DataSpecError(ImpactError, ValueError):
    """Input data break the data contract in ``data_spec/``.

    The message lists every violated rule with table, column, rule, number of rows and up to
    10 example keys. The violations are also available as :attr:`violations`.
    """

    def __init__(self, violations: Sequence[Violation], *, context: str = "") -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        head = context or "input data break the data contract"
        lines = [f"{head}: {len(self.violations)} problem(s)"]
        lines += [f"  - {v}" for v in self.violations]
        super().__init__("\n".join(lines))


class EstimationError(ImpactError, ValueError):
    """An estimator cannot run on the data it was given (e.g. no never-treated units)."""


class ConfigError(ImpactError, ValueError):
    """A study configuration is invalid: unknown table or key, wrong type or a value not allowed.

    The message names the key as ``[table].key`` and says what is allowed; :attr:`key` holds the
    dotted key (``"run.scale"``), or the table name when a whole table is wrong.
    """

    def __init__(self, message: str, *, key: str = "") -> None:
        self.key = key
        super().__init__(message)


class DisclosureError(ImpactError):
    """An output cannot be released safely (e.g. no suppression pattern protects a small cell).

    The message says which rule fails and, for tables, which categories to merge.
    """


class ImpactWarning(UserWarning):
    """Base class of the warnings `impact` emits on purpose (a ``UserWarning``, so existing
    filters keep working)."""


class EstimationWarning(ImpactWarning):
    """An estimator ran, but something about its result needs attention (e.g. a propensity score
    that did not converge in one ATT(g,t) cell, no never-treated units, an unreliable band)."""


class DroppedRowsWarning(ImpactWarning):
    """Rows were left out of an estimation (missing values or outside the event window).

    The number of rows left out is also stored on the result (``n_dropped``), so it is never silent.
    """


class ConvergenceWarning(ImpactWarning):
    """A Bayesian fit failed the convergence gate (R-hat, ESS, divergences, BFMI)."""
