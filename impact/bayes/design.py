"""Input checks and model arrays (configuration, design) for the Bayesian hierarchical DiD model.

The model (see :func:`impact.bayes.model.build_model`) is, for department ``i`` in year ``t``::

    eta[i, t] = a_unit[i] + year[t] + effect[g(i)] * d[i, t]

with ``d`` the treatment (0/1 adoption or intensity in [0, 1]), ``g(i)`` the ``effect_by`` group of
the department and ``a_unit`` nested in the grouping ``levels`` (e.g. afdeling within helhedsplan
within kommune). ``eta`` is the mean of a normal or Student-t likelihood on the standardised outcome,
or the log-odds of a binomial likelihood on counts.

Missing finer levels
--------------------
A null in a level other than the coarsest (typically ``plan_id``: departments without a
helhedsplan) means "no group at this level". These departments are pooled into one pseudo-group
``"none"`` inside their coarser group (one "no plan" group per municipality), so that their
intercepts are shrunk towards the other non-supported departments of the same municipality.
Group keys are composite (a plan is identified by plan *and* municipality), so the nesting always
holds. Nulls in the coarsest level, the unit, time, treatment, outcome, trials or ``effect_by``
columns are errors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from impact.errors import EstimationError

Likelihood = Literal["normal", "binomial", "student_t"]
Pooling = Literal["partial", "complete", "none"]
LIKELIHOODS = ("normal", "binomial", "student_t")
POOLINGS = ("partial", "complete", "none")
ERRORS = ("iid", "ar1")
NONE_LEVEL = "none"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the model (hashed into saved posteriors).

    Parameters
    ----------
    outcome, treatment, unit, time
        Column names. ``outcome`` holds the successes ``k`` for the binomial likelihood.
    levels
        Grouping columns the units are nested in, finest first (e.g. ``("plan_id",
        "municipality_id")``).
    effect_by
        Column whose groups get their own, partially pooled treatment effect.
    effect_mean_by
        Optional column constant within the ``effect_by`` groups (e.g. ``"market_type"`` for
        municipality effects): the groups' effects are partially pooled towards a mean per
        category of it instead of one common mean (effects that differ systematically by
        housing market are not shrunk across markets). With ``pooling="complete"``: one effect
        per category; ``pooling="none"`` ignores it.
    unit_effects
        Partial pooling only: each treated unit's effect deviates from its group's,
        ``tau[i] = effect_lin[g(i)] + sigma_unit_effect * z[i]`` (departments of one
        municipality need not respond alike; without this the deviations sit in the errors,
        which the model takes for independent noise). The group effect is then the mean of its
        departments' effects.
    effect_by_extra
        Optional second grouping (e.g. housing-market type) adding an additive, partially pooled
        deviation to the treatment effect.
    likelihood
        ``"normal"``, ``"student_t"`` or ``"binomial"``.
    trials
        Column with the number of trials ``n`` (binomial only).
    pooling
        ``"partial"`` (hierarchical effects), ``"complete"`` (one common effect) or ``"none"``
        (independent effects per group). Used by :func:`impact.bayes.compare_pooling`.
    centred_intercepts
        Centred parameterisation of the unit intercepts and the year effects (default; measured
        to sample far better with ~10 years per department).
    centred_levels
        Centred parameterisation of the plan and municipality intercepts.
    centred_effects
        Centred parameterisation of the group treatment effects: ``True``, ``False`` or
        ``"auto"`` (default: chosen from how strongly the data identify them, see
        :mod:`impact.bayes.parameterisation`).
    event_time
        Optional column with the time relative to adoption (``year - first_year``; null for
        never-adopting units). Adds event-time dynamics, see :func:`impact.bayes.model.build_model`.
    event_window
        ``(first lead, last lag)``: relative times beyond the window are binned into its ends;
        ``-1`` is the reference period.
    effect_profile
        Optional column with the time since adoption (``year - first_year``; null for
        never-adopting units): the effect per typical dose of a treated observation is its
        group's plus one shared deviation per time since adoption (:func:`profile_terms`), so
        an effect that is not proportional to the treatment (a cumulative exposure that keeps
        counting tenants who have moved out again) does not bias the effect over the group's
        treated observations, which ``effect`` then reports.
    profile_last
        Times since adoption from this one on share the profile's last bin.
    time_by
        Columns constant within units (e.g. ``("market_type", "supported_department")``): year
        effects per cell of their combination, beside the common year effects (the primary DiD's
        strata: parallel trends only within a stratum).
    covariates
        Numeric columns (e.g. baseline measures) with year-specific slopes (the primary DiD's
        ``baselines``: parallel trends given the covariates). The slopes are those of an
        orthonormal basis of the covariates net of the ``time_by`` strata (coordinates
        ``basis_<k>``): the same mean structure, with uncorrelated slopes to sample.
    controls
        Other treatments in [0, 1] (e.g. the other tool's exposure), each with one common
        effect, so that a tool used together with the treatment does not load onto it.
    errors
        ``"iid"`` or ``"ar1"``: a first-order autoregression of the errors within each unit
        (normal likelihood only; composition is persistent, and independent errors understate
        the uncertainty of a persistent treatment).
    weights
        Optional column of counts behind each outcome (e.g. ``n_labour_force_18_64``), normal
        likelihood only: the error scale is ``sqrt(sigma_common**2 + sigma_count**2 * nbar /
        n)``, equal precision and precision proportional to the count as its two ends.
    """

    outcome: str
    treatment: str
    unit: str = "department_id"
    time: str = "year"
    levels: tuple[str, ...] = ("plan_id", "municipality_id")
    effect_by: str = "municipality_id"
    effect_by_extra: str | None = None
    effect_mean_by: str | None = None
    unit_effects: bool = False
    likelihood: str = "normal"
    trials: str | None = None
    pooling: str = "partial"
    centred_intercepts: bool = True
    centred_levels: bool = False
    centred_effects: bool | str = "auto"
    event_time: str | None = None
    event_window: tuple[int, int] = (-4, 5)
    effect_profile: str | None = None
    profile_last: int = 8
    time_by: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    errors: str = "iid"
    weights: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The configuration as a JSON-serialisable dict."""
        d = asdict(self)
        d["levels"] = list(self.levels)
        d["event_window"] = list(self.event_window)
        for key in ("time_by", "covariates", "controls"):
            d[key] = list(getattr(self, key))
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> ModelConfig:
        """The inverse of :meth:`to_dict` (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the configuration, stable across sessions."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Design:
    """Arrays and coordinates prepared from the panel for :func:`impact.bayes.model.build_model`.

    ``level_parent[j]`` maps each group of level ``j`` to its group at level ``j + 1`` (-1 for the
    coarsest level); ``unit_parent`` maps units to the finest level.
    """

    y: np.ndarray
    d: np.ndarray
    n_trials: np.ndarray | None
    unit_idx: np.ndarray
    time_idx: np.ndarray
    effect_idx: np.ndarray
    extra_idx: np.ndarray | None
    units: list[str]
    times: list[str]
    effect_groups: list[str]
    extra_groups: list[str] | None
    level_names: list[str]
    level_groups: list[list[str]]
    level_parent: list[np.ndarray]
    unit_parent: np.ndarray | None
    y_loc: float
    y_scale: float
    lead_idx: np.ndarray | None = None
    lag_idx: np.ndarray | None = None
    leads: list[int] = field(default_factory=list)
    lags: list[int] = field(default_factory=list)
    data_hash: str = ""
    extras: dict[str, object] = field(default_factory=dict)
    #: stratum of each observation (``time_by``) and the stratum labels
    stratum_idx: np.ndarray | None = None
    strata: list[str] = field(default_factory=list)
    #: the treatment's typical dose, its mean over the treated observations (1 for a 0/1
    #: treatment): ``d`` holds the treatment divided by it (:func:`dose_scale`)
    d_scale: float = 1.0
    #: ``(n_obs, n_covariates)`` standardised covariates, ``(n_obs, n_controls)`` controls,
    #: each control divided by its typical dose (``control_scale``)
    covariate_x: np.ndarray | None = None
    control_x: np.ndarray | None = None
    control_scale: np.ndarray | None = None
    #: ``effect_profile``: per observation its bin of time since adoption (-1: untreated), the
    #: bins' times, and ``(n_bins, n_bins - 1)`` an orthonormal basis of the profiles whose
    #: treatment-weighted mean over the treated observations is 0
    profile_idx: np.ndarray | None = None
    profile_times: list[int] = field(default_factory=list)
    profile_basis: np.ndarray | None = None
    covariates: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    #: counts behind each outcome (``weights``), relative to their mean
    rel_weight: np.ndarray | None = None
    #: ``effect_mean_by``: the category of each effect group, and the categories
    effect_mean_idx: np.ndarray | None = None
    effect_mean_groups: list[str] = field(default_factory=list)

    @property
    def n_obs(self) -> int:
        """Number of department-years."""
        return int(self.y.shape[0])


def _require_columns(data: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise EstimationError(
            f"impact.bayes: column(s) {missing} not in the data (available: {list(data.columns)})"
        )


def _check_nulls(data: pd.DataFrame, cols: list[str]) -> None:
    counts = {c: int(data[c].isna().sum()) for c in cols}
    bad = {c: n for c, n in counts.items() if n}
    if bad:
        desc = ", ".join(f"{c}: {n} of {len(data)} rows" for c, n in bad.items())
        raise EstimationError(
            f"impact.bayes: missing values (NaN/null) in used columns ({desc}); rows are never "
            "dropped silently: impute or filter them explicitly before fitting"
        )


def _constant_within_unit(data: pd.DataFrame, unit: str, col: str) -> None:
    n = data.groupby(unit, observed=True)[col].nunique(dropna=False)
    bad = n[n > 1]
    if len(bad):
        ex = ", ".join(map(str, bad.index[:10]))
        raise EstimationError(
            f"impact.bayes: {col!r} must be constant within each {unit!r}; {len(bad)} unit(s) "
            f"have several values, e.g. {ex}"
        )


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    cat = pd.Categorical(values.astype(str))
    return np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]


def validate_config(config: ModelConfig) -> None:
    """Check option values (not the data) and raise :class:`impact.EstimationError` if invalid."""
    if config.likelihood not in LIKELIHOODS:
        raise EstimationError(
            f"impact.bayes: likelihood must be one of {LIKELIHOODS}, got {config.likelihood!r}"
        )
    if config.pooling not in POOLINGS:
        raise EstimationError(f"impact.bayes: pooling must be one of {POOLINGS}")
    if config.likelihood == "binomial" and config.trials is None:
        raise EstimationError(
            "impact.bayes: likelihood='binomial' needs trials= (the column with n, e.g. "
            "'n_labour_force'); outcome is then the count k"
        )
    if config.likelihood != "binomial" and config.trials is not None:
        raise EstimationError("impact.bayes: trials= is only used with likelihood='binomial'")
    lo, hi = config.event_window
    if config.event_time is not None and not lo <= -2 < 0 <= hi:
        raise EstimationError("impact.bayes: event_window must be (lead <= -2, lag >= 0)")
    if config.centred_effects not in (True, False, "auto"):
        raise EstimationError(
            "impact.bayes: centred_effects must be True, False or 'auto', got "
            f"{config.centred_effects!r}"
        )
    if len(set(config.levels)) != len(config.levels) or config.unit in config.levels:
        raise EstimationError(f"impact.bayes: levels {config.levels} must be distinct columns")
    if config.errors not in ERRORS:
        raise EstimationError(
            f"impact.bayes: errors must be one of {ERRORS}, got {config.errors!r}"
        )
    if config.likelihood != "normal" and (config.errors != "iid" or config.weights is not None):
        raise EstimationError(
            "impact.bayes: errors='ar1' and weights= are options of the normal likelihood"
        )
    for key in ("time_by", "covariates", "controls"):
        cols = getattr(config, key)
        if isinstance(cols, str) or len(set(cols)) != len(cols):
            raise EstimationError(
                f"impact.bayes: {key} must be a list of distinct column names, got {cols!r}"
            )
    if config.effect_mean_by is not None and config.effect_mean_by == config.effect_by:
        raise EstimationError(
            f"impact.bayes: effect_mean_by must be a column other than effect_by "
            f"({config.effect_by!r})"
        )
    if config.effect_profile is not None and config.profile_last < 1:
        raise EstimationError("impact.bayes: profile_last must be at least 1")
    if config.effect_profile is not None and config.event_time is not None:
        raise EstimationError(
            "impact.bayes: event_time and effect_profile both let the effect vary with the time "
            "since adoption; give one of them")
    if config.treatment in config.controls:
        raise EstimationError("impact.bayes: the treatment cannot also be a control")


def prepare(data: pd.DataFrame, config: ModelConfig) -> Design:
    """Validate the panel and turn it into model arrays.

    Raises
    ------
    impact.EstimationError
        Missing columns, nulls in used columns (counted per column), duplicate unit-years,
        treatment outside [0, 1] or without variation, counts with ``k > n`` or negative or
        non-integer counts, levels that vary within a unit.
    """
    validate_config(config)
    if not isinstance(data, pd.DataFrame):
        raise EstimationError("impact.bayes: data must be a pandas DataFrame")
    used = [config.outcome, config.treatment, config.unit, config.time, config.effect_by]
    used += [c for c in (config.trials, config.effect_by_extra, config.effect_mean_by,
                         config.weights) if c is not None]
    used += [*config.time_by, *config.covariates, *config.controls]
    optional = [c for c in (config.event_time, config.effect_profile) if c is not None]
    _require_columns(data, list(dict.fromkeys(used + list(config.levels) + optional)))
    if len(data) == 0:
        raise EstimationError("impact.bayes: data has no rows")
    coarsest = list(config.levels[-1:])
    _check_nulls(data, list(dict.fromkeys(used + coarsest)))
    dup = data.duplicated([config.unit, config.time])
    if dup.any():
        raise EstimationError(
            f"impact.bayes: {int(dup.sum())} duplicated ({config.unit}, {config.time}) rows"
        )

    d = pd.to_numeric(data[config.treatment], errors="coerce").to_numpy(dtype=float)
    if np.isnan(d).any() or (d < 0).any() or (d > 1).any():
        raise EstimationError(
            f"impact.bayes: treatment {config.treatment!r} must be numeric in [0, 1] (adoption "
            f"0/1 or intensity); {int(np.sum(~((d >= 0) & (d <= 1))))} row(s) are not"
        )
    if not (d > 0).any() or not (d == 0).any():
        raise EstimationError(
            f"impact.bayes: treatment {config.treatment!r} needs both treated (>0) and untreated "
            "(0) department-years"
        )

    y = pd.to_numeric(data[config.outcome], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise EstimationError(
            f"impact.bayes: outcome {config.outcome!r} has {int((~np.isfinite(y)).sum())} "
            "non-numeric or infinite value(s)"
        )
    n_trials = None
    if config.likelihood == "binomial":
        assert config.trials is not None
        n = pd.to_numeric(data[config.trials], errors="coerce").to_numpy(dtype=float)
        problems = {
            "negative outcome": int((y < 0).sum()),
            "non-integer outcome": int((y != np.round(y)).sum()),
            "non-integer or negative trials": int(((n != np.round(n)) | (n < 0)).sum()),
            "trials < outcome": int((n < y).sum()),
        }
        bad = {k: v for k, v in problems.items() if v}
        if bad:
            raise EstimationError(
                "impact.bayes: binomial counts are invalid ("
                + ", ".join(f"{k}: {v} row(s)" for k, v in bad.items())
                + f"); outcome={config.outcome!r} is k, trials={config.trials!r} is n"
            )
        if n.sum() == 0:
            raise EstimationError("impact.bayes: all trials are zero")
        n_trials = n.astype(np.int64)
        y = y.astype(np.int64)
        p = (y.sum() + 0.5) / (n.sum() + 1.0)
        y_loc, y_scale = float(np.log(p / (1 - p))), 1.0
    else:
        y_loc, y_scale = float(np.mean(y)), float(np.std(y))
        if not y_scale > 0:
            raise EstimationError(f"impact.bayes: outcome {config.outcome!r} does not vary")

    unit_idx, units = _codes(data[config.unit])
    time_idx, times = _codes(data[config.time])
    if len(times) < 2:
        raise EstimationError("impact.bayes: at least two time periods are needed")
    for col in [*config.levels, config.effect_by, config.effect_by_extra, *config.time_by]:
        if col is not None:
            _constant_within_unit(data, config.unit, col)

    # Levels, coarsest first, with composite keys so that nesting holds by construction.
    keys = pd.Series([""] * len(data), index=data.index, dtype=object)
    level_codes: list[np.ndarray] = []
    level_groups: list[list[str]] = []
    for col in reversed(config.levels):
        v = data[col].astype(object).where(data[col].notna(), NONE_LEVEL).astype(str)
        keys = (keys + "/" + v) if keys.iloc[0] != "" else v
        c, g = _codes(keys)
        level_codes.insert(0, c)
        level_groups.insert(0, g)
    level_parent: list[np.ndarray] = []
    for j in range(len(level_codes)):
        parent = np.full(len(level_groups[j]), -1, dtype=np.int64)
        if j + 1 < len(level_codes):
            parent[level_codes[j]] = level_codes[j + 1]
        level_parent.append(parent)
    unit_parent = None
    if level_codes:
        unit_parent = np.zeros(len(units), dtype=np.int64)
        unit_parent[unit_idx] = level_codes[0]

    effect_idx, effect_groups = _codes(data[config.effect_by])
    extra_idx, extra_groups = (None, None)
    if config.effect_by_extra is not None:
        extra_idx, extra_groups = _codes(data[config.effect_by_extra])

    events = _event_indices(data, config, d)
    events.update(profile_terms(data, config, d))
    if config.effect_mean_by is not None:
        events.update(_effect_means(data, config, effect_idx))
    events.update(_untreated_terms(data, config))
    cols = list(dict.fromkeys(used + list(config.levels) + optional))
    data_hash = hashlib.sha256(
        pd.util.hash_pandas_object(data[cols], index=False).to_numpy().tobytes()
    ).hexdigest()[:16]
    d_scale = dose_scale(d)
    return Design(
        y=y,
        d=d / d_scale,
        d_scale=d_scale,
        n_trials=n_trials,
        unit_idx=unit_idx,
        time_idx=time_idx,
        effect_idx=effect_idx,
        extra_idx=extra_idx,
        units=units,
        times=times,
        effect_groups=effect_groups,
        extra_groups=extra_groups,
        level_names=list(config.levels),
        level_groups=level_groups,
        level_parent=level_parent,
        unit_parent=unit_parent,
        y_loc=y_loc,
        y_scale=y_scale,
        **events,
        data_hash=data_hash,
    )


def _numeric(data: pd.DataFrame, cols: tuple[str, ...], what: str) -> np.ndarray:
    x = data[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = [c for c, ok in zip(cols, np.isfinite(x).all(axis=0), strict=True) if not ok]
    if bad:
        raise EstimationError(f"impact.bayes: {what} {bad} must be numeric and finite")
    return x


def _effect_means(data: pd.DataFrame, config: ModelConfig,
                  effect_idx: np.ndarray) -> dict[str, object]:
    """The ``effect_mean_by`` category of each ``effect_by`` group (constant within groups)."""
    col = config.effect_mean_by
    n_cat = data.groupby(config.effect_by, observed=True)[col].nunique(dropna=False)
    varying = n_cat[n_cat > 1]
    if len(varying):
        raise EstimationError(
            f"impact.bayes: effect_mean_by {col!r} varies within {len(varying)} "
            f"{config.effect_by!r} group(s), e.g. {varying.index[0]!r}; it must be constant "
            "within the effect groups"
        )
    codes, cats = _codes(data[col])
    of_group = np.zeros(int(effect_idx.max()) + 1, dtype=np.int64)
    of_group[effect_idx] = codes
    return {"effect_mean_idx": of_group, "effect_mean_groups": cats}


def dose_scale(x: np.ndarray) -> float:
    """A treatment's typical dose: its mean over the observations where it is not 0.

    The effects' priors are per typical dose: the model multiplies ``x / dose_scale(x)`` by
    the effect, so that ``Normal(0, 1)`` on the standardised outcome is weakly informative for
    an exposure whose treated values are a few tenths as well as for a 0/1 treatment (scale 1,
    unchanged). A prior per unit of an exposure that rarely exceeds 0.3 would be about three
    times tighter than it reads, and shrink well-identified effects (the same idea as the
    rescaling of coefficient priors by the regressor's scale in rstanarm's ``autoscale``).
    1 where the treatment is 0 throughout.
    """
    nonzero = np.abs(x[x != 0])
    return float(nonzero.mean()) if len(nonzero) else 1.0


def _untreated_terms(data: pd.DataFrame, config: ModelConfig) -> dict[str, object]:
    """Strata of the year effects, covariates with year slopes, controls and weights."""
    out: dict[str, object] = {}
    if config.time_by:
        key = data[list(config.time_by)].astype(str).agg("/".join, axis=1)
        out["stratum_idx"], out["strata"] = _codes(key)
    if config.covariates:
        x = _numeric(data, config.covariates, "covariates")
        sd = x.std(axis=0)
        if not (sd > 0).all():
            flat = [c for c, s in zip(config.covariates, sd, strict=True) if not s > 0]
            raise EstimationError(f"impact.bayes: covariates {flat} do not vary")
        x = (x - x.mean(axis=0)) / sd
        if "stratum_idx" in out:  # the part of each covariate the strata do not explain
            idx = out["stratum_idx"]
            means = np.zeros((idx.max() + 1, x.shape[1]))
            np.add.at(means, idx, x)
            x = x - (means / np.bincount(idx)[:, None])[idx]
        # an orthonormal basis of what is left (same mean structure, uncorrelated slopes): the
        # map x -> x V / s applied to the distinct rows, so that equal rows (a department's
        # baselines in every year) stay exactly equal, which the model's product form needs
        _, sv, vt = np.linalg.svd(x / np.sqrt(len(x)), full_matrices=False)
        keep = sv > 1e-8 * sv[0]
        rows, which = np.unique(x, axis=0, return_inverse=True)
        out["covariate_x"] = (rows @ (vt[keep].T / sv[keep]))[which.reshape(-1)]
        out["covariates"] = [f"basis_{k}" for k in range(int(keep.sum()))]
    if config.controls:
        c = _numeric(data, config.controls, "controls")
        if (c < 0).any() or (c > 1).any():
            raise EstimationError(f"impact.bayes: controls {list(config.controls)} must be in "
                                  "[0, 1]")
        scale = np.array([dose_scale(c[:, k]) for k in range(c.shape[1])])
        out["control_x"] = c / scale
        out["control_scale"] = scale
        out["controls"] = list(config.controls)
    if config.weights is not None:
        w = _numeric(data, (config.weights,), "weights")[:, 0]
        if not (w > 0).all():
            raise EstimationError(
                f"impact.bayes: weights {config.weights!r} must be positive; "
                f"{int((w <= 0).sum())} row(s) are not (filter them explicitly)"
            )
        out["rel_weight"] = w / w.mean()
    return out


def profile_weights(group_idx: np.ndarray, profile_idx: np.ndarray, d: np.ndarray,
                    n_groups: int, n_bins: int) -> np.ndarray:
    """Each group's treatment-weighted shares of the profile's bins, ``(n_groups, n_bins)``.

    Row ``g`` is the treatment ``d`` summed by bin over group ``g``'s treated observations
    (``profile_idx >= 0``; observations with ``group_idx < 0`` are left out), divided by its
    total: a group's reported effect is its coefficient plus this row times the profile
    (:func:`impact.bayes.model._profile_terms`). Rows of groups without a treated observation
    are 0.
    """
    treated = (profile_idx >= 0) & (group_idx >= 0)
    weight = np.zeros((n_groups, n_bins))
    np.add.at(weight, (group_idx[treated], profile_idx[treated]), d[treated])
    total = weight.sum(axis=1, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


def profile_terms(data: pd.DataFrame, config: ModelConfig, d: np.ndarray) -> dict[str, object]:
    """Bins of time since adoption of the treated observations, for ``effect_profile``.

    One bin per whole time since adoption among the observations with treatment, from the
    smallest to ``profile_last`` (later ones share its bin). The profile's deviations are
    constrained to a treatment-weighted mean of 0 over all treated observations (the basis),
    so a group's effect stays near its average over its treated observations and the
    deviations only describe the shape: an orthonormal basis keeps their prior isotropic.
    """
    if config.effect_profile is None:
        return {}
    e = pd.to_numeric(data[config.effect_profile], errors="coerce").to_numpy(dtype=float)
    treated = d > 0
    missing = int((np.isnan(e) & treated).sum())
    if missing:
        raise EstimationError(
            f"impact.bayes: effect_profile {config.effect_profile!r} is null in {missing} "
            "treated row(s); it may be null only for units that never adopt"
        )
    t = np.where(treated, np.round(np.nan_to_num(e)), 0).astype(np.int64)
    first = int(t[treated].min()) if treated.any() else 0
    last = max(first, config.profile_last)
    times = list(range(first, last + 1))
    idx = np.where(treated, np.clip(t, first, last) - first, -1)
    # weights: the treatment summed by bin over the treated observations
    w = np.bincount(idx[treated], weights=d[treated], minlength=len(times))
    keep = w > 0  # bins without treated observations get no deviation
    idx = np.where(treated, np.cumsum(keep)[np.maximum(idx, 0)] - 1, -1)
    times = [t_ for t_, k in zip(times, keep, strict=True) if k]
    if len(times) < 2:  # one time since adoption: no shape to model
        return {}
    w = w[keep] / w[keep].sum()
    # orthonormal complement of w: the last columns of a complete QR of [w, I]
    q, _ = np.linalg.qr(np.column_stack([w, np.eye(len(w))]), mode="complete")
    basis = q[:, 1:len(w)]
    return {"profile_idx": idx, "profile_times": times, "profile_basis": basis}


def _event_indices(data: pd.DataFrame, config: ModelConfig, d: np.ndarray) -> dict[str, object]:
    """Binned lead / lag indices (-1 = none) for the event-time dynamics."""
    if config.event_time is None:
        return {}
    e = pd.to_numeric(data[config.event_time], errors="coerce").to_numpy(dtype=float)
    missing_treated = int((np.isnan(e) & (d > 0)).sum())
    if missing_treated:
        raise EstimationError(
            f"impact.bayes: event_time {config.event_time!r} is null in {missing_treated} "
            "treated row(s); it may be null only for units that never adopt"
        )
    lo, hi = config.event_window
    leads, lags = list(range(lo, -1)), list(range(0, hi + 1))
    eb = np.clip(np.where(np.isnan(e), -1, np.round(e)), lo, hi).astype(np.int64)
    lead_idx = np.where(eb <= -2, eb - lo, -1)
    lag_idx = np.where(eb >= 0, eb, -1)
    return {"lead_idx": lead_idx, "lag_idx": lag_idx, "leads": leads, "lags": lags}
