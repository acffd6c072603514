"""Bayesian hierarchical difference-in-differences models of tool effects (PyMC, ArviZ).

- :class:`HierarchicalModel`: ``HierarchicalModel(data, ModelConfig(...))``, then
  ``.prior_predictive()`` and ``.fit(**sampler options)`` (refits while the gate fails).
- :func:`hierarchical`: the same in one call: department intercepts nested in plans and municipalities, zero-sum year
  effects, the treatment effect partially pooled across ``effect_by`` groups; returns a
  :class:`HierarchicalResult` (``.effects``, ``.diagnostics``, ``.converged``, ``.idata``).
- :func:`compare_pooling`: LOO comparison of complete, no and partial pooling.
- :func:`prior_predictive`, :func:`plot_prior_predictive`: prior predictive checks.
- :func:`load`: read a result saved with :meth:`HierarchicalResult.save`.

Modules: :mod:`~impact.bayes.design` (data checks, configuration),
:mod:`~impact.bayes.model` (priors, PyMC model), :mod:`~impact.bayes.fit`
(sampling, nutpie / PyMC NUTS), :mod:`~impact.bayes.parameterisation` (centred or
non-centred effects from the data), :mod:`~impact.bayes.arviz_io` (every ArviZ call),
:mod:`~impact.bayes.effects`, :mod:`~impact.bayes.results`,
:mod:`~impact.bayes.ops` (the fused binomial log-likelihood Op behind the binomial model's speed).
PyMC is imported only when a model is built, so ``import impact.bayes`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "hierarchical": "impact.bayes.estimate",
    "HierarchicalModel": "impact.bayes.estimate",
    "compare_pooling": "impact.bayes.estimate",
    "prior_predictive": "impact.bayes.estimate",
    "plot_prior_predictive": "impact.bayes.estimate",
    "HierarchicalResult": "impact.bayes.results",
    "ConvergenceWarning": "impact.bayes.results",
    "load": "impact.bayes.results",
    "ModelConfig": "impact.bayes.design",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'impact.bayes' has no attribute {name!r}")
