"""The fixed world: municipalities (kommuner), departments (afdelinger), plans (helhedsplaner) and
the adoption of letting tools (tool_adoption), plus the yearly tool schedule per department.

The world is shared by the factual and the counterfactual simulation; only the schedule differs
(the counterfactual has no tool at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.simulate.config import FIRST_YEAR, SimulationConfig

# The 98 municipality codes (2007 boundaries).
MUNICIPALITY_CODES: tuple[int, ...] = (
    101, 147, 151, 153, 155, 157, 159, 161, 163, 165, 167, 169, 173, 175, 183, 185, 187, 190, 201,
    210, 217, 219, 223, 230, 240, 250, 253, 259, 260, 265, 269, 270, 306, 316, 320, 326, 329, 330,
    336, 340, 350, 360, 370, 376, 390, 400, 410, 420, 430, 440, 450, 461, 479, 480, 482, 492, 510,
    530, 540, 550, 561, 563, 573, 575, 580, 607, 615, 621, 630, 657, 661, 665, 671, 706, 707, 710,
    727, 730, 740, 741, 746, 751, 756, 760, 766, 773, 779, 787, 791, 810, 813, 820, 825, 840, 846,
    849, 851, 860,
)
_ALWAYS = (101, 751, 461, 851, 183, 165, 151, 167)  # København, Aarhus, Odense, Aalborg, Ishøj ...
_WEIGHT = {101: 8.0, 751: 4.0, 461: 3.0, 851: 2.5, 147: 2.0}
GROUPS = ("both", "referral_only", "flexible_only", "neither")
TOOLS_WITH_MECHANISM = ("municipal_referral", "flexible_letting")
MARKETS = ("waiting_list", "vacancies")
SCHEDULE_YEARS = np.arange(FIRST_YEAR, 2015)  # letting years 2003-2014


@dataclass(frozen=True)
class World:
    """Departments and tools of one simulation.

    Attributes
    ----------
    departments
        The departments table (data_spec/departments.toml, with ``market_type``).
    tool_adoption
        The tool_adoption table.
    group
        Report group per department (``both``, ``referral_only``, ``flexible_only``, ``neither``;
        ``unsupported`` for plan_id null), aligned with ``departments``.
    level
        Department level of resident resource (latent; negative = more vulnerable).
    market
        0 = waiting_list market, 1 = vacancies market, aligned with ``departments``.
    """

    departments: pd.DataFrame
    tool_adoption: pd.DataFrame
    group: np.ndarray
    level: np.ndarray
    market: np.ndarray

    @property
    def n(self) -> int:
        """Number of departments."""
        return len(self.departments)


def _municipalities(cfg: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    others = [c for c in MUNICIPALITY_CODES if c not in _ALWAYS]
    n_extra = max(0, min(cfg.n_municipalities, len(MUNICIPALITY_CODES)) - len(_ALWAYS))
    extra = rng.choice(others, size=n_extra, replace=False)
    codes = np.sort(np.concatenate([np.array(_ALWAYS), extra]))
    capital = (codes < 270) | (codes == 751)
    wl = capital | (rng.random(len(codes)) < cfg.share_waiting_list_other)
    weight = np.array([_WEIGHT.get(int(c), 1.0) for c in codes])
    return pd.DataFrame({"municipality_id": codes, "market": np.where(wl, 0, 1), "weight": weight})


def _start_years(rng: np.random.Generator, n: int) -> np.ndarray:
    years = np.arange(2004, 2011)
    p = np.array([0.05, 0.1, 0.25, 0.2, 0.15, 0.1, 0.15])
    return rng.choice(years, size=n, p=p)


def _spells(unit_col: str, unit: int, tool: str, start: int, share: float) -> list[dict]:
    """One spell, split at 2010 when a 100% flexible letting started under the 90% cap."""
    if tool == "flexible_letting" and share >= 1.0 and start < 2010:
        return [
            {unit_col: unit, "tool": tool, "start_year": start, "end_year": 2009, "agreed_share": 0.9},
            {unit_col: unit, "tool": tool, "start_year": 2010, "end_year": None, "agreed_share": 1.0},
        ]
    return [{unit_col: unit, "tool": tool, "start_year": start, "end_year": None, "agreed_share": share}]


def _referral_share(rng: np.random.Generator) -> float:
    return float(rng.choice([0.12, 0.25, 0.33, 1.0], p=[0.25, 0.5, 0.2, 0.05]))


def _flexible_share(rng: np.random.Generator, market: int) -> float:
    if market == 0:
        return float(rng.choice([1.0, 0.5, 0.25], p=[0.4, 0.4, 0.2]))
    return float(rng.choice([1.0, 0.5, 0.25, 0.1], p=[0.1, 0.3, 0.3, 0.3]))


def build_world(seed: int, cfg: SimulationConfig) -> World:
    """Draw municipalities, plans, departments and tool spells.

    Parameters
    ----------
    seed
        Simulation seed; the world uses its own stream ``SeedSequence([seed, 1])``.
    cfg
        Parameters.

    Returns
    -------
    World
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    muni = _municipalities(cfg, rng)
    m_codes = muni["municipality_id"].to_numpy()
    m_market = muni["market"].to_numpy()
    m_weight = muni["weight"].to_numpy()

    def pick_municipality(prefer_wl: float) -> int:
        market = 0 if rng.random() < prefer_wl else 1
        idx = np.flatnonzero(m_market == market)
        if idx.size == 0:
            idx = np.arange(len(m_codes))
        w = m_weight[idx] / m_weight[idx].sum()
        return int(rng.choice(idx, p=w))

    # --- plans and supported departments ---
    sizes = {"both": cfg.n_both, "referral_only": cfg.n_referral_only,
             "flexible_only": cfg.n_flexible_only, "neither": cfg.n_neither}
    prefer = {"both": 0.55, "referral_only": 0.4, "flexible_only": 0.5, "neither": 0.4}
    dept_rows: list[tuple[int, int | None, str]] = []  # (municipality index, plan_id, group)
    plan_muni: dict[int, int] = {}
    plan_group: dict[int, str] = {}
    next_plan = 1
    for g in GROUPS:
        n_dep = sizes[g]
        if n_dep <= 0:
            continue
        n_plan = cfg.plans_flexible_only if g == "flexible_only" else round(n_dep / cfg.departments_per_plan)
        n_plan = int(min(max(n_plan, 1), n_dep))
        per_plan = 1 + rng.multinomial(n_dep - n_plan, np.full(n_plan, 1.0 / n_plan))
        for k in per_plan:
            mi = pick_municipality(prefer[g])
            plan_muni[next_plan] = mi
            plan_group[next_plan] = g
            dept_rows.extend((mi, next_plan, g) for _ in range(int(k)))
            next_plan += 1
    w_all = m_weight / m_weight.sum()
    for mi in rng.choice(len(m_codes), size=cfg.n_unsupported, p=w_all):
        dept_rows.append((int(mi), None, "unsupported"))

    n = len(dept_rows)
    mi_arr = np.array([r[0] for r in dept_rows])
    plan_arr = np.array([-1 if r[1] is None else r[1] for r in dept_rows])
    group = np.array([r[2] for r in dept_rows], dtype=object)
    market = m_market[mi_arr]

    # Organisations: 1-4 per municipality; a plan's departments share one organisation.
    n_org = 1 + rng.integers(0, 4, size=len(m_codes))
    org_base = np.concatenate([[0], np.cumsum(n_org)[:-1]])
    org = np.empty(n, dtype=np.int64)
    plan_org: dict[int, int] = {}
    for i in range(n):
        mi = mi_arr[i]
        if plan_arr[i] > 0:
            p = int(plan_arr[i])
            if p not in plan_org:
                plan_org[p] = int(org_base[mi] + rng.integers(0, n_org[mi]))
            org[i] = plan_org[p]
        else:
            org[i] = org_base[mi] + rng.integers(0, n_org[mi])
    org_id = org + 1
    dept_no = np.zeros(n, dtype=np.int64)
    counters: dict[int, int] = {}
    for i in range(n):
        counters[int(org_id[i])] = counters.get(int(org_id[i]), 0) + 1
        dept_no[i] = counters[int(org_id[i])]
    department_id = org_id * 1000 + dept_no

    mu_log = np.log(cfg.mean_dwellings) - cfg.sd_log_dwellings**2 / 2
    n_dw = np.clip(np.round(rng.lognormal(mu_log, cfg.sd_log_dwellings, size=n)), 12,
                   cfg.max_dwellings).astype(np.int64)
    mu_level = np.where(market == 0, cfg.mu_department_level[0], cfg.mu_department_level[1])
    level = mu_level + cfg.sd_department_level * rng.standard_normal(n)
    level = level + np.where(plan_arr < 0, cfg.unsupported_vulnerability, 0.0)

    order = np.argsort(department_id, kind="stable")
    departments = pd.DataFrame({
        "department_id": department_id[order].astype(np.int64),
        "organisation_id": org_id[order].astype(np.int64),
        "municipality_id": m_codes[mi_arr[order]].astype(np.int64),
        "plan_id": pd.array(np.where(plan_arr[order] > 0, plan_arr[order], 0), dtype="Int64"),
        "n_dwellings": n_dw[order],
        "market_type": pd.array(np.array(MARKETS, dtype=object)[market[order]], dtype="str"),
    })
    departments.loc[plan_arr[order] < 0, "plan_id"] = pd.NA
    group = group[order]
    level = level[order]
    market = market[order]

    # --- tool adoption ---
    rows: list[dict] = []
    for p in sorted(plan_group):
        g = plan_group[p]
        mk = int(m_market[plan_muni[p]])
        if g in ("both", "referral_only"):
            rows += _spells("plan_id", p, "municipal_referral", int(_start_years(rng, 1)[0]),
                            _referral_share(rng))
        if g in ("both", "flexible_only"):
            rows += _spells("plan_id", p, "flexible_letting", int(_start_years(rng, 1)[0]),
                            _flexible_share(rng, mk))
    unsup = np.flatnonzero(group == "unsupported")
    treated = unsup[rng.random(unsup.size) < cfg.share_unsupported_with_tools]
    for i in treated:
        start = int(rng.integers(2005, 2012))
        has_ka = rng.random() < 0.7
        if has_ka:
            rows += _spells("department_id", int(departments["department_id"].iat[i]),
                            "municipal_referral", start, 0.25)
        if not has_ka or rng.random() < 0.3:
            rows += _spells("department_id", int(departments["department_id"].iat[i]),
                            "flexible_letting", start, _flexible_share(rng, int(market[i])))
    tool_adoption = normalise_adoption(pd.DataFrame(rows), source="simulated")
    return World(departments=departments, tool_adoption=tool_adoption, group=group, level=level,
                 market=market.astype(np.int64))


