"""What ``impact run`` offers for release about subgroups, letting channels and the Bayesian
effects by market: checked tables with the support of every row, and figures drawn from them.

Like :mod:`impact.outputs` (whose helpers it uses), every table carries the evidence of its rows,
computed when it is built; :func:`impact.report.release.write_released` checks and writes them.

- :func:`subgroup_table`: the primary specification by housing market and vulnerability
  (``private/tables/did_subgroups.csv``) as a model table. Support per row, inside the subgroup:
  treated departments (the estimator's), comparison departments (those that never adopted the
  tool), persons on each side (lower bounds, :func:`impact.outputs.persons_lower_bound`) and
  residual degrees of freedom = treated clusters - 1 (as the headline). The test of equal
  effects rests on every subgroup of its variable: it is blanked wherever one of them is.
- :func:`tenant_tables`: who is housed through each letting channel. The composition cells
  (year x market x channel, per measure) are released with the totals other tables repeat: per
  market and channel over the years (the contrasts' ``n_persons`` and ``value``), over both
  markets, and over the linked channels (how many in-movers could be linked). Every count,
  numerator and income sum of these cells is one additive system
  (:class:`~impact.report.disclosure.CellSystem`), protected at once by
  :func:`~impact.report.disclosure.protect_cells`; the contrasts against the waiting list are a
  model table whose rows are blanked wherever a total they show is hidden.
- :func:`implied_effects` and :func:`bayes_table`: the hierarchical model's pooled and per-group
  effects of exposure, as implied ATTs over each group's treated department-years, beside the
  truth of that estimand when simulated.
- :func:`followup_subgroup_table`: the follow-up design's strata by subgroup
  (:func:`impact.followup.design` with ``subgroups``), support per stratum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from impact.report.disclosure import CellSystem, cell_evidence
from impact.report.release import CellTable, LinkedTables, ModelTable, ReleaseFigure
from impact.workflow.outputs import (
    SUPPORT,
    _control_rows,
    _treated_rows,
    person_base,
    persons_lower_bound,
)

__all__ = [
    "bayes_figure",
    "bayes_table",
    "department_labels",
    "followup_subgroup_table",
    "implied_effects",
    "subgroup_figures",
    "subgroup_table",
    "tenant_figures",
    "tenant_tables",
]

#: Columns of the subgroup table blanked in a suppressed row.
SUBGROUP_VALUES = ("estimate", "se", "lower", "upper", "pretest_p_value", "truth")


def department_labels(prepared: pd.DataFrame, subgroups: Sequence[str]) -> dict[str, pd.Series]:
    """Each department's subgroup (:func:`impact.subgroups.subgroup_labels`), per variable.

    Returns
    -------
    dict
        Subgroup variable -> Series indexed by ``department_id`` (NaN = in no subgroup).
    """
    from impact.subgroups import subgroup_labels

    out = {}
    for var in subgroups:
        lab = pd.Series(subgroup_labels(prepared, var).to_numpy(),
                        index=prepared["department_id"].to_numpy())
        out[var] = lab.groupby(level=0, sort=True).first()
    return out


def _in_subgroup(panel: pd.DataFrame, labels: Mapping[str, pd.Series], variable: str,
                 subgroup: str) -> pd.DataFrame:
    """The panel rows of a subgroup's departments (all rows for ``subgroup == "all"``)."""
    if subgroup == "all":
        return panel
    lab = labels[variable]
    return panel[panel["department_id"].map(lab).astype(object) == subgroup]


def _clusters(rows: pd.DataFrame) -> pd.Series:
    """The study's cluster of each row: its plan, or the department's own cluster."""
    plan = rows["plan_id"]
    return pd.Series(np.where(plan.isna(), "department:" + rows["department_id"].astype(str),
                              "plan:" + plan.astype(str)), index=rows.index)


# --- effects by subgroup --------------------------------------------------------------------------

