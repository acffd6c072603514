"""What may leave the research server: the ``release/`` writer and the run manifest.

:func:`write_released` takes the tables a run wants to publish, each with the evidence recorded when
it was built, runs every disclosure check of :mod:`impact.report.disclosure`, and writes into
``release/`` only tables that pass (suppressed cells blanked), the figures drawn from those checked
tables, ``disclosure_log.csv`` and ``disclosure_report.json`` (ACRO layout). A table that cannot be
made safe is withheld and logged (status ``fail``), never written. Tables that show the same cells
(:class:`LinkedTables`) are protected together first
(:func:`~impact.report.disclosure.protect_cells`).

:func:`write_manifest` records what produced a folder: the hashes of its files and of the inputs, the
configuration and its hash, the seed, package versions, the git commit with a dirty flag, and the
hash of ``data_spec/``. It holds no timestamp, so equal runs give equal manifests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impact.errors import DisclosureError, ImpactError
from impact.report import disclosure
from impact.report.tables import FORMATS, TableNotes, export_table
from impact.workflow.config import StudyConfig, config_hash, to_dict

__all__ = [
    "CellTable",
    "LinkedTable",
    "LinkedTables",
    "MarginTable",
    "ModelTable",
    "ReleaseFigure",
    "ReleaseResult",
    "data_spec_sha256",
    "git_state",
    "manifest",
    "prepare_folder",
    "write_manifest",
    "write_released",
]


@dataclass(frozen=True)
class CellTable:
    """A tidy table whose rows are cells (no additive margins released with it).

    Attributes
    ----------
    name
        File stem under ``release/tables/``.
    frame
        The rows to release.
    evidence
        :data:`~impact.report.disclosure.EVIDENCE_COLUMNS` per row, aligned with ``frame``.
    kind
        ``"count"``, ``"magnitude"`` (sums, means) or ``"share"``.
    value_columns
        Columns blanked in a suppressed row (the count columns of ``frame`` are always blanked too).
    title, notes
        Caption and notes of the exported table.
    folder
        Subfolder of ``release/`` the table is written into (default ``tables``).
    secondary
        Per row: blanked to protect cells of linked tables (set by :class:`LinkedTables`; empty
        = none).
    """

    name: str
    frame: pd.DataFrame
    evidence: pd.DataFrame
    kind: str
    value_columns: tuple[str, ...]
    title: str = ""
    notes: TableNotes | Sequence[str] = ()
    folder: str = "tables"
    secondary: tuple[bool, ...] = ()

    @classmethod
    def from_micro(cls, name: str, micro: pd.DataFrame, by: Sequence[str], *, statistic: str,
                   value: str | None = None, person: str = "person_id",
                   department: str | None = "department_id", title: str = "",
                   notes: TableNotes | Sequence[str] = ()) -> CellTable:
        """Build a table and its evidence in one pass over the microdata.

        Parameters
        ----------
        name, title, notes
            As the attributes.
        micro
            One row per contribution (person or person-year).
        by
            Key columns of the cells.
        statistic
            ``"count"`` (persons), ``"sum"`` or ``"mean"`` of ``value`` (magnitudes), or ``"share"``
            (mean of the 0/1 column ``value``). The released column is ``n_persons``,
            ``sum_<value>``, ``mean_<value>`` or ``share_<value>``; ``n_persons`` is always added.
        person, department
            Identifier columns (used for the evidence, never released).
        """
        if statistic not in ("count", "sum", "mean", "share"):
            raise DisclosureError(f"{name}: statistic must be count, sum, mean or share, "
                                  f"got {statistic!r}")
        if statistic != "count" and value is None:
            raise DisclosureError(f"{name}: statistic {statistic!r} needs a value column")
        by = list(by)
        ev = disclosure.cell_evidence(
            micro, by, value=value if statistic in ("sum", "mean") else None,
            indicator=value if statistic == "share" else None, person=person,
            department=department)
        frame = ev[by].copy()
        if statistic == "count":
            cols: tuple[str, ...] = ("n_persons",)
            kind = "count"
        else:
            col = f"{statistic}_{value}"
            if statistic == "sum":
                frame[col] = ev["total"].to_numpy()
            else:
                stat = micro.groupby(by, sort=True, observed=True, dropna=False)[value].mean()
                frame[col] = stat.to_numpy()
            cols = (col,)
            kind = "share" if statistic == "share" else "magnitude"
        frame["n_persons"] = ev["n_persons"].to_numpy()
        return cls(name=name, frame=frame, evidence=ev, kind=kind, value_columns=cols,
                   title=title, notes=notes)


@dataclass(frozen=True)
class MarginTable:
    """A two-way table of counts or sums released with its row and column totals.

    ``values`` holds the interior cells, ``evidence`` the frames of
    :func:`~impact.report.disclosure.table_evidence` (margins included). ``fixed_margins``: the
    totals are released elsewhere and may not be suppressed here. ``folder``: subfolder of
    ``release/`` (default ``tables``).
    """

    name: str
    values: pd.DataFrame
    evidence: dict[str, pd.DataFrame]
    kind: str
    title: str = ""
    notes: TableNotes | Sequence[str] = ()
    fixed_margins: bool = False
    folder: str = "tables"


@dataclass(frozen=True)
class ModelTable:
    """Tidy model output (one row per term or event time) with its support columns.

    Rows that break a model rule have ``value_columns`` blanked; the support columns named in
    ``residual_df``, ``departments`` and ``persons`` must be present (see
    :func:`~impact.report.disclosure.check_model_rows`) and are dropped from the released file
    unless ``keep_support``. ``folder``: subfolder of ``release/`` (default ``tables``).
    ``linked``: columns that rest on every row of a group (e.g. a test of equal effects over
    the subgroups): ``(group columns, columns)``; they are blanked on every row of a group in
    which some row is suppressed (rule ``secondary``). ``secondary``: per row, blanked to
    protect cells of linked tables (set by :class:`LinkedTables`).
    """

    name: str
    frame: pd.DataFrame
    value_columns: tuple[str, ...] = ("estimate", "se", "lower", "upper")
    residual_df: str | None = "df_resid"
    departments: tuple[str, ...] = ("n_departments_treated", "n_departments_control")
    persons: tuple[str, ...] = ("n_persons_treated", "n_persons_control")
    keep_support: bool = False
    title: str = ""
    notes: TableNotes | Sequence[str] = ()
    folder: str = "tables"
    linked: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    secondary: tuple[bool, ...] = ()


@dataclass(frozen=True)
class LinkedTable:
    """A table whose cells are tied by public linear relations (a totals row, an attrition chain).

    Each checked cell is one row of ``cells``: its place in ``frame`` (``row``: a position,
    ``column``: a name), its ``kind`` (``"count"``, ``"magnitude"``, ``"share"``), the additive
    ``value`` the relations hold for (a count, a share's numerator, a magnitude's sum) and its
    evidence (:data:`~impact.report.disclosure.EVIDENCE_COLUMNS`). ``equations``
    (``(parts, total)`` over positions in ``cells``) and ``links`` (cells showing one quantity
    twice) are what an attacker can combine; :func:`~impact.report.disclosure.protect_linked`
    suppresses the primary cells and enough others that the LP audit protects them. Columns of
    ``frame`` without cells (keys, labels) are released as they are. ``export``: keyword arguments
    of :func:`impact.report.tables.export_table` (labels, digits, group, LaTeX label, ...).
    """

    name: str
    frame: pd.DataFrame
    cells: pd.DataFrame
    equations: tuple[tuple[tuple[int, ...], int], ...] = ()
    links: tuple[tuple[int, ...], ...] = ()
    title: str = ""
    notes: TableNotes | Sequence[str] = ()
    folder: str = "tables"
    export: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseFigure:
    """A figure drawn only from a checked table: ``draw(released_frame)`` returns a matplotlib
    figure, saved as ``release/figures/<name>.png``."""

    name: str
    table: str
    draw: Callable[[pd.DataFrame], Any]


ReleaseTable = CellTable | MarginTable | ModelTable | LinkedTable


@dataclass(frozen=True)
class LinkedTables:
    """Tables that show the same additive cells, protected together.

    ``system`` (:class:`~impact.report.disclosure.CellSystem`) holds every cell the members
    show and the relations between them (margin rows, totals repeated in another table);
    ``rows`` maps each member's name to, per row of its frame, the units (rows of
    ``system.units``) that row shows. :func:`write_released` runs
    :func:`~impact.report.disclosure.protect_cells` on the system, then checks each member as
    usual with the rows that show a hidden unit blanked (rule ``secondary`` where the member's
    own rules did not already blank them). When no pattern protects the cells, every member is
    withheld. The audit stays private (``ReleaseResult.audits[name]``).
    """

    name: str
    system: disclosure.CellSystem
    members: tuple[CellTable | ModelTable, ...]
    rows: dict[str, tuple[tuple[int, ...], ...]]


@dataclass
class ReleaseResult:
    """What :func:`write_released` did: ``status`` per output (pass / review / fail), the released
    frames (suppressed cells NaN), the written files and the log."""

    status: dict[str, str] = field(default_factory=dict)
    released: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    log: disclosure.DisclosureLog | None = None
    audits: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def withheld(self) -> list[str]:
        """Outputs not released."""
        return [k for k, v in self.status.items() if v == "fail"]


def prepare_folder(folder: str | Path, *, replace: bool = False) -> Path:
    """An empty output folder: created, or emptied when ``replace``; a folder holding files of an
    earlier run is refused otherwise (nothing stale may be hashed or released)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not replace:
            raise ImpactError(f"{folder} holds files of an earlier run; choose an empty folder or "
                              "replace it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_released(tables: Sequence[ReleaseTable | LinkedTables], out_dir: str | Path,
                   config: StudyConfig, *,
                   figures: Sequence[ReleaseFigure] = (), formats: Sequence[str] = FORMATS,
                   replace: bool = False) -> ReleaseResult:
    """Check every table and write only what may leave the server.

    Parameters
    ----------
    tables
        :class:`CellTable`, :class:`MarginTable`, :class:`ModelTable` or :class:`LinkedTables`
        objects.
    out_dir
        The ``release/`` folder: must be empty or absent (or ``replace``, which empties it).
    config
        The study configuration (its ``[disclosure]`` thresholds are used).
    figures
        Figures drawn from released tables (a figure of a withheld table is withheld too).
    formats
        Table formats (see :func:`impact.report.tables.export_table`).
    replace
        Empty ``out_dir`` first instead of refusing.

    Returns
    -------
    ReleaseResult
    """
    rules = config.disclosure
    out = prepare_folder(out_dir, replace=replace)
    log = disclosure.DisclosureLog(rules)
    result = ReleaseResult(log=log)
    names = [n for t in tables for n in ([m.name for m in t.members]
                                         if isinstance(t, LinkedTables) else [t.name])]
    names += [f.name for f in figures]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ImpactError(f"write_released: output name(s) used twice: {', '.join(dupes)}")
    checked: list[ReleaseTable] = []
    for table in tables:
        if isinstance(table, LinkedTables):
            checked += _protect_linked(table, rules, result)
        else:
            checked.append(table)
    for table in checked:
        try:
            frame, status, kind = _check(table, rules)
        except DisclosureError as err:
            result.status[table.name] = log.add(table.name, kind="table", status=None,
                                                refused=str(err))
            continue
        reasons = disclosure.check_columns(frame)
        if reasons:
            result.status[table.name] = log.add(table.name, kind=kind, status=None,
                                                refused="; ".join(reasons))
            continue
        paths = export_table(frame, out / table.folder / table.name, title=table.title or table.name,
                             notes=table.notes, formats=formats,
                             **getattr(table, "export", {}))
        result.files += list(paths.values())
        result.released[table.name] = frame
        result.status[table.name] = log.add(
            table.name, kind=kind, status=status,
            files=[str(p.relative_to(out)) for p in paths.values()])
    for fig in figures:
        if fig.table not in result.released:
            result.status[fig.name] = log.add(fig.name, kind="figure", status=None,
                                              refused=f"its table {fig.table!r} is not released")
            continue
        path = out / "figures" / f"{fig.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure = fig.draw(result.released[fig.table].copy())
        figure.savefig(path, dpi=110, metadata={"Software": None})
        result.files.append(path)
        result.status[fig.name] = log.add(fig.name, kind="figure", status=None,
                                          files=[str(path.relative_to(out))],
                                          comments=[f"drawn from the released table {fig.table}"])
    result.files += list(log.write(out))
    return result


