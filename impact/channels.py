"""Who is housed through each letting channel: the composition of new tenants by channel.

The letting tools act through who gets the vacant dwellings; this module describes those
tenants. Definitions follow the panel (:mod:`impact.panel`, ``data_spec/README.md``):

In-movers of year *t*
    Persons in department *d* at 1 January *t* who are in ``persons`` at *t-1* with another
    department or none (arrivals from abroad and newborns are not in-movers; the first year has
    none).
Linked in-movers
    A letting of year *t-1* in *d* houses its main tenant ``person_id``, who appears in *d* at
    1 January *t*; the tenant's whole household at *t* is linked to the letting's channel (a
    household with several lettings gets the first channel in alphabetical order, as the panel).
    In-movers of *t* in *d* whose household is linked get that channel, the others are
    ``unlinked``. The linked counts add up exactly to the panel's ``n_in_movers_linked``.
Measures (person level, attributes at *t*)
    ``share_qualifying_edu`` and ``share_employed`` among persons aged 18-64 in the labour force
    (education code 20-80; ``employed``); ``mean_household_income`` over persons aged 18-64 of
    their household's disposable income in fixed prices (:func:`impact.spec.deflator`; persons
    whose household income is missing are left out); ``share_non_western`` over all persons.
Contrasts
    The difference of each channel's mean from the waiting list's, within a housing market
    (``market_type``) or over all, pooled over the years: the coefficient of a regression of the
    person-level measure on a channel dummy (persons of that channel and of the waiting list),
    ``raw`` or ``within_department_year`` (with department-year effects: the channel's tenants
    against the waiting list's in the same department and year, so where a channel is used does
    not enter), with a cluster-robust (CR1) variance clustered as the tools were assigned: by
    plan, a department without a plan being its own cluster. Intervals use the t distribution
    with G - 1 degrees of freedom (G = clusters contributing to the slope).
Placebo world (:func:`impact.simulate.placebo`)
    The lettings and their channels are factual, the persons counterfactual. The simulator
    numbers persons by department-local slots, so about 83% of the in-movers still link to a
    letting (a tenant whom the waiting list chose in the world without tools, carrying the
    factual channel label), the rest are unlinked. The within-department-year contrasts are
    then centred on zero (no selection behind the labels); the raw ones are not (they still
    compare the departments where a channel is used with all others: -0.9 to -1.8 SE on
    average for share employed at report scale). Use ``within_department_year`` for the
    mechanism (who a channel selects), ``raw`` to describe who is housed through it. The placebo registers also break the data contract
    (``lettings.person_id`` not in ``persons``), so ``impact.panel.build`` needs
    ``validate=False`` there; this module does not validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from impact import spec as spec_mod
from impact.errors import EstimationError
from impact.registers import Registers

__all__ = ["MEASURES", "ChannelComposition", "composition_from_movers", "in_movers",
           "tenant_composition"]

MEASURES = ("share_qualifying_edu", "share_employed", "mean_household_income",
            "share_non_western")
REFERENCE = "waiting_list"
UNLINKED = "unlinked"


@dataclass(frozen=True)
class ChannelComposition:
    """Composition of new tenants by letting channel.

    Attributes
    ----------
    composition
        ``year, market_type, channel, measure, value, n_persons, n_departments``: the mean of the
        measure over the in-movers of that cell (``n_persons`` its base, ``n_departments`` the
        departments they moved into). ``channel`` includes ``unlinked``.
    contrasts
        ``market_type`` (``all`` = both markets), ``channel, measure, comparison`` (``raw``:
        all tenants of the two channels; ``within_department_year``: with department-year
        effects, i.e. tenants let through the channel and through the waiting list in the same
        department and year, which removes where the channel is used), ``value, reference_value,
        difference, se, lower, upper, n_persons, n_persons_reference, n_departments,
        n_clusters, cluster``: each channel against the waiting list, pooled over the years
        (``n_persons`` counts in-mover person-years there).
    linkage
        ``market_type, group`` (``linked`` / ``unlinked``), ``n_persons, n_households,
        n_departments, share_of_in_movers`` and the four measures with their bases
        (``n_<measure>``): how the unlinked in-movers differ from the linked.
    movers
        The person-level in-movers (microdata: never released).
    """

    composition: pd.DataFrame
    contrasts: pd.DataFrame
    linkage: pd.DataFrame
    movers: pd.DataFrame

    def evidence(self, measure: str) -> pd.DataFrame:
        """Disclosure evidence of the ``composition`` cells of one measure.

        :func:`impact.report.disclosure.cell_evidence` on the in-movers in the measure's base,
        by ``year, market_type, channel`` (``indicator`` for the shares, ``value`` for income).
        """
        from impact.report.disclosure import cell_evidence

        if measure not in MEASURES:
            raise EstimationError(f"evidence: unknown measure {measure!r}; one of {MEASURES}")
        micro = self.movers[self.movers[measure].notna()]
        kind = {"value": measure} if measure == "mean_household_income" else {"indicator": measure}
        return cell_evidence(micro, ["year", "market_type", "channel"], **kind)

    def plot(self, measure: str = "share_employed", ax: object | None = None, *,
             comparison: str = "raw") -> object:
        """Each channel's difference from the waiting list with its 95% interval, by market.

        ``comparison``: ``raw`` or ``within_department_year``. Returns the matplotlib figure
        (drawn on ``ax`` if given).
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.figure  # type: ignore[attr-defined]
        c = self.contrasts[(self.contrasts["measure"] == measure)
                           & (self.contrasts["comparison"] == comparison)
                           & (self.contrasts["market_type"] != "all")]
        markets = sorted(c["market_type"].unique())
        channels = sorted(c["channel"].unique())
        width = 0.8 / max(len(markets), 1)
        ax.axhline(0, color="grey", lw=0.8)  # type: ignore[attr-defined]
        for k, market in enumerate(markets):
            m = c[c["market_type"] == market].set_index("channel").reindex(channels)
            x = np.arange(len(channels)) + (k - (len(markets) - 1) / 2) * width
            ax.errorbar(x, m["difference"], yerr=[m["difference"] - m["lower"],  # type: ignore[attr-defined]
                                                  m["upper"] - m["difference"]],
                        fmt="o", capsize=3, label=str(market).replace("_", " "))
        ax.set_xticks(np.arange(len(channels)))  # type: ignore[attr-defined]
        ax.set_xticklabels([ch.replace("_", "\n") for ch in channels], fontsize=8)  # type: ignore[attr-defined]
        ax.set_ylabel(f"{measure}: channel - waiting list")  # type: ignore[attr-defined]
        ax.set_title(f"New tenants by letting channel ({comparison}; 95% CI, plan clusters)",
                     fontsize=9)  # type: ignore[attr-defined]
        ax.legend(title="market", fontsize=8)  # type: ignore[attr-defined]
        fig.tight_layout()
        return fig


