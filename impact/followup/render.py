"""Markdown, LaTeX, CSV and the power-curve figure of a :class:`FollowupDesign`.

Both documents are rendered from the same tables with the same number formats
(:data:`FORMATS`), so every number in them is a cell of a computed table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from impact.followup.study_design import FollowupDesign

#: Number format of each column (columns not listed are shown as text).
FORMATS: dict[str, str] = {
    "n_departments": "{:d}", "n_years": "{:d}", "department_years": "{:d}",
    "extra_years": "{:d}", "n_departments_panel": "{:d}", "n_to_follow": "{:d}",
    "n_pairs": "{:.0f}", "n_reps": "{:d}",
    "department_factor": "{:.2f}", "share": "{:.3f}", "mean_intensity": "{:.3f}",
    "sd": "{:.4f}", "expected_share": "{:.3f}", "mde": "{:.4f}", "effect": "{:.4f}",
    "power": "{:.3f}", "power_at_effect": "{:.3f}", "analytic_power": "{:.3f}",
    "mc_se": "{:.3f}", "mean_estimate": "{:.4f}", "mean_se": "{:.4f}", "sd_estimate": "{:.4f}",
    "value": "{:.4g}", "sample": "{:.4g}", "fitted": "{:.4g}",
    "n_treated_panel": "{:d}", "mde_panel": "{:.4f}", "power_panel": "{:.3f}",
    "equal_effects_p_value": "{:.3g}",
}

#: The tables of the documents: attribute -> (title, columns).
TABLES: dict[str, tuple[str, list[str]]] = {
    "records": ("What to record", ["item", "unit", "detail"]),
    "comparison": ("Minimum detectable effects: the 2015 design beside the follow-up",
                   ["design", "n_departments", "n_years", "estimator", "sd", "expected_share",
                    "mde", "power_at_effect"]),
    "grid": ("Follow-up designs: departments and years",
             ["n_departments", "n_years", "department_years", "mde", "power_at_effect"]),
    "strata": ("Which departments to follow",
               ["market_type", "intensity", "n_departments_panel", "share", "mean_intensity",
                "n_to_follow"]),
    "by_subgroup": ("Power and sample size by subgroup stratum",
                    ["subgroup_variable", "stratum", "n_departments_panel", "n_treated_panel",
                     "mde_panel", "power_panel", "n_departments", "n_years", "mde",
                     "power_at_effect", "reaches_target", "equal_effects_p_value",
                     "effects_differ"]),
    "estimators": ("Pre-registered estimators and diagnostics", ["step", "method", "settings"]),
    "model_table": ("The outcome's noise model", ["parameter", "value"]),
    "moments": ("Moments matched by the noise model", ["moment", "sample", "fitted",
                                                        "n_pairs"]),
    "simulated": ("Simulation check: the primary estimator on the panel's design",
                  ["effect", "power", "mc_se", "analytic_power", "mean_estimate", "mean_se",
                   "sd_estimate"]),
}


def fmt(value: Any, column: str) -> str:
    """One cell as text, in the column's format."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if column in FORMATS and value is not None and not (isinstance(value, float)
                                                        and np.isnan(value)):
        spec = FORMATS[column]
        return spec.format(int(value) if spec == "{:d}" else float(value))
    if isinstance(value, float) and np.isnan(value):
        return "--"
    return str(value)


def tables(d: FollowupDesign) -> dict[str, pd.DataFrame]:
    """The design's tables as DataFrames (the ones the documents show and ``write`` saves)."""
    out = {"records": d.records, "comparison": d.comparison, "grid": d.grid,
           "strata": d.strata}
    if len(d.by_subgroup):
        out["by_subgroup"] = d.by_subgroup
    return out | {"estimators": d.estimators, "model_table": d.model.tidy(),
                  "moments": d.model.moments, "simulated": d.simulated}


def _numbers(d: FollowupDesign) -> dict[str, str]:
    """The numbers quoted in the running text, formatted from the tables."""
    s = d.settings
    comp = d.comparison.set_index("design")
    report = comp.iloc[0]
    follow = comp.iloc[-1]
    eff = s["effect_of_interest"]
    pp = f" ({100 * eff:.1f} percentage points)" if "share" in s["outcome"] else ""
    size = d.simulated.loc[d.simulated["effect"] == 0.0] if len(d.simulated) else d.simulated
    out = {
        "effect": fmt(eff, "effect") + pp,
        "target": f"{s['target_power']:g}",
        "alpha": f"{s['alpha']:g}",
        "lag": f"{s['effect_lag']:d}",
        "window": f"{s['report_window'][0]}-{s['report_window'][1]}",
        "n_panel": fmt(d.model.n_departments, "n_departments"),
        "years_panel": fmt(d.model.n_years, "n_years"),
        "mde_report": fmt(report["mde"], "mde"),
        "mde_follow": fmt(follow["mde"], "mde"),
        "ratio": f"{report['mde'] / follow['mde']:.1f}",
        "n_follow": fmt(d.recommended["n_departments"], "n_departments"),
        "years_follow": fmt(d.recommended["n_years"], "n_years"),
        "power_follow": fmt(d.recommended["power_at_effect"], "power"),
        "reaches": "reaches" if bool(d.recommended["reaches_target"]) else "does not reach",
        "median_intensity": fmt(d.strata.attrs.get("median_intensity", np.nan), "share"),
    }
    if len(size):
        out["size"] = fmt(size["power"].iloc[0], "power")
        out["size_se"] = fmt(size["mc_se"].iloc[0], "mc_se")
        out["n_reps"] = f"{s['n_reps']:d}"
    return out