def subgroup_table(by: pd.DataFrame, panel: pd.DataFrame, labels: Mapping[str, pd.Series]
                   ) -> ModelTable:
    """The effects by subgroup (:func:`impact.subgroups.headline`) as a model table with support.

    Parameters
    ----------
    by
        ``did_subgroups.csv``: one row per subgroup variable x subgroup x tool x outcome.
    panel
        The department-year panel.
    labels
        :func:`department_labels` of the subgroup variables in ``by``.
    """
    frame = by.reset_index(drop=True).copy()
    dep_c, per_t, per_c = [], [], []
    for row in frame.itertuples(index=False):
        sub = _in_subgroup(panel, labels, row.subgroup_variable, row.subgroup)
        base = person_base(row.outcome)
        control = _control_rows(sub, row.tool, row.outcome)
        dep_c.append(int(control["department_id"].nunique()))
        per_t.append(persons_lower_bound(_treated_rows(sub, row.tool, row.outcome), base))
        per_c.append(persons_lower_bound(control, base))
    frame[SUPPORT["residual_df"]] = frame["n_treated_clusters"].fillna(0) - 1
    frame[SUPPORT["departments"][0]] = frame["n_departments"].fillna(0)
    frame[SUPPORT["departments"][1]] = dep_c
    frame[SUPPORT["persons"][0]] = per_t
    frame[SUPPORT["persons"][1]] = per_c
    return ModelTable(
        name="did_subgroups", frame=frame, **SUPPORT,
        value_columns=tuple(c for c in SUBGROUP_VALUES if c in frame),
        linked=(("subgroup_variable", "tool", "outcome"), ("equal_effects_p_value",)),
        title="Primary specification by housing market and by vulnerability",
        notes=["Each subgroup has its own comparison departments (inside the subgroup); "
               "subgroup 'all' is the pooled sample. Intervals and the test of equal effects "
               "(equal_effects_p_value, Wald, chi-squared with subgroups - 1 df) come from one "
               "cluster bootstrap over plans shared by every subgroup.",
               "Vulnerability: terciles of the department's share employed in the panel's "
               "first year."])


def subgroup_figures(variables: Sequence[str], tools: Sequence[str],
                     outcome: str = "share_employed") -> list[ReleaseFigure]:
    """Forest plots of the checked subgroup table: one per subgroup variable, a panel per tool."""

    def draw(frame: pd.DataFrame, variable: str) -> Any:
        from matplotlib.figure import Figure

        part = frame[(frame["subgroup_variable"] == variable) & (frame["outcome"] == outcome)]
        fig = Figure(figsize=(4 * len(tools), 0.5 * part["subgroup"].nunique() + 1.8))
        axes = np.atleast_1d(fig.subplots(1, len(tools), sharey=True))
        for ax, tool in zip(axes, tools, strict=True):
            rows = part[part["tool"] == tool].reset_index(drop=True)
            pos = np.arange(len(rows))[::-1]
            ax.axvline(0, color="grey", lw=0.8)
            shown = rows["estimate"].notna().to_numpy()
            ax.errorbar(rows["estimate"][shown], pos[shown],
                        xerr=[(rows["estimate"] - rows["lower"])[shown],
                              (rows["upper"] - rows["estimate"])[shown]],
                        fmt="o", capsize=3, label="estimate, 95% interval")
            if "truth" in rows:
                ax.plot(rows["truth"][shown], pos[shown], "x", color="black", label="truth")
            ax.set_yticks(pos, [str(s).replace("_", " ") for s in rows["subgroup"]])
            ax.set_title(tool.replace("_", " "), fontsize=9)
            ax.set_xlabel(outcome)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Effects by {variable.replace('_', ' ')} (imputation, plan clusters)",
                     fontsize=9)
        fig.tight_layout()
        return fig

    return [ReleaseFigure(f"did_subgroups_{variable}_{outcome}", "did_subgroups",
                          lambda frame, variable=variable: draw(frame, variable))
            for variable in variables]


# --- tenant composition by letting channel --------------------------------------------------------

SHARE_MEASURES = ("share_qualifying_edu", "share_employed", "share_non_western")
INCOME = "mean_household_income"
ALL = "all"
LINKED = "linked"
#: The released columns of the composition tables.
COMPOSITION_COLUMNS = ["year", "market_type", "channel", "measure", "value", "n_persons",
                       "n_departments"]
CONTRAST_VALUES = ("value", "reference_value", "difference", "se", "lower", "upper", "n_persons",
                   "n_persons_reference", "n_departments", "n_departments_reference")


