"""The result protocol every estimator's result follows: ``tidy()``, ``summary()``, ``plot(ax=None)``.

Every result of :mod:`impact.did`, :mod:`impact.bayes` and the estimate-type results of
:mod:`impact.diagnostics` derives from :class:`Result`, so the behaviour is implemented once:

``tidy()``
    A DataFrame whose first columns are :data:`TIDY_COLUMNS` (``term, estimate, se, lower,
    upper``) and :data:`SUPPORT_COLUMNS` (``n_units, n_persons``), then the estimator's own
    columns (keys such as ``event_time``, ``cohort``, ``tool``; side counts; ``df_resid``).
    ``estimate, se, lower, upper`` are float64, ``term`` is text and every count column of
    :data:`COUNT_COLUMNS` is a nullable ``Int64`` (``<NA>`` where not known). A Bayesian result
    uses the names for its posterior mean, posterior sd and 95% equal-tailed interval and keeps
    its other posterior columns after them.
``summary()``
    Always a :class:`Summary`: a title, the rows as a DataFrame (``.frame``) and notes (sample
    sizes, standard errors, clustering, convergence). One type rather than a string or a
    DataFrame because a string cannot be filtered or exported and a DataFrame alone drops the
    settings that make a summary readable; ``str()`` gives the console text, ``_repr_html_`` the
    notebook view and ``.frame`` the table.
``plot(ax=None)``
    Draws into ``ax`` (or a new figure made without pyplot's global state) and returns the
    matplotlib :class:`~matplotlib.figure.Figure`. What is drawn is the rows of ``tidy()``
    (estimates and intervals), so a test can read the figure's data back.

Support counts
--------------
``n_units`` is the number of units (departments) whose observations enter the row's estimate and
``n_persons`` a lower bound on the distinct persons behind it: the largest number of persons in
one period over the unit-periods behind the row (on 1 January a person lives in one department,
so the persons of one year never exceed the distinct persons of several years). Persons are known
where the estimator was given a count column (``persons=``, e.g. ``n_residents`` or the outcome's
base such as ``n_labour_force_18_64``; a missing count counts as 0, which keeps the bound), and
for a binomial model from its trials. Rows that compare two sides also carry
``n_units_treated``, ``n_units_control``, ``n_persons_treated`` and ``n_persons_control``, and
``df_resid`` where the estimator has residual degrees of freedom (see each result's ``tidy``):
what :func:`impact.report.disclosure.check_model_rows` needs to release a model output.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from impact.errors import EstimationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "COUNT_COLUMNS",
    "SIDE_COLUMNS",
    "SUPPORT_COLUMNS",
    "TIDY_COLUMNS",
    "Result",
    "Summary",
    "SupportCounter",
    "conform",
    "draw_intervals",
    "new_axes",
    "persons_column",
    "wide_sides",
]

TIDY_COLUMNS = ("term", "estimate", "se", "lower", "upper")
"""The first columns of every ``tidy()``."""
SUPPORT_COLUMNS = ("n_units", "n_persons")
"""Support counts every ``tidy()`` has after :data:`TIDY_COLUMNS` (``<NA>`` where not known)."""
SIDE_COLUMNS = ("n_units_treated", "n_units_control", "n_persons_treated", "n_persons_control")
"""Support of each side of a comparison, where a row compares two sides."""
COUNT_COLUMNS = (*SUPPORT_COLUMNS, *SIDE_COLUMNS, "df_resid")
"""Count columns, always nullable ``Int64``."""


def conform(frame: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Put a tidy frame into the protocol's shape (a copy).

    :data:`TIDY_COLUMNS` and :data:`SUPPORT_COLUMNS` first (the support columns added as
    ``<NA>`` when absent), then the other columns in their order; dtypes as in the module
    docstring.

    Raises
    ------
    EstimationError
        A column of :data:`TIDY_COLUMNS` is missing (a defect of the result class).
    """
    missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
    if missing:
        raise EstimationError(f"{what}.tidy(): column(s) {missing} missing")
    out = frame.reset_index(drop=True).copy()
    for col in SUPPORT_COLUMNS:
        if col not in out:
            out[col] = pd.NA
    out["term"] = out["term"].astype(object).where(out["term"].notna(), "").astype(str)
    for col in TIDY_COLUMNS[1:]:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in COUNT_COLUMNS:
        if col in out:
            values = pd.to_numeric(out[col], errors="coerce").astype("float64")
            out[col] = np.floor(values).astype("Int64")
    first = [*TIDY_COLUMNS, *SUPPORT_COLUMNS]
    return out[first + [c for c in out.columns if c not in first]]


