"""Sensitivity of an event-study effect to violations of parallel trends (Rambachan and Roth 2023).

:func:`honest` returns robust confidence intervals for ``theta = l_vec' tau_post`` as the bound on
the post-period violation of parallel trends grows, following the R package HonestDiD
(github.com/asheshrambachan/HonestDiD):

- ``restriction="relative_magnitudes"`` (Delta^RM(Mbar): no post-period first difference of the
  violation exceeds Mbar times the largest pre-period one): the conditional-least-favourable
  hybrid ("C-LF") test of Andrews, Roth and Pakes (2023) inverted on a grid of theta, the union
  over which pre-period difference is the largest and its sign (HonestDiD's
  ``createSensitivityResults_relativeMagnitudes`` default).
- ``restriction="smoothness"`` (Delta^SD(M): the slope of the violation changes by at most M
  between consecutive periods): the optimal fixed-length confidence interval (FLCI) of Armstrong
  and Kolesar (HonestDiD's ``createSensitivityResults`` default).

Implementation notes (how this differs in computation, not in the method):

- The ARP test's linear programme ``min eta s.t. sd * eta + X delta >= y`` is solved through its
  dual, whose feasible set ``{lambda >= 0, sd' lambda = 1, X' lambda = 0}`` does not depend on y:
  its vertices are enumerated once per (Mbar, s, sign), so eta, the optimal vertex and the
  truncation bounds (vlo, vup) of the conditional test are exact, vectorised over the theta grid
  and the least-favourable draws (no LP solver, no bisection).
- The least-favourable critical value uses 1,000 normal draws (``seed``), as HonestDiD does
  with R's generator; the FLCI uses the exact folded-normal quantile where HonestDiD simulates
  it with 10^6 draws.
- With one post-period HonestDiD's no-nuisance hybrid test does not cap the second-stage
  truncation at the least-favourable critical value; here it is capped in every case (the
  hybrid test conditions on passing the first stage), so one-post-period intervals can be
  slightly shorter than HonestDiD's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from impact.diagnostics._event_study import as_event_study
from impact.errors import EstimationError

_LF_DRAWS = 1000
_MAX_SUBSETS = 2_000_000
_RESTRICTIONS = ("relative_magnitudes", "smoothness")


def _standard_normals(n: int, dim: int, seed: int) -> np.ndarray:
    """``n x dim`` standard normal draws for the least-favourable critical value."""
    return np.random.default_rng(seed).standard_normal((n, dim))


# ---------------------------------------------------------------- Delta^RM(Mbar) constraints


def _rm_constraints(n_pre: int, n_post: int, mbar: float, s: int, max_positive: bool) -> np.ndarray:
    """Matrix A with ``A delta <= 0`` iff delta is in Delta^RM_{s,sign}(Mbar).

    The largest pre-period first difference is the one ending at period s (``s = -(n_pre-1)..0``,
    with sign ``+`` if ``max_positive``); every other first difference is bounded by it, post-period
    ones by Mbar times it. Columns: delta without the reference period.
    """
    n = n_pre + n_post
    diffs = np.zeros((n, n + 1))
    diffs[np.arange(n), np.arange(n)] = -1.0
    diffs[np.arange(n), np.arange(n) + 1] = 1.0
    v = np.zeros(n + 1)
    v[n_pre + s - 1], v[n_pre + s] = -1.0, 1.0
    if not max_positive:
        v = -v
    bound = np.vstack([np.tile(v, (n_pre, 1)), np.tile(mbar * v, (n_post, 1))])
    a = np.vstack([diffs - bound, -diffs - bound])
    a = a[np.einsum("ij,ij->i", a, a) > 1e-10]
    return np.delete(a, n_pre, axis=1)


def _gamma(l_vec: np.ndarray) -> np.ndarray:
    """Invertible matrix whose first row is ``l_vec`` (HonestDiD's RREF construction)."""
    n = len(l_vec)
    b = np.column_stack([l_vec, np.eye(n)])
    pivots: list[int] = []
    for j in range(b.shape[1]):
        if np.linalg.matrix_rank(b[:, : j + 1]) > len(pivots):
            pivots.append(j)
        if len(pivots) == n:
            break
    return b[:, pivots].T


# ---------------------------------------------------------------- ARP conditional / hybrid test


def _cone_rays(x: np.ndarray) -> np.ndarray:
    """Extreme rays (rows, each summing to 1) of the cone ``{lambda >= 0 : x' lambda = 0}``.

    The vertices of the dual feasible set ``{lambda >= 0 : sd' lambda = 1, x' lambda = 0}`` are
    these rays rescaled by ``1 / (sd' ray)``, whatever the standard deviations ``sd > 0``. A ray
    is supported on ``r + 1`` rows (r the rank of x) on which it spans the null space of
    ``x_S'``: its entries are the signed maximal minors of ``x_S`` (generalised cross product).
    """
    m = x.shape[0]
    if x.shape[1] > 0:
        u, sv, _ = np.linalg.svd(x, full_matrices=False)
        x = u[:, sv > 1e-10 * max(sv.max(), np.finfo(float).tiny)]
    r = x.shape[1]
    n_subsets = special.comb(m, r + 1, exact=True)
    if n_subsets > _MAX_SUBSETS:
        raise EstimationError(
            f"too many post-period moments for the exact conditional test ({n_subsets} bases); "
            "use fewer post-periods"
        )
    rows = np.array(list(itertools.combinations(range(m), r + 1)), dtype=np.intp).reshape(-1, r + 1)
    sub = x[rows]  # c x (r+1) x r
    minors = np.empty((len(rows), r + 1))
    for i in range(r + 1):
        keep = [j for j in range(r + 1) if j != i]
        minors[:, i] = (-1) ** i * (np.linalg.det(sub[:, keep, :]) if r > 0 else 1.0)
    scale = np.abs(minors).max(axis=1, keepdims=True)
    ok = scale[:, 0] > 1e-12
    rays = minors[ok] / scale[ok]
    rows = rows[ok]
    flip = rays.sum(axis=1) < 0
    rays[flip] = -rays[flip]
    ok = (rays >= -1e-9).all(axis=1)
    full = np.zeros((int(ok.sum()), m))
    np.put_along_axis(full, rows[ok], np.maximum(rays[ok], 0.0), axis=1)
    full /= full.sum(axis=1, keepdims=True)
    # a ray supported on fewer rows appears once per superset: keep one copy
    _, first = np.unique(np.round(full, 10), axis=0, return_index=True)
    return full[np.sort(first)]


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(a)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def _hybrid_accepts(
    y0: np.ndarray,
    a1: np.ndarray,
    rays: np.ndarray,
    sigma_y: np.ndarray,
    thetas: np.ndarray,
    alpha: float,
    seed: int,
) -> np.ndarray:
    """Accept/reject of the C-LF hybrid test of ``E[y0 - a1 theta] in {X delta + nonpositive}``."""
    kappa = alpha / 10
    sd = np.sqrt(np.diag(sigma_y))
    lam = rays / (rays @ sd)[:, None]
    if len(lam) == 0:  # the LP is unbounded: the moments can always be satisfied
        return np.ones(len(thetas), dtype=bool)
    draws = _standard_normals(_LF_DRAWS, len(sd), seed) @ _sqrt_psd(sigma_y)
    lf_cv = float(np.quantile((draws @ lam.T).max(axis=1), 1 - kappa))
    mod_size = (alpha - kappa) / (1 - kappa)

    values = (lam @ y0)[:, None] - (lam @ a1)[:, None] * thetas[None, :]
    best = values.argmax(axis=0)
    eta = values[best, np.arange(len(thetas))]
    reject = eta > lf_cv
    for v in np.unique(best[~reject]):
        idx = np.flatnonzero((best == v) & ~reject)
        gamma = lam[v]
        sg = sigma_y @ gamma
        s2 = float(gamma @ sg)
        if s2 < np.finfo(float).eps:
            reject[idx] = eta[idx] > 0
            continue
        slope = lam @ (sg / s2)
        q = 1.0 - slope
        p = values[:, idx] - slope[:, None] * eta[None, idx]
        pos, neg = q > 1e-10, q < -1e-10
        vlo = (p[pos] / q[pos, None]).max(axis=0) if pos.any() else np.full(len(idx), -np.inf)
        vup = (p[neg] / q[neg, None]).min(axis=0) if neg.any() else np.full(len(idx), np.inf)
        sigma_b = np.sqrt(s2)
        stat = eta[idx] / sigma_b
        zlo = vlo / sigma_b
        zup = np.minimum(vup, lf_cv) / sigma_b
        inside = (zlo <= stat) & (stat <= zup)
        cval = np.zeros(len(idx))
        if inside.any():
            cval[inside] = np.maximum(
                0.0, stats.truncnorm.ppf(1 - mod_size, zlo[inside], zup[inside])
            )
        reject[idx] = inside & (stat > cval)
    return ~reject


def _rm_interval(
    betahat: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    n_post: int,
    l_vec: np.ndarray,
    mbar: float,
    alpha: float,
    thetas: np.ndarray,
    seed: int,
    rays: dict[bytes, np.ndarray],
) -> tuple[float, float]:
    """C-LF confidence set for ``l_vec' tau_post`` under Delta^RM(mbar), tested on ``thetas``.

    ``rays`` caches the cone rays by nuisance matrix (it does not depend on s, sign or mbar).
    """
    post = slice(n_pre, n_pre + n_post)
    gamma_inv = np.linalg.inv(_gamma(l_vec))
    accept = np.zeros(len(thetas), dtype=bool)
    for s, max_positive in itertools.product(range(-(n_pre - 1), 1), (True, False)):
        a = _rm_constraints(n_pre, n_post, mbar, s, max_positive)
        rows = np.flatnonzero(np.any(a[:, post] != 0, axis=1))  # post-period moments only
        a_gamma = a[rows][:, post] @ gamma_inv
        x = a_gamma[:, 1:]  # the nuisance directions; the same for every s and sign
        key = np.round(x, 12).tobytes()
        if key not in rays:
            rays[key] = _cone_rays(x)
        y0 = (a @ betahat)[rows]
        sigma_y = (a @ sigma @ a.T)[np.ix_(rows, rows)]
        accept |= _hybrid_accepts(y0, a_gamma[:, 0], rays[key], sigma_y, thetas, alpha, seed)
    if not accept.any():
        return np.nan, np.nan
    lower = -np.inf if accept[0] else float(thetas[accept].min())
    upper = np.inf if accept[-1] else float(thetas[accept].max())
    return lower, upper


# ---------------------------------------------------------------- Delta^SD(M): optimal FLCI


def _folded_normal_quantile(p: float, mu: float) -> float:
    """``q`` with ``P(|Z + mu| <= q) = p``, Z standard normal."""
    mu = abs(mu)

    def gap(q: float) -> float:
        return special.ndtr(q - mu) - special.ndtr(-q - mu) - p

    return float(optimize.brentq(gap, 0.0, mu + special.ndtri(p) + 10.0, xtol=1e-15, rtol=1e-15))


def _folded_normal_quantile_slope(q: float, mu: float) -> float:
    """``dq/dmu`` of :func:`_folded_normal_quantile` at ``(q, mu)``."""
    a, b = stats.norm.pdf(q - mu), stats.norm.pdf(q + mu)
    return float((a - b) / (a + b))


def _flci(
    betahat: np.ndarray,
    sigma: np.ndarray,
    n_pre: int,
    l_vec: np.ndarray,
    m: float,
    alpha: float,
) -> tuple[float, float]:
    """Optimal FLCI for ``l_vec' tau_post`` under Delta^SD(m) (HonestDiD's ``findOptimalFLCI``).

    The estimator is ``l_pre' b_pre + l_vec' b_post``; with ``l_pre = D w`` (D: first
    differences) and ``sum(w) = sum_t t l_t`` it is unbiased under linear trends, its worst-case
    bias is ``m * (c + sum_k |cumsum(w)_k|)`` and the interval is ``estimate +- sd * q(bias / sd)``
    with q the folded-normal ``1 - alpha`` quantile. The half-length is convex in ``(u, w)`` with
    ``u >= |cumsum(w)|``; it is minimised by SLSQP from the minimum-variance weights.
    """
    k = n_pre
    n_post = len(l_vec)
    t = np.arange(1, n_post + 1)
    target = float(t @ l_vec)
    const = sum(abs(float(t[:s] @ l_vec[n_post - s :])) for s in range(1, n_post + 1)) - target
    diff = np.eye(k) - np.eye(k, k=-1)
    quad = diff.T @ sigma[:k, :k] @ diff
    lin = diff.T @ sigma[:k, k:] @ l_vec
    c0 = float(l_vec @ sigma[k:, k:] @ l_vec)
    cum = np.tril(np.ones((k, k)))
    p = 1 - alpha

    # minimum-variance weights subject to sum(w) = target (the M = 0 optimum)
    kkt = np.block([[2 * quad, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    w0 = np.linalg.solve(kkt, np.append(-2 * lin, target))[:k]

    def sd_of(w: np.ndarray) -> float:
        return float(np.sqrt(max(w @ quad @ w + 2 * lin @ w + c0, 0.0)))

    def estimate(w: np.ndarray) -> float:
        return float((diff @ w) @ betahat[:k] + l_vec @ betahat[k:])

    if m == 0:
        w = w0
        half = sd_of(w) * _folded_normal_quantile(p, 0.0)
        return estimate(w) - half, estimate(w) + half

    scale = sd_of(w0)

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        u, w = z[:k], z[k:]
        s = sd_of(w)
        mu = m * (const + u.sum()) / s
        q = _folded_normal_quantile(p, mu)
        dq = _folded_normal_quantile_slope(q, mu)
        grad = np.concatenate([np.full(k, m * dq), (q - mu * dq) * (quad @ w + lin) / s])
        return s * q / scale, grad / scale

    a_abs = np.block([[np.eye(k), -cum], [np.eye(k), cum]])  # a_abs @ z >= 0
    constraints = [
        {"type": "ineq", "fun": lambda z: a_abs @ z, "jac": lambda z: a_abs},
        {
            "type": "eq",
            "fun": lambda z: np.array([z[k:].sum() - target]),
            "jac": lambda z: np.concatenate([np.zeros(k), np.ones(k)])[None, :],
        },
    ]
    start = np.concatenate([np.abs(cum @ w0), w0])
    res = optimize.minimize(
        objective,
        start,
        jac=True,
        method="SLSQP",
        constraints=constraints,
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    if not res.success and res.status not in (8,):  # 8: positive directional derivative
        raise EstimationError(f"the FLCI optimisation failed: {res.message}")
    w = res.x[k:]
    half = res.fun * scale
    return estimate(w) - half, estimate(w) + half


# ---------------------------------------------------------------- public entry point


def honest(
    betahat: Any,
    sigma: Any = None,
    *,
    n_pre: int | None = None,
    n_post: int | None = None,
    restriction: str = "relative_magnitudes",
    grid: Sequence[float],
    alpha: float = 0.05,
    l_vec: Sequence[float] | None = None,
    grid_points: int = 1000,
    seed: int = 0,
    event_time: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Robust confidence intervals for a post-period effect (Rambachan and Roth 2023).

    Parameters
    ----------
    betahat
        Event-study result (``event_time``, ``estimate``, ``vcov()``; duck-typed) or the
        coefficient vector with the reference period omitted: ``n_pre`` pre-period coefficients
        (earliest first) then ``n_post`` post-period ones. Periods must be consecutive.
    sigma
        Covariance of ``betahat`` (arrays only).
    n_pre, n_post
        Number of pre- and post-period coefficients (arrays; checked against a result).
    restriction
        ``"relative_magnitudes"`` (grid of Mbar; C-LF hybrid confidence sets) or
        ``"smoothness"`` (grid of M; optimal FLCI).
    grid
        Values of Mbar or M, one row each in the output.
    alpha
        One minus the coverage.
    l_vec
        Weights of the target ``theta = l_vec' tau_post``; default the first post-period.
    grid_points
        Relative magnitudes: number of theta values tested, equally spaced on
        ``theta_hat +- 20 sd(theta_hat)``; the bounds are grid values (HonestDiD tests 1,000
        values on ``+- 20 sd(theta_hat)`` around 0).
    seed
        Relative magnitudes: seed of the normal draws of the least-favourable critical value.
    event_time
        Event times of ``betahat`` (arrays only; default ``-n_pre-1..-2, 0, 1, ...``, the
        reference -1 omitted).

    Returns
    -------
    pandas.DataFrame
        Columns ``m, lower, upper``, one row per grid value (NaN bounds where no theta in the
        tested range is accepted, -inf / inf where the accepted set reaches its end). ``attrs`` holds ``original`` (the unrestricted interval
        ``l_vec' b_post +- z sd``), ``breakdown`` (the smallest grid value whose interval includes
        0; None if none does), ``restriction``, ``method`` (``"C-LF"`` or ``"FLCI"``), ``l_vec``
        and ``alpha``.

    Raises
    ------
    EstimationError
        On malformed inputs, an unknown restriction, non-consecutive event times, a negative or
        empty grid, or an ``l_vec`` of the wrong length.
    """
    if restriction not in _RESTRICTIONS:
        raise EstimationError(f"restriction must be one of {_RESTRICTIONS}, got {restriction!r}")
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must lie in (0, 1), got {alpha}")
    es = as_event_study(betahat, sigma, n_pre=n_pre, event_time=event_time)
    if n_post is not None and n_post != es.n_post:
        raise EstimationError(
            f"n_post = {n_post} but there are {es.n_post} post-period coefficients"
        )
    times = np.sort(np.append(es.event_time, es.reference))
    if np.any(np.diff(times) != 1) or times[es.n_pre] != es.reference:
        raise EstimationError(
            "honest needs consecutive event times with the reference period just before the "
            "first post-period"
        )
    n_pre_, n_post_ = es.n_pre, es.n_post
    lv = np.eye(n_post_)[0] if l_vec is None else np.asarray(l_vec, float).ravel()
    if lv.shape != (n_post_,) or not np.any(lv != 0):
        raise EstimationError(f"l_vec must be a non-zero vector of length n_post = {n_post_}")
    values = np.asarray(list(grid), float).ravel()
    if values.size == 0 or np.any(values < 0) or not np.all(np.isfinite(values)):
        raise EstimationError("grid must be a non-empty list of non-negative numbers")
    if grid_points < 2:
        raise EstimationError("grid_points must be at least 2")

    post = slice(n_pre_, n_pre_ + n_post_)
    sd_theta = float(np.sqrt(lv @ es.sigma[post, post] @ lv))
    theta_hat = float(lv @ es.betahat[post])
    z = float(stats.norm.isf(alpha / 2))
    rows = []
    if restriction == "relative_magnitudes":
        thetas = np.linspace(theta_hat - 20 * sd_theta, theta_hat + 20 * sd_theta, grid_points)
        rays: dict[bytes, np.ndarray] = {}
        for mbar in values:
            lo, hi = _rm_interval(
                es.betahat, es.sigma, n_pre_, n_post_, lv, mbar, alpha, thetas, seed, rays
            )
            rows.append((mbar, lo, hi))
        method = "C-LF"
    else:
        for m in values:
            lo, hi = _flci(es.betahat, es.sigma, n_pre_, lv, m, alpha)
            rows.append((m, lo, hi))
        method = "FLCI"
    out = pd.DataFrame(rows, columns=["m", "lower", "upper"])
    covers = (out["lower"] <= 0) & (out["upper"] >= 0)
    out.attrs = {
        "original": (theta_hat - z * sd_theta, theta_hat + z * sd_theta),
        "breakdown": float(out.loc[covers, "m"].min()) if covers.any() else None,
        "restriction": restriction,
        "method": method,
        "l_vec": tuple(float(v) for v in lv),
        "alpha": alpha,
    }
    return out