def _level(micro: pd.DataFrame, by: list[str], measure: str, fill: dict[str, str]
           ) -> pd.DataFrame:
    """The cells of one level (interior or a total) of one measure, with evidence and sums."""
    share = measure != INCOME
    kind = {"indicator": measure} if share else {"value": measure}
    key = by if by else ["_one"]
    micro = micro.assign(_one=ALL) if not by else micro
    ev = cell_evidence(micro, key, **kind)
    g = micro.groupby(key, sort=True, observed=True)
    ev["count"] = g.size().to_numpy(dtype=float)
    # what adds up exactly: numerators are counts, income sums are taken in whole DKK (sums of
    # integers are exact in floating point, so the totals are exactly the sums of their parts)
    ev["sum"] = micro[measure].round().groupby([micro[k] for k in key], sort=True,
                                               observed=True).sum().to_numpy(dtype=float)
    ev["value"] = g[measure].mean().to_numpy(dtype=float)
    if not by:
        ev = ev.drop(columns="_one")
    for col, label in fill.items():
        ev[col] = label
    ev["measure"] = measure
    return ev


def _tenant_cells(movers: pd.DataFrame) -> pd.DataFrame:
    """Every released composition cell (interior and totals), with its evidence and sums."""
    from impact.channels import UNLINKED

    parts = []
    keys = ["person_id", "department_id", "year", "market_type", "channel"]
    for measure in (*SHARE_MEASURES, INCOME):
        micro = movers.loc[movers[measure].notna(), [*keys, measure]]
        linked = micro[micro["channel"] != UNLINKED]
        levels = [("cell", micro, ["year", "market_type", "channel"], {}),
                  ("years", micro, ["market_type", "channel"], {"year": ALL}),
                  ("markets", micro, ["channel"], {"year": ALL, "market_type": ALL}),
                  ("linked", linked, ["market_type"], {"year": ALL, "channel": LINKED}),
                  ("linked_all", linked, [], {"year": ALL, "market_type": ALL,
                                              "channel": LINKED})]
        for level, data, by, fill in levels:
            if len(data):
                parts.append(_level(data, by, measure, fill).assign(level=level))
    cells = pd.concat(parts, ignore_index=True)
    cells["year"] = cells["year"].astype(object)
    cells["market_type"] = cells["market_type"].astype(str)
    cells["channel"] = cells["channel"].astype(str)
    cells["n_departments"] = cells["n_departments"].astype(int)
    return cells


def _tenant_system(cells: pd.DataFrame) -> CellSystem:
    """The additive system of the composition cells (one unit per cell)."""
    from impact.channels import UNLINKED

    units = cells.copy()
    units["kind"] = np.where(units["measure"] == INCOME, "magnitude", "share")
    units["margin"] = units["level"] != "cell"
    units["label"] = [f"({r.year}, {r.market_type}, {r.channel}, {r.measure})"
                      for r in units.itertuples(index=False)]
    # share_employed and share_qualifying_edu show the count of the same persons (18-64 in the
    # labour force): their cells are hidden together
    base = units["measure"].replace({"share_qualifying_edu": "share_employed"})
    units["group"] = (units["level"] + "|" + base + "|" + units["year"].astype(str) + "|"
                      + units["market_type"].astype(str) + "|" + units["channel"].astype(str))
    var_rows: list[dict[str, Any]] = []
    index: dict[tuple[int, str], int] = {}
    for u, r in enumerate(units.itertuples(index=False)):
        roles = {"count": r.count}
        if r.measure == INCOME:
            roles["sum"] = r.sum
        else:
            roles["numerator"] = r.sum
            roles["complement"] = r.count - r.sum
        for role, value in roles.items():
            index[(u, role)] = len(var_rows)
            var_rows.append({"unit": u, "role": role, "value": float(value)})
    variables = pd.DataFrame(var_rows)
    eqs: list[tuple[tuple[int, ...], int]] = []
    pos = {(r.level, r.measure, str(r.year), r.market_type, r.channel): u
           for u, r in enumerate(units.itertuples(index=False))}

    def add(total: int | None, parts: list[int], measure: str) -> None:
        if total is None or not parts:
            return
        for role in (("count", "sum") if measure == INCOME
                     else ("count", "numerator", "complement")):
            eqs.append((tuple(index[(p, role)] for p in parts), index[(total, role)]))

    by_key = units.groupby(["level", "measure"], sort=False)
    for (level, measure), grp in by_key:
        if level == "cell":
            for (market, channel), g in grp.groupby(["market_type", "channel"], sort=True):
                add(pos.get(("years", measure, ALL, market, channel)), list(g.index), measure)
        elif level == "years":
            for channel, g in grp.groupby("channel", sort=True):
                add(pos.get(("markets", measure, ALL, ALL, channel)), list(g.index), measure)
            for market, g in grp[grp["channel"] != UNLINKED].groupby("market_type", sort=True):
                add(pos.get(("linked", measure, ALL, market, LINKED)), list(g.index), measure)
        elif level == "linked":
            add(pos.get(("linked_all", measure, ALL, ALL, LINKED)), list(grp.index), measure)
    if (units["measure"] != INCOME).any():  # numerator + complement = count, every share cell
        for u in np.flatnonzero((units["measure"] != INCOME).to_numpy()):
            eqs.append(((index[(u, "numerator")], index[(u, "complement")]), index[(u, "count")]))
    # share_employed and share_qualifying_edu count the same persons (18-64 in the labour force)
    same = [m for m in ("share_employed", "share_qualifying_edu") if m in set(units["measure"])]
    if len(same) == 2:
        for key, u in pos.items():
            if key[1] == same[0]:
                other = pos.get((key[0], same[1], *key[2:]))
                if other is not None:
                    eqs.append(((index[(u, "count")],), index[(other, "count")]))
    # the bases are nested: in-movers 18-64 in the labour force, and those with a household
    # income, are among all in-movers (share_non_western's base): count + slack == count
    # (the slack is never released)
    if "share_non_western" in set(units["measure"]):
        for key, u in pos.items():
            if key[1] not in ("share_employed", INCOME):
                continue
            outer = pos.get((key[0], "share_non_western", *key[2:]))
            if outer is None:
                continue
            inner, whole = index[(u, "count")], index[(outer, "count")]
            gap = float(var_rows[whole]["value"]) - float(var_rows[inner]["value"])
            var_rows.append({"unit": -1, "role": "count", "value": gap})
            eqs.append(((inner, len(var_rows) - 1), whole))
        variables = pd.DataFrame(var_rows)
    keep = ["n_persons", "n_departments", "total", "largest_1", "largest_2", "numerator", "kind",
            "margin", "label", "group"]
    return CellSystem(units=units[keep], variables=variables, equations=tuple(eqs))


