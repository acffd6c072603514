"""Text summaries and event-study plots for the Callaway-Sant'Anna results."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_METHOD = {
    "dr": "doubly robust",
    "ipw": "inverse probability weighting",
    "reg": "outcome regression",
}
_CONTROL = {"never": "never treated", "not_yet": "not yet treated"}


def _fmt(x: float, width: int = 10, digits: int = 4) -> str:
    return f"{'NaN':>{width}}" if not np.isfinite(x) else f"{x:>{width}.{digits}f}"


def table_text(frame: pd.DataFrame, key_cols: list[str], band: str) -> list[str]:
    """Rows of a fixed-width estimate table with a significance star where the band excludes 0."""
    head = "".join(f"{c:>10}" for c in key_cols)
    lines = [f"{head}{'estimate':>10}{'std.err':>10}  [{band}]"]
    for row in frame.itertuples(index=False):
        rec = row._asdict()
        keys = "".join(f"{rec[c]:>10g}" for c in key_cols)
        lo, hi = rec["lower"], rec["upper"]
        star = " *" if np.isfinite(lo) and (lo > 0 or hi < 0) else ""
        lines.append(f"{keys}{_fmt(rec['att'])}{_fmt(rec['se'])}  {_fmt(lo)} {_fmt(hi)}{star}")
    return lines


def settings_line(settings: dict) -> str:
    """One line naming comparison group, method, anticipation, base period and clustering."""
    return (
        f"Comparison: {_CONTROL[settings['control']]}; method: {_METHOD[settings['method']]}; "
        f"anticipation: {settings['anticipation']}; base period: {settings['base_period']}; "
        f"n units: {settings['n_units']}"
        + (f"; clustered by {settings['cluster']} ({settings['n_clusters']} clusters)"
           if settings.get("cluster") else "")
    )


def band_label(n_boot: int, cband: bool, alpha: float) -> str:
    """Label of the interval columns."""
    kind = "simultaneous band" if n_boot > 0 and cband else "pointwise interval"
    return f"{100 * (1 - alpha):g}% {kind}"


def estimate_axes(
    ax: Axes,
    x: np.ndarray,
    att: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    pre: np.ndarray,
    *,
    cut: float,
    xlabel: str,
    title: str | None = None,
) -> None:
    """Draw estimates with interval bars: pre-treatment in red, post-treatment in blue."""
    for mask, color, label in ((pre, "#c0392b", "pre"), (~pre, "#2471a3", "post")):
        if not mask.any():
            continue
        yerr = np.vstack([att[mask] - lower[mask], upper[mask] - att[mask]])
        ax.errorbar(
            x[mask],
            att[mask],
            yerr=np.where(np.isfinite(yerr), yerr, 0.0),
            fmt="o",
            color=color,
            capsize=3,
            label=label,
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axvline(cut, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ATT")
    if title:
        ax.set_title(title, fontsize=10)


def new_figure(n_panels: int = 1) -> tuple[Figure, list[Axes]]:
    """A matplotlib figure built without pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 2.6 * n_panels if n_panels > 1 else 4.0))
    axes = [fig.add_subplot(n_panels, 1, i + 1) for i in range(n_panels)]
    return fig, axes
