"""Post-hoc linking of moves between social-housing departments.

Each department draws its own entrants, some flagged as coming "from another social-housing
department", and its own leavers, some flagged as going "to another social-housing department".
Because these draws come from the department's own streams, no department's composition depends on
another's (no spillovers; SUTVA holds by construction). Identities are joined afterwards: in every
year, entrant households from another department are matched to leaver households to another
department in a random order within cells, first exact cells (number of adults, number of children
0-3+, exact age of the first adult, non-Western origin of the first and second adult), then, for
the rest, coarse cells (number of adults, 5-year age band of the first adult, origin of the first
adult); pairs within the same department are dropped. The entrant's members then take the person
numbers of the matched leaver's members (adults by role, children by descending age) where both
have that member. Unmatched
entrants come from outside the sector (they get a row with department null the year before);
unmatched leavers go out of the sector (a row with department null the year after).

Limits: members without a counterpart (e.g. a third child) are recorded as coming from / going
to outside the sector; the first adult's age is exact after an exact-cell match (most links) but
may jump by up to four years after a coarse one, and other members' ages, education and income
may jump at the move. Linking changes person numbers, never who lives in a
department, so every composition measure (stock, in-movers, out-movers) is the same whatever the
linking — but which person numbers a department's movers carry may differ between the factual and
counterfactual worlds after the first tool is in force anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impact.simulate.dynamics import DEST_OTHER, ORIGIN_OTHER, WorldRecord
from impact.simulate.rng import Purpose, Streams


@dataclass(frozen=True)
class Links:
    """Result of linking.

    Attributes
    ----------
    src, dst
        Provisional person number -> final person number (sorted by ``src``); persons not in
        ``src`` keep their provisional number.
    entrant_linked, leaver_linked
        Boolean masks over ``WorldRecord.entrants`` and ``WorldRecord.leavers``.
    """

    src: np.ndarray
    dst: np.ndarray
    entrant_linked: np.ndarray
    leaver_linked: np.ndarray

    def final(self, pid: np.ndarray) -> np.ndarray:
        """Final person numbers of provisional ones."""
        return _lookup(self.src, self.dst, pid)


def _lookup(src: np.ndarray, dst: np.ndarray, pid: np.ndarray) -> np.ndarray:
    if src.size == 0:
        return pid.copy()
    pos = np.minimum(np.searchsorted(src, pid), src.size - 1)
    found = src[pos] == pid
    return np.where(found, dst[pos], pid)


def _ranked(cell: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Cell * 2^24 + rank within cell (rank by random key)."""
    order = np.lexsort((key, cell))
    c = cell[order]
    start = np.concatenate([[True], c[1:] != c[:-1]])
    first = np.maximum.accumulate(np.where(start, np.arange(c.size), 0))
    rank = np.empty(c.size, dtype=np.int64)
    rank[order] = np.arange(c.size) - first
    return cell * (1 << 24) + rank