def persons_column(frame: pd.DataFrame, persons: str | None, *, what: str) -> np.ndarray | None:
    """The non-negative person counts of ``frame[persons]`` as floats (missing: 0), or None.

    Raises
    ------
    EstimationError
        The column is absent, not numeric or negative somewhere.
    """
    if persons is None:
        return None
    if persons not in frame.columns:
        raise EstimationError(f"{what}: persons column {persons!r} not in the data")
    values = pd.to_numeric(frame[persons], errors="coerce")
    if frame[persons].notna().sum() != values.notna().sum():
        raise EstimationError(f"{what}: persons column {persons!r} must be numeric")
    out = values.fillna(0.0).to_numpy(dtype=float)
    if (out < 0).any():
        raise EstimationError(f"{what}: persons column {persons!r} has negative counts")
    return out


class SupportCounter:
    """Units and persons behind sets of unit-periods of one estimation sample.

    Parameters
    ----------
    unit, time
        Integer codes (``0 .. n-1``, ``0 .. T-1``) of the unit and the period of each row.
    persons
        Persons per row (from :func:`persons_column`), or None when not known.
    """

    def __init__(self, unit: np.ndarray, time: np.ndarray, persons: np.ndarray | None) -> None:
        self.unit = np.asarray(unit, dtype=np.int64)
        self.time = np.asarray(time, dtype=np.int64)
        self.persons = None if persons is None else np.asarray(persons, dtype=float)
        self.n_time = int(self.time.max()) + 1 if self.time.size else 0

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, unit: str, time: str,
                   persons: np.ndarray | None) -> SupportCounter:
        """A counter over the rows of ``frame`` (codes from its unit and time columns)."""
        return cls(pd.factorize(frame[unit], sort=True)[0],
                   pd.factorize(frame[time], sort=True)[0], persons)

    def units(self, rows: np.ndarray) -> int:
        """Distinct units among the rows selected by the boolean mask ``rows``."""
        return int(np.unique(self.unit[rows]).size)

    def people(self, rows: np.ndarray) -> float:
        """Most persons in one period among the selected rows (NaN when persons are unknown)."""
        if self.persons is None:
            return float("nan")
        if not rows.any():
            return 0.0
        return float(np.bincount(self.time[rows], self.persons[rows],
                                 minlength=self.n_time).max())

    def count(self, rows: np.ndarray) -> tuple[int, float]:
        """``(n_units, n_persons)`` of the selected rows."""
        return self.units(rows), self.people(rows)

    def sides(self, treated: np.ndarray, control: np.ndarray) -> dict[str, float]:
        """The support columns of a row comparing ``treated`` with ``control`` rows."""
        both = treated | control
        return {"n_units": self.units(both), "n_persons": self.people(both),
                "n_units_treated": self.units(treated), "n_units_control": self.units(control),
                "n_persons_treated": self.people(treated),
                "n_persons_control": self.people(control)}


def wide_sides(treated: np.ndarray, control: np.ndarray, persons: np.ndarray | None
               ) -> dict[str, float]:
    """:meth:`SupportCounter.sides` for unit x period masks (``persons``: unit x period)."""

    def people(mask: np.ndarray) -> float:
        if persons is None:
            return float("nan")
        return float((persons * mask).sum(axis=0).max()) if mask.size else 0.0

    both = treated | control
    return {"n_units": int(both.any(axis=1).sum()), "n_persons": people(both),
            "n_units_treated": int(treated.any(axis=1).sum()),
            "n_units_control": int(control.any(axis=1).sum()),
            "n_persons_treated": people(treated), "n_persons_control": people(control)}


