"""Event-study inputs of the diagnostics: a result object or plain ``betahat, sigma`` arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from impact.errors import EstimationError


@dataclass(frozen=True)
class EventStudyInput:
    """Event-time coefficients without the reference period, and their joint covariance.

    Attributes
    ----------
    event_time
        Event times of the coefficients, ascending, the reference period left out.
    betahat
        Coefficient estimates, one per event time.
    sigma
        Their covariance matrix.
    reference
        The omitted (normalised) event time; None for a result without one (e.g. ``att_gt``
        with a varying base period), whose pre-periods are the negative event times.
    pre
        Boolean mask of the pre-period coefficients.
    """

    event_time: np.ndarray
    betahat: np.ndarray
    sigma: np.ndarray
    reference: int | None
    pre: np.ndarray

    @property
    def n_pre(self) -> int:
        """Number of pre-period coefficients."""
        return int(self.pre.sum())

    @property
    def n_post(self) -> int:
        """Number of post-period coefficients."""
        return int((~self.pre).sum())


def _is_result(obj: Any) -> bool:
    return hasattr(obj, "estimate") and callable(getattr(obj, "vcov", None))


def _from_result(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    if getattr(result, "event_time", None) is None:
        raise EstimationError("the result has no event_time (is it an event study?)")
    event_time = np.asarray(result.event_time, dtype=float)
    estimate = np.asarray(result.estimate, dtype=float)
    vcov = np.asarray(result.vcov(), dtype=float)
    if hasattr(result, "reference_period"):
        reference = result.reference_period
    else:
        reference = getattr(result, "reference", -1)
    reference = None if reference is None else int(reference)
    if event_time.shape != estimate.shape:
        raise EstimationError(
            "the event-study result has event_time and estimate of different lengths"
        )
    if vcov.shape == (len(estimate), len(estimate)):
        keep = (event_time != reference) & np.isfinite(estimate) & np.isfinite(np.diag(vcov))
        return event_time[keep], estimate[keep], vcov[np.ix_(keep, keep)], reference
    keep = event_time != reference
    if vcov.shape == (keep.sum(), keep.sum()):
        return event_time[keep], estimate[keep], vcov, reference
    raise EstimationError(
        f"the event-study result's vcov() is {vcov.shape}, which matches neither its {len(estimate)} "
        "event times nor those without the reference period"
    )


def as_event_study(
    betahat: Any,
    sigma: Any = None,
    *,
    n_pre: int | None = None,
    event_time: Any = None,
    reference: int = -1,
    require_reference: bool = True,
) -> EventStudyInput:
    """Validate an event study given as a result object or as ``betahat, sigma`` arrays.

    Parameters
    ----------
    betahat
        A result exposing ``event_time``, ``estimate`` and ``vcov()`` (duck-typed; the reference
        period, if present, is dropped), or the coefficient vector with the reference omitted.
    sigma
        Covariance of ``betahat`` (arrays only; must be None with a result).
    n_pre
        Number of pre-period coefficients (they come first). Needed with arrays unless
        ``event_time`` is given.
    event_time
        Event times of ``betahat`` (arrays only). Default: ``-n_pre-1, ..., -2`` then ``0, 1, ...``
        (reference -1 omitted).
    reference
        Omitted event time for arrays (a result's own ``reference_period`` wins).
    require_reference
        Refuse a result without a reference period (``reference_period`` None).

    Returns
    -------
    EventStudyInput

    Raises
    ------
    EstimationError
        On inconsistent shapes, a non-finite or non-symmetric covariance, no pre- or no
        post-period coefficients, or pre-periods that do not come first.
    """
    if _is_result(betahat):
        if sigma is not None:
            raise EstimationError(
                "give either an event-study result or betahat and sigma, not both"
            )
        times, beta, cov, reference = _from_result(betahat)
    else:
        if sigma is None:
            raise EstimationError(
                "sigma (the covariance of betahat) is required when betahat is an array"
            )
        beta = np.atleast_1d(np.asarray(betahat, dtype=float)).ravel()
        cov = np.atleast_2d(np.asarray(sigma, dtype=float))
        if event_time is None:
            if n_pre is None:
                raise EstimationError(
                    "give n_pre or event_time to say which coefficients are pre-periods"
                )
            if not 0 <= n_pre <= len(beta):
                raise EstimationError(f"n_pre = {n_pre} is outside 0..{len(beta)}")
            times = np.concatenate(
                [np.arange(-n_pre, 0) + reference, np.arange(len(beta) - n_pre) + reference + 1]
            ).astype(float)
        else:
            times = np.asarray(event_time, dtype=float).ravel()
    if cov.shape != (len(beta), len(beta)):
        raise EstimationError(f"sigma is {cov.shape} but betahat has {len(beta)} coefficients")
    if len(times) != len(beta):
        raise EstimationError(f"event_time has {len(times)} entries but betahat has {len(beta)}")
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(cov))):
        raise EstimationError("betahat and sigma must be finite")
    scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
    if np.max(np.abs(cov - cov.T)) > 1e-8 * scale:
        raise EstimationError("sigma is not symmetric")
    if np.any(np.diag(cov) <= 0):
        raise EstimationError("sigma has a non-positive variance on its diagonal")
    if reference is None:
        if require_reference:
            raise EstimationError(
                "this diagnostic needs an event study normalised to a reference period "
                "(e.g. att_gt(..., base_period='universal'))"
            )
        pre = times < 0
    elif np.any(times == reference):
        raise EstimationError(f"event_time contains the reference period {reference}; omit it")
    else:
        pre = times < reference
    if pre.sum() == 0 or (~pre).sum() == 0:
        raise EstimationError(
            f"need pre-period (event time < {reference if reference is not None else 0}) and "
            "post-period coefficients; got "
            f"{int(pre.sum())} pre and {int((~pre).sum())} post"
        )
    if np.any(np.diff(times) <= 0):
        raise EstimationError("event_time must be strictly increasing")
    if n_pre is not None and int(pre.sum()) != n_pre:
        raise EstimationError(f"n_pre = {n_pre} but event_time has {int(pre.sum())} pre-periods")
    return EventStudyInput(times, beta, (cov + cov.T) / 2, reference, pre)