def _slots(hh: np.ndarray, role: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Member slot within the household: 0/1 adults, 2+ children by descending age."""
    order = np.lexsort((-age.astype(np.int64), role, hh))
    h = hh[order]
    start = np.concatenate([[True], h[1:] != h[:-1]])
    group = np.cumsum(start) - 1
    pos = np.arange(h.size) - np.flatnonzero(start)[group]
    is_adult = role[order] < 2
    adults_in = np.bincount(group, is_adult)[group].astype(np.int64)
    slot = np.empty(h.size, dtype=np.int64)
    slot[order] = np.where(is_adult, role[order], 2 + pos - adults_in)
    return slot


def _match(e_cell: np.ndarray, e_key: np.ndarray, l_cell: np.ndarray, l_key: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    _, ie, il = np.intersect1d(_ranked(e_cell, e_key), _ranked(l_cell, l_key),
                               assume_unique=True, return_indices=True)
    return ie, il


def link_moves(rec: WorldRecord, streams: Streams) -> Links:
    """Match entrants from, and leavers to, other departments (see module docstring)."""
    E, L = rec.entrants, rec.leavers
    e_head = np.flatnonzero((E["origin"] == ORIGIN_OTHER) & (E["role"] == 0))
    l_head = np.flatnonzero((L["dest"] == DEST_OTHER) & (L["role"] == 0))
    ey, ly = E["year"][e_head].astype(np.int64), L["year"][l_head].astype(np.int64)
    e_key = np.empty(e_head.size)
    l_key = np.empty(l_head.size)
    for y in np.unique(ey):
        e_key[ey == y] = streams.uniform(Purpose.LINK, int(y), E["hh"][e_head][ey == y])
    for y in np.unique(ly):
        l_key[ly == y] = streams.uniform(Purpose.LINK, int(y) + 5000, L["hh"][l_head][ly == y])

    def cell(f: dict[str, np.ndarray], idx: np.ndarray, year: np.ndarray, exact: bool) -> np.ndarray:
        age = f["head_age"][idx].astype(np.int64)
        base = year * 4 + f["n_adults"][idx].astype(np.int64)
        if exact:
            kids = np.minimum(f["n_kids"][idx].astype(np.int64), 3)
            c = ((base * 4 + kids) * 256 + age) * 2 + f["nw1"][idx]
            return c * 2 + f["nw2"][idx]
        return (base * 64 + age // 5) * 2 + f["nw1"][idx]

    pairs_e, pairs_l = [], []
    e_left = np.ones(e_head.size, dtype=bool)
    l_left = np.ones(l_head.size, dtype=bool)
    for exact in (True, False):
        ei, li = np.flatnonzero(e_left), np.flatnonzero(l_left)
        ie, il = _match(cell(E, e_head[ei], ey[ei], exact), e_key[ei],
                        cell(L, l_head[li], ly[li], exact), l_key[li])
        ok = E["dept"][e_head[ei[ie]]] != L["dept"][l_head[li[il]]]
        ie, il = ei[ie[ok]], li[il[ok]]
        e_left[ie] = False
        l_left[il] = False
        pairs_e.append(ie)
        pairs_l.append(il)
    pe, pl = np.concatenate(pairs_e), np.concatenate(pairs_l)
    hh_e = E["hh"][e_head[pe]]
    hh_l = L["hh"][l_head[pl]]
    entrant_linked = np.zeros(E["pid"].size, dtype=bool)
    leaver_linked = np.zeros(L["pid"].size, dtype=bool)
    if hh_e.size == 0:
        return Links(np.empty(0, np.int64), np.empty(0, np.int64), entrant_linked, leaver_linked)

    # Member pairs by slot: adults by role, children by descending age.
    e_m = np.flatnonzero((E["origin"] == ORIGIN_OTHER) & (E["age"] >= 1))  # newborns: no past
    l_m = np.flatnonzero(L["dest"] == DEST_OTHER)
    o = np.argsort(hh_e)
    pos = np.minimum(np.searchsorted(hh_e[o], E["hh"][e_m]), hh_e.size - 1)
    e_in = hh_e[o][pos] == E["hh"][e_m]
    e_m = e_m[e_in]
    e_slot = _slots(E["hh"][e_m], E["role"][e_m], E["age"][e_m])
    target_key = hh_l[o][pos[e_in]] * 16 + np.minimum(e_slot, 15)
    l_slot = _slots(L["hh"][l_m], L["role"][l_m], L["age"][l_m])
    l_keys = L["hh"][l_m] * 16 + np.minimum(l_slot, 15)
    lo = np.argsort(l_keys)
    lpos = np.minimum(np.searchsorted(l_keys[lo], target_key), l_keys.size - 1)
    found = l_keys[lo][lpos] == target_key
    e_m = e_m[found]
    l_match = l_m[lo][lpos[found]]
    year_of = E["year"][e_m]
    entrant_linked[e_m] = True
    leaver_linked[l_match] = True

    # Resolve chains year by year: an entrant takes the final number of the leaver it continues.
    src = np.empty(0, dtype=np.int64)
    dst = np.empty(0, dtype=np.int64)
    for y in np.unique(year_of):
        m = year_of == y
        fin = _lookup(src, dst, L["pid"][l_match[m]])
        src = np.concatenate([src, E["pid"][e_m[m]]])
        dst = np.concatenate([dst, fin])
        o2 = np.argsort(src, kind="stable")
        src, dst = src[o2], dst[o2]
    return Links(src=src, dst=dst, entrant_linked=entrant_linked, leaver_linked=leaver_linked)
