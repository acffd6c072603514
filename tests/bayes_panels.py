"""The "simple hierarchical panel" of issue 15, as a test fixture (not part of the package).

24 municipalities x 3 plans x 4 departments x 10 years, adoption staggered by plan, a normal
outcome, effects by municipality ``~ N(0.03, 0.02)`` and noise SD 0.02. With ``zero_effect=True``
the same world without any effect (a placebo: adoption as before, every effect 0), where the
municipality effects are not identified (their spread is 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_MUNICIPALITIES, N_PLANS, N_DEPARTMENTS, N_YEARS = 24, 3, 4, 10
EFFECT_MEAN, EFFECT_SD, NOISE_SD = 0.03, 0.02, 0.02
FIRST_YEAR = 2010


def simple_hierarchical_panel(seed: int, *, zero_effect: bool = False) -> pd.DataFrame:
    """One draw of the issue's panel.

    Intercepts: municipality ``N(0, 0.1)``, plan ``N(0, 0.05)``, department ``N(0, 0.05)``;
    year effects ``N(0, 0.02)``. Each plan adopts in a year drawn uniformly from the 4th to the
    9th year, or never (probability 1/4). ``attrs["effects"]`` holds the true municipality
    effects (a Series indexed by ``municipality_id``).

    Returns
    -------
    DataFrame
        ``department_id, plan_id, municipality_id, year, in_force, event_time, y``.
    """
    rng = np.random.default_rng(seed)
    m = np.repeat(np.arange(N_MUNICIPALITIES), N_PLANS * N_DEPARTMENTS)
    plan = np.repeat(np.arange(N_MUNICIPALITIES * N_PLANS), N_DEPARTMENTS)
    n_dep = len(m)
    tau = rng.normal(EFFECT_MEAN, EFFECT_SD, N_MUNICIPALITIES)
    if zero_effect:
        tau = np.zeros(N_MUNICIPALITIES)
    a = (
        rng.normal(0, 0.1, N_MUNICIPALITIES)[m]
        + rng.normal(0, 0.05, N_MUNICIPALITIES * N_PLANS)[plan]
        + rng.normal(0, 0.05, n_dep)
    )
    year_effect = rng.normal(0, 0.02, N_YEARS)
    start = rng.integers(3, 9, N_MUNICIPALITIES * N_PLANS).astype(float)
    start[rng.random(N_MUNICIPALITIES * N_PLANS) < 0.25] = np.nan
    t = np.tile(np.arange(N_YEARS), n_dep)
    dep = np.repeat(np.arange(n_dep), N_YEARS)
    s = start[plan][dep]
    d = (t >= s).astype(float)  # NaN start: never
    y = a[dep] + year_effect[t] + tau[m][dep] * d + rng.normal(0, NOISE_SD, len(t))
    frame = pd.DataFrame({
        "department_id": dep,
        "plan_id": plan[dep],
        "municipality_id": m[dep],
        "year": FIRST_YEAR + t,
        "in_force": d,
        "event_time": t - s,
        "y": y,
    })
    frame.attrs["effects"] = pd.Series(tau, index=pd.RangeIndex(N_MUNICIPALITIES, name="m"))
    return frame
