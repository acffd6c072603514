"""Multiplier bootstrap and analytic variances from influence functions (Callaway & Sant'Anna 2021).

Follows R's ``did::mboot``: Rademacher multipliers (``BMisc::multiplier_bootstrap`` draws +-1 with
probability 1/2 each; DRDID's own ``mboot.did`` uses Mammen weights, but ``did`` does not), one
multiplier per cluster applied to the cluster *sums* of the influence function when clustering
(Remark 10 of the paper), standard errors from the bootstrap interquartile range divided by
``qnorm(.75) - qnorm(.25)``, and the sup-t critical value for uniform bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]

_TINY = float(np.sqrt(np.finfo(float).eps) * 10)
_IQR_NORMAL = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))


def quantile_type1(x: FloatArray, p: float) -> float:
    """R's ``quantile(x, p, type = 1)`` (inverse empirical CDF), ignoring NaN."""
    x = np.sort(x[~np.isnan(x)])
    n = x.size
    if n == 0:
        return float("nan")
    nppm = n * p
    fuzz = 4 * np.finfo(float).eps
    j = int(np.floor(nppm + fuzz))
    h = nppm - j
    if abs(h) < fuzz:
        h = 0.0
    lo = x[max(j, 1) - 1]
    hi = x[min(j + 1, n) - 1]
    return float(lo if h == 0 else hi)


def cluster_sums(inf: FloatArray, cluster: NDArray[np.int64] | None) -> FloatArray:
    """Influence function summed within clusters (rows in cluster-code order), or ``inf`` itself."""
    if cluster is None:
        return inf
    n_cl = int(cluster.max()) + 1
    out = np.zeros((n_cl, inf.shape[1]))
    np.add.at(out, cluster, inf)
    return out


def analytic_vcov(inf: FloatArray, cluster: NDArray[np.int64] | None) -> FloatArray:
    """``V`` such that ``Var(theta_hat) = V / n``; cluster-robust with cluster sums (R's form)."""
    n = inf.shape[0]
    s = cluster_sums(inf, cluster)
    return (s.T @ s) / n


def analytic_se(inf: FloatArray, cluster: NDArray[np.int64] | None) -> FloatArray:
    """Standard errors ``sqrt(diag(V) / n)``; zero or non-finite ones become NaN (as in R)."""
    n = inf.shape[0]
    s = cluster_sums(inf, cluster)
    se = np.sqrt(np.einsum("ij,ij->j", s, s)) / n
    se[~np.isfinite(se) | (se <= _TINY)] = np.nan
    return se


def rademacher_chunks(rng: np.random.Generator, n: int, n_boot: int, chunk: int = 128):
    """Yield ``(b, n)`` float blocks of +-1 multipliers, ``n_boot`` rows in all."""
    n_bytes = (n + 7) // 8
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        bits = np.unpackbits(rng.integers(0, 256, size=(b, n_bytes), dtype=np.uint8), axis=1)
        yield bits[:, :n].astype(np.float64) * 2.0 - 1.0
        done += b


@dataclass(frozen=True)
class BootResult:
    """Bootstrap draws (``n_boot x K``, R's ``bres``), standard errors and sup-t critical value."""

    draws: FloatArray
    se: FloatArray
    crit_value: float


def multiplier_bootstrap(
    inf: FloatArray,
    cluster: NDArray[np.int64] | None,
    n_boot: int,
    alpha: float,
    rng: np.random.Generator,
    band_columns: NDArray[np.bool_] | None = None,
) -> BootResult:
    """Multiplier bootstrap of ``K`` estimators from their influence functions (n x K).

    Parameters
    ----------
    inf
        Influence functions, one column per estimator (NaN columns are skipped).
    cluster
        Cluster codes per row, or None (each unit its own cluster).
    n_boot
        Number of bootstrap draws.
    alpha
        Level of the uniform band.
    rng
        Source of the multipliers.
    band_columns
        Columns that enter the sup-t critical value (default: all).

    Returns
    -------
    BootResult
    """
    n = inf.shape[0]
    s = cluster_sums(inf, cluster)
    n_cl = s.shape[0]
    ok = np.all(np.isfinite(s), axis=0)
    s_ok = np.where(ok, s, 0.0)
    draws = np.empty((n_boot, inf.shape[1]))
    row = 0
    for block in rademacher_chunks(rng, n_cl, n_boot):
        draws[row : row + block.shape[0]] = block @ s_ok
        row += block.shape[0]
    # R: bres = sqrt(n_cl) * colMeans(v * S)
    draws *= np.sqrt(n_cl) / n_cl
    draws[:, ~ok] = np.nan
    nondegenerate = ok & (np.nansum(draws**2, axis=0) > _TINY)
    sigma = np.full(inf.shape[1], np.nan)
    for j in np.flatnonzero(nondegenerate):
        col = draws[:, j]
        sigma[j] = (quantile_type1(col, 0.75) - quantile_type1(col, 0.25)) / _IQR_NORMAL
    se = sigma * np.sqrt(n_cl) / n
    sig_band = np.where(sigma > _TINY, sigma, np.nan)
    use = nondegenerate.copy() if band_columns is None else nondegenerate & band_columns
    use &= np.isfinite(sig_band)
    if use.any():
        t_stats = np.max(np.abs(draws[:, use] / sig_band[use]), axis=1)
        crit = quantile_type1(t_stats[np.isfinite(t_stats)], 1.0 - alpha)
    else:
        crit = float("nan")
    return BootResult(draws=draws, se=se, crit_value=crit)
