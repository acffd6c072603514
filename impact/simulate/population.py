"""Households and persons: the initial stock (1 January 2003) and the households that take a vacancy.

Each household is drawn from the random stream of its own dwelling (``key = department * 16384 +
dwelling``) and each person from the stream of its own person number, so a household's draws do
not depend on anything outside its department (common random numbers, see :mod:`.rng`).

Person numbers are provisional and encode where the person first appears::

    pid = ((department * 16 + ycode) * 16384 + dwelling) * 8 + member

with ``ycode`` = year of appearance - 2002 (0 for the 2003 stock) and ``member`` 0 = head,
1 = partner, 2-6 = children, 7 = a child born in the dwelling.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from impact.simulate.config import SimulationConfig, price_index
from impact.simulate.rng import Purpose, Streams

DWELL_BITS = 16384
YOUTH_HH_OFFSET = 1 << 40
_EDU_QUAL = np.array([20, 30, 40, 50, 60, 70, 80], dtype=np.int8)
_EDU_QUAL_P = np.cumsum([0.1, 0.45, 0.07, 0.2, 0.07, 0.09, 0.02])
_KIDS_CUM = np.array([0.45, 0.67, 0.87, 1.0])

PERSON_FIELDS = ("pid", "hh", "dept", "dwell", "age", "role", "nw", "r", "zlf", "u", "zinc", "edu")


def hh_key(dept: np.ndarray, dwell: np.ndarray) -> np.ndarray:
    """Dwelling key (stream of the dwelling's vacancies)."""
    return dept.astype(np.int64) * DWELL_BITS + dwell.astype(np.int64)


def make_pid(dept: np.ndarray, ycode: np.ndarray | int, dwell: np.ndarray, member: np.ndarray | int
             ) -> np.ndarray:
    """Provisional person number (see module docstring)."""
    return ((dept.astype(np.int64) * 16 + ycode) * DWELL_BITS + dwell.astype(np.int64)) * 8 + member


def education_code(streams: Streams, year: int, pid: np.ndarray, qualifying: np.ndarray,
                   nw: np.ndarray) -> np.ndarray:
    """DISCED main group: qualifying -> 20-80, otherwise 10 (grundskole) or 90 (unknown)."""
    u = streams.uniform(Purpose.P_EDU_CODE, year, pid)
    qual_code = _EDU_QUAL[np.minimum(np.searchsorted(_EDU_QUAL_P, u), _EDU_QUAL.size - 1)]
    unknown = u < np.where(nw, 0.3, 0.06)
    return np.where(qualifying, qual_code, np.where(unknown, 90, 10)).astype(np.int8)


def draw_households(
    streams: Streams,
    cfg: SimulationConfig,
    *,
    year: int,
    ycode: int,
    dept: np.ndarray,
    dwell: np.ndarray,
    mu_r: np.ndarray,
    nw_base: np.ndarray,
    emp_shift: np.ndarray,
    lf_shift: np.ndarray,
    entrant: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draw one household per (department, dwelling) and its members.

    Parameters
    ----------
    streams
        Keyed random numbers.
    cfg
        Parameters.
    year
        Year of the draws (the letting year for entrants, 2002 for the initial stock).
    ycode
        Code of the year the household appears (see module docstring).
    dept, dwell
        Department index and local dwelling number of each household.
    mu_r
        Mean household resource (ressourcestærk > 0 > ressourcesvag).
    nw_base
        Probit threshold of non-Western origin of the head.
    emp_shift, lf_shift
        Extra employability and labour-force attachment of the adults (flexible letting criteria).
    entrant
        True for households taking a vacancy (younger), False for the initial stock.

    Returns
    -------
    (households, persons)
        Household-level arrays (``key``, ``hh``, ``n_adults``, ``nw``, ``nw2``, ``head_age``) and
        person-level arrays (:data:`PERSON_FIELDS`), persons ordered by household then member.
    """
    key = hh_key(dept, dwell)
    n = key.size
    u_ad = streams.uniform(Purpose.HH_ADULTS, year, key)
    n_adults = 1 + (u_ad >= cfg.p_single).astype(np.int64)
    u_age = streams.uniform(Purpose.HH_HEAD_AGE, year, key)
    if entrant:
        head_age = 18 + np.floor(55 * u_age**1.8).astype(np.int64)
    else:
        head_age = 19 + np.floor(72 * u_age**1.5).astype(np.int64)
    z_nw = streams.normal(Purpose.HH_NW, year, key)
    nw = z_nw < nw_base
    nw2 = np.where(streams.uniform(Purpose.HH_PARTNER_NW, year, key) < 0.1, ~nw, nw) & (n_adults == 2)
    u_k = streams.uniform(Purpose.HH_KIDS, year, key)
    u_k = np.where(nw, u_k**0.7, u_k)
    kids = np.searchsorted(_KIDS_CUM, u_k).astype(np.int64)
    kids = np.where((head_age >= 21) & (head_age <= 55), kids, 0)
    r_hh = mu_r + cfg.sd_household_resource * streams.normal(Purpose.HH_RESOURCE, year, key) - 0.35 * nw

    size = n_adults + kids
    hh_idx = np.repeat(np.arange(n), size)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    pos = np.arange(hh_idx.size) - start[hh_idx]  # 0..size-1
    is_adult = pos < n_adults[hh_idx]
    member = np.where(is_adult, pos, 2 + pos - n_adults[hh_idx])
    role = np.where(pos == 0, 0, np.where(is_adult, 1, 2)).astype(np.int8)
    p_dept = dept[hh_idx]
    p_dwell = dwell[hh_idx]
    pid = make_pid(p_dept, ycode, p_dwell, member)
    hh = key[hh_idx] * 16 + ycode  # household number: dwelling and year of appearance

    p_head_age = head_age[hh_idx]
    partner_age = np.clip(p_head_age + np.round(3 * streams.normal(Purpose.HH_PARTNER_AGE, year, pid)),
                          18, 100)
    kid_span = np.clip(np.minimum(17, p_head_age - 19), 0, 17) + 1
    kid_age = np.floor(streams.uniform(Purpose.HH_KID_AGE, year, pid) * kid_span)
    age = np.where(role == 0, p_head_age, np.where(role == 1, partner_age, kid_age)).astype(np.int64)
    p_nw = np.where(role == 1, nw2[hh_idx], nw[hh_idx])
    r = r_hh[hh_idx] + cfg.sd_person_resource * streams.normal(Purpose.P_RESOURCE, year, pid)
    adult = role < 2
    zlf = streams.normal(Purpose.P_LF, year, pid) - np.where(adult, lf_shift[hh_idx], 0.0)
    u = streams.normal(Purpose.P_EMP, year, pid) + np.where(adult, emp_shift[hh_idx], 0.0)
    zinc = streams.normal(Purpose.P_INC, year, pid)
    birth_year = year + 1 - age
    qual_lat = cfg.edu_intercept + cfg.edu_resource * r + cfg.edu_cohort * (birth_year - 1960)
    qualifying = adult & (age >= 19) & (streams.normal(Purpose.P_EDU, year, pid) < qual_lat)
    edu = education_code(streams, year, pid, qualifying, p_nw)
    edu = np.where(adult, edu, np.int8(10)).astype(np.int8)

    households = {"key": key, "hh": key * 16 + ycode, "n_adults": n_adults, "nw": nw, "nw2": nw2,
                  "head_age": head_age}
    persons = {
        "pid": pid, "hh": hh, "dept": p_dept.astype(np.int64), "dwell": p_dwell.astype(np.int64),
        "age": age, "role": role, "nw": p_nw.astype(bool), "r": r, "zlf": zlf, "u": u,
        "zinc": zinc, "edu": edu,
    }
    return households, persons


def labour_status(cfg: SimulationConfig, year: int, age: np.ndarray, r: np.ndarray,
                  zlf: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In the labour force (arbejdsstyrken) and employed (i beskæftigelse) at 1 January.

    Out of the labour force: under 18, 65+, students (lower attachment 18-24), early retirement
    (efterløn, 60-64) and disability pension (weak resource).
    """
    age_term = np.where(age < 25, -0.6, np.where(age >= 60, -0.8, 0.0))
    lf = (age >= 18) & (age <= 64) & (zlf < cfg.lf_intercept + cfg.lf_resource * r + age_term)
    emp = lf & (cfg.cycle.get(year, 0.0) + cfg.emp_intercept + cfg.emp_resource * r + u > 0)
    return lf, emp


def wage_index(cfg: SimulationConfig, year: int) -> float:
    """Nominal income index: real index times the consumer price index (2013 = 1)."""
    return cfg.real_income.get(year, 1.0) * price_index(year)


def person_income(cfg: SimulationConfig, year: int, age: np.ndarray, lf: np.ndarray,
                  emp: np.ndarray, r: np.ndarray, zinc: np.ndarray) -> np.ndarray:
    """Individual disposable income (nominal DKK) that adds up to the household's."""
    wage = cfg.income_employed * np.exp(cfg.income_resource * r + cfg.income_sd * zinc)
    adult_inc = np.where(emp, wage, np.where(lf, cfg.income_unemployed,
                                             np.where(age < 25, cfg.income_student, cfg.income_outside)))
    inc = np.where(age < 18, cfg.income_child, np.where(age >= 65, cfg.income_pension, adult_inc))
    return inc * wage_index(cfg, year)


def qualifying(edu: np.ndarray) -> np.ndarray:
    """Kompetencegivende uddannelse: DISCED 20-80 (90 unknown counts as not qualifying)."""
    return (edu >= 20) & (edu <= 80)


def resource_probability(r: np.ndarray) -> np.ndarray:
    """Standard normal CDF (used for resource-dependent probabilities)."""
    return ndtr(r)