def normalise_adoption(frame: pd.DataFrame, source: str = "user") -> pd.DataFrame:
    """Bring a tool-adoption frame to the columns and dtypes of ``data_spec/tool_adoption.toml``.

    Parameters
    ----------
    frame
        Rows with ``department_id`` and/or ``plan_id`` (exactly one set per row), ``tool``,
        ``start_year`` and optionally ``end_year``, ``agreed_share``, ``source``.
    source
        Value of ``source`` where the frame has none.
    """
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in ("department_id", "plan_id", "end_year"):
        vals = frame[col] if col in frame else pd.Series([None] * len(frame))
        out[col] = pd.array(pd.to_numeric(vals, errors="raise").to_numpy(dtype="float64"),
                            dtype="Float64").astype("Int64")
    if len(frame):
        both = out["department_id"].notna() & out["plan_id"].notna()
        none = out["department_id"].isna() & out["plan_id"].isna()
        if bool((both | none).any()):
            raise ValueError("adoption: exactly one of department_id and plan_id must be set per row")
    out["tool"] = pd.array(frame["tool"].astype(str).to_numpy() if len(frame) else [], dtype="str")
    out["start_year"] = (frame["start_year"].astype(np.int64).to_numpy() if len(frame)
                         else np.array([], dtype=np.int64))
    share = frame["agreed_share"] if "agreed_share" in frame else pd.Series([np.nan] * len(frame))
    out["agreed_share"] = pd.to_numeric(share).astype("float64").to_numpy()
    src = frame["source"] if "source" in frame else pd.Series([source] * len(frame))
    out["source"] = pd.array(src.fillna(source).astype(str).to_numpy(), dtype="str")
    out = out[["department_id", "plan_id", "tool", "start_year", "end_year", "agreed_share", "source"]]
    return out.reset_index(drop=True)