def _protect_linked(linked: LinkedTables, rules: Any, result: ReleaseResult
                    ) -> list[ReleaseTable]:
    """The members of linked tables with the rows that show a hidden cell marked secondary
    (none when no pattern protects the cells: then every member is logged as withheld)."""
    log = result.log
    assert log is not None
    try:
        missing = sorted(m.name for m in linked.members if m.name not in linked.rows)
        if missing:
            raise DisclosureError(f"{linked.name}: no rows given for {', '.join(missing)}")
        for m in linked.members:
            if len(linked.rows[m.name]) != len(m.frame):
                raise DisclosureError(f"{linked.name}: {len(linked.rows[m.name])} row maps for "
                                      f"the {len(m.frame)} rows of {m.name}")
        protection = disclosure.protect_cells(linked.system, rules)
    except DisclosureError as err:
        for m in linked.members:
            result.status[m.name] = log.add(m.name, kind="table", status=None,
                                            refused=f"{linked.name}: {err}")
        return []
    result.audits[linked.name] = protection.audit
    hidden = protection.suppressed
    out: list[ReleaseTable] = []
    for m in linked.members:
        mask = tuple(bool(any(hidden[u] for u in units)) for units in linked.rows[m.name])
        out.append(replace(m, secondary=mask))
    return out