def _contrast_support(movers: pd.DataFrame, contrasts: pd.DataFrame) -> pd.DataFrame:
    """Support of each contrast row: departments and persons of the channel and the waiting list
    (within department-years: those where both let), residual df = clusters - 1."""
    from impact.channels import REFERENCE, UNLINKED

    cols = ["person_id", "department_id", "year", "market_type", "channel"]
    linked = movers[movers["channel"] != UNLINKED]
    samples: dict[tuple[str, str], pd.DataFrame] = {}
    rows = []
    for r in contrasts.itertuples(index=False):
        if (r.market_type, r.measure) not in samples:
            sub = linked if r.market_type == ALL else \
                linked[linked["market_type"] == r.market_type]
            sub = sub.loc[sub[r.measure].notna(), cols]
            samples[(r.market_type, r.measure)] = sub.assign(
                cell=sub["department_id"].astype(np.int64) * 10_000 + sub["year"])
        sub = samples[(r.market_type, r.measure)]
        s = sub[sub["channel"].isin([r.channel, REFERENCE])]
        is_ref = (s["channel"] == REFERENCE).to_numpy()
        n_reference = int(s.loc[is_ref, "department_id"].nunique())
        if r.comparison == "within_department_year":
            cell = s["cell"].to_numpy()
            s = s[np.isin(cell, cell[is_ref]) & np.isin(cell, cell[~is_ref])]
        t, c = s[s["channel"] == r.channel], s[s["channel"] == REFERENCE]
        rows.append({"n_departments_reference": n_reference,
                     SUPPORT["departments"][0]: t["department_id"].nunique(),
                     SUPPORT["departments"][1]: c["department_id"].nunique(),
                     SUPPORT["persons"][0]: t["person_id"].nunique(),
                     SUPPORT["persons"][1]: c["person_id"].nunique()})
    out = pd.DataFrame(rows, index=contrasts.index)
    out[SUPPORT["residual_df"]] = contrasts["n_clusters"].to_numpy(dtype=float) - 1
    return out


