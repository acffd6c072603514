"""Diagnostics of event-study estimates (issue 12).

- :func:`pretrends` (``pre_trends.py``): joint Wald test of the pre-period coefficients.
- :func:`pretrend_power` (``pre_trends.py``): power of the pre-test against a violation of
  parallel trends, or the linear violation it detects with a given probability (Roth 2022).
- :func:`honest` (``honest_did.py``): robust confidence intervals under relative-magnitude or
  smoothness bounds on the violation of parallel trends (Rambachan and Roth 2023).

Each takes an event-study result (``event_time``, ``estimate``, ``vcov()``) or plain
``betahat, sigma`` arrays with the reference period omitted.
"""

from __future__ import annotations

from impact.diagnostics.honest_did import honest
from impact.diagnostics.pre_trends import PretrendPower, PretrendTest, pretrend_power, pretrends

__all__ = ["PretrendPower", "PretrendTest", "honest", "pretrend_power", "pretrends"]