def _secondary(table: CellTable | ModelTable, n_rows: int) -> np.ndarray:
    """The rows a table must blank to protect linked cells."""
    if not table.secondary:
        return np.zeros(n_rows, dtype=bool)
    if len(table.secondary) != n_rows:
        raise DisclosureError(f"{table.name}: {len(table.secondary)} secondary flags for "
                              f"{n_rows} rows")
    return np.asarray(table.secondary, dtype=bool)


def _check(table: ReleaseTable, rules: Any) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The released frame, its per-cell status mask and ACRO's output type."""
    if isinstance(table, MarginTable):
        p = disclosure.protect_table(table.values, table.evidence, table.kind, rules,
                                     fixed_margins=table.fixed_margins)
        frame = p.values.rename_axis(index=table.values.index.name or "row").reset_index()
        frame.columns = [str(c) for c in frame.columns]
        status = p.status.copy()
        status.columns = [str(c) for c in status.columns]
        return frame, status, "table"
    if isinstance(table, LinkedTable):
        return _check_linked(table, rules)
    if isinstance(table, ModelTable):
        mask = disclosure.check_model_rows(table.frame, rules, residual_df=table.residual_df,
                                           departments=table.departments, persons=table.persons)
        rule_cols = ["dof", "departments", "threshold", "secondary"]
        frame = table.frame.copy()
        missing = [c for c in table.value_columns if c not in frame]
        if missing:
            raise DisclosureError(f"{table.name}: value column(s) {', '.join(missing)} not in "
                                  "the table")
        frame = frame.astype({c: float for c in table.value_columns
                              if frame[c].dtype.kind in "iu"})  # numpy ints cannot hold NaN
        mask["secondary"] = _secondary(table, len(frame)) & ~mask["suppress"].to_numpy()
        blank = mask["suppress"].to_numpy() | mask["secondary"].to_numpy()
        frame.loc[blank, list(table.value_columns)] = np.nan
        status = _row_status(mask, rule_cols, table.value_columns, frame.index)
        if table.linked is not None:
            frame, status = _blank_linked(frame, status, blank, table.linked)
        if not table.keep_support:
            support = [c for c in [table.residual_df, *table.departments, *table.persons] if c]
            frame = frame.drop(columns=support)
        return frame, status, "regression"
    prim = disclosure.primary_suppression(table.evidence.reset_index(drop=True), table.kind, rules)
    if len(prim) != len(table.frame):
        raise DisclosureError(f"{table.name}: evidence has {len(prim)} rows for "
                              f"{len(table.frame)} table rows")
    frame = table.frame.reset_index(drop=True).copy()
    counts = [c for c in frame.columns if str(c).startswith("n_")]
    blank = list(dict.fromkeys([*table.value_columns, *counts]))
    frame = frame.astype({c: float for c in blank if pd.api.types.is_integer_dtype(frame[c])})
    prim["secondary"] = _secondary(table, len(frame)) & ~prim["suppress"].to_numpy()
    frame.loc[prim["suppress"].to_numpy() | prim["secondary"].to_numpy(), blank] = np.nan
    status = _row_status(prim, ["threshold", "nk-rule", "share", "secondary"], tuple(blank),
                         frame.index)
    return frame, status, "table"


