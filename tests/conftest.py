"""Test ordering for the slow suite under pytest-xdist.

``make test`` runs the slow suite with ``--dist loadfile``: every test file goes to one worker, so a
module-scoped fixture (a 24-seed simulation study) is computed once, not once per worker. The
scheduler hands out files in collection order, so the longest studies are moved to the front
(longest-first scheduling): otherwise a 15-minute study that starts last decides the wall time.
"""

from __future__ import annotations

import pytest

#: Slow test files, longest first (minutes on 2 cores, from ``pytest --durations``).
LONGEST_FIRST = (
    "test_default_world.py",
    "test_coverage.py",
    "test_subgroup_release.py",
    "test_bayes.py",
    "test_bayes_calibration.py",
    "test_bayes_seed.py",
    "test_dose_response.py",
    "test_simulate.py",
    "test_steps.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the files of :data:`LONGEST_FIRST` first, in that order; keep the rest as collected."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep order
