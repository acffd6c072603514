"""Pre-trend tests and their power (Roth 2022, "Pretest with Caution", AER: Insights).

- :func:`pretrends`: joint Wald test that all pre-period coefficients are zero.
- :func:`pretrend_power`: power of the conventional pre-test (reject when any pre-period
  coefficient is individually significant) against a hypothesised violation of parallel trends,
  or the linear violation it detects with a given probability; as the R package ``pretrends``
  (github.com/jonathandroth/pretrends).

Normal rectangle probabilities are computed with Genz's (1992) separation-of-variables integral
on a fixed scrambled Sobol' point set, so results are deterministic and smooth in the mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from scipy.stats import qmc

from impact.diagnostics._event_study import as_event_study
from impact.errors import EstimationError

_QMC_POINTS = 2**15
_QMC_SEED = 20220101


@dataclass(frozen=True)
class PretrendTest:
    """Joint Wald test of the pre-period coefficients.

    Attributes
    ----------
    stat
        ``b_pre' Sigma_pre^{-1} b_pre``.
    df
        Number of pre-period coefficients.
    p_value
        ``P(chi2_df > stat)``.
    """

    stat: float
    df: int
    p_value: float


@dataclass(frozen=True)
class PretrendPower:
    """Power of the pre-test against a violation of parallel trends (Roth 2022).

    Attributes
    ----------
    slope
        Slope of the linear violation ``delta_t = slope * (t - reference)`` that the pre-test
        detects with probability ``target_power``; None when ``delta`` was given.
    power
        Probability that some pre-period coefficient is individually significant at ``alpha``
        when the coefficients are ``N(delta, sigma)``.
    bayes_factor
        ``P(pass | delta) / P(pass | parallel trends)``: small values mean that passing the
        pre-test is strong evidence against ``delta``.
    likelihood_ratio
        Density of the estimated pre-period coefficients under ``delta`` over that under zero.
    table
        One row per event time, the reference period included (zeros): ``event_time, estimate,
        se, delta, mean_after_pretesting`` (the expectation of the estimates under ``delta``
        conditional on passing the pre-test).
    alpha
        Level of each individual pre-period t-test.
    """

    slope: float | None
    power: float
    bayes_factor: float
    likelihood_ratio: float
    table: pd.DataFrame = field(compare=False)
    alpha: float = 0.05


def pretrends(
    result_or_betahat: Any,
    sigma: Any = None,
    *,
    n_pre: int | None = None,
    event_time: Any = None,
) -> PretrendTest:
    """Joint Wald test that all pre-period event-study coefficients are zero.

    Parameters
    ----------
    result_or_betahat
        An event-study result (``event_time``, ``estimate``, ``vcov()``) or the coefficient
        vector, reference period omitted, pre-periods first.
    sigma
        Covariance of the coefficients (arrays only).
    n_pre, event_time
        Which coefficients are pre-periods (arrays only; see
        :func:`impact.diagnostics._event_study.as_event_study`).

    Returns
    -------
    PretrendTest

    Raises
    ------
    EstimationError
        On malformed inputs or a singular pre-period covariance.
    """
    es = as_event_study(
        result_or_betahat, sigma, n_pre=n_pre, event_time=event_time, require_reference=False
    )
    b = es.betahat[es.pre]
    s = es.sigma[np.ix_(es.pre, es.pre)]
    try:
        stat = float(b @ np.linalg.solve(s, b))
    except np.linalg.LinAlgError as err:
        raise EstimationError("the pre-period covariance is singular; no Wald test") from err
    df = len(b)
    return PretrendTest(stat=stat, df=df, p_value=float(stats.chi2.sf(stat, df)))


@lru_cache(maxsize=16)
def _sobol(dim: int) -> np.ndarray:
    return qmc.Sobol(d=dim, scramble=True, seed=_QMC_SEED).random(_QMC_POINTS)


def rectangle_probability(
    mean: np.ndarray, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> float:
    """``P(lower <= X <= upper)`` for ``X ~ N(mean, cov)`` (Genz 1992, fixed quasi-Monte Carlo).

    Exact (normal cdf) in one dimension; otherwise accurate to about 1e-7 for the dimensions of
    an event study's pre-periods.
    """
    mean = np.atleast_1d(np.asarray(mean, float))
    cov = np.atleast_2d(np.asarray(cov, float))
    a = np.atleast_1d(np.asarray(lower, float)) - mean
    b = np.atleast_1d(np.asarray(upper, float)) - mean
    d = len(mean)
    if d == 0:
        return 1.0
    if d == 1:
        sd = np.sqrt(cov[0, 0])
        return float(special.ndtr(b[0] / sd) - special.ndtr(a[0] / sd))
    # order variables by increasing prior probability of their interval (Genz-Bretz heuristic)
    sd = np.sqrt(np.diag(cov))
    order = np.argsort(special.ndtr(b / sd) - special.ndtr(a / sd))
    a, b, cov = a[order], b[order], cov[np.ix_(order, order)]
    chol = np.linalg.cholesky(cov)
    w = _sobol(d - 1)
    lo = np.full(len(w), special.ndtr(a[0] / chol[0, 0]))
    hi = np.full(len(w), special.ndtr(b[0] / chol[0, 0]))
    f = hi - lo
    y = np.zeros((len(w), d - 1))
    for i in range(1, d):
        u = np.clip(lo + w[:, i - 1] * (hi - lo), 1e-300, 1 - 1e-16)
        y[:, i - 1] = special.ndtri(u)
        shift = y[:, :i] @ chol[i, :i]
        lo = special.ndtr((a[i] - shift) / chol[i, i])
        hi = special.ndtr((b[i] - shift) / chol[i, i])
        f = f * (hi - lo)
    return float(np.mean(f))


def truncated_normal_mean(
    mean: np.ndarray, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Mean of ``N(mean, cov)`` truncated to the box ``[lower, upper]`` (Tallis 1961).

    ``E[X] = mean + cov @ F`` with ``F_k = f_k(lower_k) - f_k(upper_k)``, where ``f_k`` is the
    marginal density of ``X_k`` on the box (Manjunath and Wilhelm 2012, eq. 15).
    """
    mean = np.asarray(mean, float)
    cov = np.asarray(cov, float)
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    d = len(mean)
    total = rectangle_probability(mean, cov, lower, upper)
    if total <= 0:
        raise EstimationError("the pre-test rejects with probability 1; no conditional mean")
    grad = np.zeros(d)
    for k in range(d):
        others = np.arange(d) != k
        s_kk = cov[k, k]
        cond_cov = cov[np.ix_(others, others)] - np.outer(cov[others, k], cov[k, others]) / s_kk
        for x, sign in ((lower[k], 1.0), (upper[k], -1.0)):
            dens = stats.norm.pdf(x, mean[k], np.sqrt(s_kk))
            if dens == 0:
                continue
            cond_mean = mean[others] + cov[others, k] / s_kk * (x - mean[k])
            prob = rectangle_probability(cond_mean, cond_cov, lower[others], upper[others])
            grad[k] += sign * dens * prob
    return mean + cov @ grad / total