def tenant_tables(composition: Any) -> LinkedTables:
    """Who is housed through each letting channel, as linked tables for release.

    Parameters
    ----------
    composition
        :class:`impact.channels.ChannelComposition` (its ``movers`` give the evidence).

    Returns
    -------
    LinkedTables
        Members ``tenant_composition_shares`` and ``tenant_composition_income`` (cells
        ``year, market_type, channel, measure, value, n_persons, n_departments``, with the totals
        ``year = "all"`` per market and channel, ``market_type = "all"``, and ``channel =
        "linked"`` over the linked channels; ``n_persons`` counts in-mover person-years) and
        ``tenant_channel_contrasts`` (each channel against the waiting list, as
        ``private/tables/tenant_channel_contrasts.csv`` plus ``n_departments_reference``).
    """
    from impact.channels import REFERENCE

    movers = composition.movers.astype({"market_type": "category", "channel": "category"})
    cells = _tenant_cells(movers)
    system = _tenant_system(cells)
    members, rows = [], {}
    for name, kind, sel in (("tenant_composition_shares", "share", cells["measure"] != INCOME),
                            ("tenant_composition_income", "magnitude",
                             cells["measure"] == INCOME)):
        part = cells[sel]
        frame = part.assign(n_persons=part["count"].astype(int))[COMPOSITION_COLUMNS]
        evidence = part[["n_persons", "n_departments", "total", "largest_1", "largest_2",
                         "numerator"]]
        members.append(CellTable(
            name=name, frame=frame.reset_index(drop=True),
            evidence=evidence.reset_index(drop=True), kind=kind, value_columns=("value",),
            title=("New tenants by letting channel: "
                   + ("shares" if kind == "share" else "household income (DKK, fixed prices)")),
            notes=["In-movers of year t by the channel of the letting of t-1 that housed their "
                   "household (unlinked: no such letting); n_persons counts in-mover "
                   "person-years, year 'all' pools the years, channel 'linked' the linked "
                   "channels. Same measure definitions as the panel."]))
        rows[name] = tuple((int(u),) for u in np.flatnonzero(sel.to_numpy()))
    unit = {(r.measure, str(r.year), r.market_type, r.channel): u
            for u, r in enumerate(cells.itertuples(index=False))}
    contrasts = composition.contrasts.reset_index(drop=True)
    support = _contrast_support(movers, contrasts)
    frame = pd.concat([contrasts, support], axis=1)
    front = [c for c in contrasts.columns if c not in ("n_clusters", "cluster")]
    frame = frame[[*front, "n_departments_reference", "n_clusters", "cluster",
                   *[c for c in support.columns if c != "n_departments_reference"]]]
    rows["tenant_channel_contrasts"] = tuple(
        tuple(u for u in (unit.get((r.measure, ALL, r.market_type, r.channel)),
                          unit.get((r.measure, ALL, r.market_type, REFERENCE))) if u is not None)
        for r in contrasts.itertuples(index=False))
    members.append(ModelTable(
        name="tenant_channel_contrasts", frame=frame, **SUPPORT, value_columns=CONTRAST_VALUES,
        title="New tenants by letting channel: each channel against the waiting list",
        notes=["Pooled over the years. raw: all tenants of the two channels; "
               "within_department_year: with department-year effects (tenants let through the "
               "channel and through the waiting list in the same department and year). "
               "Intervals cluster-robust over plans (t with clusters - 1 df)."]))
    return LinkedTables(name="tenant_composition", system=system, members=tuple(members),
                        rows=rows)