DEFAULT_SHARE = {"municipal_referral": 0.25, "flexible_letting": 0.5}


def schedule(world: World, tool_adoption: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Agreed shares of vacancies per department and letting year for KA and FU.

    Parameters
    ----------
    world
        The departments.
    tool_adoption
        Spells; plan rows apply to every department of the plan. Overlapping spells take the
        largest share; a missing share means 25% (KA) or 50% (FU). Other tools have no mechanism in
        the simulator and are ignored here.

    Returns
    -------
    (referral, flexible)
        Arrays of shape (n_departments, len(SCHEDULE_YEARS)); ``referral + flexible <= 1`` (FU gives
        way to KA where the agreements add up to more than all vacancies).
    """
    deps = world.departments
    pos = pd.Series(np.arange(world.n), index=deps["department_id"].to_numpy())
    plan = deps["plan_id"].to_numpy(dtype="float64", na_value=np.nan)
    out = {t: np.zeros((world.n, SCHEDULE_YEARS.size)) for t in TOOLS_WITH_MECHANISM}
    for row in tool_adoption.itertuples(index=False):
        if row.tool not in out:
            continue
        if pd.notna(row.department_id):
            if int(row.department_id) not in pos.index:
                raise ValueError(f"adoption: unknown department_id {row.department_id}")
            idx = np.array([pos[int(row.department_id)]])
        else:
            idx = np.flatnonzero(plan == float(row.plan_id))
            if idx.size == 0:
                raise ValueError(f"adoption: unknown plan_id {row.plan_id}")
        end = 9999 if pd.isna(row.end_year) else int(row.end_year)
        cols = (SCHEDULE_YEARS >= int(row.start_year)) & (SCHEDULE_YEARS <= end)
        share = DEFAULT_SHARE[row.tool] if pd.isna(row.agreed_share) else float(row.agreed_share)
        block = out[row.tool][np.ix_(idx, np.flatnonzero(cols))]
        out[row.tool][np.ix_(idx, np.flatnonzero(cols))] = np.maximum(block, share)
    referral = np.clip(out["municipal_referral"], 0.0, 1.0)
    flexible = np.minimum(np.clip(out["flexible_letting"], 0.0, 1.0), 1.0 - referral)
    return referral, flexible
