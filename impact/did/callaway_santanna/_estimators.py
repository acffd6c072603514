"""Two-period (2x2) panel DiD estimators with influence functions, as used by Callaway-Sant'Anna.

Each function follows the panel estimator of the R package ``DRDID`` that R's ``did`` (v2.x) calls
for one group-time cell: :func:`dr_did_panel` is ``DRDID::drdid_panel`` (locally efficient doubly
robust DiD with a logit propensity score and a linear outcome regression for the comparison units;
the estimator ``did::att_gt(est_method = "dr")`` uses), :func:`ipw_did_panel` is
``DRDID::std_ipw_did_panel`` (normalised, "Hajek" IPW) and :func:`reg_did_panel` is
``DRDID::reg_did_panel`` (outcome regression). The formulas are reimplemented from the papers
(Sant'Anna & Zhao 2020, J. Econometrics 219(1); Callaway & Sant'Anna 2021, J. Econometrics 225(2))
and checked against the R package's source, including its two numerical safeguards: propensity
scores are capped at ``1 - 1e-6`` and comparison units with a propensity score of at least 0.995
get weight zero.

Every function returns ``(att, influence)`` where ``influence`` has one entry per unit in the cell,
scaled like R's ``att.inf.func`` (so that ``var(att) ~ mean(influence**2) / n_cell``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

FloatArray = NDArray[np.float64]

PS_CAP = 1.0 - 1e-6
TRIM_LEVEL = 0.995
OVERLAP_LIMIT = 0.999
_EPS = float(np.finfo(float).eps)
_CHECKED_STEP = 1e-3


class CellFailure(Exception):
    """A 2x2 cell cannot be estimated (no overlap, singular design); the cell's ATT becomes NaN."""


@dataclass(frozen=True)
class LogitFit:
    """A propensity-score fit: coefficients, fitted probabilities, convergence and the solver.

    ``solver`` is ``"closed form"`` (intercept only), ``"newton"`` (Newton-Raphson from zero) or
    ``"sklearn+newton"`` (scikit-learn's L-BFGS start, then Newton steps).
    """

    coef: FloatArray
    fitted: FloatArray
    converged: bool
    newton_steps: int
    solver: str = "newton"


def _log_likelihood(eta: FloatArray, d: FloatArray, w: FloatArray) -> float:
    return float(np.dot(w, d * eta - np.logaddexp(0.0, eta)))


