"""Yearly dynamics of one world (factual or counterfactual), vectorised over all departments.

One step runs calendar year ``t`` (status at 1 January ``t`` -> status at 1 January ``t + 1``):

1. status at 1 January: labour force, employment, household disposable income (nominal DKK);
2. deaths (by age), household moves (by head age, employment and resource), their destination
   (another social-housing department, outside the sector, or abroad), children aged 18+ leaving
   home (out of the sector);
3. every dwelling left empty is a vacancy (genudlejning) let in year ``t`` through a channel drawn
   from the tools in force in the department: municipal referral (kommunal anvisning) with the
   agreed share, flexible letting (fleksibel udlejning) with the agreed share, the rest by internal
   transfer (oprykning, 10%) or the ordinary waiting list (venteliste). The channel shifts the
   distribution the new household is drawn from: referral -> weaker, flexible letting -> stronger
   and employed, but only when the department's market has a pool of qualifying applicants
   (waiting_list markets); otherwise the flexible letting goes to an ordinary applicant;
4. stayers age, change employment (AR(1) shock plus business cycle) and complete education; births.

No step reads another department's state: a department's composition depends only on its own
random streams (keyed by its own dwellings and persons) and its own tools. Moves between
departments are linked afterwards (:mod:`.linking`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impact.simulate.config import FIRST_YEAR, LAST_YEAR, SimulationConfig
from impact.simulate.population import (
    PERSON_FIELDS,
    YOUTH_HH_OFFSET,
    draw_households,
    hh_key,
    labour_status,
    make_pid,
    person_income,
    resource_probability,
)
from impact.simulate.rng import Purpose, Streams
from impact.simulate.world import World

CHANNELS = ("waiting_list", "internal_transfer", "municipal_referral", "flexible_letting")
WL, INTERNAL, KA, FU = 0, 1, 2, 3
ORIGIN_OUTSIDE, ORIGIN_OTHER, ORIGIN_ABROAD = 0, 1, 2
DEST_OUTSIDE, DEST_OTHER, DEST_EMIGRATE = 0, 1, 2

def youth_household(pid: np.ndarray) -> np.ndarray:
    """Household number of a young person who left home."""
    return YOUTH_HH_OFFSET + pid


ROW_FIELDS = ("pid", "year", "hh", "dept", "dwell", "age", "nw", "lf", "emp", "edu", "hhinc")


@dataclass(frozen=True)
class WorldRecord:
    """Everything one world produced, with provisional person numbers.

    Attributes
    ----------
    rows
        Resident person-years 2003-2013 (:data:`ROW_FIELDS`).
    entrants
        Persons of households that took a vacancy, one row per person: year of arrival (first year
        in the department), origin, and the household's linking cell.
    leavers
        Persons who left a department alive: year = first year no longer there, destination,
        status in their last year in the department, and the household's linking cell.
    lettings
        One row per letting: department, year (lease start), dwelling, channel, head's person number.
    """

    rows: dict[str, np.ndarray]
    entrants: dict[str, np.ndarray]
    leavers: dict[str, np.ndarray]
    lettings: dict[str, np.ndarray]


def _take(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in d.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _compact(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Smaller dtypes for the stored records."""
    small = {"year": np.int16, "dept": np.int32, "dwell": np.int16, "age": np.int16,
             "edu": np.int8, "role": np.int8, "origin": np.int8, "dest": np.int8,
             "channel": np.int8, "n_adults": np.int8, "n_kids": np.int8, "head_age": np.int16,
             "hhinc": np.float32, "hhinc_after": np.float32}
    return {k: (v.astype(small[k]) if k in small else v) for k, v in d.items()}


def _cell_fields(hinv: np.ndarray, n_hh: int, member_ok: np.ndarray, age: np.ndarray,
                 nw: np.ndarray, age_offset: int) -> tuple[np.ndarray, ...]:
    """Per household: number of adults, age of the first adult (+ offset), origin of first/second."""
    idx = np.flatnonzero(member_ok)
    grp = hinv[idx]
    n_ad = np.bincount(grp, minlength=n_hh)
    first = np.full(n_hh, -1, dtype=np.int64)
    second = np.full(n_hh, -1, dtype=np.int64)
    if idx.size:
        is_first = np.concatenate([[True], grp[1:] != grp[:-1]])
        first[grp[is_first]] = idx[is_first]
        is_second = np.concatenate([[False], (grp[1:] == grp[:-1])]) & np.concatenate(
            [[False], is_first[:-1]])
        second[grp[is_second]] = idx[is_second]
    age1 = np.where(first >= 0, age[np.maximum(first, 0)] + age_offset, -1)
    nw1 = np.where(first >= 0, nw[np.maximum(first, 0)], False)
    nw2 = np.where(second >= 0, nw[np.maximum(second, 0)], False)
    rank = np.full(hinv.size, 2, dtype=np.int8)
    rank[first[first >= 0]] = 0
    rank[second[second >= 0]] = 1
    return n_ad, age1, nw1, nw2, rank