def _pass_probability(delta_pre: np.ndarray, sigma_pre: np.ndarray, crit: float) -> float:
    bound = crit * np.sqrt(np.diag(sigma_pre))
    return rectangle_probability(delta_pre, sigma_pre, -bound, bound)


def pretrend_power(
    betahat: Any,
    sigma: Any = None,
    *,
    n_pre: int | None = None,
    target_power: float | None = None,
    delta: Any = None,
    alpha: float = 0.05,
    event_time: Any = None,
) -> PretrendPower:
    """Power of the pre-test against a violation of parallel trends (Roth 2022).

    The pre-test rejects when any pre-period coefficient has ``|t| > z_{1-alpha/2}`` (the test
    of the R package ``pretrends``, which hard-codes 1.96; pass ``alpha=2 * norm.sf(1.96)`` to
    match it exactly).

    Parameters
    ----------
    betahat
        Event-study result (``event_time``, ``estimate``, ``vcov()``) or coefficient vector with
        the reference period (-1 by default) omitted, pre-periods first.
    sigma
        Covariance of ``betahat`` (arrays only).
    n_pre
        Number of pre-period coefficients (arrays only, unless ``event_time`` is given).
    target_power
        Find the slope of the linear violation ``delta_t = slope * (t - reference)`` (zero at
        the reference period) that the pre-test detects with this probability.
    delta
        Alternatively, a hypothesised violation, one value per coefficient of ``betahat``.
    alpha
        Level of the individual pre-period t-tests.
    event_time
        Event times of ``betahat`` (arrays only); default ``-n_pre-1..-2, 0, 1, ...``.

    Returns
    -------
    PretrendPower

    Raises
    ------
    EstimationError
        Unless exactly one of ``target_power`` and ``delta`` is given, on a ``target_power``
        outside (size of the pre-test, 1), or on malformed inputs.
    """
    if (target_power is None) == (delta is None):
        raise EstimationError("give exactly one of target_power and delta")
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must lie in (0, 1), got {alpha}")
    es = as_event_study(betahat, sigma, n_pre=n_pre, event_time=event_time)
    pre = es.pre
    sigma_pre = es.sigma[np.ix_(pre, pre)]
    crit = float(stats.norm.isf(alpha / 2))
    rel_time = es.event_time - es.reference
    pass_null = _pass_probability(np.zeros(pre.sum()), sigma_pre, crit)

    slope: float | None = None
    if target_power is not None:
        if not 1 - pass_null < target_power < 1:
            raise EstimationError(
                f"target_power must lie between the pre-test's size {1 - pass_null:.4f} and 1"
            )

        def gap(s: float) -> float:
            return 1 - _pass_probability(s * rel_time[pre], sigma_pre, crit) - target_power

        upper = 8 * float(np.max(np.sqrt(np.diag(sigma_pre))))
        while gap(upper) < 0:
            upper *= 2
        slope = float(optimize.brentq(gap, 0.0, upper, xtol=1e-12 * upper, rtol=1e-10))
        delta_vec = slope * rel_time
    else:
        delta_vec = np.asarray(delta, float).ravel()
        if delta_vec.shape != es.betahat.shape:
            raise EstimationError(
                f"delta has {delta_vec.size} values but there are {es.betahat.size} coefficients"
            )

    pass_alt = _pass_probability(delta_vec[pre], sigma_pre, crit)
    b_pre = es.betahat[pre]
    lr = float(
        np.exp(
            stats.multivariate_normal.logpdf(b_pre, delta_vec[pre], sigma_pre)
            - stats.multivariate_normal.logpdf(b_pre, np.zeros(pre.sum()), sigma_pre)
        )
    )
    bound = crit * np.sqrt(np.diag(sigma_pre))
    mean_pre = truncated_normal_mean(delta_vec[pre], sigma_pre, -bound, bound)
    sigma_post_pre = es.sigma[np.ix_(~pre, pre)]
    mean_post = delta_vec[~pre] + sigma_post_pre @ np.linalg.solve(
        sigma_pre, mean_pre - delta_vec[pre]
    )
    table = pd.DataFrame(
        {
            "event_time": np.append(es.event_time, es.reference).astype(int),
            "estimate": np.append(es.betahat, 0.0),
            "se": np.append(np.sqrt(np.diag(es.sigma)), 0.0),
            "delta": np.append(delta_vec, 0.0),
            "mean_after_pretesting": np.concatenate([mean_pre, mean_post, [0.0]]),
        }
    )
    table = table.sort_values("event_time", ignore_index=True)
    return PretrendPower(
        slope=slope,
        power=1 - pass_alt,
        bayes_factor=pass_alt / pass_null,
        likelihood_ratio=lr,
        table=table,
        alpha=alpha,
    )
