"""Simulation power and minimum detectable effects on the real design of a department-year panel.

:func:`power` keeps the design of the panel it is given -- its departments, helhedsplaner (plans),
municipalities, years and adoption timing -- and replaces only the outcome: each replication draws
the outcome from a noise model estimated on the panel (:func:`fit_outcome_model`), adds an effect of
known size to the treated department-years and runs the estimator. The share of replications whose
confidence interval excludes zero is the power at that effect.

The outcome model (all components independent, Gaussian)::

    y[d, t] = a[d] + b[t] + m[k(d), t] + p[j(d), t] + h[d] * u[d, t] (+ effect * treated[d, t])
    u[d, t] = rho * u[d, t - 1] + sqrt(1 - rho^2) * e[d, t],   Var(u) = sigma2_department

``a, b`` are the department and year effects of a two-way fixed-effects fit of the panel (with
event-time dummies of the tool, so that a real effect does not leak into the noise); ``m`` a
municipality-year shock (variance ``sigma2_municipality``), ``p`` a plan-year shock
(``sigma2_plan``; none for departments without a plan), ``u`` a stationary AR(1) department shock
scaled by the department's relative noise level ``h`` (mean of ``h^2`` is 1: small departments are
noisier). The variances and ``rho`` are estimated by the method of moments from the fit's residuals:
the residuals' variance, lag-1 autocovariance and same-year covariances within plan and within
municipality are matched to their exact expectations under the model *after* the two-way
demeaning (which otherwise biases them, e.g. a -1/T bias of the autocorrelation).

Estimators are callables ``(frame, outcome, tool) -> (estimate, se)``; the default is
Callaway-Sant'Anna's simple ATT (:func:`att_gt_estimator`). ``estimator="design"`` selects a
closed-form estimator with the same point estimate (never-treated controls, no covariates), fast
enough for tens of thousands of replications and with an analytic variance under the model
(:meth:`PowerDesign.analytic_power`), which :mod:`impact.followup` uses.

Replication ``r`` draws its noise from ``SeedSequence(seed).spawn(n_reps)[r]`` and uses the same
noise for every effect (common random numbers), so one seed gives identical tables on every backend
(``"sequential"``, ``"loky"``, ``"dask"``) and a power curve that is smooth in the effect.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize, stats

from impact.errors import EstimationError
from impact.results import Result, draw_intervals

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Estimator = Callable[[pd.DataFrame, str, str], tuple[float, float]]
Backend = Literal["sequential", "loky", "dask"]

__all__ = [
    "MinimumDetectableEffect",
    "OutcomeModel",
    "PowerDesign",
    "PowerResult",
    "att_gt_estimator",
    "fit_outcome_model",
    "power",
    "power_design",
]


# --------------------------------------------------------------------------------------------
# the outcome model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutcomeModel:
    """Noise model of an outcome, estimated from a department-year panel.

    Attributes
    ----------
    outcome
        The outcome column.
    sigma2_municipality, sigma2_plan, sigma2_department
        Variances of the municipality-year, plan-year and department (AR(1)) components.
    rho
        AR(1) coefficient of the department component (0 with fewer than 3 years).
    noise_scale
        Relative noise level ``h`` per department (mean of ``h^2`` is 1), in department order.
    moments
        The matched moments: ``moment, sample, fitted, n_pairs``.
    n_departments, n_years, n_departments_dropped
        Departments and years used; departments left out for a missing outcome in some year.
    """

    outcome: str
    sigma2_municipality: float
    sigma2_plan: float
    sigma2_department: float
    rho: float
    noise_scale: FloatArray = field(repr=False)
    moments: pd.DataFrame = field(repr=False)
    n_departments: int = 0
    n_years: int = 0
    n_departments_dropped: int = 0

    def tidy(self) -> pd.DataFrame:
        """The parameters as a table (``parameter, value``)."""
        return pd.DataFrame({
            "parameter": ["sigma2_municipality", "sigma2_plan", "sigma2_department", "rho",
                          "icc_municipality", "icc_plan"],
            "value": [self.sigma2_municipality, self.sigma2_plan, self.sigma2_department,
                      self.rho, *self._icc()],
        })

    def _icc(self) -> tuple[float, float]:
        total = self.sigma2_municipality + self.sigma2_plan + self.sigma2_department
        if total <= 0:
            return (float("nan"), float("nan"))
        return (self.sigma2_municipality / total,
                (self.sigma2_municipality + self.sigma2_plan) / total)


@dataclass(frozen=True)
class _Layout:
    """A balanced department x year layout with its clusters (codes 0..k-1; plan -1 = none)."""

    department_id: NDArray[Any]
    years: IntArray
    municipality: IntArray
    plan: IntArray
    cohort: IntArray

    @property
    def n(self) -> int:
        return int(self.department_id.size)

    @property
    def n_years(self) -> int:
        return int(self.years.size)


def _ar1_corr(n_years: int, rho: float) -> FloatArray:
    lags = np.abs(np.subtract.outer(np.arange(n_years), np.arange(n_years)))
    return rho ** lags.astype(float)


def _time_factors(n_years: int, b: FloatArray) -> tuple[float, float]:
    """Mean diagonal and mean first off-diagonal of ``Q B Q`` (Q demeans over years)."""
    q = np.eye(n_years) - 1.0 / n_years
    qbq = q @ b @ q
    off = float(np.mean(np.diag(qbq, 1))) if n_years > 1 else 0.0
    return float(np.mean(np.diag(qbq))), off


def _pair_sets(layout: _Layout) -> dict[str, FloatArray]:
    """Partner counts per department: ``own`` (1), ``plan`` (same plan), ``mun`` (same
    municipality, not the same plan)."""
    mun_size = np.bincount(layout.municipality)[layout.municipality].astype(float)
    has_plan = layout.plan >= 0
    plan_size = np.zeros(layout.n)
    if has_plan.any():
        counts = np.bincount(layout.plan[has_plan])
        plan_size[has_plan] = counts[layout.plan[has_plan]]
    cell_size = np.where(has_plan, plan_size, 1.0)
    return {"own": np.ones(layout.n), "plan": np.where(has_plan, plan_size - 1.0, 0.0),
            "mun": mun_size - cell_size}


def _dept_factor(kind: str, layout: _Layout, h2: FloatArray, deg: FloatArray,
                 pair: str) -> float:
    """Mean over the ordered pairs of a pair set of ``(H A H)[d, d']`` (H demeans over
    departments) for the component's ``A``: ``mun`` (same municipality), ``plan``, ``dept`` (diag h^2)."""
    n = layout.n
    n_pairs = float(deg.sum())
    if n_pairs == 0:
        return float("nan")
    if kind == "dept":
        a_row = h2 / n
        a_bar = float(h2.sum()) / n**2
        sum_a = float(h2.sum()) if pair == "own" else 0.0
    else:
        codes = layout.municipality if kind == "mun" else layout.plan
        member = codes >= 0
        sizes = np.bincount(codes[member]).astype(float)
        a_row = np.zeros(n)
        a_row[member] = sizes[codes[member]] / n
        a_bar = float((sizes**2).sum()) / n**2
        if pair == "own":
            sum_a = float(member.sum())
        elif pair == "plan":
            sum_a = n_pairs  # same plan implies same municipality
        else:
            sum_a = n_pairs if kind == "mun" else 0.0
    return (sum_a - 2.0 * float((a_row * deg).sum()) + n_pairs * a_bar) / n_pairs


