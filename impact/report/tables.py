"""One export of a tidy table of results to LaTeX (booktabs), Markdown, HTML and CSV, with notes.

Any set of results comes as a tidy DataFrame (TWFE, att_gt aggregations, dose response, Bayesian
effects, descriptives, diagnostics): key columns (``tool``, ``outcome``, ``term`` ...) and value
columns (``estimate``, ``se``, ``lower``, ``upper``, ``n_units`` ...). :func:`export_table` formats the
numbers once (so all formats show the same digits) and writes

- ``<stem>.tex``: a booktabs table (``\\toprule``/``\\midrule``/``\\bottomrule``) from great-tables;
- ``<stem>.html``: the same table as HTML (great-tables, with a fixed id so runs are identical);
- ``<stem>.md``: a pipe table with the notes below it;
- ``<stem>.csv``: the unrounded tidy values, the title and notes as leading ``#`` lines (read back with
  :func:`read_csv`).

Missing cells (not estimable, or suppressed by disclosure control) are shown as ``–``; the notes say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FORMATS", "TableNotes", "export_table", "format_frame", "read_csv", "to_markdown"]

FORMATS = ("tex", "md", "html", "csv")
MISSING = "–"
#: Rows above which a LaTeX table is a ``longtable`` (breaks across pages) by default.
LONGTABLE_ROWS = 40
#: Columns counted, not measured: printed as integers with a thousands separator (so is every
#: column named ``n_*``, and every integer column but :data:`LABEL_COLUMNS`).
COUNT_COLUMNS = ("n_units", "n_persons", "n_departments", "n_clusters", "n_obs", "n",
                 "n_departments_treated", "n_departments_control", "n_persons_treated",
                 "n_persons_control", "rows_in", "rows_removed", "rows_out")
#: Whole numbers that label a row (years, event times, cohorts): printed without separators.
LABEL_COLUMNS = ("year", "event_time", "cohort", "time", "first_year")


@dataclass(frozen=True)
class TableNotes:
    """The notes under a results table.

    Attributes
    ----------
    n_departments
        Departments behind the estimates.
    n_clusters, cluster
        Clusters of the standard errors and the clustering variable.
    se_type
        How the standard errors are computed (e.g. ``"cluster-robust (CR1)"``, ``"multiplier
        bootstrap, 999 draws"``, ``"posterior standard deviation"``).
    interval_level
        Level of the intervals in ``lower``/``upper`` (0.95 = 95%).
    interval_type
        ``"confidence intervals"``, ``"uniform confidence bands"``, ``"credible intervals"``.
    extra
        Further lines (data source, sample, estimator).
    """

    n_departments: int | None = None
    n_clusters: int | None = None
    cluster: str | None = None
    se_type: str | None = None
    interval_level: float | None = 0.95
    interval_type: str = "confidence intervals"
    extra: tuple[str, ...] = ()

    def lines(self, *, missing: bool = False) -> list[str]:
        """The notes as sentences."""
        out = []
        if self.n_departments is not None:
            out.append(f"Departments: {self.n_departments:,}.")
        if self.n_clusters is not None:
            by = f" ({self.cluster})" if self.cluster else ""
            out.append(f"Clusters: {self.n_clusters:,}{by}.")
        elif self.cluster:
            out.append(f"Clustered by {self.cluster}.")
        if self.se_type:
            out.append(f"Standard errors: {self.se_type}.")
        if self.interval_level is not None:
            out.append(f"Intervals: {_pct(self.interval_level)} {self.interval_type}.")
        out += list(self.extra)
        if missing:
            out.append(f"{MISSING}: not estimable or suppressed by disclosure control.")
        return out


def _pct(level: float) -> str:
    """0.95 -> '95%', 0.9 -> '90%', 0.995 -> '99.5%'."""
    p = 100 * level
    return f"{p:.0f}%" if math.isclose(p, round(p)) else f"{p:g}%"


Digits = int | Mapping[str, int | Sequence[int]]


def format_frame(frame: pd.DataFrame, *, digits: Digits = 3) -> pd.DataFrame:
    """Every cell as the text a table shows: numbers rounded (``digits`` for all, or per column:
    a number, or one per row, e.g. whole DKK in the income rows of an effects column), counts as
    integers with thousands separators, missing values as ``–``."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s):
            out[col] = s.map({True: "yes", False: "no"}).fillna(MISSING).astype(str)
        elif pd.api.types.is_numeric_dtype(s):
            whole = bool(s.dropna().map(lambda x: float(x).is_integer()).all())
            if str(col) in LABEL_COLUMNS and whole:
                out[col] = [MISSING if pd.isna(x) else str(int(x)) for x in s]
            elif (str(col) in COUNT_COLUMNS or str(col).startswith("n_")
                  or pd.api.types.is_integer_dtype(s)) and whole:
                out[col] = [MISSING if pd.isna(x) else f"{int(x):,}" for x in s]
            else:
                d = digits.get(col, 3) if isinstance(digits, Mapping) else digits
                per_row = [int(d)] * len(s) if isinstance(d, (int, np.integer)) else list(d)
                if len(per_row) != len(s):
                    raise ValueError(f"format_frame: {len(per_row)} digits for the {len(s)} rows "
                                     f"of column {col!r}")
                out[col] = [MISSING if pd.isna(x) else _number(float(x), k)
                            for x, k in zip(s, per_row, strict=True)]
        else:
            out[col] = [MISSING if pd.isna(x) else str(x) for x in s]
    return out


def _number(x: float, digits: int) -> str:
    """Fixed-point text without a negative zero (whole numbers with thousands separators)."""
    text = f"{x:,.0f}" if digits == 0 else f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def to_markdown(text: pd.DataFrame, *, title: str = "", notes: Sequence[str] = ()) -> str:
    """A pipe table of already formatted text, title above and notes below."""
    cols = [str(c) for c in text.columns]
    numeric = [all(_looks_numeric(v) for v in text[c]) for c in text.columns]

    def esc(v: str) -> str:
        return str(v).replace("|", r"\|")

    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(esc(c) for c in cols) + " |")
    lines.append("| " + " | ".join("---:" if n else ":---" for n in numeric) + " |")
    for row in text.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
    if notes:
        lines += ["", "*Notes:* " + " ".join(notes)]
    return "\n".join(lines) + "\n"


