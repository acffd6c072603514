"""The follow-up study the 2015 report calls for, designed from the panel's evidence.

:func:`design` computes every number of the design: the outcome's noise model, the minimum
detectable effect (MDE) of the 2015 report's design (four binary groups, no adoption timing or
intensity), of the panel's staggered-adoption design and of follow-up designs with more
departments and years, the smallest follow-up reaching the target power at the effect of
interest, the departments to follow (strata of housing-market type x intensity of use, allocated
proportionally) and a simulation check of the analytic power with the primary estimator.
Rendering (Markdown, LaTeX, figure) lives in :mod:`impact.followup.render`.

Power is analytic where the estimator is linear in the outcome: the variance of ``sum(W * y)``
under the fitted noise model is exact (:meth:`impact.diagnostics.PowerDesign.analytic_sd`), and
power follows from the normal approximation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impact.diagnostics.power import (
    OutcomeModel,
    PowerDesign,
    PowerResult,
    power,
    power_design,
)
from impact.errors import EstimationError

#: The 2015 report's groups by use of the tools in 2006-2010 (``report_group``) that used each tool.
TOOL_GROUPS = {"flexible_letting": ("both", "flexible_only"),
               "municipal_referral": ("both", "referral_only")}
#: Columns of :attr:`FollowupDesign.by_subgroup`.
BY_SUBGROUP_COLUMNS = ["subgroup_variable", "stratum", "n_departments_panel", "n_treated_panel",
                       "mde_panel", "power_panel", "n_departments", "n_years",
                       "department_years", "mde", "power_at_effect", "reaches_target",
                       "equal_effects_p_value", "effects_differ", "note"]


@dataclass(frozen=True)
class FollowupDesign:
    """The generated follow-up study design (every number computed from the panel).

    Attributes
    ----------
    settings
        ``outcome, tool, effect_of_interest, target_power, alpha, effect_lag, report_window,
        n_reps, seed``.
    model
        The outcome's noise model (:class:`impact.diagnostics.OutcomeModel`).
    comparison
        One row per design: ``design, n_departments, n_years, department_years, estimator,
        sd, expected_share, mde, power_at_effect`` (``expected_share``: the expected estimate
        per unit of effect, i.e. how much of the effect the contrast carries).
    grid
        Follow-up designs: ``department_factor, n_departments, extra_years, n_years,
        department_years, mde, power_at_effect, reaches_target``.
    recommended
        The grid row with the fewest department-years reaching the target power (the largest
        design when none does; ``reaches_target`` says which).
    strata
        Departments to follow: ``market_type, intensity, n_departments_panel, share,
        mean_intensity, n_to_follow``.
    curves
        Analytic power curves: ``design, effect, power``.
    simulated
        Simulated power of the primary estimator on the panel's design beside the analytic
        power of the closed-form estimator: ``effect, power, mc_se, analytic_power,
        mean_estimate, mean_se, sd_estimate``.
    records
        What the follow-up records: ``item, unit, detail``.
    estimators
        The pre-registered estimators and diagnostics: ``step, method, settings``.
    by_subgroup
        The design within each subgroup stratum (empty unless ``subgroups`` were given):
        ``subgroup_variable, stratum, n_departments_panel, n_treated_panel, mde_panel,
        power_panel`` (the panel's design inside the stratum, its own noise model),
        ``n_departments, n_years, department_years, mde, power_at_effect, reaches_target``
        (the smallest follow-up of the stratum reaching the target power), and
        ``equal_effects_p_value, effects_differ, note`` (the subgroup test of equal effects;
        where it rejects at ``alpha`` every stratum needs its own power).
    subgroup_labels
        The stratum of each department per subgroup variable (Series by ``department_id``).
    """

    settings: dict[str, Any]
    model: OutcomeModel
    comparison: pd.DataFrame
    grid: pd.DataFrame
    recommended: pd.Series
    strata: pd.DataFrame
    curves: pd.DataFrame
    simulated: pd.DataFrame
    records: pd.DataFrame
    estimators: pd.DataFrame
    power_result: PowerResult | None = field(default=None, repr=False)
    by_subgroup: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=BY_SUBGROUP_COLUMNS))
    subgroup_labels: dict[str, pd.Series] = field(default_factory=dict, repr=False)

    @property
    def markdown(self) -> str:
        """The design as a Markdown document."""
        from impact.followup.render import to_markdown

        return to_markdown(self)

    @property
    def latex(self) -> str:
        """The design as a LaTeX document body (booktabs tables, the figure included)."""
        from impact.followup.render import to_latex

        return to_latex(self)

    def plot(self, ax: Any = None) -> Any:
        """Power curves of the designs (matplotlib figure)."""
        from impact.followup.render import plot_power_curves

        return plot_power_curves(self, ax=ax)

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``design.md``, ``design.tex``, the tables as CSV and ``power_curve.png``.

        Returns
        -------
        dict
            File role -> path.
        """
        from impact.followup.render import write

        return write(self, Path(folder))


def _report_design_weights(design: PowerDesign, groups: pd.Series, tool: str,
                           window: tuple[int, int]) -> np.ndarray:
    """Linear weights of the 2015 contrast: (mean during the window - mean before it) of the
    departments in the tool's report groups minus the same for the other supported groups."""
    years = design.layout.years
    pre = years < window[0]
    post = (years >= window[0]) & (years <= window[1])
    if not pre.any() or not post.any():
        raise EstimationError(f"followup: the panel's years {years[0]}-{years[-1]} do not cover "
                              f"years before and in the report window {window}")
    used = groups.isin(TOOL_GROUPS[tool]).to_numpy()
    other = (groups.notna() & ~groups.isin(TOOL_GROUPS[tool])).to_numpy()
    if used.sum() == 0 or other.sum() == 0:
        raise EstimationError("followup: report_group needs departments with and without the tool")
    change = post / post.sum() - pre / pre.sum()
    w = np.zeros((design.layout.n, years.size))
    w[used] = change / used.sum()
    w[other] = -change / other.sum()
    return w


def _department_table(panel: pd.DataFrame, design: PowerDesign, tool: str) -> pd.DataFrame:
    """Per department of the design: report group, market type and intensity of use."""
    ids = design.layout.department_id
    frame = panel[panel["department_id"].isin(ids)]
    first = frame.groupby("department_id").first().reindex(ids)
    cohort = design.layout.cohort
    col = f"intensity_{tool}"
    if col in frame:
        in_use = frame[(frame[f"cohort_{tool}"] > 0) & (frame["year"] >= frame[f"cohort_{tool}"])]
        intensity = in_use.groupby("department_id")[col].mean().reindex(ids)
    else:
        intensity = pd.Series(np.nan, index=ids)
    out = pd.DataFrame({
        "department_id": ids,
        "report_group": first["report_group"].to_numpy() if "report_group" in first else None,
        "market_type": first["market_type"].astype("string").fillna("unknown").to_numpy()
        if "market_type" in first else "all",
        "adopted": cohort > 0,
        "mean_intensity": intensity.to_numpy(dtype=float),
    })
    adopters = out["adopted"] & out["mean_intensity"].notna()
    median = float(out.loc[adopters, "mean_intensity"].median()) if adopters.any() else np.nan
    out["intensity"] = np.where(~out["adopted"], "not adopted",
                                np.where(out["mean_intensity"] > median, "high", "low"))
    out.attrs["median_intensity"] = median
    return out


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Proportional allocation of ``total`` to strata (largest remainder, ties by order)."""
    exact = counts / counts.sum() * total
    base = np.floor(exact).astype(int)
    rest = total - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rest]] += 1
    return base


def _strata(departments: pd.DataFrame, n_follow: int) -> pd.DataFrame:
    tab = (departments.groupby(["market_type", "intensity"], sort=True)
           .agg(n_departments_panel=("department_id", "size"),
                mean_intensity=("mean_intensity", "mean"))
           .reset_index())
    tab["share"] = tab["n_departments_panel"] / tab["n_departments_panel"].sum()
    tab["n_to_follow"] = _allocate(tab["n_departments_panel"].to_numpy(float), int(n_follow))
    return tab[["market_type", "intensity", "n_departments_panel", "share", "mean_intensity",
                "n_to_follow"]]


def _records(panel: pd.DataFrame, tool: str) -> pd.DataFrame:
    tools = sorted(c.removeprefix("cohort_") for c in panel.columns if c.startswith("cohort_"))
    channels = sorted(c.removeprefix("intensity_") for c in panel.columns
                      if c.startswith("intensity_"))
    rows = []
    for t in tools:
        how = ("share of the year's lettings let through the tool" if t in channels
               else "whether in force and for how many dwellings")
        rows.append({"item": f"intensity of {t}" + (" (the tool of interest)" if t == tool
                                                    else ""),
                     "unit": "department x year",
                     "detail": f"{how}; agreed share, start and end of each agreement"})
    rows.append({"item": "letting channel of every new tenant", "unit": "letting",
                 "detail": "one of: " + ", ".join(channels) + "; person number of the tenant"})
    rows.append({"item": "composition of residents and movers", "unit": "department x year",
                 "detail": "the panel's stock and mover measures (1 January status)"})
    return pd.DataFrame(rows)


def _estimators(settings: dict[str, Any]) -> pd.DataFrame:
    a = settings["alpha"]
    lag = settings["effect_lag"]
    return pd.DataFrame([
        {"step": "primary estimate", "method": "Callaway-Sant'Anna ATT(g,t), simple aggregate",
         "settings": f"doubly robust, never-treated controls, varying base period, "
                     f"alpha = {a}, effect expected from adoption + {lag} year(s)"},
        {"step": "dynamics", "method": "event-study aggregation of ATT(g,t)",
         "settings": "all event times; uniform bands from the multiplier bootstrap"},
        {"step": "intensity", "method": "dose response (Callaway, Goodman-Bacon, Sant'Anna 2024)",
         "settings": f"intensity of {settings['tool']} (share of lettings), staggered design"},
        {"step": "pre-trends", "method": "joint Wald pre-test and its power (Roth 2022)",
         "settings": f"power against a linear violation at power {settings['target_power']}"},
        {"step": "sensitivity", "method": "HonestDiD (Rambachan & Roth 2023)",
         "settings": "relative magnitudes and smoothness; breakdown values"},
        {"step": "placebos", "method": "in time, in space, on outcomes the tools cannot move",
         "settings": "adoption moved earlier; permuted within municipality; share aged 65+"},
        {"step": "power", "method": "simulation on the study's real design",
         "settings": f"MDE at power {settings['target_power']}; size under the fitted noise"},
    ])


def _smallest_design(base: PowerDesign, *, effect_of_interest: float, target_power: float,
                     alpha: float, department_factors: Sequence[float],
                     extra_years: Sequence[int], seed: int) -> dict[str, Any]:
    """The grid design with the fewest department-years reaching the target power (the
    largest when none does)."""
    rows = []
    for f in department_factors:
        for e in extra_years:
            d = base.resized(float(f), extra_years=int(e), seed=seed)
            w = d.weights()
            pw = d.analytic_power([effect_of_interest], alpha=alpha, weights=w)
            rows.append({"n_departments": d.layout.n, "n_years": d.layout.n_years,
                         "department_years": d.layout.n * d.layout.n_years,
                         "mde": d.analytic_mde(target=target_power, alpha=alpha, weights=w),
                         "power_at_effect": float(pw["power"].iloc[0])})
    grid = pd.DataFrame(rows)
    grid["reaches_target"] = grid["power_at_effect"] >= target_power
    ok = grid[grid["reaches_target"]]
    pick = (ok.sort_values(["department_years", "n_years"], kind="stable").iloc[0] if len(ok)
            else grid.sort_values(["department_years", "n_years"], kind="stable").iloc[-1])
    return pick.to_dict()


def _by_subgroup(panel: pd.DataFrame, subgroups: Mapping[str, pd.Series],
                 equal_effects: Mapping[str, float], *, outcome: str, tool: str,
                 effect_of_interest: float, target_power: float, alpha: float, effect_lag: int,
                 department_factors: Sequence[float], extra_years: Sequence[int], seed: int
                 ) -> pd.DataFrame:
    """The design inside each subgroup stratum (see :attr:`FollowupDesign.by_subgroup`)."""
    rows = []
    for variable, labels in subgroups.items():
        p = equal_effects.get(variable, np.nan)
        p = float(p) if p is not None else np.nan
        differ = bool(np.isfinite(p) and p < alpha)
        lab = panel["department_id"].map(labels)
        for stratum in sorted(pd.unique(lab.dropna()).astype(str)):
            sub = panel[(lab.astype(object) == stratum).to_numpy()]
            row: dict[str, Any] = {"subgroup_variable": variable, "stratum": stratum,
                                   "equal_effects_p_value": p, "effects_differ": differ,
                                   "note": ""}
            try:
                base = power_design(sub, outcome=outcome, tool=tool, effect_lag=effect_lag)
                w = base.weights()
                pw = base.analytic_power([effect_of_interest], alpha=alpha, weights=w)
                row |= {"n_departments_panel": base.layout.n,
                        "n_treated_panel": int((base.layout.cohort > 0).sum()),
                        "mde_panel": base.analytic_mde(target=target_power, alpha=alpha,
                                                       weights=w),
                        "power_panel": float(pw["power"].iloc[0])}
                row |= _smallest_design(base, effect_of_interest=effect_of_interest,
                                        target_power=target_power, alpha=alpha,
                                        department_factors=department_factors,
                                        extra_years=extra_years, seed=seed)
            except EstimationError as err:
                row["note"] = f"not designed: {err}"
            if not np.isfinite(p):
                row["note"] = (row["note"] + "; " if row["note"] else "") + \
                    "no test of equal effects"
            rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=BY_SUBGROUP_COLUMNS)
    for col in ("n_departments_panel", "n_treated_panel", "n_departments", "n_years",
                "department_years"):
        out[col] = out[col].astype("Int64")
    out["reaches_target"] = out["reaches_target"].astype("boolean")
    return out


def design(
    panel: pd.DataFrame,
    *,
    outcome: str = "share_employed",
    tool: str = "flexible_letting",
    effect_of_interest: float = 0.02,
    target_power: float = 0.8,
    alpha: float = 0.05,
    effect_lag: int = 1,
    report_window: tuple[int, int] = (2006, 2010),
    department_factors: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
    extra_years: Sequence[int] = (0, 2, 4, 6),
    effects: Sequence[float] | None = None,
    n_reps: int = 200,
    estimator: Any = "att_gt",
    seed: int = 0,
    progress: bool = False,
    subgroups: Mapping[str, pd.Series] | None = None,
    equal_effects: Mapping[str, float] | None = None,
) -> FollowupDesign:
    """Design the follow-up study from a department-year panel.

    Parameters
    ----------
    panel
        ``Panel.frame`` (with ``report_group``, ``market_type`` and ``intensity_<tool>`` where
        available).
    outcome, tool
        The outcome and the letting tool of interest.
    effect_of_interest
        The effect of policy interest on the outcome's scale (0.02 = +2 percentage points).
    target_power, alpha
        Power to reach and level of the two-sided test.
    effect_lag
        Years between adoption and the first year the effect is in the outcome.
    report_window
        Years of use that define the 2015 report's groups (the 2015 contrast compares them with
        the years before).
    department_factors, extra_years
        Follow-up designs: the panel's departments times each factor, followed for each number
        of years beyond the panel's last year.
    effects
        Effects of the power curves (default: 0 to 2 x the effect of interest).
    n_reps, estimator, seed, progress
        The simulation check on the panel's design (:func:`impact.diagnostics.power`); 0 skips it.
    subgroups
        Subgroup variable -> the stratum of each department (Series indexed by
        ``department_id``, e.g. :func:`impact.workflow.subgroup_outputs.department_labels`): adds
        :attr:`FollowupDesign.by_subgroup`, the design inside each stratum with its own noise
        model, over the same grid of departments and years.
    equal_effects
        Subgroup variable -> p-value of the test that the effects are equal across its strata
        (:func:`impact.subgroups.by_subgroup`); where it is below ``alpha`` the effects differ and
        every stratum needs its own power (``effects_differ``). Both designs are always reported.

    Returns
    -------
    FollowupDesign
    """
    if not 0 < target_power < 1 or not 0 < alpha < 1:
        raise EstimationError("followup: target_power and alpha must be in (0, 1)")
    if not effect_of_interest > 0:
        raise EstimationError(f"followup: effect_of_interest must be > 0, got "
                              f"{effect_of_interest!r}")
    if tool not in TOOL_GROUPS:
        raise EstimationError(f"followup: tool must be one of {sorted(TOOL_GROUPS)}, got {tool!r}")
    if "report_group" not in panel:
        raise EstimationError("followup: the panel lacks report_group (the 2015 groups)")
    settings = {"outcome": outcome, "tool": tool, "effect_of_interest": float(effect_of_interest),
                "target_power": float(target_power), "alpha": float(alpha),
                "effect_lag": int(effect_lag), "report_window": tuple(report_window),
                "n_reps": int(n_reps), "seed": seed}
    base = power_design(panel, outcome=outcome, tool=tool, effect_lag=effect_lag)
    departments = _department_table(panel, base, tool)
    grid_effects = np.asarray(effects if effects is not None
                              else np.linspace(0, 2 * effect_of_interest, 21), dtype=float)

    def summary(name: str, d: PowerDesign, w: np.ndarray, estimator_name: str) -> dict:
        pw = d.analytic_power([effect_of_interest], alpha=alpha, weights=w)
        n_dep = int((np.abs(w).sum(axis=1) > 0).sum())
        n_yr = int((np.abs(w).sum(axis=0) > 0).sum())
        return {"design": name, "n_departments": n_dep, "n_years": n_yr,
                "department_years": n_dep * n_yr,
                "estimator": estimator_name, "sd": float(pw["sd"].iloc[0]),
                "expected_share": float(pw["expected_estimate"].iloc[0] / effect_of_interest),
                "mde": d.analytic_mde(target=target_power, alpha=alpha, weights=w),
                "power_at_effect": float(pw["power"].iloc[0])}

    w_report = _report_design_weights(base, pd.Series(departments["report_group"]), tool,
                                      report_window)
    rows = [summary("2015 report: four groups, no timing or intensity", base, w_report,
                    "group means during vs before the window"),
            summary("panel: staggered adoption", base, base.weights(), "staggered DiD")]
    grid_rows = []
    designs: dict[tuple[float, int], PowerDesign] = {}
    for f in department_factors:
        for e in extra_years:
            d = base.resized(float(f), extra_years=int(e), seed=seed)
            designs[(float(f), int(e))] = d
            w = d.weights()
            pw = d.analytic_power([effect_of_interest], alpha=alpha, weights=w)
            grid_rows.append({"department_factor": float(f), "n_departments": d.layout.n,
                              "extra_years": int(e), "n_years": d.layout.n_years,
                              "department_years": d.layout.n * d.layout.n_years,
                              "mde": d.analytic_mde(target=target_power, alpha=alpha, weights=w),
                              "power_at_effect": float(pw["power"].iloc[0])})
    grid = pd.DataFrame(grid_rows)
    grid["reaches_target"] = grid["power_at_effect"] >= target_power
    ok = grid[grid["reaches_target"]]
    pick = (ok.sort_values(["department_years", "n_years"]).iloc[0] if len(ok)
            else grid.sort_values(["department_years", "n_years"]).iloc[-1])
    follow = designs[(float(pick["department_factor"]), int(pick["extra_years"]))]
    rows.append(summary("follow-up (recommended)", follow, follow.weights(), "staggered DiD"))
    comparison = pd.DataFrame(rows)

    curves = []
    for name, d, w in [(rows[0]["design"], base, w_report), (rows[1]["design"], base, None),
                       (rows[2]["design"], follow, None)]:
        c = d.analytic_power(grid_effects, alpha=alpha, weights=w)
        curves.append(pd.DataFrame({"design": name, "effect": c["effect"],
                                    "power": c["power"]}))
    curves_df = pd.concat(curves, ignore_index=True)

    simulated = pd.DataFrame(columns=["effect", "power", "mc_se", "analytic_power",
                                      "mean_estimate", "mean_se", "sd_estimate"])
    result = None
    if n_reps > 0:
        sim_effects = [0.0, effect_of_interest / 2, effect_of_interest, 1.5 * effect_of_interest]
        result = power(panel, outcome=outcome, tool=tool, effects=sim_effects, n_reps=n_reps,
                       alpha=alpha, estimator=estimator, seed=seed, progress=progress,
                       effect_lag=effect_lag)
        analytic = base.analytic_power(sim_effects, alpha=alpha)["power"].to_numpy()
        simulated = result.table.assign(analytic_power=analytic)[list(simulated.columns)]

    strata = _strata(departments, int(pick["n_departments"]))
    strata.attrs["median_intensity"] = departments.attrs["median_intensity"]
    extra: dict[str, Any] = {}
    if subgroups:
        extra["by_subgroup"] = _by_subgroup(
            panel, subgroups, equal_effects or {}, outcome=outcome, tool=tool,
            effect_of_interest=effect_of_interest, target_power=target_power, alpha=alpha,
            effect_lag=effect_lag, department_factors=department_factors,
            extra_years=extra_years, seed=seed)
        extra["subgroup_labels"] = dict(subgroups)
    return FollowupDesign(settings=settings, model=base.model, comparison=comparison,
                          grid=grid, recommended=pick, strata=strata, curves=curves_df,
                          simulated=simulated, records=_records(panel, tool),
                          estimators=_estimators(settings), power_result=result, **extra)
