"""R's default random normal generator (Mersenne-Twister + inversion), for reference tests only.

Reference results from R packages that simulate (HonestDiD's least-favourable critical value
draws ``set.seed(0); mvtnorm::rmvnorm(1000, sigma)``) can only be reproduced exactly with R's
own draws. This follows R's documented algorithm (``?RNG``; R's ``src/main/RNG.c``):
``set.seed(s)`` scrambles the seed 50 times with the congruential generator ``69069 * s + 1``
(mod 2^32) and then fills the 624 Mersenne-Twister words with the next 624 values of that
generator; ``unif_rand`` is the standard MT19937 output times 2^-32, kept inside (0, 1);
``norm_rand`` ("Inversion") is ``qnorm((floor(2^27 u1) + u2) / 2^27)`` with two uniforms.
numpy's MT19937 bit generator implements the same twister, so only the seeding and the
conversions are written here.
"""

from __future__ import annotations

import numpy as np
from scipy import special

_LCG = 69069
_MASK = 2**32 - 1
_BIG = 134217728  # 2^27
_I2_32M1 = 2.328306437080797e-10


def _mersenne_twister(seed: int) -> np.random.MT19937:
    s = seed & _MASK
    for _ in range(50):
        s = (_LCG * s + 1) & _MASK
    words = np.empty(625, dtype=np.uint32)
    for j in range(625):
        s = (_LCG * s + 1) & _MASK
        words[j] = s
    gen = np.random.MT19937()
    gen.state = {"bit_generator": "MT19937", "state": {"key": words[1:], "pos": 624}}
    return gen


def r_unif(gen: np.random.MT19937, n: int) -> np.ndarray:
    """``n`` draws of R's ``unif_rand`` from the generator state ``gen`` (advanced)."""
    u = gen.random_raw(n).astype(np.float64) * 2.3283064365386963e-10
    u[u <= 0.0] = 0.5 * _I2_32M1
    u[1.0 - u <= 0.0] = 1.0 - 0.5 * _I2_32M1
    return u


def r_rnorm(n: int, seed: int) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` in R (default kinds)."""
    u = r_unif(_mersenne_twister(seed), 2 * n)
    return special.ndtri((np.floor(_BIG * u[0::2]) + u[1::2]) / _BIG)


def r_standard_normals(n: int, dim: int, seed: int) -> np.ndarray:
    """The standard normals behind ``set.seed(seed); mvtnorm::rmvnorm(n, sigma)`` (n x dim).

    rmvnorm fills its ``n x dim`` matrix by row from ``rnorm(n * dim)`` and multiplies it by the
    symmetric square root of ``sigma`` (its default ``method = "eigen"``).
    """
    return r_rnorm(n * dim, seed).reshape(n, dim)