def _sample_moments(resid: FloatArray, layout: _Layout,
                    deg: dict[str, FloatArray]) -> dict[str, float]:
    """Residual variance, lag-1 autocovariance and same-year pair covariances."""
    t = layout.n_years
    out = {"own0": float(np.mean(resid**2))}
    if t >= 3:
        out["own1"] = float(np.mean(resid[:, :-1] * resid[:, 1:]))

    def group_pairs(codes: IntArray) -> float:
        keep = codes >= 0
        sums = np.zeros((int(codes[keep].max()) + 1, t)) if keep.any() else np.zeros((0, t))
        np.add.at(sums, codes[keep], resid[keep])
        return float((sums**2).sum()) - float((resid[keep] ** 2).sum())

    plan_sum = group_pairs(layout.plan) if (layout.plan >= 0).any() else 0.0
    mun_sum = group_pairs(layout.municipality) - plan_sum
    if deg["plan"].sum() > 0:
        out["plan0"] = plan_sum / (t * deg["plan"].sum())
    if deg["mun"].sum() > 0:
        out["mun0"] = mun_sum / (t * deg["mun"].sum())
    return out


def _expected_moments(params: FloatArray, layout: _Layout, h2: FloatArray,
                      deg: dict[str, FloatArray], names: Sequence[str]) -> FloatArray:
    """Exact expectation of the sample moments under the model, after two-way demeaning."""
    s2m, s2p, s2d, rho = params
    t = layout.n_years
    iid0, iid1 = _time_factors(t, np.eye(t))
    ar0, ar1 = _time_factors(t, _ar1_corr(t, rho))
    out = []
    for name in names:
        pair, lag = name[:-1], int(name[-1])
        d = deg[pair]
        it, at = (iid0, ar0) if lag == 0 else (iid1, ar1)
        value = s2m * _dept_factor("mun", layout, h2, d, pair) * it
        if (layout.plan >= 0).any():
            value += s2p * _dept_factor("plan", layout, h2, d, pair) * it
        value += s2d * _dept_factor("dept", layout, h2, d, pair) * at
        out.append(value)
    return np.asarray(out)


def _solve_moments(sample: dict[str, float], layout: _Layout, h2: FloatArray,
                   deg: dict[str, FloatArray]) -> FloatArray:
    """Non-negative variances and rho in (-0.95, 0.98) matching the sample moments."""
    names = list(sample)
    target = np.array([sample[k] for k in names])
    scale = max(sample["own0"], 1e-300)
    free = np.array([
        "mun0" in sample,
        "plan0" in sample and (layout.plan >= 0).any(),
        True,
        "own1" in sample,
    ])
    x0 = np.array([0.1, 0.1, 0.8, 0.3])[free]

    def full(x: FloatArray) -> FloatArray:
        p = np.zeros(4)
        p[free] = x
        p[:3] *= scale
        return p

    def resid(x: FloatArray) -> FloatArray:
        return (_expected_moments(full(x), layout, h2, deg, names) - target) / scale

    lo = np.array([0.0, 0.0, 0.0, -0.95])[free]
    hi = np.array([np.inf, np.inf, np.inf, 0.98])[free]
    fit = optimize.least_squares(resid, x0, bounds=(lo, hi), xtol=1e-12, ftol=1e-12, gtol=1e-12)
    return full(fit.x)