def tenant_figures(measure: str = "share_employed") -> list[ReleaseFigure]:
    """Figures of the checked tenant tables: composition over the years by channel and market
    (``measure`` and income) and the contrasts against the waiting list."""

    def composition(frame: pd.DataFrame, what: str) -> Any:
        from matplotlib.figure import Figure

        part = frame[(frame["measure"] == what) & (frame["year"].astype(str) != ALL)
                     & (frame["market_type"] != ALL)]
        markets = sorted(part["market_type"].unique())
        fig = Figure(figsize=(4.2 * max(len(markets), 1), 3.6))
        axes = np.atleast_1d(fig.subplots(1, max(len(markets), 1), sharey=True))
        for ax, market in zip(axes, markets, strict=False):
            m = part[part["market_type"] == market]
            for channel, g in m.groupby("channel", sort=True):
                g = g.assign(year=g["year"].astype(int)).sort_values("year")
                ax.plot(g["year"], g["value"], marker="o", ms=3, label=channel.replace("_", " "))
            ax.set_title(f"{market.replace('_', ' ')} market", fontsize=9)
            ax.set_xlabel("year of moving in")
        axes[0].set_ylabel(what)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"New tenants by letting channel: {what} (gaps: suppressed cells)",
                     fontsize=9)
        fig.tight_layout()
        return fig

    def contrasts(frame: pd.DataFrame) -> Any:
        from matplotlib.figure import Figure

        part = frame[(frame["measure"] == measure) & (frame["market_type"] != ALL)]
        fig = Figure(figsize=(9, 3.6))
        axes = fig.subplots(1, 2, sharey=True)
        channels = sorted(part["channel"].unique())
        markets = sorted(part["market_type"].unique())
        width = 0.8 / max(len(markets), 1)
        for ax, comparison in zip(axes, ("raw", "within_department_year"), strict=True):
            ax.axhline(0, color="grey", lw=0.8)
            c = part[part["comparison"] == comparison]
            for k, market in enumerate(markets):
                m = c[c["market_type"] == market].set_index("channel").reindex(channels)
                x = np.arange(len(channels)) + (k - (len(markets) - 1) / 2) * width
                shown = m["difference"].notna().to_numpy()
                ax.errorbar(x[shown], m["difference"][shown],
                            yerr=[(m["difference"] - m["lower"])[shown],
                                  (m["upper"] - m["difference"])[shown]],
                            fmt="o", capsize=3, label=market.replace("_", " "))
            ax.set_xticks(np.arange(len(channels)), [ch.replace("_", "\n") for ch in channels],
                          fontsize=7)
            ax.set_title(comparison.replace("_", " "), fontsize=9)
        axes[0].set_ylabel(f"{measure}: channel - waiting list")
        axes[0].legend(title="market", fontsize=7)
        fig.tight_layout()
        return fig

    return [ReleaseFigure(f"tenants_by_channel_{measure}", "tenant_composition_shares",
                          lambda frame: composition(frame, measure)),
            ReleaseFigure(f"tenants_by_channel_{INCOME}", "tenant_composition_income",
                          lambda frame: composition(frame, INCOME)),
            ReleaseFigure(f"tenant_contrasts_{measure}", "tenant_channel_contrasts",
                          contrasts)]


# --- Bayesian effects by group --------------------------------------------------------------------

IMPLIED = ("mean", "lower_90", "upper_90", "lower_95", "upper_95")


def implied_att_rows(data: pd.DataFrame, tool: str, onset_lag: int) -> pd.DataFrame:
    """The department-years of the implied ATTs: adopters of ``tool`` from its cohort plus
    ``onset_lag`` on (the primary estimate's treated department-years)."""
    cohort = data[f"cohort_{tool}"]
    return data[(cohort > 0) & (data["year"] >= cohort + onset_lag)]


