"""Disclosure control of every released aggregate (Statistics Denmark's output rules).

The checks never need the microdata again: each released cell carries its evidence, recorded when
the aggregate is built (:func:`cell_evidence`): persons, departments, the sum and the two largest
contributions, and for a share the numerator count.

Rules (thresholds in :class:`impact.config.DisclosureConfig`):

- **threshold**: a cell from 1 to ``min_n - 1`` persons is suppressed (an empty cell discloses no one
  and is released);
- **nk-rule** (magnitudes: income sums and means): the ``dominance_n`` largest contributions may hold
  at most ``dominance_k`` of the cell's total;
- **share**: for a share, both the numerator and the complement count must reach ``min_n``;
- **secondary suppression** (:func:`protect_table`): wherever margins are released, more cells are
  suppressed until an LP audit of the attacker's bounds (:func:`audit`) shows every primary cell's
  feasible interval at least its protection width: a count's interval at least ``min_n`` wide, a
  magnitude's reaching ``protection`` times its value to either side. When no pattern protects a cell,
  :class:`impact.errors.DisclosureError` says which categories to merge; :func:`protect_cells`
  does the same for cells released across linked tables (totals in margin rows or in another
  table, a count shown twice: any system of additive relations, :class:`CellSystem`);
- **identifiers and order statistics** (:func:`check_columns`): no person, household, dwelling or
  department identifier, no CPR-like value, no min, max or quantile column in a released file;
- **models** (:func:`check_model_rows`): an estimate is released only with residual degrees of
  freedom >= ``min_residual_df`` and, for event-time coefficients, at least ``min_departments``
  departments and ``min_n`` persons on each side.

:class:`DisclosureLog` collects the outcome of every check and writes ``disclosure_log.csv`` and a JSON
report laid out as ACRO's ``results.json`` (per output: ``status`` pass / review / fail, ``sdc`` with
a ``summary`` of counts per rule and the ``cells`` positions per rule, an ``outcome`` mask of reasons
per cell, and ``comments``), which output checkers know. The log never holds the value or the person
count of a suppressed cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from impact.errors import DisclosureError
from impact.workflow.config import DisclosureConfig

__all__ = [
    "EVIDENCE_COLUMNS",
    "AuditResult",
    "CellEvidence",
    "CellProtection",
    "CellSystem",
    "DisclosureLog",
    "LinkedProtection",
    "ProtectedTable",
    "audit",
    "cell_evidence",
    "check_columns",
    "check_model_rows",
    "evidence_frame",
    "margin_equations",
    "primary_suppression",
    "protect_cells",
    "protect_linked",
    "protect_table",
]

#: Columns of an evidence table (besides the cell's key columns).
EVIDENCE_COLUMNS = ("n_persons", "n_departments", "total", "largest_1", "largest_2", "numerator")

@dataclass(frozen=True)
class CellEvidence:
    """What a released cell rests on, recorded when the aggregate is built.

    Attributes
    ----------
    n_persons
        Persons contributing to the cell.
    n_departments
        Departments contributing (None where not known).
    total
        Sum of the contributions (magnitudes; None for counts).
    largest_1, largest_2
        The two largest absolute contributions (magnitudes).
    numerator
        Persons with the attribute (shares); the complement is ``n_persons - numerator``.
    """

    n_persons: int
    n_departments: int | None = None
    total: float | None = None
    largest_1: float = 0.0
    largest_2: float = 0.0
    numerator: int | None = None


def evidence_frame(cells: Sequence[CellEvidence]) -> pd.DataFrame:
    """Evidence records as an evidence table (:data:`EVIDENCE_COLUMNS`, None as NaN)."""
    return pd.DataFrame([{c: getattr(e, c) for c in EVIDENCE_COLUMNS} for e in cells],
                        columns=list(EVIDENCE_COLUMNS), dtype=float)


def cell_evidence(micro: pd.DataFrame, by: Sequence[str], *, value: str | None = None,
                  indicator: str | None = None, person: str = "person_id",
                  department: str | None = "department_id") -> pd.DataFrame:
    """Per-cell evidence of an aggregate from the microdata it is built from.

    Parameters
    ----------
    micro
        One row per contribution (e.g. person-year), with ``person`` and the ``by`` columns.
    by
        The cell's key columns.
    value
        A magnitude (e.g. income): adds ``total`` and the two largest per-person contributions
        (a person's rows are summed first, so one person never counts twice).
    indicator
        A 0/1 column of a share: adds ``numerator`` (persons with the attribute).
    person, department
        Identifier columns (department None = not recorded).

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns and :data:`EVIDENCE_COLUMNS` (missing ones as NaN), one row per cell.
    """
    by = list(by)
    missing = [c for c in [*by, person, value, indicator, department] if c and c not in micro]
    if missing:
        raise DisclosureError(f"cell_evidence: column(s) {', '.join(missing)} not in the data")
    g = micro.groupby(by, sort=True, observed=True, dropna=False)
    out = g[person].nunique().rename("n_persons").to_frame()
    out["n_departments"] = g[department].nunique() if department else np.nan
    out["total"] = np.nan
    out["largest_1"] = 0.0
    out["largest_2"] = 0.0
    if value is not None:
        per_person = micro.groupby([*by, person], sort=True, observed=True, dropna=False)[value].sum()
        out["total"] = per_person.groupby(level=by, sort=True, dropna=False).sum()
        ranked = per_person.abs().rename("_v").reset_index()
        ranked = ranked.sort_values([*by, "_v"], ascending=[True] * len(by) + [False],
                                    kind="mergesort")
        ranked["_rank"] = ranked.groupby(by, sort=False, dropna=False).cumcount()
        for k in (0, 1):
            top = ranked[ranked["_rank"] == k].set_index(by)["_v"]
            out[f"largest_{k + 1}"] = top.reindex(out.index).fillna(0.0).to_numpy()
    out["numerator"] = np.nan
    if indicator is not None:
        flagged = micro[micro[indicator].astype(bool)]
        num = flagged.groupby(by, sort=True, observed=True, dropna=False)[person].nunique()
        out["numerator"] = num.reindex(out.index).fillna(0).astype(float)
    return out.reset_index()


def primary_suppression(evidence: pd.DataFrame, kind: str, rules: DisclosureConfig
                        ) -> pd.DataFrame:
    """The primary rules per cell.

    Parameters
    ----------
    evidence
        :data:`EVIDENCE_COLUMNS` per cell (see :func:`cell_evidence`).
    kind
        ``"count"``, ``"magnitude"`` (sums and means) or ``"share"``.
    rules
        Thresholds.

    Returns
    -------
    pandas.DataFrame
        Boolean columns ``threshold``, ``nk-rule``, ``share`` (True = the cell breaks the rule) and
        ``suppress`` (any), aligned with ``evidence``.
    """
    if kind not in ("count", "magnitude", "share"):
        raise DisclosureError(f"kind must be 'count', 'magnitude' or 'share', got {kind!r}")
    n = evidence["n_persons"].to_numpy(dtype=float)
    out = pd.DataFrame(index=evidence.index)
    out["threshold"] = (n > 0) & (n < rules.min_n)
    out["nk-rule"] = False
    out["share"] = False
    if kind == "magnitude":
        total = evidence["total"].abs().to_numpy(dtype=float)
        top = evidence["largest_1"].to_numpy(dtype=float)
        if rules.dominance_n >= 2:
            top = top + evidence["largest_2"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            dominated = np.where(total > 0, top / total > rules.dominance_k, top > 0)
        out["nk-rule"] = dominated & (n > 0)
    if kind == "share":
        num = evidence["numerator"].to_numpy(dtype=float)
        out["share"] = (n > 0) & ((num < rules.min_n) | (n - num < rules.min_n))
    out["suppress"] = out[["threshold", "nk-rule", "share"]].any(axis=1)
    return out


# --- the attacker's bounds ------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditResult:
    """Bounds an attacker can derive for each suppressed cell from the published cells.

    ``cells`` holds one row per suppressed cell: ``cell`` (flat index), ``value``, ``lower``,
    ``upper``, ``required_lower`` and ``required_upper`` (what protection asks for), ``safe``.
    """

    cells: pd.DataFrame

    @property
    def safe(self) -> bool:
        """Whether every audited cell is protected."""
        return bool(self.cells["safe"].all()) if len(self.cells) else True


def margin_equations(n_rows: int, n_cols: int) -> list[tuple[list[int], int]]:
    """Additivity of a table with margins, on its flat (row-major) extended grid.

    The grid has ``n_rows + 1`` rows and ``n_cols + 1`` columns, the last row and column being the
    totals. Each equation ``(parts, total)`` says ``sum(x[parts]) == x[total]``.
    """
    width = n_cols + 1
    eqs: list[tuple[list[int], int]] = []
    for i in range(n_rows + 1):
        eqs.append(([i * width + j for j in range(n_cols)], i * width + n_cols))
    for j in range(n_cols + 1):
        eqs.append(([i * width + j for i in range(n_rows)], n_rows * width + j))
    return eqs


def audit(values: np.ndarray, suppressed: np.ndarray, equations: Sequence[tuple[list[int], int]],
          *, required: np.ndarray | None = None, kinds: np.ndarray | None = None,
          rules: DisclosureConfig | None = None, cells: Iterable[int] | None = None
          ) -> AuditResult:
    """LP audit: each suppressed cell's min and max given the published cells and the equations.

    Parameters
    ----------
    values
        Flat array of all cell values (the truth; only the published ones constrain the attacker).
    suppressed
        Flat boolean mask of suppressed cells.
    equations
        Linear relations ``sum(x[parts]) == x[total]`` that are public (margins, linked totals).
    required
        Flat boolean mask of cells that need protection (the primary cells); default all suppressed.
    kinds
        Flat array of ``"count"`` / ``"magnitude"`` per cell (default all counts): sets the
        protection width (a count's interval at least ``min_n`` wide; a magnitude's interval reaching
        ``protection * |value|`` below and above the value).
    rules
        Thresholds (default :class:`~impact.config.DisclosureConfig`).
    cells
        Audit only these flat indices (default all cells in ``required``).

    Returns
    -------
    AuditResult
        Cells are non-negative (counts, sums of non-negative contributions).
    """
    rules = rules or DisclosureConfig()
    values = np.asarray(values, dtype=float)
    suppressed = np.asarray(suppressed, dtype=bool)
    required = suppressed if required is None else np.asarray(required, dtype=bool) & suppressed
    kinds = np.full(values.size, "count", dtype=object) if kinds is None else np.asarray(kinds)
    hidden = np.flatnonzero(suppressed)
    pos = {c: k for k, c in enumerate(hidden)}
    rows, rhs = [], []
    for parts, total in equations:
        coef = np.zeros(hidden.size)
        known = 0.0
        for c, sign in [*((p, 1.0) for p in parts), (total, -1.0)]:
            if suppressed[c]:
                coef[pos[c]] += sign
            else:
                known += sign * values[c]
        if coef.any():
            rows.append(coef)
            rhs.append(-known)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rows else None
    targets = [c for c in (hidden if cells is None else cells) if required[c]]
    return _audit_intervals(values, targets, pos, a_eq, b_eq, kinds, rules)


def _audit_intervals(values: np.ndarray, targets: Iterable[int], pos: dict[int, int],
                     a_eq: Any, b_eq: Any, kinds: np.ndarray, rules: DisclosureConfig
                     ) -> AuditResult:
    """The attacker's interval of each target cell: min and max of its hidden value subject to
    ``a_eq @ x == b_eq``, ``x >= 0`` over the hidden values (positions ``pos``; ``a_eq`` None: no
    relation binds them), and whether it is at least the protection width."""
    out = []
    for c in targets:
        bounds = []
        for sense in (1.0, -1.0):
            if a_eq is None:
                bounds.append(0.0 if sense > 0 else np.inf)
                continue
            obj = np.zeros(len(pos))
            obj[pos[c]] = sense
            res = linprog(obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
            if res.status == 3:  # unbounded
                bounds.append(np.inf if sense < 0 else 0.0)
            elif res.status != 0:
                raise DisclosureError(f"audit: the LP for cell {c} failed ({res.message})")
            else:
                bounds.append(sense * res.fun)
        lower, upper = bounds
        x = values[c]
        if kinds[c] == "magnitude":
            req_lo, req_hi = x - rules.protection * abs(x), x + rules.protection * abs(x)
            safe = lower <= req_lo + 1e-9 and upper >= req_hi - 1e-9
        else:
            req_lo, req_hi = np.nan, np.nan
            safe = upper - lower >= rules.min_n - 1e-9
        out.append({"cell": int(c), "value": x, "lower": lower, "upper": upper,
                    "required_lower": req_lo, "required_upper": req_hi,
                    "width": upper - lower, "safe": bool(safe)})
    cols = ["cell", "value", "lower", "upper", "required_lower", "required_upper", "width", "safe"]
    return AuditResult(pd.DataFrame(out, columns=cols))


# --- tables with margins --------------------------------------------------------------------------

@dataclass(frozen=True)
class ProtectedTable:
    """A two-way table with margins after primary and secondary suppression.

    Attributes
    ----------
    values
        The extended table (margins in the row and column named ``total``), suppressed cells NaN.
    status
        Same shape: ``"ok"`` or the rules that suppressed the cell (``"threshold; "``,
        ``"nk-rule; "``, ``"share; "``, ``"secondary; "``), as ACRO's outcome mask.
    audit
        The LP audit of the final pattern (one row per primary cell, ``row``/``column`` labels added).
        It holds the true values and stays private.
    """

    values: pd.DataFrame
    status: pd.DataFrame
    audit: pd.DataFrame

    @property
    def n_primary(self) -> int:
        """Cells suppressed by a primary rule."""
        return int((~self.status.isin(["ok", "secondary; "])).to_numpy().sum())

    @property
    def n_secondary(self) -> int:
        """Cells suppressed to protect the primary ones."""
        return int((self.status == "secondary; ").to_numpy().sum())


def protect_table(values: pd.DataFrame, evidence: dict[str, pd.DataFrame], kind: str,
                  rules: DisclosureConfig, *, total_label: str = "total",
                  fixed_margins: bool = False, max_rounds: int = 50) -> ProtectedTable:
    """Primary and secondary suppression of a two-way table released with its margins.

    Parameters
    ----------
    values
        The interior cells (rows x columns) of an additive table: counts or sums.
    evidence
        Evidence per cell of the extended table (interior and margins): a frame per evidence column
        (``"n_persons"`` required; ``"total"``, ``"largest_1"``, ``"largest_2"``, ``"numerator"``
        as the kind needs), each indexed like ``values`` plus the ``total_label`` row and column;
        see :func:`table_evidence`.
    kind
        ``"count"`` or ``"magnitude"`` (a sum).
    rules
        Thresholds.
    total_label
        Label of the margins.
    fixed_margins
        The margins are released elsewhere (a linked table) and may not be suppressed here.
    max_rounds
        Most patterns added for one cell before giving up.

    Returns
    -------
    ProtectedTable

    Raises
    ------
    DisclosureError
        No suppression pattern protects some primary cell; the message names the categories to merge.
    """
    if kind not in ("count", "magnitude"):
        raise DisclosureError("protect_table: margins add up only for counts and sums "
                              f"(kind 'count' or 'magnitude'), got {kind!r}")
    interior = values.astype(float)
    if interior.isna().any().any() or (interior.to_numpy() < 0).any():
        raise DisclosureError("protect_table: cells must be non-negative numbers")
    ext = interior.copy()
    ext[total_label] = interior.sum(axis=1)
    ext.loc[total_label] = ext.sum(axis=0)
    n_rows, n_cols = interior.shape
    flat = ext.to_numpy().ravel()
    shape = ext.shape

    ev = _flat_evidence(evidence, ext)
    prim = primary_suppression(ev, kind, rules)
    reasons = np.array([""] * flat.size, dtype=object)
    for rule in ("threshold", "nk-rule", "share"):
        hit = prim[rule].to_numpy()
        reasons[hit] = reasons[hit] + f"{rule}; "
    primary = prim["suppress"].to_numpy()
    suppressed = primary.copy()
    fixed = np.zeros(flat.size, dtype=bool)
    if fixed_margins:
        fixed.reshape(ext.shape)[-1, :] = True
        fixed.reshape(ext.shape)[:, -1] = True
        if (primary & fixed).any():
            bad = [f"{ext.index[c // ext.shape[1]]!r}/{ext.columns[c % ext.shape[1]]!r}"
                   for c in np.flatnonzero(primary & fixed)]
            raise DisclosureError(f"protect_table: margin cell(s) {', '.join(bad)} break a primary "
                                  "rule but are released elsewhere (fixed_margins); merge categories")
    kinds = np.full(flat.size, kind, dtype=object)
    eqs = margin_equations(n_rows, n_cols)
    labels_r, labels_c = list(ext.index), list(ext.columns)

    def check(mask: np.ndarray, cells: Iterable[int] | None = None) -> AuditResult:
        return audit(flat, mask, eqs, required=primary, kinds=kinds, rules=rules, cells=cells)

    for _ in range(max_rounds * max(1, int(primary.sum()))):
        result = check(suppressed)
        unsafe = result.cells[~result.cells["safe"]]
        if unsafe.empty:
            break
        c = int(unsafe["cell"].iloc[0])
        best = _best_rectangle(c, shape, flat, suppressed, check, fixed)
        if best is None:
            r, k = divmod(c, shape[1])
            raise DisclosureError(_merge_advice(ext, r, k, total_label))
        suppressed[list(best)] = True
    else:  # pragma: no cover - bounded by max_rounds
        raise DisclosureError("protect_table: no safe pattern within max_rounds")

    final = check(suppressed).cells
    final.insert(1, "row", [labels_r[c // shape[1]] for c in final["cell"]])
    final.insert(2, "column", [labels_c[c % shape[1]] for c in final["cell"]])
    reasons[suppressed & ~primary] = "secondary; "
    reasons[reasons == ""] = "ok"
    released = np.where(suppressed, np.nan, flat).reshape(shape)
    return ProtectedTable(
        values=pd.DataFrame(released, index=ext.index, columns=ext.columns),
        status=pd.DataFrame(reasons.reshape(shape), index=ext.index, columns=ext.columns),
        audit=final,
    )


# --- tables tied by linear relations (totals rows, chains of counts) -----------------------------

@dataclass(frozen=True)
class LinkedProtection:
    """The cells of a table tied by public linear relations after primary and secondary suppression.

    Attributes
    ----------
    suppressed
        Per cell (in the order given to :func:`protect_linked`): blanked in the released table.
    reasons
        Per cell: ``"ok"`` or the rules that suppressed it (``"threshold; "``, ``"nk-rule; "``,
        ``"share; "``, ``"secondary; "``), as ACRO's outcome mask.
    audit
        The LP audit of the final pattern (one row per primary cell, ``label`` added). It holds the
        true values and stays private.
    """

    suppressed: np.ndarray
    reasons: np.ndarray
    audit: pd.DataFrame

    @property
    def n_primary(self) -> int:
        """Cells suppressed by a primary rule."""
        return int(np.isin(self.reasons, ["ok", "secondary; "], invert=True).sum())

    @property
    def n_secondary(self) -> int:
        """Cells suppressed to protect the primary ones."""
        return int((self.reasons == "secondary; ").sum())


def protect_linked(values: Sequence[float] | np.ndarray, evidence: pd.DataFrame,
                   kinds: Sequence[str], equations: Sequence[tuple[Sequence[int], int]],
                   rules: DisclosureConfig, *, links: Sequence[Sequence[int]] = (),
                   fixed: np.ndarray | None = None, labels: Sequence[str] | None = None,
                   max_rounds: int = 50) -> LinkedProtection:
    """Primary and secondary suppression of cells tied by public linear relations.

    :func:`protect_table` covers the two-way table with its margins; this covers any released cells
    an attacker can combine linearly: a column of group values with its total row, an attrition
    chain (rows in = rows removed + rows out, the next filter's rows in = this one's rows out), the
    numerators behind shares whose bases are released. Secondary cells are added greedily (one, or
    failing that two, of the cells that share a relation with a suppressed cell, the cheapest that
    protects, else the one that widens the attacker's interval most) until the LP audit
    (:func:`audit`) shows every primary cell protected; the audit is always run on the final pattern.

    Parameters
    ----------
    values
        Per cell, the additive quantity the relations hold for (a count, a share's numerator
        count, a magnitude's sum); non-negative.
    evidence
        :data:`EVIDENCE_COLUMNS` per cell, aligned with ``values``.
    kinds
        Per cell ``"count"``, ``"magnitude"`` or ``"share"`` (its primary rules; the audit protects a
        share's numerator, and so its complement, like a count).
    equations
        Public relations ``sum(values[parts]) == values[total]`` over cell positions.
    rules
        Thresholds.
    links
        Groups of cells that show one quantity twice (e.g. a filter's rows out and the next one's
        rows in): suppressed together, and tied by equality in the audit.
    fixed
        Per cell: released elsewhere, never suppressed here (default none).
    labels
        Per cell, a name for messages (default its position).
    max_rounds
        Most additions per primary cell before giving up.

    Returns
    -------
    LinkedProtection

    Raises
    ------
    DisclosureError
        Bad input, a fixed cell breaks a primary rule, or no pattern protects some primary cell
        (the message names it and says to merge categories or release fewer totals).
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    kinds_arr = np.asarray(list(kinds), dtype=object)
    labels = [str(i) for i in range(n)] if labels is None else [str(x) for x in labels]
    if len(evidence) != n or kinds_arr.size != n or len(labels) != n:
        raise DisclosureError(f"protect_linked: {n} values, {len(evidence)} evidence rows, "
                              f"{kinds_arr.size} kinds and {len(labels)} labels; they must align")
    if np.isnan(values).any() or (values < 0).any():
        raise DisclosureError("protect_linked: values must be non-negative numbers")
    bad = sorted(set(kinds_arr) - {"count", "magnitude", "share"})
    if bad:
        raise DisclosureError(f"protect_linked: unknown kind(s) {bad}")
    for parts, total in equations:
        if any(not 0 <= int(c) < n for c in [*parts, total]):
            raise DisclosureError("protect_linked: an equation names a cell that does not exist")
    ev = evidence.reset_index(drop=True)
    reasons = np.array([""] * n, dtype=object)
    primary = np.zeros(n, dtype=bool)
    for kind in sorted(set(kinds_arr)):
        idx = np.flatnonzero(kinds_arr == kind)
        prim = primary_suppression(ev.iloc[idx].reset_index(drop=True), kind, rules)
        for rule in ("threshold", "nk-rule", "share"):
            hit = idx[prim[rule].to_numpy()]
            reasons[hit] = reasons[hit] + f"{rule}; "
        primary[idx] = prim["suppress"].to_numpy()
    groups = [sorted({int(c) for c in g}) for g in links if len(g) > 1]
    klass = {c: [c] for c in range(n)}
    for g in groups:
        members = sorted({m for c in g for m in klass[c]})
        for m in members:
            klass[m] = members
    for members in {tuple(v) for v in klass.values() if len(v) > 1}:
        hit = [m for m in members if primary[m]]
        if hit:  # one quantity shown twice: suppressed wherever it is shown
            for m in members:
                if not primary[m]:
                    primary[m], reasons[m] = True, reasons[hit[0]]
    fixed = np.zeros(n, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    if (primary & fixed).any():
        names = ", ".join(labels[c] for c in np.flatnonzero(primary & fixed))
        raise DisclosureError(f"protect_linked: cell(s) {names} break a primary rule but are "
                              "released elsewhere (fixed); merge categories")
    eqs = [([int(p) for p in parts], int(total)) for parts, total in equations]
    eqs += [([a], b) for g in groups for a, b in pairwise(g)]
    audit_kinds = np.where(kinds_arr == "magnitude", "magnitude", "count")

    def check(mask: np.ndarray, cells: Iterable[int] | None = None) -> AuditResult:
        return audit(values, mask, eqs, required=primary, kinds=audit_kinds, rules=rules,
                     cells=cells)

    suppressed = primary.copy()
    for _ in range(max_rounds * max(1, int(primary.sum()))):
        unsafe = check(suppressed).cells
        unsafe = unsafe[~unsafe["safe"]]
        if unsafe.empty:
            break
        c = int(unsafe["cell"].iloc[0])
        add = _best_addition(c, values, suppressed, eqs, klass, fixed, check)
        if add is None:
            raise DisclosureError(
                f"no suppression pattern protects {labels[c]} against recovery from the "
                "released totals and linked cells; merge it with a neighbouring category or "
                "release fewer totals, and rebuild the table")
        suppressed[list(add)] = True
    else:  # pragma: no cover - bounded by max_rounds
        raise DisclosureError("protect_linked: no safe pattern within max_rounds")
    reasons[suppressed & ~primary] = "secondary; "
    reasons[reasons == ""] = "ok"
    final = check(suppressed).cells
    final.insert(1, "label", [labels[c] for c in final["cell"]])
    return LinkedProtection(suppressed=suppressed, reasons=reasons, audit=final)


def _best_addition(c: int, values: np.ndarray, suppressed: np.ndarray,
                   eqs: Sequence[tuple[list[int], int]], klass: dict[int, list[int]],
                   fixed: np.ndarray, check: Any) -> tuple[int, ...] | None:
    """Cells to suppress next for cell ``c``: the cheapest one or two candidates (cells sharing a
    relation with a suppressed cell, with the cells showing the same quantity) that protect it, or
    failing that the ones that widen its interval most; None when nothing widens it."""

    def frontier(mask: np.ndarray) -> list[int]:
        out: set[int] = set()
        for parts, total in eqs:
            cells = [*parts, total]
            if any(mask[x] for x in cells):
                out.update(x for x in cells if not mask[x] and not fixed[x])
        return sorted(out)

    def expand(mask: np.ndarray, cells: Iterable[int]) -> tuple[int, ...] | None:
        new = sorted({m for x in cells for m in klass[x] if not mask[m]})
        return None if any(fixed[m] for m in new) or not new else tuple(new)

    def cost(cells: tuple[int, ...]) -> tuple[float, int, tuple[int, ...]]:
        return float(values[list(cells)].sum()), len(cells), cells

    def width(cells: tuple[int, ...]) -> tuple[bool, float]:
        mask = suppressed.copy()
        mask[list(cells)] = True
        row = check(mask, [c]).cells.iloc[0]
        return bool(row["safe"]), float(row["width"])

    current = float(check(suppressed, [c]).cells["width"].iloc[0])
    tried: dict[tuple[int, ...], float] = {}
    singles = sorted({s for a in frontier(suppressed) if (s := expand(suppressed, [a]))}, key=cost)
    for s in singles:
        safe, w = width(s)
        if safe:
            return s
        tried[s] = w
    pairs: set[tuple[int, ...]] = set()
    for s in singles:
        mask = suppressed.copy()
        mask[list(s)] = True
        for b in frontier(mask):
            t = expand(suppressed, [*s, b])
            if t is not None and t not in tried:
                pairs.add(t)
    for t in sorted(pairs, key=cost):
        safe, w = width(t)
        if safe:
            return t
        tried[t] = w
    gains = [(-(w - current), cost(t), t) for t, w in tried.items() if w - current > 1e-9]
    return min(gains)[2] if gains else None


def table_evidence(micro: pd.DataFrame, row: str, column: str, *, value: str | None = None,
                   person: str = "person_id", department: str | None = "department_id",
                   total_label: str = "total") -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """A two-way table (counts of persons, or sums of ``value``) with its evidence, margins included.

    Returns
    -------
    values, evidence
        ``values``: the interior cells (rows x columns); ``evidence``: a frame per evidence column,
        indexed like the extended table (margins labelled ``total_label``), for
        :func:`protect_table`.
    """
    cells = cell_evidence(micro, [row, column], value=value, person=person, department=department)
    rows_ev = cell_evidence(micro, [row], value=value, person=person, department=department)
    cols_ev = cell_evidence(micro, [column], value=value, person=person, department=department)
    all_ev = cell_evidence(micro.assign(_all=total_label), ["_all"], value=value, person=person,
                           department=department)
    measure = "total" if value is not None else "n_persons"
    values = cells.pivot(index=row, columns=column, values=measure).fillna(0.0)
    evidence: dict[str, pd.DataFrame] = {}
    for col in ("n_persons", "n_departments", "total", "largest_1", "largest_2"):
        grid = cells.pivot(index=row, columns=column, values=col).reindex_like(values)
        grid = grid.fillna(0.0)
        grid[total_label] = rows_ev.set_index(row)[col].reindex(values.index).to_numpy()
        grid.loc[total_label] = [*cols_ev.set_index(column)[col].reindex(values.columns),
                                 all_ev[col].iloc[0]]
        evidence[col] = grid
    return values, evidence


def _flat_evidence(evidence: dict[str, pd.DataFrame], ext: pd.DataFrame) -> pd.DataFrame:
    """Evidence frames of the extended grid as one row per flat cell."""
    if "n_persons" not in evidence:
        raise DisclosureError("protect_table: evidence needs 'n_persons'")
    out = {}
    for col in EVIDENCE_COLUMNS:
        if col in evidence:
            grid = evidence[col].reindex(index=ext.index, columns=ext.columns)
            if col == "n_persons" and grid.isna().any().any():
                raise DisclosureError("protect_table: evidence 'n_persons' misses cells of the table")
            out[col] = grid.to_numpy(dtype=float).ravel()
        else:
            out[col] = np.zeros(ext.size) if col.startswith("largest") else np.full(ext.size, np.nan)
    return pd.DataFrame(out)


def _best_rectangle(c: int, shape: tuple[int, int], flat: np.ndarray, suppressed: np.ndarray,
                    check: Any, fixed: np.ndarray) -> tuple[int, ...] | None:
    """The cheapest rectangle through cell ``c`` that protects it (or, failing that, widens it most).

    Candidates are the rectangles with ``c`` as one corner on the extended grid (margins included,
    unless ``fixed``); cost is the total value of the newly suppressed cells (information lost), ties
    broken by position.
    """
    n_r, n_c = shape
    r, k = divmod(c, n_c)
    candidates = []
    for r2 in range(n_r):
        for k2 in range(n_c):
            if r2 == r or k2 == k:
                continue
            corners = (r * n_c + k2, r2 * n_c + k, r2 * n_c + k2)
            if any(fixed[x] for x in corners):
                continue
            new = tuple(x for x in corners if not suppressed[x])
            if new:
                candidates.append(((float(flat[list(new)].sum()), len(new), r2, k2), new))
    candidates.sort()
    widths = []
    for _, new in candidates:  # cheapest first: the first safe one is the answer
        mask = suppressed.copy()
        mask[list(new)] = True
        row = check(mask, [c]).cells.iloc[0]
        if row["safe"]:
            return new
        widths.append(row["width"])
    current = check(suppressed, [c]).cells["width"].iloc[0]
    gains = [(-(w - current), cost, new) for w, (cost, new) in zip(widths, candidates, strict=True)
             if w - current > 1e-9]
    return min(gains)[2] if gains else None


def _merge_advice(ext: pd.DataFrame, r: int, k: int, total_label: str) -> str:
    """Which categories to merge so that cell (r, k) of the extended table can be protected."""
    rows = [x for x in ext.index if x != total_label]
    cols = [x for x in ext.columns if x != total_label]
    row_tot, col_tot = ext[total_label], ext.loc[total_label]

    def neighbour(labels: list, totals: pd.Series, label: Any) -> Any:
        others = [x for x in labels if x != label]
        return min(others, key=lambda x: (totals[x], str(x))) if others else None

    rl, cl = ext.index[r], ext.columns[k]
    advice = []
    if rl != total_label and (nb := neighbour(rows, row_tot, rl)) is not None:
        advice.append(f"row {rl!r} with row {nb!r}")
    if cl != total_label and (nb := neighbour(cols, col_tot, cl)) is not None:
        advice.append(f"column {cl!r} with column {nb!r}")
    what = " or ".join(advice) if advice else "rows or columns (the table is too small)"
    return (f"no suppression pattern protects cell ({rl!r}, {cl!r}) against recovery from the "
            f"margins; merge {what} and rebuild the table")


# --- cells of linked tables -----------------------------------------------------------------------

#: Roles of the additive quantities a released cell rests on.
ROLES = ("count", "numerator", "complement", "sum")


@dataclass(frozen=True)
class CellSystem:
    """Cells released across linked tables and the additive relations an attacker knows.

    A released cell (a *unit*: one row of a table, e.g. the in-movers of one year, market and
    letting channel with their share employed) rests on additive quantities (*variables*): its
    person count, and the numerator and complement of a share or the sum of a magnitude. Where
    totals of the cells are released too (as margin rows of the same table or in another table),
    each total is a unit of its own, and the relations ``sum(parts) == total`` are
    ``equations`` over the variables; so is a quantity shown by two units (two variables, one
    equation ``a == b``). Suppressing a unit hides all its variables.

    Attributes
    ----------
    units
        One row per unit: :data:`EVIDENCE_COLUMNS` (the rules' evidence, persons as distinct
        persons), ``kind`` (``"count"``, ``"share"`` or ``"magnitude"``) and ``label`` (names the
        cell in messages); optionally ``margin`` (bool: a total, suppressed as secondary only when
        no interior cell protects), ``fixed`` (bool: released elsewhere, never suppressed) and
        ``group`` (units with the same group are hidden together, e.g. two measures of the same
        persons that show their count).
    variables
        One row per additive quantity: ``unit`` (position in ``units``; -1 = never released,
        e.g. the slack of an inequality ``a <= b`` written as ``a + slack == b``), ``role`` (one
        of :data:`ROLES`) and ``value`` (what adds up, e.g. person-years).
    equations
        ``(parts, total)`` over positions in ``variables``: ``sum(value[parts]) == value[total]``.
    """

    units: pd.DataFrame
    variables: pd.DataFrame
    equations: tuple[tuple[tuple[int, ...], int], ...]


@dataclass(frozen=True)
class CellProtection:
    """The suppression pattern of a :class:`CellSystem`.

    Attributes
    ----------
    suppressed
        Per unit: hidden (primary or secondary).
    status
        Per unit: ``"ok"`` or the rules that hid it (``"threshold; "``, ``"nk-rule; "``,
        ``"share; "``, ``"secondary; "``).
    audit
        The LP audit of the final pattern: one row per protected variable (``unit``, ``label``,
        ``role``, ``value``, ``lower``, ``upper``, ``required_lower``, ``required_upper``,
        ``width``, ``safe``). It holds the true values and stays private.
    """

    suppressed: np.ndarray
    status: pd.Series
    audit: pd.DataFrame


def _system_arrays(system: CellSystem) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray,
                                                 np.ndarray, list[tuple[list[int], int]]]:
    """Validated units, variables, their owner and value arrays and the equations."""
    units = system.units.reset_index(drop=True)
    var = system.variables.reset_index(drop=True)
    for col in ("n_persons", "kind", "label"):
        if col not in units:
            raise DisclosureError(f"protect_cells: units need a {col!r} column")
    for col in ("unit", "role", "value"):
        if col not in var:
            raise DisclosureError(f"protect_cells: variables need a {col!r} column")
    unit_of = var["unit"].to_numpy(dtype=np.int64)
    if len(var) and (unit_of.min() < -1 or unit_of.max() >= len(units)):
        raise DisclosureError("protect_cells: a variable's unit is not a row of units")
    bad_roles = sorted(set(var["role"]) - set(ROLES))
    if bad_roles:
        raise DisclosureError(f"protect_cells: unknown role(s) {bad_roles}; one of {ROLES}")
    values = var["value"].to_numpy(dtype=float)
    if not np.isfinite(values).all() or (values < 0).any():
        raise DisclosureError("protect_cells: variables must be finite non-negative numbers")
    eqs = [(list(map(int, parts)), int(total)) for parts, total in system.equations]
    for parts, total in eqs:
        idx = [*parts, total]
        if min(idx) < 0 or max(idx) >= len(var):
            raise DisclosureError("protect_cells: an equation names a variable that does not exist")
        lhs, rhs = values[parts].sum(), values[total]
        if abs(lhs - rhs) > 1e-6 * max(1.0, abs(rhs)):
            raise DisclosureError(f"protect_cells: an equation does not hold ({lhs} != {rhs}); "
                                  "the released totals must add up")
    return units, var, unit_of, values, eqs


def _sparse_audit(values: np.ndarray, hidden: np.ndarray, relations: Any,
                  required: np.ndarray, kinds: np.ndarray, rules: DisclosureConfig,
                  cells: Iterable[int] | None) -> AuditResult:
    """:func:`audit` with the relations as a sparse matrix (``relations @ x == 0``)."""
    idx = np.flatnonzero(hidden)
    a_h = relations[:, idx]
    keep = np.flatnonzero(a_h.getnnz(axis=1) > 0)
    a_h = a_h[keep]
    b = -(relations[:, ~hidden] @ values[~hidden])[keep]
    pos = {c: k for k, c in enumerate(idx)}
    targets = [int(c) for c in (idx if cells is None else cells) if required[c] and hidden[c]]
    return _audit_intervals(values, targets, pos, a_h if len(keep) else None, b, kinds, rules)


def protect_cells(system: CellSystem, rules: DisclosureConfig, *, max_rounds: int = 500
                  ) -> CellProtection:
    """Primary and secondary suppression of cells released across linked tables.

    The generalisation of :func:`protect_table` to any system of additive relations (a table
    with margin rows for some dimensions only, totals released in another table, a count shown
    by two tables). Primary rules per unit (:func:`primary_suppression` with its kind); each
    primary unit's offending quantities must then be protected against the LP audit
    (:func:`audit`) of everything published: a count (also the numerator or complement of a
    share) to an interval at least ``min_n`` wide, a magnitude's sum to ``protection`` times
    its value on either side. Threshold cells protect their count and sum, dominated cells their
    sum, shares the side (numerator or complement) below ``min_n``.

    Secondary suppression first hides, in every relation holding exactly one hidden quantity
    (which it would give away exactly), the relation's cheapest published unit (fewest
    persons; margins last), to a fixpoint. Then, greedily: while some protected quantity is
    unsafe, the cheapest
    published unit (fewest persons; margins last) in the relations that bound it (reached
    through hidden quantities) that makes it safe is suppressed; failing that, the cheapest ones opening every equation that pins it, or the
    one that widens its interval most; when no single step widens any unsafe quantity, the
    cheapest unit of every relation of the first is suppressed at once. The final pattern is
    audited again.

    Parameters
    ----------
    system
        The cells, quantities and relations.
    rules
        Thresholds.
    max_rounds
        Most units added before giving up.

    Returns
    -------
    CellProtection

    Raises
    ------
    DisclosureError
        Malformed system, a primary cell that is ``fixed``, or no pattern protects a cell (the
        message names it and says to merge categories).
    """
    units, var, unit_of, values, eqs = _system_arrays(system)
    n_real = len(units)
    if (unit_of == -1).any():  # one unit, never released, holds the slack variables
        never = {"n_persons": 0, "kind": "count", "label": "(never released)"}
        never |= {c: False for c in ("margin", "fixed") if c in units}
        if "group" in units:
            never["group"] = "(never released)"
        units = pd.concat([units, pd.DataFrame([never])], ignore_index=True)
        unit_of = np.where(unit_of == -1, n_real, unit_of)
    n_u = len(units)
    kinds_u = units["kind"].to_numpy(dtype=object)
    bad = sorted(set(kinds_u) - {"count", "share", "magnitude"})
    if bad:
        raise DisclosureError(f"protect_cells: unknown kind(s) {bad}")
    ev = units.copy()
    for col in EVIDENCE_COLUMNS:
        if col not in ev:
            ev[col] = 0.0 if col.startswith("largest") else np.nan
    hits = pd.DataFrame(False, index=units.index, columns=["threshold", "nk-rule", "share"])
    for kind in ("count", "share", "magnitude"):
        sel = kinds_u == kind
        if sel.any():
            hits.loc[sel] = primary_suppression(ev[sel], kind, rules)[list(hits.columns)].to_numpy()
    primary = hits.any(axis=1).to_numpy()
    fixed = (units["fixed"].to_numpy(dtype=bool) if "fixed" in units
             else np.zeros(n_u, dtype=bool))
    if (primary & fixed).any():
        labels = ", ".join(units.loc[primary & fixed, "label"].astype(str))
        raise DisclosureError(f"protect_cells: cell(s) {labels} break a primary rule but are "
                              "released elsewhere unsuppressed; merge categories")
    roles = var["role"].to_numpy(dtype=object)
    n = ev["n_persons"].to_numpy(dtype=float)
    num = ev["numerator"].to_numpy(dtype=float)
    low_num = (num < rules.min_n)[unit_of]
    low_comp = ((n - num) < rules.min_n)[unit_of]
    thr, nk, sh = (hits[c].to_numpy()[unit_of] for c in ("threshold", "nk-rule", "share"))
    targets = ((thr & np.isin(roles, ["count", "sum"])) | (nk & (roles == "sum"))
               | (sh & (((roles == "numerator") & low_num) | ((roles == "complement") & low_comp))))
    var_kinds = np.where(roles == "sum", "magnitude", "count").astype(object)
    margin = (units["margin"].to_numpy(dtype=bool) if "margin" in units
              else np.zeros(n_u, dtype=bool))
    counts = np.bincount(unit_of[roles == "count"], values[roles == "count"], minlength=n_u)
    cost = counts + margin * (counts.sum() + 1.0)
    gcode = (pd.factorize(units["group"])[0] if "group" in units
             else np.arange(n_u, dtype=np.int64))
    groups = [np.flatnonzero(gcode == g) for g in range(int(gcode.max()) + 1 if n_u else 0)]
    gcost = np.array([cost[m].sum() for m in groups])
    gfixed = np.array([bool(fixed[m].any()) for m in groups])
    member: list[list[int]] = [[] for _ in range(len(var))]
    for k, (parts, total) in enumerate(eqs):
        for x in [*parts, total]:
            member[x].append(k)

    from scipy import sparse

    rows_i = [k for k, (parts, total) in enumerate(eqs) for _ in range(len(parts) + 1)]
    cols_i = [x for parts, total in eqs for x in [*parts, total]]
    signs = [v for parts, total in eqs for v in [*([1.0] * len(parts)), -1.0]]
    relations = sparse.csr_matrix((signs, (rows_i, cols_i)), shape=(len(eqs), len(var)))
    incidence = abs(relations).tocsr()

    def check(mask_u: np.ndarray, cells: Iterable[int] | None = None) -> AuditResult:
        """:func:`audit` on a sparse copy of the relations (same bounds, faster to repeat)."""
        return _sparse_audit(values, mask_u[unit_of], relations, targets, var_kinds, rules,
                             cells)

    def slack(row: pd.Series) -> float:
        if var_kinds[int(row["cell"])] == "magnitude":
            return float(min(row["value"] - row["lower"], row["upper"] - row["value"]))
        return float(row["width"])

    def candidates(mask_u: np.ndarray, eq_ids: Iterable[int]) -> list[int]:
        """Groups with a published unit in the equations, cheapest first."""
        found = {int(gcode[unit_of[x]]) for k in eq_ids for x in [*eqs[k][0], eqs[k][1]]
                 if not mask_u[unit_of[x]]}
        return sorted((g for g in found if not gfixed[g]), key=lambda g: (gcost[g], g))

    def component(v: int, mask_u: np.ndarray) -> list[int]:
        """The relations reachable from v through hidden quantities (what bounds v)."""
        hidden = mask_u[unit_of]
        seen, found, stack = {v}, set(), [v]
        while stack:
            for k in member[stack.pop()]:
                if k in found:
                    continue
                found.add(k)
                for y in [*eqs[k][0], eqs[k][1]]:
                    if hidden[y] and y not in seen:
                        seen.add(y)
                        stack.append(y)
        return sorted(found)

    def pick(v: int, mask_u: np.ndarray) -> list[int] | None:
        current = slack(check(mask_u, [v]).cells.iloc[0])
        best: tuple[float, list[int]] | None = None
        reach = component(v, mask_u)
        for g in candidates(mask_u, reach):
            trial = mask_u.copy()
            trial[groups[g]] = True
            row = check(trial, [v]).cells.iloc[0]
            if row["safe"]:
                return list(groups[g])
            gain = slack(row) - current
            if gain > 1e-9 and (best is None or gain > best[0]):
                best = (gain, list(groups[g]))
        hidden = mask_u[unit_of]
        pinned = [k for k in reach if sum(hidden[x] for x in [*eqs[k][0], eqs[k][1]]) == 1]
        if len(pinned) > 1:
            opened = open_equations(v, mask_u, pinned, current)
            if opened is not None and (best is None or opened[0] > best[0]):
                return opened[1]
        return best[1] if best else None

    def open_equations(v: int, mask_u: np.ndarray, eq_ids: list[int], current: float
                       ) -> tuple[float, list[int]] | None:
        """The cheapest published group of each equation at once, if that widens v's
        interval."""
        add: list[int] = []
        for k in eq_ids:
            options = [g for g in candidates(mask_u, [k]) if g not in add]
            if options:
                add.append(options[0])
        if not add:
            return None
        units_added = [int(u) for g in add for u in groups[g]]
        trial = mask_u.copy()
        trial[units_added] = True
        row = check(trial, [v]).cells.iloc[0]
        gain = np.inf if row["safe"] else slack(row) - current
        return (gain, units_added) if gain > 1e-9 else None

    def close(mask_u: np.ndarray) -> np.ndarray:
        """No relation may hold exactly one hidden released quantity (it would be recovered
        exactly): open each such relation with its cheapest published group, to a fixpoint."""
        mask_u = mask_u.copy()
        skip: set[int] = set()
        while True:
            hidden = mask_u[unit_of]
            released = hidden & (unit_of < n_real)
            alone = np.flatnonzero((incidence @ hidden.astype(float) == 1)
                                   & (incidence @ released.astype(float) == 1))
            alone = [int(k) for k in alone if k not in skip]
            if not alone:
                return mask_u
            options = candidates(mask_u, [alone[0]])
            if options:
                mask_u[groups[options[0]]] = True
            else:  # nothing to open (every other unit fixed): the audit decides
                skip.add(alone[0])

    suppressed = primary.copy()
    suppressed[n_real:] = True
    for m in groups:  # a group is hidden together
        if suppressed[m].any():
            suppressed[m] = True
    suppressed = close(suppressed)
    unsafe = [int(c) for c in np.flatnonzero(targets)]
    for _ in range(max_rounds):
        # hiding more only widens intervals: a quantity once safe stays safe
        result = check(suppressed, unsafe)
        unsafe = [int(c) for c in result.cells.loc[~result.cells["safe"], "cell"]]
        if not unsafe:
            break
        added = None
        for v in unsafe:  # the first quantity some published group widens
            added = pick(v, suppressed)
            if added:
                break
        if not added:  # open every relation of the first at once
            v = unsafe[0]
            current = slack(check(suppressed, [v]).cells.iloc[0])
            opened = open_equations(v, suppressed, component(v, suppressed), current)
            added = opened[1] if opened else None
        if not added:
            raise DisclosureError(
                f"no suppression pattern protects the {roles[v]} of cell "
                f"{units.loc[unit_of[v], 'label']} against recovery from the released totals; "
                "merge it with a neighbouring category (year, market or channel) and rebuild "
                "the tables")
        suppressed[added] = True
        suppressed = close(suppressed)
    else:
        raise DisclosureError(f"protect_cells: no safe pattern within {max_rounds} rounds")
    final = audit(values, suppressed[unit_of], eqs, required=targets, kinds=var_kinds,
                  rules=rules).cells
    if not final["safe"].all():  # pragma: no cover - the sparse and dense audits agree
        raise DisclosureError("protect_cells: the final audit disagrees with the search")
    suppressed, primary = suppressed[:n_real], primary[:n_real]
    final.insert(1, "unit", unit_of[final["cell"].to_numpy(dtype=np.int64)])
    final.insert(2, "label", units.loc[final["unit"], "label"].to_numpy())
    final.insert(3, "role", roles[final["cell"].to_numpy(dtype=np.int64)])
    reasons = pd.Series([""] * n_real, index=units.index[:n_real], dtype=object)
    for rule in ("threshold", "nk-rule", "share"):
        hit = hits[rule].to_numpy()[:n_real]
        reasons[hit] = reasons[hit] + f"{rule}; "
    reasons[suppressed & ~primary] = "secondary; "
    reasons[reasons == ""] = "ok"
    return CellProtection(suppressed=suppressed, status=reasons, audit=final)


# --- identifiers, order statistics, models --------------------------------------------------------

IDENTIFIER_NAMES = re.compile(
    r"^(id|pnr|cpr|cpr_nr|cvr|bopikom|familie_id|husstand_id|bolig_id|afdeling_id)$"
    r"|(^|_)(person|household|dwelling|department|family|address)_?(id|nr|no|key)$", re.IGNORECASE)
ORDER_STATISTICS = re.compile(r"^(min|max|minimum|maximum|median|p\d{1,2}|q\d{1,2}|quantile.*|"
                              r"percentile.*)$|_(min|max|median|p\d{1,2}|q\d{1,2})$", re.IGNORECASE)
CPR_VALUE = re.compile(r"^\d{6}-?\d{4}$")
#: Counts of units, never identifiers.
ALLOWED_NAMES = frozenset({"n_persons", "n_departments", "n_households", "n_dwellings",
                           "n_units", "person_years", "n_departments_treated",
                           "n_departments_control", "n_persons_treated", "n_persons_control"})


def check_columns(frame: pd.DataFrame, *, protected_quantiles: Sequence[str] = ()) -> list[str]:
    """Reasons a frame may not be released as it is (empty = none).

    Flags identifier columns (person, household, dwelling, department ids; CPR-like values in text
    columns) and order statistics (min, max, median, quantiles) unless listed in
    ``protected_quantiles`` (quantiles computed with protection, e.g. over at least ``min_n`` persons
    on each side).
    """
    reasons = []
    names = [str(c) for c in frame.columns] + [str(n) for n in frame.index.names if n is not None]
    for name in names:
        low = name.lower()
        if low in ALLOWED_NAMES or low.startswith("n_"):
            continue
        if IDENTIFIER_NAMES.search(low):
            reasons.append(f"column {name!r} looks like an identifier")
        elif ORDER_STATISTICS.search(low) and name not in protected_quantiles:
            reasons.append(f"column {name!r} is an order statistic (min, max or quantile)")
    for col in frame.columns:
        s = frame[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            text = s.dropna().astype(str).str.strip()
            if len(text) and text.str.match(CPR_VALUE).any():
                reasons.append(f"column {col!r} holds CPR-like values")
    return reasons


def check_model_rows(table: pd.DataFrame, rules: DisclosureConfig, *,
                     residual_df: str | None = "df_resid",
                     departments: Sequence[str] = ("n_departments_treated", "n_departments_control"),
                     persons: Sequence[str] = ("n_persons_treated", "n_persons_control"),
                     ) -> pd.DataFrame:
    """Model rules per coefficient row.

    Parameters
    ----------
    table
        Tidy model output (one row per term / event time) with support columns.
    rules
        Thresholds.
    residual_df, departments, persons
        Columns with the residual degrees of freedom and the departments and persons on each side
        (treated and comparison). A column named here must be present: a model output without its
        support counts cannot be checked and is withheld.

    Returns
    -------
    pandas.DataFrame
        Boolean columns ``dof``, ``departments``, ``threshold`` and ``suppress`` per row.
    """
    needed = [c for c in [residual_df, *departments, *persons] if c]
    missing = [c for c in needed if c not in table]
    if missing:
        raise DisclosureError(f"model output lacks its support column(s) {', '.join(missing)}; "
                              "it cannot be checked and is withheld")
    out = pd.DataFrame(index=table.index)
    out["dof"] = (table[residual_df].to_numpy(dtype=float) < rules.min_residual_df
                  if residual_df else False)
    out["departments"] = np.zeros(len(table), dtype=bool)
    for c in departments:
        out["departments"] |= ~(table[c].to_numpy(dtype=float) >= rules.min_departments)
    out["threshold"] = np.zeros(len(table), dtype=bool)
    for c in persons:
        out["threshold"] |= ~(table[c].to_numpy(dtype=float) >= rules.min_n)
    out["suppress"] = out[["dof", "departments", "threshold"]].any(axis=1)
    return out


# --- the log and the checker's report -------------------------------------------------------------

REASON_TEXT = {
    "threshold": "fewer than {min_n} persons",
    "nk-rule": "the {dominance_n} largest contributions exceed {pct}% of the total",
    "share": "numerator or complement below {min_n} persons",
    "secondary": "suppressed so that a primary cell cannot be recovered from the margins",
    "dof": "residual degrees of freedom below {min_residual_df}",
    "departments": "fewer than {min_departments} departments on a side",
    "identifier": "identifier or order statistic in a released file",
}


@dataclass
class DisclosureLog:
    """The outcome of every check, for ``disclosure_log.csv`` and the ACRO-style JSON report."""

    rules: DisclosureConfig = field(default_factory=DisclosureConfig)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def reason(self, rule: str) -> str:
        """The reason of a rule in words, with the thresholds filled in."""
        r = self.rules
        return REASON_TEXT[rule].format(min_n=r.min_n, dominance_n=r.dominance_n,
                                        pct=round(100 * r.dominance_k), min_departments=r.min_departments,
                                        min_residual_df=r.min_residual_df)

    def add(self, name: str, *, kind: str, status: pd.DataFrame | None, files: Sequence[str] = (),
            refused: str = "", comments: Sequence[str] = (), properties: dict | None = None
            ) -> str:
        """Record one output.

        Parameters
        ----------
        name
            Output name (file stem).
        kind
            ``"table"``, ``"regression"`` or ``"figure"`` (ACRO's output types).
        status
            Per-cell mask of reasons (``"ok"`` or ``"rule; rule; "``), or None.
        files
            Released file names.
        refused
            Why the output is withheld (status ``fail``); empty when released.
        comments
            Notes for the output checker.
        properties
            Extra properties (e.g. the table's dimensions).

        Returns
        -------
        str
            The status: ``"pass"`` (nothing suppressed), ``"review"`` (released with suppression)
            or ``"fail"`` (withheld).
        """
        cells: dict[str, list[list[Any]]] = {rule: [] for rule in REASON_TEXT}
        if status is not None:
            for (r, c), text in np.ndenumerate(status.to_numpy()):
                if text == "ok":
                    continue
                rl, cl = status.index[r], status.columns[c]
                for rule in [t.strip() for t in str(text).split(";") if t.strip()]:
                    cells[rule].append([_label(rl), _label(cl)])
                    self.rows.append({"output": name, "row": _label(rl), "column": _label(cl),
                                      "rule": rule, "reason": self.reason(rule),
                                      "action": "withheld" if refused else "suppressed"})
        if refused:
            self.rows.append({"output": name, "row": "", "column": "", "rule": "refused",
                              "reason": refused, "action": "withheld"})
        n_supp = sum(len(v) for v in cells.values())
        state = "fail" if refused else ("review" if n_supp else "pass")
        summary = {"suppressed": bool(n_supp) and not refused,
                   **{rule: len(v) for rule, v in cells.items()}}
        outcome = ({str(_label(c)): {str(_label(r)): str(status.loc[r, c]) for r in status.index}
                    for c in status.columns} if status is not None else {})
        self.outputs[name] = {
            "uid": name, "status": state, "type": kind, "properties": properties or {},
            "files": [{"name": f, "sdc": {"summary": summary, "cells": cells}} for f in files],
            "outcome": outcome, "command": "impact run", "summary": _summary_text(state, summary,
                                                                                    refused),
            "comments": list(comments), "exception": "",
        }
        return state

    def frame(self) -> pd.DataFrame:
        """The disclosure log: one row per suppressed cell and rule, or per withheld output."""
        return pd.DataFrame(self.rows, columns=["output", "row", "column", "rule", "reason",
                                                "action"])

    def report(self) -> dict[str, Any]:
        """The JSON report, laid out as ACRO's ``results.json``."""
        from impact import __version__

        r = self.rules
        return {"version": f"impact {__version__}",
                "rules": {"min_n": r.min_n, "dominance_n": r.dominance_n,
                          "dominance_k": r.dominance_k, "min_departments": r.min_departments,
                          "min_residual_df": r.min_residual_df, "protection": r.protection},
                "results": self.outputs}

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``disclosure_log.csv`` and ``disclosure_report.json`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        csv, js = out_dir / "disclosure_log.csv", out_dir / "disclosure_report.json"
        self.frame().to_csv(csv, index=False, lineterminator="\n")
        js.write_text(json.dumps(self.report(), indent=2, sort_keys=False, default=str) + "\n")
        return csv, js


def _label(x: Any) -> Any:
    """A cell label fit for JSON."""
    if isinstance(x, tuple):
        return " | ".join(map(str, x))
    if isinstance(x, np.generic):
        return x.item()
    return x


def _summary_text(state: str, summary: dict[str, Any], refused: str) -> str:
    """ACRO-style one-line summary of an output's checks."""
    if state == "fail":
        return f"fail; {refused}"
    hits = [f"{k}: {v} cells suppressed" for k, v in summary.items() if k != "suppressed" and v]
    return "pass" if not hits else "review; " + "; ".join(hits)