def _paragraphs(d: FollowupDesign, n: dict[str, str]) -> dict[str, str]:
    s = d.settings
    text = {
        "intro": (f"Generated by `impact.followup.design` from a panel of {n['n_panel']} "
                  f"departments over {n['years_panel']} years. Tool: {s['tool']}; outcome: "
                  f"{s['outcome']}; effect of policy interest {n['effect']}, expected from "
                  f"{n['lag']} year(s) after adoption; power {n['target']} in a two-sided test "
                  f"at level {n['alpha']}. Every number is computed from the panel."),
        "records": ("The follow-up records, for every department and year, how intensively "
                    "each tool is used, and for every new tenant the channel of the letting, "
                    "so that effects can be estimated by intensity of use and not only by "
                    "adoption."),
        "comparison": (f"The 2015 report's design (groups by use in {n['window']}, no timing or "
                       f"intensity) detects with power {n['target']} only effects of "
                       f"{n['mde_report']} or more; the recommended follow-up detects "
                       f"{n['mde_follow']}, {n['ratio']} times smaller. `expected_share` is the "
                       "part of the effect the contrast carries (the 2015 groups mix "
                       "department-years before and after adoption). Analytic power of the "
                       "linear estimator under the fitted noise model."),
        "grid": (f"The smallest design with power {n['target']} at the effect of interest: "
                 f"{n['n_follow']} departments followed for {n['years_follow']} years (power "
                 f"{n['power_follow']}; the grid {n['reaches']} the target). Added departments "
                 "lie in the same municipalities (they share their shocks), added years follow "
                 "the panel's last year."),
        "strata": ("Departments are followed in strata of housing-market type and intensity of "
                   f"use (adopters split at the median mean intensity, {n['median_intensity']}),"
                   " allocated in proportion to the panel."),
        "by_subgroup": (f"The same design inside each subgroup stratum (its own departments, "
                        f"noise model and comparison group): the panel's minimum detectable "
                        f"effect there, and the smallest follow-up of the stratum with power "
                        f"{n['target']} at the effect of interest. Where the test that the "
                        f"effects are equal across the strata rejects at level {n['alpha']} "
                        "(effects_differ), the effects differ and each stratum must be followed "
                        "with its own power: the follow-up is the sum of the strata's "
                        "designs. Elsewhere the pooled design above applies and the strata are "
                        "shown for reference."),
        "estimators": "Fixed before the data are seen:",
        "model_table": ("Two-way fixed-effects residuals decomposed by the method of moments "
                        "into municipality-year, plan-year and department AR(1) components "
                        "(`icc_*`: the share of residual variance shared within municipality "
                        "and within plan)."),
        "moments": "",
        "simulated": "",
    }
    if "size" in n:
        text["simulated"] = (f"{n['n_reps']} replications per effect of the primary "
                             f"estimator with its own standard errors: rejection rate {n['size']} (Monte Carlo s.e. "
                             f"{n['size_se']}) at effect 0, against the nominal {n['alpha']}.")
    return text


def _md_table(df: pd.DataFrame, columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if c in FORMATS else "---" for c in columns) + "|"
    body = ["| " + " | ".join(fmt(r[c], c) for c in columns) + " |"
            for _, r in df[columns].iterrows()]
    return "\n".join([head, rule, *body])


def to_markdown(d: FollowupDesign) -> str:
    """The design as Markdown."""
    n = _numbers(d)
    text = _paragraphs(d, n)
    parts = [f"# Follow-up study design: {d.settings['tool']} and {d.settings['outcome']}", "",
             text["intro"], ""]
    for i, (key, df) in enumerate(tables(d).items(), start=1):
        if key == "simulated" and not len(df):
            continue
        title, cols = TABLES[key]
        parts += [f"## {i}. {title}", ""]
        if text[key]:
            parts += [text[key], ""]
        parts += [_md_table(df, cols), ""]
        if key == "comparison":
            parts += ["![Power curves](power_curve.png)", ""]
    return "\n".join(parts)


def _tex(s: str) -> str:
    for a, b in [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                 ("_", r"\_"), ("$", r"\$"), ("`", "")]:
        s = s.replace(a, b)
    return s


