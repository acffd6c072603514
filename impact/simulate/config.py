"""Parameters of the synthetic register (`SimulationConfig`) and the named scales.

Every number the simulator uses lives here, with the assumption behind it. The defaults are
calibrated to the 2015 SFI report (see ``/work/shared/seed/DIGEST.md`` sections 2.4 and 7); where
the report is silent (turnover, move rates, income components) the value is an assumption and is
marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

FIRST_YEAR = 2003
"""Baseline register year (status 1 January 2003 defines the movers of 2004)."""
LAST_YEAR = 2013
"""Last register year of the study window (``data_spec/study.toml``)."""


def _default_cycle() -> dict[int, float]:
    # Business cycle on the employment latent (probit scale): rise 2004-08, dip 2009-12, 2013 a
    # little above 2004 (report fig. 7.4).
    return {2003: -0.02, 2004: 0.0, 2005: 0.07, 2006: 0.15, 2007: 0.21, 2008: 0.24, 2009: 0.12,
            2010: 0.06, 2011: 0.05, 2012: 0.04, 2013: 0.07, 2014: 0.08}


# Consumer price inflation in Denmark, % per year (Statistics Denmark PRIS8/PRIS112, rounded;
# used to turn real into nominal DKK).
INFLATION: dict[int, float] = {2002: 2.4, 2003: 2.1, 2004: 1.2, 2005: 1.8, 2006: 1.9, 2007: 1.7, 2008: 3.4, 2009: 1.3,
                               2010: 2.3, 2011: 2.8, 2012: 2.4, 2013: 0.8, 2014: 0.6}


def price_index(year: int) -> float:
    """Consumer price index, 2013 = 1 (2003-2014)."""
    idx = 1.0
    if year <= 2013:
        for y in range(year + 1, 2014):
            idx /= 1 + INFLATION.get(y, 2.0) / 100
    else:
        for y in range(2014, year + 1):
            idx *= 1 + INFLATION.get(y, 2.0) / 100
    return idx


def _default_real_income() -> dict[int, float]:
    # Real income index of transfers and wages: rise 2004-06, flat 2007-10, dip 2010-11, flat
    # (report fig. 7.7).
    return {2003: 0.99, 2004: 1.0, 2005: 1.02, 2006: 1.04, 2007: 1.045, 2008: 1.045, 2009: 1.045,
            2010: 1.04, 2011: 1.02, 2012: 1.02, 2013: 1.02, 2014: 1.02}


@dataclass(frozen=True)
class SimulationConfig:
    """All parameters of :func:`impact.simulate.registers`.

    World (verden)
    --------------
    n_both, n_referral_only, n_flexible_only, n_neither
        Supported departments (afdelinger med helhedsplan) in the report's four groups by use of
        kommunal anvisning (KA) and fleksibel udlejning (FU) in 2006-10 (report ch. 7: 296/98/35/69).
    plans_flexible_only
        Number of plans (helhedsplaner) of the FU-only group (report fn. 22: 10).
    departments_per_plan
        Mean departments per plan (report: 545 departments in 162 plans, about 3.4).
    n_unsupported
        Non-supported comparison departments (plan_id null).
    n_municipalities
        Municipalities drawn from the 98 real codes (Copenhagen area and Aarhus are waiting-list
        markets, the rest mostly vacancy markets).
    mean_dwellings, sd_log_dwellings
        Department size: lognormal number of dwellings (assumption; the report gives plan sizes
        only: median plan about 1,100 residents, so about 150 dwellings per department).
    share_waiting_list_other
        Probability that a municipality outside the capital area/Aarhus is a waiting-list market.
    max_dwellings
        Largest department.
    unsupported_vulnerability
        How much better off (resource level) non-supported departments are than supported ones.
    share_unsupported_with_tools
        Share of non-supported departments with department-level tool spells (KA 25% and/or FU).

    Population (beboere)
    --------------------
    mu_department_level, sd_department_level
        Department resource level by market (waiting_list, vacancies) and its spread.
    sd_household_resource, sd_person_resource
        Spread of household resource around the department level and of persons around it.
    non_western_base, non_western_department
        Probit threshold of non-Western origin (stock) and its dependence on the department level.
    p_single
        Share of households with one adult.

    Dynamics (assumptions, yearly)
    ------------------------------
    move_base
        Yearly probability that a household moves out, by head age band 18-29/30-44/45-64/65+,
        before the adjustments below (gives a turnover of about 11-13% of dwellings a year).
    move_employed, move_resource
        Log-multipliers of the move probability for an employed head and per unit of resource.
    q_other_department_out, q_other_department_in
        Probability that a moving household goes to / an entrant comes from another social-housing
        department (before linking; gives about 40% of moves between departments).
    p_emigrate, p_emigrate_non_western
        Share of moving households that emigrate (absent afterwards, not out-movers).
    p_abroad, p_abroad_non_western
        Share of entrant households that arrive from abroad (no row the year before; not in-movers).
    p_youth_leave, q_youth_other_department
        Yearly probability that a child aged 18+ leaves the parents' household, and that the young
        person then gets a dwelling in another social-housing department (else outside the sector).
    p_internal_transfer
        Share of vacancies whose applicant comes by internal transfer (oprykning) from another
        department of the organisation (the channel when no tool takes the vacancy).
    p_birth, p_birth_non_western
        Yearly probability of a birth in a household with a head aged 20-42.
    p_edu_complete
        Yearly probability (scaled by resource) that an 18-30-year-old without qualifying education
        completes one.
    emp_persistence
        AR(1) coefficient of the individual employment shock.

    Letting mechanism (udlejning)
    -----------------------------
    mu_waiting_list
        Mean resource of ordinary waiting-list applicants by market (waiting_list, vacancies).
    entrant_non_western
        Probit threshold of non-Western origin of ordinary applicants.
    local_weight
        Weight of the department's own level in its applicants' resource (attractiveness).
    delta_referral, delta_flexible
        Shift in applicant resource for KA (weaker) and FU (stronger) applicants.
    flexible_employment_shift, flexible_labour_force_shift
        Extra employability / labour-force attachment of FU applicants (criteria: in work or study).
    referral_non_western_shift, flexible_non_western_shift
        Probit shift in non-Western origin for KA and FU applicants.
    flexible_pool
        Probability by market that a FU vacancy finds an applicant who meets the criteria; otherwise
        it goes to the next on the waiting list (thin pool in vacancy markets).

    Outcomes
    --------
    lf_intercept, lf_resource, emp_intercept, emp_resource
        Probit of labour-force attachment (18-64) and of employment given attachment.
    edu_intercept, edu_resource, edu_cohort
        Probit of a qualifying education by resource and birth cohort (per year after 1960).
    cycle, real_income
        Business cycle (employment latent) and real income index; nominal DKK = real x
        :func:`price_index` (Danish consumer prices).
    income_*
        Individual disposable income components in DKK at 2013 prices (real index 1), summed to the
        household.
    """

    # --- world ---
    n_both: int = 296
    n_referral_only: int = 98
    n_flexible_only: int = 35
    n_neither: int = 69
    plans_flexible_only: int = 10
    departments_per_plan: float = 3.4
    n_unsupported: int = 350
    n_municipalities: int = 45
    mean_dwellings: float = 150.0
    sd_log_dwellings: float = 0.6
    max_dwellings: int = 2000
    share_waiting_list_other: float = 0.1
    unsupported_vulnerability: float = 0.35
    share_unsupported_with_tools: float = 0.25

    # --- population ---
    sd_department_level: float = 0.35
    mu_department_level: tuple[float, float] = (-0.25, -0.45)
    sd_household_resource: float = 0.8
    sd_person_resource: float = 0.5
    non_western_base: float = -1.0
    non_western_department: float = 0.6
    p_single: float = 0.55

    # --- dynamics ---
    move_base: tuple[float, float, float, float] = (0.26, 0.13, 0.075, 0.045)
    move_employed: float = 0.35
    move_resource: float = 0.15
    q_other_department_out: float = 0.75
    q_other_department_in: float = 0.75
    p_emigrate: float = 0.03
    p_emigrate_non_western: float = 0.08
    p_abroad: float = 0.03
    p_abroad_non_western: float = 0.12
    p_youth_leave: float = 0.2
    q_youth_other_department: float = 0.6
    p_internal_transfer: float = 0.1
    p_birth: float = 0.07
    p_birth_non_western: float = 0.1
    p_edu_complete: float = 0.18
    emp_persistence: float = 0.7

    # --- letting mechanism ---
    mu_waiting_list: tuple[float, float] = (0.05, -0.35)
    local_weight: float = 0.5
    entrant_non_western: float = -0.75
    delta_referral: float = -0.6
    delta_flexible: float = 0.35
    flexible_employment_shift: float = 0.7
    flexible_labour_force_shift: float = 0.5
    referral_non_western_shift: float = 0.5
    flexible_non_western_shift: float = -0.2
    flexible_pool: tuple[float, float] = (0.9, 0.15)

    # --- outcomes ---
    lf_intercept: float = 1.0
    lf_resource: float = 0.6
    emp_intercept: float = 0.55
    emp_resource: float = 0.55
    edu_intercept: float = -0.25
    edu_resource: float = 0.6
    edu_cohort: float = 0.045
    cycle: dict[int, float] = field(default_factory=_default_cycle)
    real_income: dict[int, float] = field(default_factory=_default_real_income)
    income_employed: float = 104_000.0
    income_unemployed: float = 80_000.0
    income_outside: float = 80_000.0
    income_student: float = 58_000.0
    income_pension: float = 88_000.0
    income_child: float = 9_000.0
    income_resource: float = 0.18
    income_sd: float = 0.15

    def with_(self, **changes: object) -> SimulationConfig:
        """A copy with some parameters changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def config_for_scale(scale: str) -> SimulationConfig:
    """The default configuration of a named scale.

    Parameters
    ----------
    scale
        ``"report"`` (the 2015 report's 498 supported departments plus 350 comparison departments),
        ``"small"`` (about a quarter, for tests) or ``"national"`` (about 7,000 departments and one
        million residents, for benchmarks).
    """
    if scale == "report":
        return SimulationConfig()
    if scale == "small":
        return SimulationConfig(n_both=74, n_referral_only=26, n_flexible_only=12, n_neither=18,
                                plans_flexible_only=4, n_unsupported=90, n_municipalities=20,
                                mean_dwellings=120.0)
    if scale == "national":
        return SimulationConfig(n_unsupported=6_500, n_municipalities=98, mean_dwellings=72.0,
                                sd_log_dwellings=0.8)
    raise ValueError(f"unknown scale {scale!r}: use 'small', 'report' or 'national'")
