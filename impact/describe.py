"""Report-style descriptive trends: the 2015 report's figures 7.1-7.12.

Group-by-year trends of the four composition measures for the stock, in-movers and out-movers of the
supported departments in the report's four groups (both tools / referral only / flexible letting only /
neither, from use in 2006-2010), with persons pooled within each group: a share is the group's summed
numerator over its summed base, an income mean is weighted by the persons behind each department's
mean. Figure numbers follow the report (7.1-7.3 education, 7.4-7.6 employment, 7.7-7.9 income,
7.10-7.12 non-Western origin; stock, in-movers, out-movers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from impact.panel import REPORT_GROUPS

POPULATIONS = {"stock": ("", "n_residents"), "in_movers": ("in_", "n_in_movers"),
               "out_movers": ("out_", "n_out_movers")}
# measure: (numerator count, base count, label); numerator None = a mean weighted by the base
MEASURES = {
    "share_qualifying_edu": ("n_qualifying_edu", "n_labour_force_18_64",
                             "Share with a qualifying education (18-64, labour force)"),
    "share_employed": ("n_employed", "n_labour_force_18_64", "Share employed (18-64, labour force)"),
    "mean_household_income": (None, "n_income_18_64",
                              "Household disposable income, 18-64 (DKK, fixed prices)"),
    "share_non_western": ("n_non_western", "n_residents", "Share of non-Western origin (all)"),
}
FIGURE_NUMBERS = {(m, pop): f"7.{3 * i + j + 1}" for i, m in enumerate(MEASURES)
                  for j, pop in enumerate(POPULATIONS)}
GROUP_LABELS = {"both": "Both tools", "referral_only": "Referral only",
                "flexible_only": "Flexible letting only", "neither": "Neither"}


def _count(frame: pd.DataFrame, prefix: str, base: str, name: str) -> pd.Series:
    """A count column of a population (stock counts carry no prefix; mover totals are renamed)."""
    if name == "n_residents":
        return frame[base].astype("float64")
    return frame[f"{prefix}{name}"].astype("float64")


def trends(panel: pd.DataFrame, *, groups: tuple[str, ...] = REPORT_GROUPS) -> pd.DataFrame:
    """Tidy group-by-year trends of the report's measures.

    Parameters
    ----------
    panel
        ``Panel.frame`` from :func:`impact.panel.build`.
    groups
        Report groups to include (unsupported departments have none and are left out).

    Returns
    -------
    DataFrame
        Columns ``figure``, ``population`` (stock / in_movers / out_movers), ``measure``,
        ``report_group``, ``year``, ``value``, ``n_persons`` (the base: persons behind the value),
        ``n_departments`` (departments of the group with at least one such person).
    """
    data = panel[panel["report_group"].isin(groups)]
    rows = []
    for pop, (prefix, total) in POPULATIONS.items():
        for measure, (num, base, _) in MEASURES.items():
            b = _count(data, prefix, total, base)
            if num is None:
                mean = data[f"{prefix}{measure}"].astype("float64")
                n = np.where(b > 0, mean.fillna(0.0) * b, 0.0)
            else:
                n = _count(data, prefix, total, num).fillna(0.0)
            part = pd.DataFrame({"report_group": data["report_group"], "year": data["year"],
                                 "num": n, "base": b.fillna(0.0), "has": (b > 0).astype(int)})
            agg = part.groupby(["report_group", "year"], sort=True).sum().reset_index()
            agg = agg[agg["base"] > 0]
            rows.append(pd.DataFrame({
                "figure": FIGURE_NUMBERS[(measure, pop)], "population": pop, "measure": measure,
                "report_group": agg["report_group"], "year": agg["year"].astype(int),
                "value": agg["num"] / agg["base"], "n_persons": agg["base"].astype("int64"),
                "n_departments": agg["has"].astype("int64"),
            }))
    out = pd.concat(rows, ignore_index=True)
    order = {g: i for i, g in enumerate(REPORT_GROUPS)}
    return out.sort_values(["figure", "report_group", "year"],
                           key=lambda s: s.map(order) if s.name == "report_group" else s,
                           kind="stable").reset_index(drop=True)


def group_sizes(panel: pd.DataFrame) -> pd.DataFrame:
    """Departments and residents per report group and year (the N behind the figures)."""
    data = panel[panel["report_group"].notna()]
    return (data.groupby(["report_group", "year"])
            .agg(n_departments=("department_id", "nunique"), n_residents=("n_residents", "sum"))
            .reset_index())


def plot_figure(tidy: pd.DataFrame, figure: str) -> Figure:
    """One of the report's figures 7.1-7.12 from :func:`trends` output."""
    sub = tidy[tidy["figure"] == figure]
    if sub.empty:
        raise KeyError(f"no data for figure {figure}")
    measure, pop = sub["measure"].iloc[0], sub["population"].iloc[0]
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for group in REPORT_GROUPS:
        g = sub[sub["report_group"] == group]
        if g.empty:
            continue
        label = (f"{GROUP_LABELS[group]} ({int(g['n_departments'].max())} dep., "
                 f"{int(g['n_persons'].median()):,} persons/yr)")
        ax.plot(g["year"], g["value"], marker="o", label=label)
    ax.set_title(f"Figure {figure}: {MEASURES[measure][2]}\n{pop.replace('_', '-')}", fontsize=10)
    ax.set_xlabel("year")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def write_figures(tidy: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write every figure 7.1-7.12 as PNG (``figure_7_1.png``, ...) and the data behind them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for figure in sorted(tidy["figure"].unique(), key=lambda f: int(f.split(".")[1])):
        fig = plot_figure(tidy, figure)
        path = folder / f"figure_{figure.replace('.', '_')}.png"
        fig.savefig(path, dpi=110, metadata={"Software": None})
        paths.append(path)
    tidy.to_csv(folder / "report_trends.csv", index=False)
    return paths