@dataclass(frozen=True)
class Summary:
    """The summary of a result: ``title``, the rows as a DataFrame (``frame``) and ``notes``.

    ``str(summary)`` is the console text (title, notes, the rows at four significant digits);
    in a notebook the summary renders as an HTML table. ``text``, when given, replaces the
    default rendering of the rows in ``str()`` (e.g. the R-like tables of ``att_gt``).
    """

    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()
    text: str | None = None

    def __str__(self) -> str:
        body = self.text if self.text is not None else (
            self.frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")
            if len(self.frame.columns) else "(no rows)")
        return "\n".join([self.title, *self.notes, body])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        notes = "".join(f"<br>{html.escape(n)}" for n in self.notes)
        table = self.frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        return f"<p><b>{html.escape(self.title)}</b>{notes}</p>{table}"


def new_axes(ax: Axes | None = None, *, figsize: tuple[float, float] = (6.0, 3.5)
             ) -> tuple[Figure, Axes]:
    """``(figure, axes)``: those of ``ax``, or a new figure made without pyplot's global state."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot(1, 1, 1)


def draw_intervals(ax: Axes, x: Any, estimate: Any, lower: Any, upper: Any, *, label: str = "",
                   horizontal: bool = False, **style: Any) -> None:
    """Estimates as points with interval bars (missing bounds: no bar)."""
    est = np.asarray(estimate, dtype=float)
    err = np.vstack([est - np.asarray(lower, dtype=float), np.asarray(upper, dtype=float) - est])
    err = np.where(np.isfinite(err), err, 0.0)
    kw = {"fmt": "o", "capsize": 3, **style}
    if horizontal:
        ax.errorbar(est, x, xerr=err, label=label or None, **kw)
    else:
        ax.errorbar(x, est, yerr=err, label=label or None, **kw)


class Result:
    """Base of every result class: ``tidy()``, ``summary()`` and ``plot(ax=None)`` in one place.

    A subclass provides ``_tidy()`` (its rows with at least :data:`TIDY_COLUMNS`),
    ``_summary_title()``, optionally ``_summary_notes()`` and ``_summary_columns`` (the columns
    of ``tidy()`` shown in the summary after the core ones) and ``_draw(ax)``.
    """

    _summary_columns: Sequence[str] = ()
    _figsize: tuple[float, float] = (6.0, 3.5)

    def _tidy(self) -> pd.DataFrame:
        raise NotImplementedError

    def tidy(self) -> pd.DataFrame:
        """The result's rows: ``term, estimate, se, lower, upper, n_units, n_persons``, then the
        estimator's own columns (see :mod:`impact.results`)."""
        return conform(self._tidy(), what=type(self).__name__)

    def _summary_title(self) -> str:
        return type(self).__name__

    def _summary_notes(self) -> tuple[str, ...]:
        return ()

    def _summary_text(self) -> str | None:
        return None

    def summary(self) -> Summary:
        """A :class:`Summary`: title, the rows of ``tidy()`` (core and key columns), notes."""
        tidy = self.tidy()
        cols = [*TIDY_COLUMNS, *[c for c in self._summary_columns if c in tidy],
                *SUPPORT_COLUMNS]
        return Summary(title=self._summary_title(), frame=tidy[list(dict.fromkeys(cols))],
                       notes=tuple(self._summary_notes()), text=self._summary_text())

    def _draw(self, ax: Axes) -> None:
        raise NotImplementedError

    def plot(self, ax: Axes | None = None) -> Figure:
        """Estimates and intervals of ``tidy()``'s rows; draws into ``ax`` when given (else a
        new figure) and returns the matplotlib Figure."""
        fig, axes = new_axes(ax, figsize=self._figsize)
        self._draw(axes)
        if ax is None:
            fig.tight_layout()
        return fig
