"""A mechanism-based synthetic register with known truth and counterfactuals.

``impact.simulate.registers(seed, scale)`` simulates the residents of Danish social-housing
departments (almene boligafdelinger) 2003-2013: households age, move, work, study and earn; every
vacancy (genudlejning) is let through a channel — waiting list, internal transfer, municipal
referral (kommunal anvisning) or flexible letting (fleksibel udlejning) — according to the tools in
force and their agreed intensity, and the channel decides who gets the dwelling. Composition
follows through turnover. The same world is simulated without any tool, with the same random
numbers, to give the counterfactual and the true effects.

Conventions of the tables (``data_spec/``): persons are the status at 1 January; a person who
leaves the sector keeps one row with ``department_id`` null the year after, and one who moves in
from outside the sector has one such row the year before (arrivals from abroad and newborns have
none, the dead and emigrants none after). Households' disposable income is nominal DKK computed
from the members' status at 1 January (an approximation of the previous calendar year's income).
A letting of year t houses a tenant who first appears at 1 January t + 1 (lettings of 2013 have
``person_id`` null). Turnover is about 12% of dwellings a year (assumed; the report gives none).

Exactness: every random number is keyed by (seed, purpose, year, department-local key), and no
department's simulation reads another's state (between-department moves are linked afterwards,
:mod:`.linking`), so a department's composition depends only on its own draws and its own tools.
Hence the truth's effects are exactly zero in every department-year up to and including the first
calendar year a tool is in force there (a tool in force in year t first changes 1 January t + 1;
effects persist after a tool ends), all tables are byte-identical to the counterfactual's in the
years before the first tool anywhere, and ``effect_scale=0`` gives identical persons and
households tables (only the lettings' channel labels differ).

See :func:`registers`, :func:`calibration` and :class:`SimulationConfig`; the modules are
:mod:`.config`, :mod:`.rng`, :mod:`.world`, :mod:`.population`, :mod:`.dynamics`,
:mod:`.linking`, :mod:`.tables`, :mod:`.truth`, :mod:`.calibration`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from impact.registers import Registers
from impact.simulate.calibration import calibration, format_calibration
from impact.simulate.config import SimulationConfig, config_for_scale
from impact.simulate.dynamics import simulate_world
from impact.simulate.linking import link_moves
from impact.simulate.rng import Streams
from impact.simulate.tables import build_tables
from impact.simulate.truth import truth_table, world_summary
from impact.simulate.world import (
    TOOLS_WITH_MECHANISM,
    build_world,
    normalise_adoption,
    schedule,
)

__all__ = ["SimulationConfig", "calibration", "config_for_scale", "format_calibration", "placebo",
           "registers"]


def placebo(registers: Registers) -> Registers:
    """The placebo world of simulated registers: no effect anywhere, the real adoption.

    Persons and households of the world without any tool (the counterfactual, on the same random
    numbers), with the factual departments, tool adoption and lettings (so exposure and intensity
    are as observed; a letting's ``person_id`` is set to null where that person is not in the
    placebo persons). Its truth is the factual truth with every effect set to zero. The tables
    pass :func:`impact.spec.validate`, so ``impact simulate --placebo`` writes a folder that
    ``impact run --data`` accepts.

    Parameters
    ----------
    registers
        Output of :func:`registers`.

    Returns
    -------
    Registers
        ``counterfactual`` is None.
    """
    if registers.counterfactual is None or registers.truth is None:
        raise ValueError("placebo: needs simulated registers with a counterfactual and truth")
    cf = registers.counterfactual
    lettings = registers.lettings.copy()
    # A letting's tenant is a factual person; in the placebo world the same person number exists
    # only where the counterfactual tenant of that dwelling took it, so others are unknown (null,
    # as the contract allows) and the lettings still validate.
    known = lettings["person_id"].isin(cf.persons["person_id"])
    lettings["person_id"] = lettings["person_id"].where(known)
    truth = registers.truth.copy()
    for col in truth.columns:
        if "_effect" in col:
            truth[col] = np.where(truth[col].isna(), np.nan, 0.0)
    return Registers(persons=cf.persons, households=cf.households,
                     departments=registers.departments, lettings=lettings,
                     tool_adoption=registers.tool_adoption, truth=truth, counterfactual=None)


def registers(
    seed: int = 0,
    scale: str = "report",
    *,
    config: SimulationConfig | None = None,
    effect_scale: float = 1.0,
    adoption: pd.DataFrame | None = None,
) -> Registers:
    """Simulate the five register tables with the truth and the no-tool counterfactual.

    Parameters
    ----------
    seed
        Seed of every random number (same seed => byte-identical tables).
    scale
        ``"report"`` (default: the 2015 report's 498 supported departments in 146 plans plus 350
        non-supported comparison departments, about 260,000 residents), ``"small"`` (for tests) or
        ``"national"`` (about 7,000 departments and one million residents, for benchmarks).
    config
        Parameters; overrides ``scale`` (see :class:`SimulationConfig` and
        :func:`config_for_scale`).
    effect_scale
        Multiplies every effect of a letting channel on who gets the vacancy; 0 = the tools do
        nothing, so factual == counterfactual everywhere.
    adoption
        Tool spells set by hand, replacing the simulated ones: a DataFrame with ``department_id``
        or ``plan_id`` (exactly one per row), ``tool``, ``start_year`` and optionally ``end_year``
        (null = still in force) and ``agreed_share`` (share of vacancies). Only
        ``municipal_referral`` and ``flexible_letting`` have a mechanism; other tools are recorded
        but change nothing.

    Returns
    -------
    Registers
        ``persons``, ``households``, ``departments``, ``lettings``, ``tool_adoption`` as in
        ``data_spec/``; ``truth`` (one row per department_id x year, see
        :func:`impact.simulate.truth.truth_table`: effects against the world without any tool and
        against the world without each tool alone); ``counterfactual`` (the same world without
        any tool, its own ``truth`` is None).
    """
    cfg = config if config is not None else config_for_scale(scale)
    world = build_world(seed, cfg)
    tool_adoption = (world.tool_adoption if adoption is None
                     else normalise_adoption(pd.DataFrame(adoption), source="user"))
    referral, flexible = schedule(world, tool_adoption)
    streams = Streams(seed)
    zero = np.zeros_like(referral)
    summaries, tables = {}, {}
    # One world at a time, its records freed before the next (peak memory at national scale).
    for name, (ka, fu) in (("factual", (referral, flexible)), ("counterfactual", (zero, zero))):
        rec = simulate_world(world, cfg, streams, ka, fu, effect_scale)
        summaries[name] = world_summary(rec, world.n)
        links = link_moves(rec, streams)
        tables[name] = build_tables(rec, links, world.departments, cfg)
        del rec, links
    # Tool-specific counterfactuals: the world without one tool (its spells removed, the other
    # tool's as agreed), on the same random numbers. Only their summaries are kept. A world is a
    # pure function of its schedules (the streams are keyed hashes), so a schedule equal to the
    # factual's (the tool never used) or to none at all (the other tool never used) reuses that
    # world's summary instead of simulating it again.
    without = {}
    for tool in TOOLS_WITH_MECHANISM:
        ka, fu = schedule(world, tool_adoption[tool_adoption["tool"] != tool])
        if np.array_equal(ka, referral) and np.array_equal(fu, flexible):
            without[tool] = summaries["factual"]
        elif not ka.any() and not fu.any():
            without[tool] = summaries["counterfactual"]
        else:
            rec = simulate_world(world, cfg, streams, ka, fu, effect_scale)
            without[tool] = world_summary(rec, world.n)
            del rec
    truth = truth_table(world.departments, summaries["factual"], summaries["counterfactual"],
                        referral, flexible, without=without)
    empty_adoption = tool_adoption.iloc[0:0].reset_index(drop=True)
    cp, ch, cl = tables["counterfactual"]
    counterfactual = Registers(persons=cp, households=ch, departments=world.departments.copy(),
                               lettings=cl, tool_adoption=empty_adoption)
    fp, fh, fl = tables["factual"]
    return Registers(persons=fp, households=fh, departments=world.departments, lettings=fl,
                     tool_adoption=tool_adoption, truth=truth, counterfactual=counterfactual)