def implied_effects(effects: pd.DataFrame, data: pd.DataFrame, treatment: str, effect_by: str,
                    *, truth: pd.DataFrame | None = None, outcome: str | None = None,
                    onset_lag: int = 1, effect_draws: Any = None) -> pd.DataFrame:
    """Implied ATTs of an exposure effect: pooled and per ``effect_by`` group, the same way.

    For ``treatment = exposure_<tool>``, a group's effect per unit of exposure times its mean
    exposure over its treated department-years (from the cohort plus ``onset_lag``) is the implied
    ATT over those department-years. The pooled row covers every treated department-year: with
    ``effect_draws`` it is, draw by draw, the mean over them of their own group's effect times
    their exposure (the department-year-weighted mean of the groups' implied ATTs, the quantity
    the pooled truth averages); without, the pooled effect (the mean of the effects' prior, which
    weights groups, not department-years) times the mean exposure. Truth (simulated): the mean
    tool-specific effect over the same department-years
    (:func:`impact.simulate.truth.effect_column`).

    Parameters
    ----------
    effects
        ``HierarchicalResult.effects`` (``group``: ``pooled`` and one row per group).
    data
        The panel the model was fitted on (with ``effect_by`` and ``cohort_<tool>``).
    treatment
        ``exposure_<tool>``.
    effect_by
        The grouping of the effects.
    truth, outcome
        The simulator's truth table and the outcome (both or neither).
    onset_lag
        ``[did.primary].onset_lag``: the first treated year is the cohort plus this lag.
    effect_draws
        Optional posterior draws of the group effects (``xarray.DataArray`` with dims ``chain``,
        ``draw`` and ``effect_group``, on the scale of ``effects``): the pooled row is then the
        department-year mean described above, summarised like ``effects``
        (:func:`impact.bayes.effects.summarise_draws`).

    Returns
    -------
    pandas.DataFrame
        ``group, effect_by, treatment, n_department_years, mean_exposure, implied_att_mean,
        implied_att_lower_90, implied_att_upper_90, implied_att_lower_95, implied_att_upper_95``
        and ``truth`` with a truth table; the pooled row first.
    """
    from impact.simulate.truth import effect_column

    tool = treatment.removeprefix("exposure_")
    treated = implied_att_rows(data, tool, onset_lag)
    pooled_att = None if effect_draws is None else _pooled_att(effect_draws, treated, treatment,
                                                               effect_by)
    out = []
    for r in effects.itertuples(index=False):
        rows = treated if r.group == "pooled" else \
            treated[treated[effect_by].astype(str) == str(r.group)]
        mean_exposure = float(rows[treatment].mean()) if len(rows) else np.nan
        row: dict[str, Any] = {"group": str(r.group), "effect_by": effect_by,
                               "treatment": treatment, "n_department_years": len(rows),
                               "mean_exposure": mean_exposure}
        for col in IMPLIED:
            row[f"implied_att_{col}"] = (float(pooled_att[col]) if r.group == "pooled"
                                         and pooled_att is not None
                                         else float(getattr(r, col)) * mean_exposure)
        if truth is not None and outcome is not None:
            col = effect_column(outcome, tool)
            m = rows[["department_id", "year"]].merge(
                truth[["department_id", "year", col]], on=["department_id", "year"], how="left",
                validate="one_to_one")
            row["truth"] = float(m[col].mean()) if len(m) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def _pooled_att(effect_draws: Any, treated: pd.DataFrame, treatment: str,
                effect_by: str) -> pd.Series:
    """Per draw, the mean over ``treated`` of its group's effect times its exposure, summarised.

    A treated department-year with exposure whose group has no effect draws is an error (it
    would silently count as 0).
    """
    from impact.bayes.effects import summarise_draws
    from impact.errors import EstimationError

    groups = pd.Index([str(g) for g in effect_draws["effect_group"].to_numpy()])
    exposure = treated[treatment].to_numpy(dtype=float)
    where = groups.get_indexer(treated[effect_by].astype(str))
    if ((where < 0) & (exposure != 0)).any():
        raise EstimationError("implied ATT: treated department-years with exposure in a group "
                              "without an effect")
    weight = np.bincount(where[where >= 0], weights=exposure[where >= 0],
                         minlength=len(groups)) / max(len(treated), 1)
    draws = (effect_draws * effect_draws["effect_group"].copy(data=weight)).sum("effect_group")
    return summarise_draws(draws, None, float("inf")).iloc[0]


def _set_support(frame: pd.DataFrame, sides: list[tuple[pd.DataFrame, pd.DataFrame]],
                 base: str | None) -> None:
    """Per row of ``frame`` the support of its (treated, comparison) department-years: residual
    df = treated clusters - 1 (-1 without treated rows), departments and persons on each side."""
    frame[SUPPORT["residual_df"]] = [_clusters(t).nunique() - 1 if len(t) else -1
                                     for t, _ in sides]
    for k in (0, 1):
        frame[SUPPORT["departments"][k]] = [int(side[k]["department_id"].nunique())
                                            for side in sides]
        frame[SUPPORT["persons"][k]] = [persons_lower_bound(side[k], base) for side in sides]


