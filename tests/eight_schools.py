"""The eight-schools model: a published posterior to test the sampling machinery against."""

from __future__ import annotations

import numpy as np


def eight_schools_model(centred: bool = False):
    """The eight-schools model of Rubin (1981) / Gelman et al. (BDA3, section 5.5).

    ``mu ~ Normal(0, 5)``, ``tau ~ HalfCauchy(5)``, ``theta = mu + tau * eta`` (non-centred) and
    ``y ~ Normal(theta, sigma)`` with the published effects and standard errors. Used to validate
    the sampling and summary machinery against the published posterior (mu ≈ 4.4, tau ≈ 3.6).
    """
    import pymc as pm

    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with pm.Model(coords={"school": [str(i) for i in range(8)]}) as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        if centred:
            theta = pm.Normal("theta", mu, tau, dims="school")
        else:
            eta = pm.Normal("eta", 0.0, 1.0, dims="school")
            theta = pm.Deterministic("theta", mu + tau * eta, dims="school")
        pm.Normal("y", theta, sigma, observed=y, dims="school")
    return model
