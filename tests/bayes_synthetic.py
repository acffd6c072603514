"""Small simulated department-year panels with known hierarchical DiD effects.

Used by the tests and the benchmarks of :mod:`impact.bayes` (a test fixture, not part of the
package); not a substitute for the register simulator :mod:`impact.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SyntheticPanel:
    """A simulated panel and the truth behind it.

    Attributes
    ----------
    frame
        One row per (department_id, year) with ``plan_id`` (null = no helhedsplan),
        ``municipality_id``, ``housing_market``, ``in_force`` (0/1), ``intensity`` (share of
        lettings, 0 before adoption), ``log_income``, ``n_employed``, ``n_labour_force`` and
        ``event_time`` (year minus adoption year; NaN if never adopting).
    effect_pooled
        Mean of the distribution the municipality effects are drawn from, for ``log_income`` (on
        ``in_force``) and, in ``effect_pooled_logit``, for ``n_employed`` (log-odds).
    effects, effects_logit
        True effect per municipality (index ``municipality_id`` as str).
    """

    frame: pd.DataFrame
    effect_pooled: float
    effect_pooled_logit: float
    effects: pd.Series
    effects_logit: pd.Series


def synthetic_panel(
    seed: int = 0,
    *,
    n_municipalities: int = 30,
    departments_per_municipality: int = 20,
    years: range = range(2004, 2014),
    share_in_plan: float = 0.5,
    share_adopting: float = 0.4,
    effect: float = 0.03,
    effect_sd: float = 0.02,
    effect_logit: float = 0.15,
    effect_logit_sd: float = 0.1,
    noise_sd: float = 0.04,
) -> SyntheticPanel:
    """Simulate a hierarchical DiD panel (departments in plans in municipalities).

    Departments of a plan adopt together (staggered, 2006-2010); each municipality has its own
    true effect drawn from ``Normal(effect, effect_sd)`` (log income) and
    ``Normal(effect_logit, effect_logit_sd)`` (log-odds of employment).
    """
    rng = np.random.default_rng(seed)
    n_years = len(years)
    rows = []
    tau = rng.normal(effect, effect_sd, n_municipalities)
    tau_logit = rng.normal(effect_logit, effect_logit_sd, n_municipalities)
    year_eff = np.cumsum(rng.normal(0.01, 0.02, n_years))
    year_eff_logit = rng.normal(0.0, 0.1, n_years)
    dept = 0
    for m in range(n_municipalities):
        a_m, b_m = rng.normal(0, 0.1), rng.normal(0, 0.3)
        hm = ["city", "suburb", "province"][m % 3]
        n_plan = round(share_in_plan * departments_per_municipality)
        plan_sizes = []
        left = n_plan
        while left > 0:
            s = int(min(left, rng.integers(2, 6)))
            plan_sizes.append(s)
            left -= s
        members: list[tuple[str | None, float, float, float]] = []
        for k, size in enumerate(plan_sizes):
            adopt = rng.random() < share_adopting / share_in_plan * 0.9
            start = int(rng.integers(years[0] + 2, years[0] + 7)) if adopt else 0
            a_p, b_p = rng.normal(0, 0.05), rng.normal(0, 0.15)
            members += [(f"p{m}_{k}", start, a_p, b_p)] * size
        for _ in range(departments_per_municipality - n_plan):
            members.append((None, 0, 0.0, 0.0))
        for plan, start, a_p, b_p in members:
            a_d = 12.0 + a_m + a_p + rng.normal(0, 0.1)
            b_d = -0.3 + b_m + b_p + rng.normal(0, 0.3)
            level = rng.uniform(0.2, 0.8)
            n_lf = rng.poisson(rng.uniform(20, 120), n_years)
            for t, yr in enumerate(years):
                treated = bool(start) and yr >= start
                inten = float(np.clip(level + rng.normal(0, 0.1), 0, 1)) if treated else 0.0
                y = a_d + year_eff[t] + tau[m] * treated + rng.normal(0, noise_sd)
                eta = b_d + year_eff_logit[t] + tau_logit[m] * treated
                k = rng.binomial(n_lf[t], 1 / (1 + np.exp(-eta)))
                rows.append((f"d{dept}", yr, plan, f"m{m}", hm, int(treated), inten, y, k, n_lf[t]))
            dept += 1
    frame = pd.DataFrame(
        rows,
        columns=[
            "department_id",
            "year",
            "plan_id",
            "municipality_id",
            "housing_market",
            "in_force",
            "intensity",
            "log_income",
            "n_employed",
            "n_labour_force",
        ],
    )
    first = frame.loc[frame["in_force"] == 1].groupby("department_id")["year"].min()
    frame["event_time"] = frame["year"] - frame["department_id"].map(first)
    idx = pd.Index([f"m{m}" for m in range(n_municipalities)], name="municipality_id")
    return SyntheticPanel(
        frame=frame,
        effect_pooled=effect,
        effect_pooled_logit=effect_logit,
        effects=pd.Series(tau, index=idx),
        effects_logit=pd.Series(tau_logit, index=idx),
    )