def _registers(registers_or_folder: Registers | str | Path) -> Registers:
    if isinstance(registers_or_folder, Registers):
        return registers_or_folder
    from impact import io

    return io.read_registers(Path(registers_or_folder))


def in_movers(registers: Registers | str | Path) -> pd.DataFrame:
    """The in-movers of every year with their letting channel and person-level measures.

    Returns
    -------
    pandas.DataFrame
        ``person_id, household_id, department_id, year, market_type, cluster, channel``
        (``unlinked`` where no letting of *t-1* housed the household) and, per measure,
        ``<measure>`` (0/1 or DKK in fixed prices; NaN outside its base).
    """
    reg = _registers(registers)
    cols = ["person_id", "year", "household_id", "department_id", "age", "non_western",
            "in_labour_force", "employed", "education"]
    persons = reg.persons[cols]
    here = persons[persons["department_id"].notna()]
    prev = persons[["person_id", "year", "department_id"]].assign(year=persons["year"] + 1)
    prev = prev.rename(columns={"department_id": "prev_department_id"})
    m = here.merge(prev, on=["person_id", "year"], how="inner")
    movers = m[m["prev_department_id"].isna()
               | (m["prev_department_id"] != m["department_id"])].drop(
        columns="prev_department_id").reset_index(drop=True)
    movers["department_id"] = movers["department_id"].astype("int64")
    # tenants: the main tenant of a letting of t-1 in d, in d at t, and their household at t
    lets = reg.lettings[reg.lettings["person_id"].notna()]
    lets = lets.assign(year=lets["year"] + 1, person_id=lets["person_id"].astype("int64"))
    tenants = lets[["person_id", "year", "department_id", "channel"]].merge(
        here[["person_id", "year", "department_id", "household_id"]],
        on=["person_id", "year", "department_id"], how="inner")
    tenants = (tenants.groupby(["department_id", "year", "household_id"], as_index=False)
               ["channel"].min())
    movers = movers.merge(tenants, on=["department_id", "year", "household_id"], how="left")
    movers["channel"] = movers["channel"].fillna(UNLINKED).astype(str)
    deps = reg.departments.set_index("department_id")
    movers["market_type"] = movers["department_id"].map(deps["market_type"]).astype(str)
    plan = movers["department_id"].map(deps["plan_id"])
    movers["cluster"] = np.where(plan.isna(), "department:" + movers["department_id"].astype(str),
                                 "plan:" + plan.astype(str))
    # measures
    adult = (movers["age"] >= 18) & (movers["age"] <= 64)
    lf = adult & movers["in_labour_force"].astype(bool)
    edu = movers["education"].between(20, 80)
    movers["share_qualifying_edu"] = np.where(lf, edu.astype(float), np.nan)
    movers["share_employed"] = np.where(lf, movers["employed"].astype(float), np.nan)
    hh = reg.households[["household_id", "year", "disposable_income"]]
    movers = movers.merge(hh, on=["household_id", "year"], how="left")
    factor = spec_mod.deflator(movers["year"])
    income = movers.pop("disposable_income").to_numpy(dtype=float) * factor
    movers["mean_household_income"] = np.where(adult, income, np.nan)
    movers["share_non_western"] = movers["non_western"].astype(float)
    keep = ["person_id", "household_id", "department_id", "year", "market_type", "cluster",
            "channel", *MEASURES]
    return movers[keep].sort_values(["year", "department_id", "person_id"],
                                    ignore_index=True)