def simulate_world(world: World, cfg: SimulationConfig, streams: Streams, referral: np.ndarray,
                   flexible: np.ndarray, effect_scale: float) -> WorldRecord:
    """Run 2003-2013 for one world.

    Parameters
    ----------
    world
        Departments (levels, markets, sizes).
    cfg
        Parameters.
    streams
        Keyed random numbers (the same for the factual and the counterfactual world).
    referral, flexible
        Agreed shares of vacancies per department and letting year (:func:`.world.schedule`); all
        zero for the counterfactual.
    effect_scale
        Multiplies every channel effect on who gets the vacancy (0 = tools change nothing).

    Returns
    -------
    WorldRecord
    """
    n_dw = world.departments["n_dwellings"].to_numpy()
    level = world.level
    market = world.market
    dept0 = np.repeat(np.arange(world.n), n_dw)
    dwell0 = np.arange(dept0.size) - np.repeat(np.cumsum(n_dw) - n_dw, n_dw)
    zeros = np.zeros(dept0.size)
    _, state = draw_households(
        streams, cfg, year=FIRST_YEAR - 1, ycode=0, dept=dept0, dwell=dwell0,
        mu_r=level[dept0], nw_base=cfg.non_western_base - cfg.non_western_department * level[dept0],
        emp_shift=zeros, lf_shift=zeros, entrant=False)

    rows_parts, ent_parts, leave_parts, let_parts = [], [], [], []
    rho = cfg.emp_persistence
    mu_wl = np.asarray(cfg.mu_waiting_list)
    pool_p = np.asarray(cfg.flexible_pool)
    move_base = np.asarray(cfg.move_base)
    s = float(effect_scale)

    for t in range(FIRST_YEAR, LAST_YEAR + 1):
        order = np.lexsort((state["pid"], state["role"], state["hh"]))
        state = _take(state, order)
        pid, hh, dept, dwell = state["pid"], state["hh"], state["dept"], state["dwell"]
        age, role, nw, r = state["age"], state["role"], state["nw"], state["r"]
        lf, emp = labour_status(cfg, t, age, r, state["zlf"], state["u"])
        inc = person_income(cfg, t, age, lf, emp, r, state["zinc"])
        uh, hidx, hinv = np.unique(hh, return_index=True, return_inverse=True)
        n_hh = uh.size
        hhinc = np.bincount(hinv, inc, minlength=n_hh)
        p_hhinc = np.round(hhinc)[hinv]  # whole DKK, as written to the households table
        rows_parts.append(_compact({
            "pid": pid, "year": np.full(pid.size, t), "hh": hh, "dept": dept, "dwell": dwell,
            "age": age, "nw": nw, "lf": lf, "emp": emp, "edu": state["edu"], "hhinc": p_hhinc}))

        # --- deaths, moves, youth leaving home (calendar year t) ---
        mort = np.minimum(np.exp(-10.0 + 0.09 * age), 0.5)
        died = streams.uniform(Purpose.P_DEATH, t, pid) < mort
        adult = role < 2
        alive_adult = adult & ~died
        n_alive_adults = np.bincount(hinv, alive_adult, minlength=n_hh)
        n_adults_now = np.maximum(np.bincount(hinv, adult, minlength=n_hh), 1)
        r_adults = np.bincount(hinv, r * adult, minlength=n_hh) / n_adults_now
        head_age = age[hidx]
        band = np.digitize(head_age, [30, 45, 65])
        p_move = move_base[band] * np.exp(cfg.move_employed * (emp[hidx] - 0.5)
                                          + cfg.move_resource * r_adults)
        dissolved = n_alive_adults == 0
        move = (streams.uniform(Purpose.HH_MOVE, t, uh) < np.minimum(p_move, 0.9)) & ~dissolved
        hh_nw = nw[hidx]
        p_em = np.where(hh_nw, cfg.p_emigrate_non_western, cfg.p_emigrate)
        u_dest = streams.uniform(Purpose.HH_DEST, t, uh)
        dest_hh = np.where(u_dest < p_em, DEST_EMIGRATE,
                           np.where((u_dest - p_em) / (1 - p_em) < cfg.q_other_department_out,
                                    DEST_OTHER, DEST_OUTSIDE))
        moving = move[hinv] & ~died
        gone = move[hinv] | dissolved[hinv]
        youth = ((role == 2) & (age >= 18) & ~died & ~gone
                 & (streams.uniform(Purpose.P_YOUTH, t, pid) < cfg.p_youth_leave))
        stay = ~died & ~gone & ~youth

        # Leavers (out of the department at t + 1, alive).
        n_ad_l, age1_l, nw1_l, nw2_l, rank_l = _cell_fields(hinv, n_hh, alive_adult & moving, age,
                                                            nw, 1)
        n_kid_l = np.bincount(hinv, moving & (role == 2), minlength=n_hh)
        lv = np.flatnonzero(moving | youth)
        yv = youth[lv]
        u_yd = streams.uniform(Purpose.HH_DEST, t, pid[lv])
        lv_dest = np.where(yv, np.where(u_yd < cfg.q_youth_other_department, DEST_OTHER,
                                        DEST_OUTSIDE), dest_hh[hinv[lv]])
        lv_h = hinv[lv]
        leave_parts.append(_compact({
            "pid": pid[lv], "year": np.full(lv.size, t + 1), "dept": dept[lv], "dwell": dwell[lv],
            "hh": np.where(yv, youth_household(pid[lv]), hh[lv]), "dest": lv_dest,
            "role": np.where(yv, 0, rank_l[lv]), "youth": yv,
            "age": age[lv], "nw": nw[lv], "lf": lf[lv], "emp": emp[lv], "edu": state["edu"][lv],
            "hhinc": p_hhinc[lv], "hhinc_after": np.where(yv, np.round(inc[lv]), p_hhinc[lv]),
            "n_adults": np.where(yv, 1, n_ad_l[lv_h]),
            "n_kids": np.where(yv, 0, n_kid_l[lv_h]),
            "head_age": np.where(yv, age[lv] + 1, age1_l[lv_h]),
            "nw1": np.where(yv, nw[lv], nw1_l[lv_h]), "nw2": np.where(yv, False, nw2_l[lv_h])}))

        # --- vacancies and lettings (letting year t) ---
        vac = np.flatnonzero(move | dissolved)
        vdept = dept[hidx[vac]]
        vdwell = dwell[hidx[vac]]
        vkey = hh_key(vdept, vdwell)
        ti = t - FIRST_YEAR
        ka = referral[vdept, ti]
        fu = flexible[vdept, ti]
        uc = streams.uniform(Purpose.V_CHANNEL, t, vkey)
        internal = streams.uniform(Purpose.V_INTERNAL, t, vkey) < cfg.p_internal_transfer
        chan = np.where(uc < ka, KA, np.where(uc < ka + fu, FU, np.where(internal, INTERNAL, WL)))
        mk = market[vdept]
        is_ka = chan == KA
        is_fu = (chan == FU) & (streams.uniform(Purpose.V_POOL, t, vkey) < pool_p[mk])
        mu = mu_wl[mk] + cfg.local_weight * level[vdept]
        mu = mu + s * (cfg.delta_referral * is_ka + cfg.delta_flexible * is_fu)
        nwb = (cfg.entrant_non_western - cfg.non_western_department * cfg.local_weight * level[vdept]
               + s * (cfg.referral_non_western_shift * is_ka + cfg.flexible_non_western_shift * is_fu))
        ycode = t + 1 - 2002
        ent_h, ent = draw_households(
            streams, cfg, year=t, ycode=ycode, dept=vdept, dwell=vdwell, mu_r=mu, nw_base=nwb,
            emp_shift=s * cfg.flexible_employment_shift * is_fu,
            lf_shift=s * cfg.flexible_labour_force_shift * is_fu, entrant=True)
        uo = streams.uniform(Purpose.HH_ORIGIN, t, vkey)
        p_ab = np.where(ent_h["nw"], cfg.p_abroad_non_western, cfg.p_abroad)
        origin = np.where(uo < p_ab, ORIGIN_ABROAD,
                          np.where(internal, ORIGIN_OTHER,
                                   np.where((uo - p_ab) / (1 - p_ab) < cfg.q_other_department_in,
                                            ORIGIN_OTHER, ORIGIN_OUTSIDE)))
        let_parts.append(_compact({
            "dept": vdept, "year": np.full(vac.size, t), "dwell": vdwell, "channel": chan,
            "pid": make_pid(vdept, ycode, vdwell, 0)}))
        size = np.bincount(np.searchsorted(ent_h["hh"], ent["hh"]), minlength=vac.size)
        e_idx = np.repeat(np.arange(vac.size), size)
        if t < LAST_YEAR:
            e_lf, e_emp = labour_status(cfg, t + 1, ent["age"], ent["r"], ent["zlf"], ent["u"])
            e_inc = person_income(cfg, t + 1, ent["age"], e_lf, e_emp, ent["r"], ent["zinc"])
            e_hhinc = np.round(np.bincount(e_idx, e_inc, minlength=vac.size))[e_idx]
            ent_parts.append(_compact({
                "age": ent["age"], "nw": ent["nw"], "lf": e_lf, "emp": e_emp, "edu": ent["edu"],
                "hhinc": e_hhinc,
                "pid": ent["pid"], "year": np.full(e_idx.size, t + 1), "dept": ent["dept"],
                "hh": ent["hh"], "role": ent["role"], "origin": origin[e_idx],
                "channel": chan[e_idx], "n_adults": ent_h["n_adults"][e_idx],
                "n_kids": size[e_idx] - ent_h["n_adults"][e_idx],
                "head_age": ent_h["head_age"][e_idx], "nw1": ent_h["nw"][e_idx],
                "nw2": ent_h["nw2"][e_idx]}))

        # --- stayers: ageing, employment shocks, education, births ---
        st = _take(state, np.flatnonzero(stay))
        st["age"] = st["age"] + 1
        shock = streams.normal(Purpose.P_EMP_SHOCK, t + 1, st["pid"])
        st["u"] = rho * st["u"] + np.sqrt(1 - rho**2) * shock
        young_unq = (st["age"] >= 18) & (st["age"] <= 30) & ((st["edu"] == 10) | (st["edu"] == 90))
        u_done = streams.uniform(Purpose.P_EDU_DONE, t + 1, st["pid"])
        done = young_unq & (u_done < cfg.p_edu_complete * 2 * resource_probability(st["r"]))
        st["edu"] = np.where(done, np.where(u_done < cfg.p_edu_complete * 0.5, 20, 30),
                             st["edu"]).astype(np.int8)

        n_kids = np.bincount(hinv, (role == 2) & stay, minlength=n_hh)
        can_birth = (~move & ~dissolved & (head_age >= 20) & (head_age <= 42) & (n_kids < 4))
        p_b = np.where(hh_nw, cfg.p_birth_non_western, cfg.p_birth)
        born = np.flatnonzero(can_birth & (streams.uniform(Purpose.HH_BIRTH, t, uh) < p_b))
        b_dept = dept[hidx[born]]
        b_dwell = dwell[hidx[born]]
        b_pid = make_pid(b_dept, ycode, b_dwell, 7)
        newborn = {
            "pid": b_pid, "hh": uh[born], "dept": b_dept, "dwell": b_dwell,
            "age": np.zeros(born.size, dtype=np.int64), "role": np.full(born.size, 2, dtype=np.int8),
            "nw": hh_nw[born],
            "r": r_adults[born] + cfg.sd_person_resource * streams.normal(Purpose.P_RESOURCE, t, b_pid),
            "zlf": streams.normal(Purpose.P_LF, t, b_pid), "u": streams.normal(Purpose.P_EMP, t, b_pid),
            "zinc": streams.normal(Purpose.P_INC, t, b_pid),
            "edu": np.full(born.size, 10, dtype=np.int8)}
        state = _concat([{k: st[k] for k in PERSON_FIELDS}, newborn,
                         {k: ent[k] for k in PERSON_FIELDS}])

    leavers = _concat(leave_parts)
    keep = leavers["year"] <= LAST_YEAR
    return WorldRecord(rows=_concat(rows_parts), entrants=_concat(ent_parts),
                       leavers=_take(leavers, np.flatnonzero(keep)), lettings=_concat(let_parts))