def _balanced(panel: pd.DataFrame, outcome: str, tool: str,
              extra: Sequence[str] = ()) -> tuple[pd.DataFrame, _Layout, FloatArray, int]:
    """Departments observed with the outcome in every year, sorted by department and year."""
    cohort = f"cohort_{tool}"
    need = ["department_id", "year", "municipality_id", "plan_id", cohort, outcome, *extra]
    missing = [c for c in need if c not in panel.columns]
    if missing:
        raise EstimationError(f"power: the panel lacks column(s) {missing}")
    years = np.sort(panel["year"].unique())
    ok = panel.groupby("department_id")[outcome].agg(lambda s: s.notna().sum())
    complete = ok.index[ok.to_numpy() == years.size]
    n_dropped = int(panel["department_id"].nunique() - complete.size)
    frame = panel[panel["department_id"].isin(complete)].sort_values(["department_id", "year"])
    frame = frame.reset_index(drop=True)
    n = int(complete.size)
    if n < 4 or years.size < 2 or len(frame) != n * years.size:
        raise EstimationError(
            f"power: need a balanced panel of at least 4 departments and 2 years with {outcome!r} "
            f"observed; got {n} complete department(s) over {years.size} year(s)"
        )
    first = frame.groupby("department_id", sort=True).first()
    if first["municipality_id"].isna().any():
        raise EstimationError("power: municipality_id has missing values")
    mun = pd.factorize(first["municipality_id"], sort=True)[0].astype(np.int64)
    plan_key = first["plan_id"].astype("string")
    plan = pd.factorize(plan_key, sort=True, use_na_sentinel=True)[0].astype(np.int64)
    layout = _Layout(department_id=first.index.to_numpy(), years=years.astype(np.int64),
                     municipality=mun, plan=plan,
                     cohort=first[cohort].fillna(0).to_numpy().astype(np.int64))
    y = frame[outcome].to_numpy(dtype=float).reshape(n, years.size)
    return frame, layout, y, n_dropped


def _demean2(x: FloatArray) -> FloatArray:
    return x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()


def _twfe_fit(y: FloatArray, layout: _Layout) -> tuple[FloatArray, FloatArray]:
    """Two-way FE with post-adoption event-time dummies: (baseline a+b, residuals)."""
    event = layout.years[None, :] - layout.cohort[:, None]
    treated = np.broadcast_to(layout.cohort[:, None] > 0, event.shape)
    dummies = [((event == e) & treated).astype(float) for e in np.unique(event[treated])
               if e >= 0]
    yd = _demean2(y)
    if dummies:
        x = np.stack([_demean2(d).ravel() for d in dummies], axis=1)
        keep = x.std(axis=0) > 0
        beta = np.linalg.lstsq(x[:, keep], yd.ravel(), rcond=None)[0] if keep.any() else []
        fitted = (x[:, keep] @ beta).reshape(y.shape) if keep.any() else 0.0 * yd
        effect = sum(b * d for b, d in zip(beta, np.array(dummies)[keep], strict=True))
    else:
        fitted, effect = 0.0 * yd, 0.0 * yd
    resid = yd - fitted
    return y - effect - resid, resid


def fit_outcome_model(panel: pd.DataFrame, *, outcome: str, tool: str,
                      heteroskedastic: bool = True) -> OutcomeModel:
    """Estimate the outcome's noise model from a department-year panel (method of moments).

    Parameters
    ----------
    panel
        ``Panel.frame``: ``department_id, year, municipality_id, plan_id, cohort_<tool>`` and the
        outcome. Departments with the outcome missing in some year are left out (counted).
    outcome, tool
        The outcome column and the tool whose adoption defines the event-time dummies.
    heteroskedastic
        Give each department its own noise level (from its residual variance beyond the shared
        components); else one level for all.

    Returns
    -------
    OutcomeModel
    """
    _, layout, y, n_dropped = _balanced(panel, outcome, tool)
    return _fit_model(y, layout, outcome, n_dropped, heteroskedastic)


def _fit_model(y: FloatArray, layout: _Layout, outcome: str, n_dropped: int,
               heteroskedastic: bool) -> OutcomeModel:
    _, resid = _twfe_fit(y, layout)
    deg = _pair_sets(layout)
    sample = _sample_moments(resid, layout, deg)
    h2 = np.ones(layout.n)
    params = _solve_moments(sample, layout, h2, deg)
    t = layout.n_years
    if heteroskedastic:
        shared = (params[0] + params[1] * (layout.plan >= 0)) * (1 - 1 / t)
        ar0 = _time_factors(t, _ar1_corr(t, params[3]))[0]
        own = np.mean(resid**2, axis=1) - shared
        floor = 0.05 * max(params[2] * ar0, 1e-300)
        h2 = np.maximum(own, floor)
        h2 = h2 / h2.mean()
        params = _solve_moments(sample, layout, h2, deg)
    names = list(sample)
    fitted = _expected_moments(params, layout, h2, deg, names)
    n_pairs = {"own0": layout.n * t, "own1": layout.n * (t - 1),
               "plan0": deg["plan"].sum() * t, "mun0": deg["mun"].sum() * t}
    moments = pd.DataFrame({"moment": names, "sample": [sample[k] for k in names],
                            "fitted": fitted, "n_pairs": [n_pairs[k] for k in names]})
    return OutcomeModel(outcome=outcome, sigma2_municipality=float(params[0]),
                        sigma2_plan=float(params[1]), sigma2_department=float(params[2]),
                        rho=float(params[3]), noise_scale=np.sqrt(h2), moments=moments,
                        n_departments=layout.n, n_years=t, n_departments_dropped=n_dropped)