def _cells(movers: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = []
    for measure in MEASURES:
        sub = movers[movers[measure].notna()]
        g = sub.groupby(keys, sort=True)
        out.append(pd.DataFrame({"value": g[measure].mean(), "n_persons": g.size(),
                                 "n_departments": g["department_id"].nunique()})
                   .reset_index().assign(measure=measure))
    cols = [*keys, "measure", "value", "n_persons", "n_departments"]
    return pd.concat(out, ignore_index=True)[cols]


def _contrast(sub: pd.DataFrame, measure: str, channel: str, alpha: float,
              within: bool) -> dict[str, object]:
    """Channel - waiting list: OLS slope of the measure on the channel dummy (persons of the two
    channels), with department-year effects if ``within``, and a CR1 variance over clusters."""
    s = sub[sub["channel"].isin([channel, REFERENCE])]
    y = s[measure].to_numpy(dtype=float)
    d = (s["channel"] == channel).to_numpy(dtype=float)
    if within:
        cell = s.groupby(["department_id", "year"], sort=False).ngroup().to_numpy()
        n = np.bincount(cell)
        y = y - (np.bincount(cell, y) / n)[cell]
        d = d - (np.bincount(cell, d) / n)[cell]
    else:
        y = y - y.mean()
        d = d - d.mean()
    sdd = float(d @ d)
    a = s["channel"] == channel
    row: dict[str, object] = {
        "channel": channel, "measure": measure,
        "comparison": "within_department_year" if within else "raw",
        "value": float(s.loc[a, measure].mean()),
        "reference_value": float(s.loc[~a, measure].mean()),
        "n_persons": int(a.sum()), "n_persons_reference": int((~a).sum()),
        "n_departments": int(s.loc[a, "department_id"].nunique())}
    if sdd <= 1e-12:
        return row | {"difference": np.nan, "se": np.nan, "lower": np.nan, "upper": np.nan,
                      "n_clusters": 0, "cluster": "plan_id"}
    b = float(d @ y) / sdd
    infl = d * (y - b * d) / sdd
    # clusters that contribute (within: department-years where both channels let)
    used = np.abs(d) > 1e-12
    per = pd.Series(infl[used]).groupby(s["cluster"].to_numpy()[used]).sum().to_numpy()
    g = per.size
    se = float(np.sqrt(g / (g - 1) * np.sum(per ** 2))) if g > 1 else np.nan
    q = float(stats.t.ppf(1 - alpha / 2, g - 1)) if g > 1 else np.nan
    return row | {"difference": b, "se": se, "lower": b - q * se, "upper": b + q * se,
                  "n_clusters": g, "cluster": "plan_id"}


def _linkage(movers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    linked = np.where(movers["channel"] == UNLINKED, "unlinked", "linked")
    for market in ["all", *sorted(movers["market_type"].unique())]:
        sub = movers if market == "all" else movers[movers["market_type"] == market]
        lab = linked if market == "all" else linked[(movers["market_type"] == market).to_numpy()]
        for group in ("linked", "unlinked"):
            s = sub[lab == group]
            row: dict[str, object] = {
                "market_type": market, "group": group, "n_persons": len(s),
                "n_households": int(s[["household_id", "year"]].drop_duplicates().shape[0]),
                "n_departments": int(s["department_id"].nunique()),
                "share_of_in_movers": len(s) / len(sub) if len(sub) else np.nan}
            for measure in MEASURES:
                row[measure] = float(s[measure].mean()) if s[measure].notna().any() else np.nan
                row[f"n_{measure}"] = int(s[measure].notna().sum())
            rows.append(row)
    return pd.DataFrame(rows)


def tenant_composition(registers_or_folder: Registers | str | Path, *,
                       alpha: float = 0.05) -> ChannelComposition:
    """Composition of new tenants by letting channel, year and housing market.

    Parameters
    ----------
    registers_or_folder
        The register tables, or a folder of them (read with :func:`impact.io.read_registers`).
    alpha
        1 - confidence level of the contrasts' intervals.

    Returns
    -------
    ChannelComposition
        Tables ``composition`` (by year x market x channel), ``contrasts`` (each channel against
        the waiting list, per market and over all, pooled over years, plan-clustered) and
        ``linkage`` (linked vs unlinked in-movers); see the module docstring.

    Raises
    ------
    EstimationError
        If no in-mover can be linked to a letting (e.g. lettings without ``person_id``, or
        persons that are not the tenants of the lettings, as in the simulator's placebo world).
    """
    if not 0 < alpha < 1:
        raise EstimationError(f"tenant_composition: alpha must be in (0, 1), got {alpha!r}")
    return composition_from_movers(in_movers(registers_or_folder), alpha=alpha)


def composition_from_movers(movers: pd.DataFrame, *, alpha: float = 0.05) -> ChannelComposition:
    """:func:`tenant_composition` from the person-level in-movers (:func:`in_movers`'s table)."""
    if not 0 < alpha < 1:
        raise EstimationError(f"tenant_composition: alpha must be in (0, 1), got {alpha!r}")
    linked = movers[movers["channel"] != UNLINKED]
    if linked.empty:
        raise EstimationError(
            f"tenant_composition: none of the {len(movers)} in-movers can be linked to a letting "
            "of the year before (no letting's person_id is in its department the next year)")
    composition = _cells(movers, ["year", "market_type", "channel"])
    contrasts = []
    for market in ["all", *sorted(linked["market_type"].unique())]:
        sub = linked if market == "all" else linked[linked["market_type"] == market]
        for measure in MEASURES:
            s = sub[sub[measure].notna()]
            if not (s["channel"] == REFERENCE).any():
                continue
            for channel in sorted(set(s["channel"]) - {REFERENCE}):
                for within in (False, True):
                    contrasts.append({"market_type": market,
                                      **_contrast(s, measure, channel, alpha, within)})
    return ChannelComposition(composition=composition, contrasts=pd.DataFrame(contrasts),
                              linkage=_linkage(movers), movers=movers)