#: Widest row (characters) a table is set at its natural width; wider, its long text columns wrap.
TEX_ROW_CHARS = 110


def _tex_align(df: pd.DataFrame, columns: list[str]) -> str:
    """Column types: numbers right-aligned; where a row would run wider than the line, text
    columns of more than 30 characters wrap (``p{}`` widths in proportion to the square root of
    their longest cell)."""
    longest = {c: max([len(c), *(len(fmt(v, c)) for v in df[c])]) for c in columns}
    spec = {c: "r" if c in FORMATS else "l" for c in columns}
    wide = [c for c in columns if c not in FORMATS and longest[c] > 30]
    if sum(longest.values()) + 3 * len(columns) > TEX_ROW_CHARS and wide:
        # what the other columns and the column gaps take (about 80 characters a line at \small)
        free = max(0.3, 0.9 - sum(min(longest[c], 30) / 80 for c in columns if c not in wide)
                   - 0.02 * len(columns))
        weight = {c: longest[c] ** 0.5 for c in wide}  # a long cell wraps over more lines
        for c in wide:
            spec[c] = f"p{{{free * weight[c] / sum(weight.values()):.2f}\\linewidth}}"
    return "".join(spec[c] for c in columns)


def _split_spec(spec: str) -> list[str]:
    """``p{0.24\\linewidth}lr`` -> ``["p{0.24\\linewidth}", "l", "r"]``."""
    out, i = [], 0
    while i < len(spec):
        if spec[i] == "p":
            j = spec.index("}", i)
            out.append(spec[i:j + 1])
            i = j + 1
        else:
            out.append(spec[i])
            i += 1
    return out


def _tex_table(df: pd.DataFrame, columns: list[str], title: str) -> str:
    align = _tex_align(df, columns)
    lines = [r"\begin{table}[htbp]", r"\centering\small", rf"\caption{{{_tex(title)}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_tex(c) for c in columns) + r" \\", r"\midrule"]
    wrapped = [c for c, a in zip(columns, _split_spec(align), strict=True) if a.startswith("p")]
    end = r" \tabularnewline" if wrapped else r" \\"  # \\ is taken by \raggedright in a cell
    lines += [" & ".join((r"\raggedright " if c in wrapped else "") + _tex(fmt(r[c], c))
                         for c in columns) + end for _, r in df[columns].iterrows()]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def to_latex(d: FollowupDesign) -> str:
    """The design as a LaTeX fragment (needs booktabs and graphicx)."""
    n = _numbers(d)
    text = _paragraphs(d, n)
    parts = [rf"\section*{{Follow-up study design: {_tex(d.settings['tool'])} and "
             rf"{_tex(d.settings['outcome'])}}}", _tex(text["intro"]), ""]
    for key, df in tables(d).items():
        if key == "simulated" and not len(df):
            continue
        title, cols = TABLES[key]
        parts += [rf"\subsection*{{{_tex(title)}}}"]
        if text[key]:
            parts += [_tex(text[key])]
        parts += [_tex_table(df, cols, title), ""]
        if key == "comparison":
            parts += [r"\begin{figure}[htbp]\centering",
                      r"\includegraphics[width=0.8\textwidth]{power_curve.png}",
                      r"\caption{Power by effect size}\end{figure}", ""]
    return "\n".join(parts)


def plot_power_curves(d: FollowupDesign, ax: Any = None) -> Any:
    """Analytic power curves of the designs, the simulated points and the target."""
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = ax.figure
    for name, c in d.curves.groupby("design", sort=False):
        ax.plot(c["effect"], c["power"], label=name)
    if len(d.simulated):
        sim = d.simulated
        ax.errorbar(sim["effect"], sim["power"], yerr=1.96 * sim["mc_se"], fmt="o", color="k",
                    label="simulated: primary estimator on the panel", capsize=3)
    ax.axhline(d.settings["target_power"], color="grey", ls="--", lw=0.8)
    ax.axvline(d.settings["effect_of_interest"], color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"effect on {d.settings['outcome']}")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def write(d: FollowupDesign, folder: Path) -> dict[str, Path]:
    """Write the documents, the tables as CSV and the figure into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    writers: dict[str, Callable[[Path], None]] = {
        "design.md": lambda p: p.write_text(to_markdown(d), encoding="utf-8"),
        "design.tex": lambda p: p.write_text(to_latex(d), encoding="utf-8"),
    }
    for name, fn in writers.items():
        fn(folder / name)
        out[name] = folder / name
    for key, df in {**tables(d), "curves": d.curves}.items():
        path = folder / f"{key}.csv"
        df.to_csv(path, index=False)
        out[f"{key}.csv"] = path
    fig = plot_power_curves(d)
    path = folder / "power_curve.png"
    fig.savefig(path, dpi=150, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    out["power_curve.png"] = path
    return out