def _newton(
    x: FloatArray, d: FloatArray, w: FloatArray, beta: FloatArray, tol: float, max_steps: int = 50
) -> tuple[FloatArray, bool, int]:
    """Newton-Raphson (= IRLS for the logit) with step halving when the likelihood falls.

    The likelihood is checked for steps of at least ``_CHECKED_STEP`` (relative to the
    coefficients); smaller steps are taken as they are, since there the quadratic model is
    accurate and Newton's step raises the likelihood (the check costs about as much as the step).
    Returns the coefficients, whether ``max|step| <= tol * (1 + max|coef|)`` was reached, and the
    number of steps taken.
    """
    eta = x @ beta
    loglik: float | None = None
    for steps in range(1, max_steps + 1):
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = x.T @ (w * (d - p))
        hess = (x * (w * p * (1.0 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return beta, False, steps
        new = beta + step
        eta_new = x @ new
        if np.max(np.abs(step)) >= _CHECKED_STEP * (1.0 + np.max(np.abs(beta))):
            if loglik is None:
                loglik = _log_likelihood(eta, d, w)
            for _ in range(30):  # R's glm.fit halves a step that lowers the likelihood
                loglik_new = _log_likelihood(eta_new, d, w)
                if np.isfinite(loglik_new) and loglik_new >= loglik - 1e-10 * (1.0 + abs(loglik)):
                    break
                step = step / 2.0
                new = beta + step
                eta_new = x @ new
            else:
                return beta, False, steps
        else:
            loglik_new = None
        if not np.all(np.isfinite(new)):
            return beta, False, steps
        beta, eta, loglik = new, eta_new, loglik_new
        if np.max(np.abs(step)) <= tol * (1.0 + np.max(np.abs(beta))):
            return beta, True, steps
    return beta, False, max_steps


def fit_logit(x: FloatArray, d: FloatArray, w: FloatArray, *, tol: float = 1e-10) -> LogitFit:
    """Weighted, unpenalised logistic regression of ``d`` on ``x`` (``x`` holds the intercept).

    The MLE is found by Newton-Raphson with step halving, from the intercept-only fit, the IRLS of R's
    ``glm``/``fastglm`` that ``DRDID`` uses, iterated until the largest step is below ``tol``
    (relative): machine precision, which R parity to 1e-8 needs. Should that fail (no
    convergence in 50 steps, a singular Hessian), scikit-learn's
    ``LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-6)`` supplies the start and Newton
    steps polish it (L-BFGS alone stops 1e-6 off in the coefficients on mpdta). Newton comes
    first because scikit-learn's input validation costs about 3 ms per fit, which dominated
    ``att_gt`` on small panels (600 units: 35 of 50 ms); both reach the same MLE.
    An intercept-only design has the closed-form MLE ``p = sum(w d) / sum(w)``.

    Parameters
    ----------
    x
        Design matrix (n x k), first column the intercept.
    d
        0/1 outcome (n,).
    w
        Non-negative case weights (n,).
    tol
        Convergence tolerance on ``max|step| / (1 + max|coef|)``.

    Returns
    -------
    LogitFit
    """
    if x.shape[1] == 1:
        p = float(np.dot(w, d) / w.sum())
        coef = np.array([np.log(p / (1.0 - p))]) if 0.0 < p < 1.0 else np.array([np.nan])
        return LogitFit(coef=coef, fitted=np.full(d.shape[0], p), converged=True, newton_steps=0,
                        solver="closed form")
    start = np.zeros(x.shape[1])
    p_bar = float(np.dot(w, d) / w.sum())
    if 0.0 < p_bar < 1.0:  # the intercept-only MLE: one or two steps closer than zero
        start[0] = np.log(p_bar / (1.0 - p_bar))
    beta, converged, steps = _newton(x, d, w, start, tol)
    solver = "newton"
    if not converged:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(
                C=np.inf, solver="lbfgs", fit_intercept=False, tol=1e-6, max_iter=500
            )
            model.fit(x, d.astype(int), sample_weight=w)
        beta, converged, steps = _newton(x, d, w, model.coef_.ravel().astype(float), tol)
        solver = "sklearn+newton"
    fitted = 1.0 / (1.0 + np.exp(-(x @ beta)))
    return LogitFit(coef=beta, fitted=fitted, converged=converged, newton_steps=steps,
                    solver=solver)


def _wls(x: FloatArray, y: FloatArray, w: FloatArray) -> FloatArray:
    """Weighted least squares coefficients of ``y`` (n or n x m) on ``x`` (with the intercept)."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x * sw[:, None], y * (sw[:, None] if y.ndim == 2 else sw),
                               rcond=None)
    return coef


def _rcond(a: FloatArray) -> float:
    """Reciprocal 1-norm condition number, as R's ``rcond`` (0 for a singular matrix)."""
    try:
        return float(1.0 / np.linalg.cond(a, 1))
    except np.linalg.LinAlgError:
        return 0.0


def check_regression(x: FloatArray, d: FloatArray) -> None:
    """Raise :class:`CellFailure` if the comparison units' design is singular (as R's check)."""
    xc = x[d == 0]
    if xc.shape[0] == 0:
        raise CellFailure("no comparison units")
    if x.shape[1] > 1 and _rcond(xc.T @ xc) < _EPS:
        raise CellFailure(
            "covariate matrix for comparison units is singular or ill-conditioned; "
            "consider centering/rescaling covariates or removing collinear terms"
        )


def check_overlap(ps: FloatArray) -> None:
    """Raise :class:`CellFailure` if some propensity score reaches 0.999 (R's overlap guard)."""
    if np.max(ps) >= OVERLAP_LIMIT:
        raise CellFailure("overlap condition violated (a propensity score is >= 0.999)")


def _ps_pieces(
    x: FloatArray, d: FloatArray, w: FloatArray, fit: LogitFit
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Capped scores, trimming indicator and the logit's asymptotic linear representation."""
    check_overlap(fit.fitted)
    ps = np.minimum(fit.fitted, PS_CAP)
    trim = np.where(d == 0, ps < TRIM_LEVEL, True).astype(float)
    n = d.shape[0]
    wps = ps * (1.0 - ps) * w
    info = (x * wps[:, None]).T @ x
    try:
        hess_inv = np.linalg.inv(np.linalg.cholesky(info))
    except np.linalg.LinAlgError as exc:
        raise CellFailure("propensity-score information matrix is singular") from exc
    hessian = (hess_inv.T @ hess_inv) * n
    score = (w * (d - ps))[:, None] * x
    return ps, trim, score @ hessian


def _ols_pieces(
    x: FloatArray, dy: FloatArray, d: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Comparison-group outcome regression of every column of ``dy`` (n x m).

    Returns the fitted values ``out`` (n x m), the weights ``w_ols = w * (1 - d)`` and
    ``(X'W_ols X / n)^-1``; R's ``w_ols * resid * x`` is ``w_ols * (dy - out)`` times ``x`` row
    by row.
    """
    control = d == 0
    coef = _wls(x[control], dy[control], w[control])
    out = x @ coef
    w_ols = w * (1.0 - d)
    n = d.shape[0]
    xpx = (x * w_ols[:, None]).T @ x / n
    if _rcond(xpx) < _EPS:
        raise CellFailure("the outcome-regression design matrix is singular")
    return out, w_ols, np.linalg.inv(xpx)


def _normalise(w: FloatArray) -> FloatArray:
    if np.any(w < 0):
        raise CellFailure("weights must be non-negative")
    return w / w.mean()


def _columns(dy: FloatArray) -> FloatArray:
    """``dy`` as an n x m matrix (one column per cell)."""
    return dy[:, None] if dy.ndim == 1 else dy


def _shaped(dy: FloatArray, att: FloatArray, inf: FloatArray) -> tuple:
    """Scalar ATT and vector influence for a vector ``dy``; arrays for a matrix."""
    if dy.ndim == 1:
        return float(att[0]), inf[:, 0]
    return att, inf


def dr_did_panel(
    dy: FloatArray, d: FloatArray, x: FloatArray, w: FloatArray, fit: LogitFit
) -> tuple:
    """Locally efficient doubly robust DiD (``DRDID::drdid_panel``).

    Parameters
    ----------
    dy
        Outcome change ``Y_post - Y_pre`` (n,), or one column per cell (n x m) for cells that
        share the units, covariates and weights (all of a cohort's periods with one comparison
        group): every unit-level piece is then computed once.
    d
        1 for the treated cohort, 0 for comparison units (n,).
    x
        Covariates with intercept column (n x k), taken in the earlier of the two periods.
    w
        Sampling weights (n,), normalised here to mean one.
    fit
        Propensity-score fit of ``d`` on ``x`` with weights ``w``.

    Returns
    -------
    tuple
        ``(att, influence)``: a float and an (n,) array, or (m,) and (n x m) arrays.
    """
    w = _normalise(w)
    check_regression(x, d)
    ps, trim, asy_ps = _ps_pieces(x, d, w, fit)
    dym = _columns(dy)
    out, w_ols, xpx_inv = _ols_pieces(x, dym, d, w)
    n = d.shape[0]
    w_treat = trim * w * d
    w_cont = trim * w * ps * (1.0 - d) / (1.0 - ps)
    resid = dym - out
    m_wt, m_wc = w_treat.mean(), w_cont.mean()
    # every mean over units is one product with the residuals: rows w_treat, w_cont, w_cont * x
    xw_cont = x * w_cont[:, None]
    means = np.column_stack([w_treat, w_cont, xw_cont]).T @ resid / n
    eta_treat = means[0] / m_wt
    eta_cont = means[1] / m_wc
    att = eta_treat - eta_cont
    # m2 = mean of w_cont * (resid - eta_cont) * x (k x m)
    m2 = means[2:] - np.outer(xw_cont.mean(axis=0), eta_cont)
    a1 = x @ (xpx_inv @ (w_treat[:, None] * x).mean(axis=0))
    a3 = x @ (xpx_inv @ xw_cont.mean(axis=0))
    # inf_treat - inf_cont of DRDID, collected: the residual terms share one unit weight, the
    # rest is one (n x (2 + k)) @ ((2 + k) x m) product
    unit_weight = w_treat / m_wt - w_cont / m_wc - w_ols * (a1 / m_wt - a3 / m_wc)
    rest = np.column_stack([w_treat / m_wt, w_cont / m_wc, asy_ps / m_wc]) @ np.vstack(
        [-eta_treat, eta_cont, -m2]
    )
    return _shaped(dy, att, resid * unit_weight[:, None] + rest)


def ipw_did_panel(
    dy: FloatArray, d: FloatArray, x: FloatArray, w: FloatArray, fit: LogitFit
) -> tuple:
    """Normalised (stabilised) IPW DiD of Abadie (2005) (``DRDID::std_ipw_did_panel``).

    Parameters and return value as in :func:`dr_did_panel`.
    """
    w = _normalise(w)
    ps, trim, asy_ps = _ps_pieces(x, d, w, fit)
    dym = _columns(dy)
    n = d.shape[0]
    w_treat = trim * w * d
    w_cont = trim * w * ps * (1.0 - d) / (1.0 - ps)
    att_treat = w_treat[:, None] * dym
    att_cont = w_cont[:, None] * dym
    m_wt, m_wc = w_treat.mean(), w_cont.mean()
    eta_treat = att_treat.mean(axis=0) / m_wt
    eta_cont = att_cont.mean(axis=0) / m_wc
    att = eta_treat - eta_cont
    inf_treat = (att_treat - w_treat[:, None] * eta_treat) / m_wt
    m2 = x.T @ (w_cont[:, None] * (dym - eta_cont)) / n
    inf_cont = (att_cont - w_cont[:, None] * eta_cont + asy_ps @ m2) / m_wc
    return _shaped(dy, att, inf_treat - inf_cont)


def reg_did_panel(
    dy: FloatArray, d: FloatArray, x: FloatArray, w: FloatArray, fit: LogitFit | None = None
) -> tuple:
    """Outcome-regression DiD of Heckman, Ichimura & Todd (1997) (``DRDID::reg_did_panel``).

    Parameters and return value as in :func:`dr_did_panel`; ``fit`` is ignored.
    """
    w = _normalise(w)
    check_regression(x, d)
    dym = _columns(dy)
    out, w_ols, xpx_inv = _ols_pieces(x, dym, d, w)
    w_treat = w * d
    m_wt = w_treat.mean()
    reg_treat = w_treat[:, None] * dym
    reg_cont = w_treat[:, None] * out
    eta_treat = reg_treat.mean(axis=0) / m_wt
    eta_cont = reg_cont.mean(axis=0) / m_wt
    att = eta_treat - eta_cont
    inf_treat = (reg_treat - w_treat[:, None] * eta_treat) / m_wt
    m1 = (w_treat[:, None] * x).mean(axis=0)
    inf_cont = (
        reg_cont
        - w_treat[:, None] * eta_cont
        + (w_ols * (x @ (xpx_inv @ m1)))[:, None] * (dym - out)
    ) / m_wt
    return _shaped(dy, att, inf_treat - inf_cont)


ESTIMATORS = {"dr": dr_did_panel, "ipw": ipw_did_panel, "reg": reg_did_panel}