def bayes_table(implied: pd.DataFrame, effects: pd.DataFrame, data: pd.DataFrame,
                outcome: str, *, converged: bool, onset_lag: int = 1) -> ModelTable:
    """The implied ATTs (:func:`implied_effects`) with the effect per unit of exposure, as a
    model table with support per group.

    Support: treated departments (with treated department-years in the group), comparison
    departments (in the group, never adopting the tool), persons on each side (lower bounds on
    the outcome's base) and residual df = the group's treated clusters - 1. The ``pooled`` row's
    support is the whole sample's.
    """
    treatment = str(implied["treatment"].iloc[0])
    effect_by = str(implied["effect_by"].iloc[0])
    tool = treatment.removeprefix("exposure_")
    base = person_base(outcome)
    frame = implied.copy()
    eff = effects.assign(group=effects["group"].astype(str)).set_index("group")
    for col in ("mean", "lower_95", "upper_95"):
        frame[f"effect_{col}"] = frame["group"].map(eff[col]).to_numpy(dtype=float)
    frame.insert(3, "outcome", outcome)
    frame["converged"] = bool(converged)
    treated_all = implied_att_rows(data, tool, onset_lag)
    control_all = data[data[f"cohort_{tool}"].fillna(0) <= 0]
    sides = [(treated_all, control_all) if g == "pooled" else
             (treated_all[treated_all[effect_by].astype(str) == g],
              control_all[control_all[effect_by].astype(str) == g]) for g in frame["group"]]
    _set_support(frame, sides, base)
    values = ("mean_exposure", *(f"implied_att_{c}" for c in IMPLIED), "effect_mean",
              "effect_lower_95", "effect_upper_95", *(("truth",) if "truth" in frame else ()))
    return ModelTable(
        name="bayes_implied_att", frame=frame, **SUPPORT, value_columns=values,
        title=f"Bayesian hierarchical model: effect of {treatment} on {outcome} by {effect_by}",
        notes=["Implied ATT: the effect per unit of exposure times the mean exposure over the "
               "group's department-years from the year after adoption (pooled: per posterior "
               "draw, the mean over every such department-year of its group's effect times its "
               "exposure; with the binomial likelihood the hyper-mean effect times the mean "
               "exposure). Equal-tailed posterior intervals."])


def bayes_figure(outcome: str) -> ReleaseFigure:
    """The implied ATTs of the checked Bayesian table, pooled and per group, with the truth."""

    def draw(frame: pd.DataFrame) -> Any:
        from matplotlib.figure import Figure

        rows = frame.reset_index(drop=True)
        pos = np.arange(len(rows))[::-1]
        fig = Figure(figsize=(5.5, 0.45 * len(rows) + 1.6))
        ax = fig.subplots()
        ax.axvline(0, color="grey", lw=0.8)
        shown = rows["implied_att_mean"].notna().to_numpy()
        est = rows["implied_att_mean"]
        ax.errorbar(est[shown], pos[shown],
                    xerr=[(est - rows["implied_att_lower_95"])[shown],
                          (rows["implied_att_upper_95"] - est)[shown]],
                    fmt="o", capsize=3, label="posterior mean, 95% interval")
        if "truth" in rows:
            ax.plot(rows["truth"][shown], pos[shown], "x", color="black", label="truth")
        ax.set_yticks(pos, [str(g).replace("_", " ") for g in rows["group"]])
        ax.set_xlabel(f"implied ATT on {outcome}")
        ax.legend(fontsize=7)
        ax.set_title(f"Hierarchical model by {rows['effect_by'].iloc[0]}", fontsize=9)
        fig.tight_layout()
        return fig

    return ReleaseFigure(f"bayes_implied_att_{outcome}", "bayes_implied_att", draw)


# --- the follow-up design by subgroup -------------------------------------------------------------

FOLLOWUP_SUBGROUP_VALUES = ("n_departments_panel", "n_treated_panel", "mde_panel",
                            "power_panel", "n_departments", "n_years", "department_years",
                            "mde", "power_at_effect")


def followup_subgroup_table(design: Any, panel: pd.DataFrame,
                            labels: Mapping[str, pd.Series]) -> ModelTable:
    """The follow-up design by subgroup stratum as a model table (``release/followup/``).

    Support per stratum, as the subgroup table's: its departments treated by the design's tool
    (from the cohort plus ``onset_lag``) and never adopting it, persons on each side (lower bounds on
    the outcome's base) and residual df = treated clusters - 1. The test of equal effects is
    blanked on every stratum of a variable where one stratum is suppressed.
    """
    s = design.settings
    base = person_base(s["outcome"])
    frame = design.by_subgroup.reset_index(drop=True).copy()
    subs = [_in_subgroup(panel, labels, r.subgroup_variable, r.stratum)
            for r in frame.itertuples(index=False)]
    _set_support(frame, [(_treated_rows(sub, s["tool"], s["outcome"]),
                          _control_rows(sub, s["tool"], s["outcome"])) for sub in subs], base)
    from impact.followup import render

    return ModelTable(
        name="followup_by_subgroup", frame=frame, **SUPPORT,
        value_columns=tuple(c for c in FOLLOWUP_SUBGROUP_VALUES if c in frame),
        linked=(("subgroup_variable",), ("equal_effects_p_value",)),
        title=f"Follow-up design: {render.TABLES['by_subgroup'][0]}", folder="followup")