# --------------------------------------------------------------------------------------------
# the design: layout + model + treatment timing, and the closed-form estimator
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerDesign:
    """Everything one replication needs (picklable: it travels to loky and Dask workers).

    Attributes
    ----------
    layout
        Departments, years, clusters and adoption cohorts.
    model
        The outcome's noise model.
    baseline
        ``a[d] + b[t]`` (departments x years).
    treated
        Department-years that receive the injected effect.
    effect_lag
        Years between adoption and the first year the effect is in the outcome.
    """

    layout: _Layout
    model: OutcomeModel
    baseline: FloatArray = field(repr=False)
    treated: NDArray[np.bool_] = field(repr=False)
    effect_lag: int = 1

    def resized(self, factor: float, *, extra_years: int = 0, seed: int = 0) -> PowerDesign:
        """The design with ``factor`` times the departments and ``extra_years`` more years.

        Departments are added as copies (same cohort, noise level and municipality, a new plan
        for each copied plan: more departments in the same municipalities share their shocks);
        a fractional part is a seeded subsample, nested across factors. Added years extend the
        panel after its last year (the baseline repeats the last year). The outcome model is kept.
        """
        if not factor > 0 or isinstance(extra_years, bool) or int(extra_years) != extra_years \
                or extra_years < 0:
            raise EstimationError(f"resized: need factor > 0 and extra_years >= 0, got "
                                  f"{factor!r}, {extra_years!r}")
        lay = self.layout
        order = np.random.default_rng(seed).permutation(lay.n)
        n_target = max(round(factor * lay.n), 2)
        idx = np.concatenate([np.tile(np.arange(lay.n), n_target // lay.n),
                              np.sort(order[: n_target % lay.n])]).astype(np.int64)
        copy_no = np.concatenate([np.repeat(np.arange(n_target // lay.n), lay.n),
                                  np.zeros(n_target % lay.n, dtype=np.int64)
                                  + n_target // lay.n]).astype(np.int64)
        n_plans = int(lay.plan.max()) + 1 if (lay.plan >= 0).any() else 0
        plan = np.where(lay.plan[idx] >= 0, lay.plan[idx] + copy_no * n_plans, -1)
        plan = np.where(plan >= 0, pd.factorize(plan)[0], -1).astype(np.int64)
        years = np.arange(lay.years[0], lay.years[-1] + int(extra_years) + 1, dtype=np.int64)
        layout = _Layout(department_id=np.arange(idx.size), years=years,
                         municipality=lay.municipality[idx], plan=plan, cohort=lay.cohort[idx])
        base = self.baseline[idx]
        if extra_years:
            base = np.concatenate([base, np.repeat(base[:, -1:], int(extra_years), axis=1)],
                                  axis=1)
        h = self.model.noise_scale[idx]
        model = OutcomeModel(
            outcome=self.model.outcome, sigma2_municipality=self.model.sigma2_municipality,
            sigma2_plan=self.model.sigma2_plan, sigma2_department=self.model.sigma2_department,
            rho=self.model.rho, noise_scale=h, moments=self.model.moments,
            n_departments=int(idx.size), n_years=int(years.size), n_departments_dropped=0)
        treated = (layout.cohort[:, None] > 0) & (
            years[None, :] >= layout.cohort[:, None] + self.effect_lag)
        return PowerDesign(layout=layout, model=model, baseline=base, treated=treated,
                           effect_lag=self.effect_lag)

    def noise(self, rng: np.random.Generator) -> FloatArray:
        """One draw of the outcome's noise (departments x years)."""
        lay, m = self.layout, self.model
        n, t = lay.n, lay.n_years
        out = np.sqrt(m.sigma2_municipality) * rng.standard_normal(
            (int(lay.municipality.max()) + 1, t))[lay.municipality]
        if (lay.plan >= 0).any():
            plan = np.sqrt(m.sigma2_plan) * rng.standard_normal((int(lay.plan.max()) + 1, t))
            out += np.where((lay.plan >= 0)[:, None], plan[np.maximum(lay.plan, 0)], 0.0)
        e = rng.standard_normal((n, t))
        u = np.empty((n, t))
        u[:, 0] = e[:, 0]
        innov = np.sqrt(1.0 - m.rho**2)
        for j in range(1, t):
            u[:, j] = m.rho * u[:, j - 1] + innov * e[:, j]
        return out + np.sqrt(m.sigma2_department) * m.noise_scale[:, None] * u

    def weights(self) -> FloatArray:
        """Linear weights ``W`` of the closed-form simple ATT: ``estimate = sum(W * y)``.

        Callaway-Sant'Anna with never-treated controls and no covariates: ATT(g, t) is the
        difference of the mean change ``y[t] - y[g - 1]`` between cohort g and the never-treated,
        and the simple aggregate weights the post cells (t >= g) by cohort size.
        """
        lay = self.layout
        years = lay.years
        cohorts = [g for g in np.unique(lay.cohort) if g > 0 and years[0] < g <= years[-1]]
        never = lay.cohort == 0
        if not cohorts or not never.any():
            raise EstimationError("power: the design needs never-treated and treated departments "
                                  "with a pre-period")
        w = np.zeros((lay.n, years.size))
        sizes = {g: int((lay.cohort == g).sum()) for g in cohorts}
        total = sum(sizes[g] * int((years >= g).sum()) for g in cohorts)
        for g in cohorts:
            row = (years >= g).astype(float)
            row[np.searchsorted(years, g) - 1] = -row.sum()
            w[lay.cohort == g] += row / total
            w[never] -= row * sizes[g] / total / never.sum()
        return w

    def analytic_sd(self, weights: FloatArray | None = None) -> float:
        """Standard deviation of ``sum(W * y)`` under the model (exact for a linear estimator)."""
        w = self.weights() if weights is None else weights
        lay, m = self.layout, self.model
        var = m.sigma2_municipality * float((_group_sum(w, lay.municipality) ** 2).sum())
        if (lay.plan >= 0).any():
            var += m.sigma2_plan * float((_group_sum(w, lay.plan) ** 2).sum())
        r = _ar1_corr(lay.n_years, m.rho)
        hw = m.noise_scale[:, None] * w
        var += m.sigma2_department * float(np.einsum("dt,ts,ds->", hw, r, hw))
        return float(np.sqrt(var))

    def analytic_power(self, effects: Sequence[float], *, alpha: float = 0.05,
                       weights: FloatArray | None = None) -> pd.DataFrame:
        """Normal-approximation power of the linear estimator ``sum(W * y)``.

        Returns
        -------
        pandas.DataFrame
            ``effect, power, expected_estimate, sd``.
        """
        w = self.weights() if weights is None else weights
        sd = self.analytic_sd(w)
        tau = float((w * self.treated).sum())
        z = float(stats.norm.ppf(1 - alpha / 2))
        eff = np.asarray(effects, dtype=float)
        shift = eff * tau / sd
        pw = stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z)
        return pd.DataFrame({"effect": eff, "power": pw, "expected_estimate": eff * tau,
                             "sd": sd})

    def analytic_mde(self, *, target: float = 0.8, alpha: float = 0.05,
                     weights: FloatArray | None = None) -> float:
        """Effect detected with probability ``target`` (one-tail normal approximation)."""
        w = self.weights() if weights is None else weights
        tau = float((w * self.treated).sum())
        z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(target))
        return z * self.analytic_sd(w) / abs(tau) if tau != 0 else float("inf")

    def design_estimate(self, y: FloatArray, cluster: IntArray | None = None,
                        weights: FloatArray | None = None) -> tuple[float, float]:
        """Closed-form simple ATT and its cluster-robust standard error.

        Each department's contribution ``W[d] . y[d]`` is centred within its cohort; the variance
        is the sum over clusters (departments by default) of the squared centred contributions,
        with the cohort weights treated as known.
        """
        w = self.weights() if weights is None else weights
        contrib = (w * y).sum(axis=1)
        codes = pd.factorize(self.layout.cohort)[0]
        means = np.bincount(codes, contrib) / np.bincount(codes)
        centred = contrib - means[codes]
        if cluster is not None:
            centred = np.bincount(cluster, centred)
        return float(contrib.sum()), float(np.sqrt((centred**2).sum()))


def _group_sum(w: FloatArray, codes: IntArray) -> FloatArray:
    keep = codes >= 0
    out = np.zeros((int(codes[keep].max()) + 1 if keep.any() else 0, w.shape[1]))
    np.add.at(out, codes[keep], w[keep])
    return out


def power_design(panel: pd.DataFrame, *, outcome: str, tool: str, effect_lag: int = 1,
                 heteroskedastic: bool = True) -> PowerDesign:
    """The panel's design with the outcome model estimated on it (see :func:`power`)."""
    _, layout, y, n_dropped = _balanced(panel, outcome, tool)
    return _design_from(y, layout, outcome, n_dropped, effect_lag, heteroskedastic)


def _design_from(y: FloatArray, layout: _Layout, outcome: str, n_dropped: int, effect_lag: int,
                 heteroskedastic: bool) -> PowerDesign:
    if isinstance(effect_lag, bool) or int(effect_lag) != effect_lag or effect_lag < 0:
        raise EstimationError(f"power: effect_lag must be a non-negative integer, got "
                              f"{effect_lag!r}")
    model = _fit_model(y, layout, outcome, n_dropped, heteroskedastic)
    baseline, _ = _twfe_fit(y, layout)
    treated = (layout.cohort[:, None] > 0) & (
        layout.years[None, :] >= layout.cohort[:, None] + int(effect_lag))
    return PowerDesign(layout=layout, model=model, baseline=baseline, treated=treated,
                       effect_lag=int(effect_lag))


# --------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------
def att_gt_estimator(*, cluster: str | None = None, covariates: Sequence[str] | None = None,
                     control: Literal["never", "not_yet"] = "never") -> Estimator:
    """Callaway-Sant'Anna simple ATT with analytic standard errors, as a power estimator.

    Parameters
    ----------
    cluster
        Column to cluster on (e.g. ``"municipality_id"``); None = departments.
    covariates, control
        Passed to :func:`impact.did.att_gt`.

    Returns
    -------
    callable
        ``(frame, outcome, tool) -> (estimate, se)``.
    """
    return _AttGt(cluster=cluster, covariates=tuple(covariates or ()), control=control)


@dataclass(frozen=True)
class _AttGt:
    cluster: str | None
    covariates: tuple[str, ...]
    control: str

    def columns(self, outcome: str, tool: str) -> list[str]:
        """The columns att_gt reads (the replications copy only these)."""
        cols = ["department_id", "year", f"cohort_{tool}", outcome, *self.covariates]
        return list(dict.fromkeys(cols + ([self.cluster] if self.cluster else [])))

    def __call__(self, frame: pd.DataFrame, outcome: str, tool: str) -> tuple[float, float]:
        from impact.did import att_gt

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = att_gt(frame, outcome, "department_id", "year", f"cohort_{tool}",
                         covariates=list(self.covariates) or None, control=self.control,
                         n_boot=0, cluster=self.cluster, unbalanced="drop")
            overall = res.aggregate("simple").overall
        return float(overall.att), float(overall.se)


# --------------------------------------------------------------------------------------------
# replications
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """What a worker needs: the design, the effects, the estimator and the frame template."""

    design: PowerDesign
    effects: FloatArray
    estimator: Estimator | None  # None = the closed-form design estimator
    template: pd.DataFrame | None
    outcome: str
    tool: str
    cluster: IntArray | None


def _run_chunk(job: _Job, seeds: Sequence[np.random.SeedSequence]) -> FloatArray:
    """Estimates and SEs for a chunk of replications: array (reps, effects, 2)."""
    out = np.empty((len(seeds), job.effects.size, 2))
    d = job.design
    w = d.weights() if job.estimator is None else None
    for i, ss in enumerate(seeds):
        y0 = d.baseline + d.noise(np.random.default_rng(ss))
        for j, eff in enumerate(job.effects):
            y = y0 + eff * d.treated
            if job.estimator is None:
                out[i, j] = d.design_estimate(y, job.cluster, w)
            else:
                frame = job.template.copy(deep=False)
                frame[job.outcome] = y.ravel()
                out[i, j] = job.estimator(frame, job.outcome, job.tool)
    return out


class _Progress:
    """A one-line progress bar on stderr (tqdm when installed); silent when disabled."""

    def __init__(self, total: int, enabled: bool, label: str = "power") -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=label, unit="rep", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last < 0.2 and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        frac = self.done / self.total if self.total else 1.0
        filled = int(30 * frac)
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        sys.stderr.write(f"\r{self.label}: [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{self.done}/{self.total} replications, {elapsed:.1f} s, {rate:.1f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _run_all(job: _Job, seeds: list[np.random.SeedSequence], *, backend: str, n_jobs: int,
             client: Any, chunk_size: int, progress: _Progress) -> FloatArray:
    chunks = [seeds[i:i + chunk_size] for i in range(0, len(seeds), chunk_size)]
    results: list[FloatArray | None] = [None] * len(chunks)
    if backend == "sequential":
        for i, chunk in enumerate(chunks):
            results[i] = _run_chunk(job, chunk)
            progress.update(len(chunk))
    elif backend == "loky":
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
        for i, res in enumerate(par(delayed(_run_chunk)(job, c) for c in chunks)):
            results[i] = res
            progress.update(len(chunks[i]))
    elif backend == "dask":
        results = _run_dask(job, chunks, client, progress)
    else:
        raise EstimationError(f"power: backend must be 'sequential', 'loky' or 'dask', got "
                              f"{backend!r}")
    return np.concatenate(results, axis=0)


def _run_dask(job: _Job, chunks: list[list[np.random.SeedSequence]], client: Any,
              progress: _Progress) -> list[FloatArray]:
    try:
        from distributed import Client, LocalCluster
        from joblib import Parallel, delayed, parallel_config
    except ImportError as err:
        raise EstimationError("power: backend='dask' needs the 'distributed' package "
                              "(pip install 'impact[dask]')") from err
    own = client is None
    cluster = None
    if own:
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        results: list[FloatArray] = []
        with parallel_config(backend="dask", wait_for_workers_timeout=60), client.as_current():
            par = Parallel(return_as="generator")
            for i, res in enumerate(par(delayed(_run_chunk)(job, c) for c in chunks)):
                results.append(res)
                progress.update(len(chunks[i]))
        return results
    finally:
        if own:
            client.close()
            cluster.close()


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinimumDetectableEffect(Result):
    """Effect at which the simulated power reaches ``target`` (linear interpolation).

    ``mc_se`` is its Monte Carlo standard error by the delta method (the power's binomial
    standard error at the crossing divided by the slope of the interpolated curve); ``lower``
    and ``upper`` are effect +- 1.96 mc_se. ``effect`` is NaN when the grid never reaches target.
    """

    target: float
    effect: float
    mc_se: float
    lower: float
    upper: float

    def __float__(self) -> float:
        return self.effect

    def _tidy(self) -> pd.DataFrame:
        """One row: ``term`` ``mde(power=<target>)``, the effect as ``estimate``, its Monte
        Carlo SE as ``se``, ``lower``, ``upper``; then ``target`` (no support counts)."""
        return pd.DataFrame({"term": [f"mde(power={self.target:g})"], "estimate": [self.effect],
                             "se": [self.mc_se], "lower": [self.lower], "upper": [self.upper],
                             "target": [self.target]})

    def _summary_title(self) -> str:
        return (f"Minimum detectable effect at power {self.target:g} (interpolated on the "
                "simulated power curve; Monte Carlo SE)")

    def _draw(self, ax: Any) -> None:
        """The minimum detectable effect with its Monte Carlo interval."""
        draw_intervals(ax, [0.0], [self.effect], [self.lower], [self.upper], horizontal=True)
        ax.set_yticks([0.0], [f"power {self.target:g}"])
        ax.set_xlabel("minimum detectable effect")


@dataclass(frozen=True)
class PowerResult(Result):
    """Simulated power of an estimator at each injected effect.

    Attributes
    ----------
    table
        One row per effect: ``effect, power, mc_se, mean_estimate, mean_se, sd_estimate,
        n_reps``.
    replications
        One row per replication and effect: ``replication, effect, estimate, se, reject``.
    design
        The design and outcome model the replications drew from.
    settings
        ``outcome, tool, alpha, n_reps, seed, estimator, backend``.
    """

    table: pd.DataFrame
    replications: pd.DataFrame = field(repr=False)
    design: PowerDesign = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> OutcomeModel:
        """The outcome's noise model."""
        return self.design.model

    def mde(self, target: float = 0.8) -> MinimumDetectableEffect:
        """Minimum detectable effect: smallest |effect| on the grid's curve reaching ``target``."""
        if not 0 < target < 1:
            raise EstimationError(f"mde: target must be in (0, 1), got {target!r}")
        tab = (self.table.assign(size=self.table["effect"].abs())
               .groupby("size", sort=True)["power"].mean())  # +-effect: mean of both
        size, pw = tab.index.to_numpy(dtype=float), tab.to_numpy(dtype=float)
        n = float(self.settings["n_reps"])
        above = np.flatnonzero(pw >= target)
        if above.size == 0 or above[0] == 0:
            eff = float("nan") if above.size == 0 else float(size[0])
            return MinimumDetectableEffect(target, eff, float("nan"), float("nan"),
                                           float("nan"))
        i = int(above[0])
        slope = (pw[i] - pw[i - 1]) / (size[i] - size[i - 1])
        eff = float(size[i - 1] + (target - pw[i - 1]) / slope)
        mc_se = float(np.sqrt(target * (1 - target) / n) / slope)
        return MinimumDetectableEffect(target, eff, mc_se, eff - 1.96 * mc_se,
                                       eff + 1.96 * mc_se)

    def _tidy(self) -> pd.DataFrame:
        """One row per effect: ``term`` ``power(effect=<e>)``, the simulated power as
        ``estimate``, its Monte Carlo SE as ``se``, ``lower``/``upper`` = power -+ 1.96 SE
        (clipped to [0, 1]), the support of the design, then the power table's columns
        (``effect, power, mc_se, ...``).

        Support: ``n_units`` = departments of the design, treated side = the departments that
        receive the injected effect, control side = the others; persons unknown.
        """
        t = self.table.reset_index(drop=True)
        treated = np.asarray(self.design.treated).any(axis=1)
        n = int(treated.size)
        lo = np.clip(t["power"] - 1.96 * t["mc_se"], 0.0, 1.0)
        hi = np.clip(t["power"] + 1.96 * t["mc_se"], 0.0, 1.0)
        head = pd.DataFrame({"term": [f"power(effect={e:g})" for e in t["effect"]],
                             "estimate": t["power"], "se": t["mc_se"], "lower": lo, "upper": hi,
                             "n_units": n, "n_units_treated": int(treated.sum()),
                             "n_units_control": int(n - treated.sum())})
        return pd.concat([head, t], axis=1)

    _summary_columns = ("effect",)

    def _summary_title(self) -> str:
        s = self.settings
        return (f"Simulated power of {s.get('estimator', 'the estimator')} on "
                f"{s.get('outcome', '')} ({s.get('tool', '')}), alpha {s.get('alpha', 0.05):g}")

    def _summary_notes(self) -> tuple[str, ...]:
        s = self.settings
        return (f"{s.get('n_reps')} replications per effect, seed {s.get('seed')}, backend "
                f"{s.get('backend')}; estimate = power, se = Monte Carlo SE",)

    def _draw(self, ax: Any) -> None:
        """The power curve: power against the injected effect, with Monte Carlo intervals."""
        t = self.tidy()
        draw_intervals(ax, t["effect"].to_numpy(dtype=float), t["estimate"], t["lower"],
                       t["upper"], linestyle="-")
        ax.axhline(self.settings.get("alpha", 0.05), color="grey", lw=0.8, ls=":")
        ax.set_xlabel("injected effect")
        ax.set_ylabel("power")
        ax.set_ylim(0, 1.02)


def power(
    panel: pd.DataFrame,
    *,
    outcome: str,
    tool: str,
    effects: Sequence[float],
    n_reps: int = 500,
    alpha: float = 0.05,
    estimator: Estimator | Literal["att_gt", "design"] = "att_gt",
    backend: Backend = "sequential",
    client: Any = None,
    seed: int = 0,
    progress: bool = True,
    effect_lag: int = 1,
    cluster: str | None = None,
    n_jobs: int = 2,
    chunk_size: int | None = None,
    heteroskedastic: bool = True,
) -> PowerResult:
    """Simulation power of an estimator on the real design of a department-year panel.

    Parameters
    ----------
    panel
        ``Panel.frame`` (``department_id, year, municipality_id, plan_id, cohort_<tool>`` and the
        outcome). Departments with the outcome missing in some year are left out.
    outcome, tool
        Outcome column and letting tool (``cohort_<tool>`` gives adoption timing).
    effects
        Effects to inject, on the outcome's scale (e.g. 0.02 = +2 percentage points of a share).
    n_reps
        Replications per effect (the same noise draws for every effect).
    alpha
        Level of the two-sided test ``|estimate / se| > z_(1 - alpha/2)``.
    estimator
        ``"att_gt"`` (default: :func:`att_gt_estimator`, departments as clusters), ``"design"``
        (the closed-form estimator of :meth:`PowerDesign.design_estimate`, clustered on
        ``cluster``) or a callable ``(frame, outcome, tool) -> (estimate, se)``; the frame has the
        panel's columns, rows of the balanced departments, and the simulated outcome.
    backend
        ``"sequential"``, ``"loky"`` (joblib processes, ``n_jobs``) or ``"dask"`` (joblib on a
        ``distributed.Client``: ``client``, or a LocalCluster started and closed here).
    client
        A ``distributed.Client`` for ``backend="dask"``.
    seed
        Replication r uses ``SeedSequence(seed).spawn(n_reps)[r]``: same table on every backend.
    progress
        A progress bar on stderr.
    effect_lag
        The effect enters the outcome from ``cohort + effect_lag`` (default 1: a tool in force in
        year t first moves the 1 January stock of t + 1).
    cluster
        Cluster column for ``estimator="design"`` (e.g. ``"municipality_id"``); None = departments.
    n_jobs, chunk_size
        Workers for loky; replications per task (default: about 4 tasks per worker).
    heteroskedastic
        Department-specific noise levels (see :func:`fit_outcome_model`).

    Returns
    -------
    PowerResult
    """
    if isinstance(n_reps, bool) or int(n_reps) != n_reps or n_reps < 1:
        raise EstimationError(f"power: n_reps must be a positive integer, got {n_reps!r}")
    if not 0 < alpha < 1:
        raise EstimationError(f"power: alpha must be in (0, 1), got {alpha!r}")
    eff = np.asarray(list(effects), dtype=float)
    if eff.ndim != 1 or eff.size == 0 or not np.isfinite(eff).all():
        raise EstimationError("power: effects must be a non-empty list of finite numbers")
    extra = [cluster] if cluster is not None else []
    frame, layout, y, n_dropped = _balanced(panel, outcome, tool, extra)
    design = _design_from(y, layout, outcome, n_dropped, effect_lag, heteroskedastic)
    codes = None
    if isinstance(estimator, str):
        if estimator == "att_gt":
            est: Estimator | None = att_gt_estimator()
        elif estimator == "design":
            est = None
            design.weights()  # fail early on an unusable design
            if cluster is not None:
                first = frame.groupby("department_id", sort=True)[cluster].first()
                codes = pd.factorize(first, sort=True)[0].astype(np.int64)
        else:
            raise EstimationError(f"power: estimator must be 'att_gt', 'design' or a callable, "
                                  f"got {estimator!r}")
    elif callable(estimator):
        est = estimator
    else:
        raise EstimationError(f"power: estimator must be 'att_gt', 'design' or a callable, got "
                              f"{estimator!r}")
    template = None
    if est is not None:
        template = frame[est.columns(outcome, tool)] if isinstance(est, _AttGt) else frame
    job = _Job(design=design, effects=eff, estimator=est, template=template, outcome=outcome,
               tool=tool, cluster=codes)
    seeds = np.random.SeedSequence(seed).spawn(int(n_reps))
    workers = 1 if backend == "sequential" else max(int(n_jobs), 1)
    size = chunk_size or max(1, int(np.ceil(n_reps / (4 * workers))))
    bar = _Progress(int(n_reps), bool(progress))
    try:
        raw = _run_all(job, seeds, backend=backend, n_jobs=int(n_jobs), client=client,
                       chunk_size=size, progress=bar)
    finally:
        bar.close()
    z = float(stats.norm.ppf(1 - alpha / 2))
    estimate, se = raw[..., 0], raw[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        reject = np.abs(estimate / se) > z
    ok = np.isfinite(estimate) & np.isfinite(se) & (se > 0)
    reject &= ok
    n_ok = ok.sum(axis=0)
    pw = reject.sum(axis=0) / np.maximum(n_ok, 1)
    table = pd.DataFrame({
        "effect": eff,
        "power": pw,
        "mc_se": np.sqrt(pw * (1 - pw) / np.maximum(n_ok, 1)),
        "mean_estimate": np.nanmean(np.where(ok, estimate, np.nan), axis=0),
        "mean_se": np.nanmean(np.where(ok, se, np.nan), axis=0),
        "sd_estimate": np.nanstd(np.where(ok, estimate, np.nan), axis=0, ddof=1)
        if n_reps > 1 else np.nan,
        "n_reps": n_ok,
    })
    reps = pd.DataFrame({
        "replication": np.repeat(np.arange(int(n_reps)), eff.size),
        "effect": np.tile(eff, int(n_reps)),
        "estimate": estimate.ravel(),
        "se": se.ravel(),
        "reject": reject.ravel(),
    })
    name = estimator if isinstance(estimator, str) else getattr(estimator, "__name__",
                                                                type(estimator).__name__)
    settings = {"outcome": outcome, "tool": tool, "alpha": float(alpha), "n_reps": int(n_reps),
                "seed": seed, "estimator": name, "backend": backend,
                "effect_lag": int(effect_lag), "cluster": cluster}
    return PowerResult(table=table, replications=reps, design=design, settings=settings)