def _blank_linked(frame: pd.DataFrame, status: pd.DataFrame, blank: np.ndarray,
                  linked: tuple[tuple[str, ...], tuple[str, ...]]
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Blank ``linked`` columns on every row of a group holding a blanked row (``secondary``)."""
    keys, columns = list(linked[0]), list(linked[1])
    missing = [c for c in [*keys, *columns] if c not in frame]
    if missing:
        raise DisclosureError(f"linked column(s) {', '.join(missing)} not in the table")
    groups = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    hit = np.isin(groups, groups[blank]) & frame[columns].notna().any(axis=1).to_numpy()
    frame = frame.copy()
    frame.loc[hit, columns] = np.nan
    status = status.copy()
    for c in columns:
        if c in status:
            status.loc[hit & (status[c] == "ok").to_numpy(), c] = "secondary; "
        else:
            status[c] = np.where(hit, "secondary; ", "ok")
    return frame, status


def _check_linked(table: LinkedTable, rules: Any) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """A :class:`LinkedTable` through :func:`~impact.report.disclosure.protect_linked`."""
    cells = table.cells.reset_index(drop=True)
    frame = table.frame.reset_index(drop=True).copy()
    missing = sorted(set(cells["column"]) - set(frame.columns))
    if missing or not cells["row"].between(0, len(frame) - 1).all():
        raise DisclosureError(f"{table.name}: cells name columns {missing} or rows not in the "
                              "table")
    if cells.duplicated(["row", "column"]).any():
        raise DisclosureError(f"{table.name}: a cell is listed twice")
    evidence = pd.DataFrame({c: cells[c] if c in cells else np.nan
                             for c in disclosure.EVIDENCE_COLUMNS})
    labels = [f"{table.name}[{r}, {c}]" for r, c in zip(cells["row"], cells["column"],
                                                        strict=True)]
    p = disclosure.protect_linked(cells["value"].to_numpy(dtype=float), evidence,
                                  cells["kind"].tolist(), table.equations, rules,
                                  links=table.links, labels=labels)
    checked = list(dict.fromkeys(cells["column"]))
    frame = frame.astype({c: float for c in checked if pd.api.types.is_integer_dtype(frame[c])})
    status = pd.DataFrame("ok", index=frame.index, columns=checked, dtype=object)
    for (r, c), hidden, why in zip(cells[["row", "column"]].itertuples(index=False),
                                   p.suppressed, p.reasons, strict=True):
        status.loc[r, c] = why
        if hidden:
            frame.loc[r, c] = np.nan
    return frame, status, "table"


def _row_status(mask: pd.DataFrame, rules: Sequence[str], columns: Sequence[str],
                index: pd.Index) -> pd.DataFrame:
    """Per-row rule hits as an ACRO outcome mask over the blanked columns."""
    text = pd.Series([""] * len(mask), index=index, dtype=object)
    for rule in rules:
        hit = mask[rule].to_numpy()
        text[hit] = text[hit] + f"{rule}; "
    text[text == ""] = "ok"
    return pd.DataFrame({c: text for c in columns}, index=index)


# --- the manifest ---------------------------------------------------------------------------------

def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_spec_sha256(folder: str | Path | None = None) -> str:
    """One hash of the data contract: the sorted relative paths and bytes of every file."""
    from impact.spec import spec_dir

    folder = Path(folder) if folder is not None else spec_dir()
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(file_sha256(path).encode() + b"\n")
    return h.hexdigest()


def git_state(root: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the source tree and whether it has uncommitted changes.

    ``root`` defaults to the folder above the ``impact`` package (a source checkout); outside a git
    checkout (an installed wheel) commit and dirty are None.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "root": str(root)}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status.strip()) if status is not None else None,
            "root": str(root)}


def manifest(folder: str | Path, *, config: StudyConfig, inputs: dict[str, str],
             data_spec: str | Path | None = None, repo: str | Path | None = None,
             exclude: Sequence[str] = ()) -> dict[str, Any]:
    """What produced ``folder``.

    Parameters
    ----------
    folder
        The output folder (``release/`` or ``private/``); every file in it is hashed, except
        ``manifest.json`` itself.
    config
        The study configuration (recorded in full, with its hash and seed).
    inputs
        Input name to SHA-256 (register files read, or content hashes of simulated tables).
    data_spec
        The data contract folder (default :func:`impact.spec.spec_dir`).
    repo
        The source checkout (default the one holding this package).
    exclude
        Names of subfolders of ``folder`` whose files are not hashed (the step cache
        ``.steps`` of ``private/``: copies of files that are hashed where they were written).

    Returns
    -------
    dict
        ``files_sha256``, ``inputs_sha256``, ``config``, ``config_sha256``, ``seed``, ``versions``
        (``impact`` is the source's own version), ``git`` (``commit``, ``dirty``), ``data_spec_sha256``.
    """
    import impact
    from impact.workflow.provenance import package_versions

    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): file_sha256(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
             and p.relative_to(folder).parts[0] not in exclude}
    versions = package_versions()
    versions["impact (source)"] = impact.__version__
    git = git_state(repo)
    return {
        "files_sha256": files,
        "inputs_sha256": dict(sorted(inputs.items())),
        "config": to_dict(config),
        "config_sha256": config_hash(config),
        "seed": config.seed,
        "versions": versions,
        "git": {"commit": git["commit"], "dirty": git["dirty"]},
        "data_spec_sha256": data_spec_sha256(data_spec),
    }


def write_manifest(folder: str | Path, **kwargs: Any) -> Path:
    """Write :func:`manifest` as ``<folder>/manifest.json`` (sorted keys, no timestamp)."""
    path = Path(folder) / "manifest.json"
    path.write_text(json.dumps(manifest(folder, **kwargs), indent=2, sort_keys=True, default=str)
                    + "\n")
    return path
