"""Counter-based random numbers: common random numbers for factual and counterfactual worlds.

Every draw is a pure function of ``(seed, purpose, year, key)``: a splitmix64 hash of the four,
turned into a uniform on (0, 1). Keys are department-local (a person number or a dwelling number that
encodes its department), so each department and year has its own random stream — the vectorised
equivalent of one ``numpy.random.SeedSequence`` spawned per department, year and purpose. A draw
never shifts because some other draw was added or removed, which is what makes the counterfactual
(no tool) world use the same random numbers as the factual one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.special import ndtri

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class Purpose(IntEnum):
    """What a draw is used for; one independent stream per purpose."""

    DEPT_SIZE = 1
    DEPT_LEVEL = 2
    PLAN = 3
    ADOPTION = 4
    HH_ADULTS = 10
    HH_HEAD_AGE = 11
    HH_PARTNER_AGE = 12
    HH_KIDS = 13
    HH_KID_AGE = 14
    HH_NW = 15
    HH_PARTNER_NW = 16
    HH_RESOURCE = 17
    HH_ORIGIN = 18
    P_RESOURCE = 20
    P_LF = 21
    P_EMP = 22
    P_INC = 23
    P_EDU = 24
    P_EDU_CODE = 25
    P_DEATH = 30
    P_EMP_SHOCK = 31
    P_EDU_DONE = 32
    P_YOUTH = 33
    HH_MOVE = 40
    HH_DEST = 41
    HH_BIRTH = 42
    V_CHANNEL = 50
    V_INTERNAL = 51
    V_POOL = 52
    LINK = 60


def _mix_scalar(x: int) -> int:
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        x = x ^ (x >> np.uint64(31))
    return x


@dataclass(frozen=True)
class Streams:
    """Keyed random streams of one simulation seed.

    Parameters
    ----------
    seed
        The simulation seed (any non-negative integer).
    """

    seed: int

    def _base(self, purpose: int, year: int) -> int:
        h = _mix_scalar(self.seed * _GOLDEN + 0x1234567)
        h = _mix_scalar(h ^ (int(purpose) * 0x5851F42D4C957F2D))
        return _mix_scalar(h ^ ((int(year) + 7) * 0x2545F4914F6CDD1D))

    def uniform(self, purpose: Purpose, year: int, keys: np.ndarray) -> np.ndarray:
        """Uniforms on (0, 1), one per key, a pure function of (seed, purpose, year, key)."""
        k = np.asarray(keys).astype(np.int64).view(np.uint64)
        base = np.uint64(self._base(purpose, year))
        with np.errstate(over="ignore"):
            h = _mix(k * np.uint64(_GOLDEN) + base)
        return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (2.0**-53)

    def normal(self, purpose: Purpose, year: int, keys: np.ndarray) -> np.ndarray:
        """Standard normal draws by inversion of :meth:`uniform`."""
        return ndtri(self.uniform(purpose, year, keys))
