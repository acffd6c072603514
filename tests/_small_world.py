"""One small simulated world shared by the channel and subgroup tests (simulated once)."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

import impact.channels
import impact.estimates
import impact.panel
import impact.simulate
from impact.registers import Registers


@lru_cache(maxsize=1)
def registers() -> Registers:
    """``impact.simulate.registers(0, "small")``."""
    return impact.simulate.registers(0, "small")


@lru_cache(maxsize=1)
def panel() -> pd.DataFrame:
    """The panel of :func:`registers`."""
    return impact.panel.build(registers()).frame


@lru_cache(maxsize=1)
def composition() -> impact.channels.ChannelComposition:
    """``impact.channels.tenant_composition`` of :func:`registers`."""
    return impact.channels.tenant_composition(registers())


@lru_cache(maxsize=1)
def prepared() -> pd.DataFrame:
    """``impact.estimates.prepare`` of :func:`panel`."""
    return impact.estimates.prepare(panel())