def _looks_numeric(v: str) -> bool:
    v = str(v).replace(",", "").replace(MISSING, "")
    if not v:
        return True
    try:
        float(v)
    except ValueError:
        return False
    return True


def export_table(frame: pd.DataFrame, stem: str | Path, *, title: str,
                 notes: TableNotes | Sequence[str] = (), labels: Mapping[str, str] | None = None,
                 digits: Digits = 3, group: str | None = None,
                 stub: str | None = None, spanners: Mapping[str, Sequence[str]] | None = None,
                 formats: Sequence[str] = FORMATS, label: str | None = None,
                 font_size: str = "9pt", longtable: bool | None = None) -> dict[str, Path]:
    """Write one results table in every format.

    Parameters
    ----------
    frame
        Tidy results, one row per line of the table, columns in display order.
    stem
        Output path without suffix (``release/tables/did_headline``); folders are created.
    title
        Caption.
    notes
        :class:`TableNotes` or plain sentences.
    labels
        Display names of columns (e.g. ``{"estimate": "ATT", "se": "SE"}``); the CSV keeps the names.
    digits
        Decimals of measured values, for all columns or per column (default 3); a column may have
        one per row.
    group, stub
        Columns shown as row groups and as row labels (LaTeX/HTML; in Markdown they stay columns).
    spanners
        Headings over groups of columns (``{"95% interval": ["lower", "upper"]}``).
    formats
        Any of ``"tex"``, ``"md"``, ``"html"``, ``"csv"``.
    label
        LaTeX only: a numbered caption with this ``\\label`` (for ``\\ref``); default an
        unnumbered caption.
    font_size
        LaTeX only: the table's font size (great-tables' ``table_font_size``).
    longtable
        LaTeX only: a ``longtable`` that may break across pages instead of a ``table`` float;
        default (None) for tables of more than :data:`LONGTABLE_ROWS` rows.

    Returns
    -------
    dict
        Format -> written path.
    """
    import great_tables as gt

    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise ValueError(f"export_table: unknown format(s) {bad}; allowed: {', '.join(FORMATS)}")
    for col in [c for c in (group, stub) if c] + [c for cs in (spanners or {}).values() for c in cs]:
        if col not in frame:
            raise ValueError(f"export_table: column {col!r} not in the table")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = format_frame(frame, digits=digits)
    has_missing = bool((text == MISSING).to_numpy().any())
    note_lines = (notes.lines(missing=has_missing) if isinstance(notes, TableNotes)
                  else list(notes) + ([f"{MISSING}: not estimable or suppressed by disclosure "
                                       "control."] if has_missing else []))
    labels = dict(labels or {})
    shown = text.rename(columns=labels)
    written: dict[str, Path] = {}

    if "csv" in formats:
        path = stem.with_suffix(".csv")
        head = [f"# {title}", *[f"# {n}" for n in note_lines]]
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write("\n".join(head) + "\n")
            frame.to_csv(fh, index=False, lineterminator="\n")
        written["csv"] = path
    if "md" in formats:
        path = stem.with_suffix(".md")
        path.write_text(to_markdown(shown, title=title, notes=note_lines), encoding="utf-8")
        written["md"] = path
    if {"tex", "html"} & set(formats):
        lab = labels.get
        table = gt.GT(shown.reset_index(drop=True), id=stem.name.replace("_", "-"),
                      rowname_col=lab(stub, stub) if stub else None,
                      groupname_col=lab(group, group) if group else None)
        table = table.tab_header(title=title)
        numeric = [lab(c, c) for c in text.columns
                   if c not in (group, stub) and all(_looks_numeric(v) for v in text[c])]
        if numeric:
            table = table.cols_align(align="right", columns=numeric)
        for heading, cols in (spanners or {}).items():
            table = table.tab_spanner(label=heading, columns=[labels.get(c, c) for c in cols])
        if note_lines:
            table = table.tab_source_note(" ".join(note_lines))
        if "tex" in formats:
            path = stem.with_suffix(".tex")
            long = len(frame) > LONGTABLE_ROWS if longtable is None else longtable
            latex = table.tab_options(table_font_size=font_size).as_latex(use_longtable=long)
            path.write_text(_numbered(latex, label) + "\n", encoding="utf-8")
            written["tex"] = path
        if "html" in formats:
            path = stem.with_suffix(".html")
            path.write_text(table.as_raw_html() + "\n", encoding="utf-8")
            written["html"] = path
    return written


_CAPTION = re.compile(r"\\caption\*\{\n\{\\large (?P<title>.*)\}\n\}")


def _numbered(latex: str, label: str | None) -> str:
    """great-tables' unnumbered ``\\caption*{{\\large title}}`` as ``\\caption{title}\\label{label}``."""
    if label is None:
        return latex
    if not re.fullmatch(r"[A-Za-z0-9:_\-]+", label):
        raise ValueError(f"export_table: label {label!r} may hold only letters, digits and :_-")
    found = _CAPTION.search(latex)
    if found is None:
        raise ValueError("export_table: great-tables' LaTeX has no caption to number (its layout "
                         "changed); export without a label")
    numbered = f"\\caption{{{found['title']}}}\\label{{{label}}}"
    return latex[:found.start()] + numbered + latex[found.end():]


def read_csv(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A CSV written by :func:`export_table`: the tidy values and the title/notes lines."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    n_head = next((i for i, line in enumerate(lines) if not line.startswith("# ")), len(lines))
    return pd.read_csv(path, skiprows=n_head), head
