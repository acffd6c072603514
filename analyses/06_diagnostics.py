"""Step 6 of the study: the placebo in time of the primary specification
([did.primary].placebo_shifts).

A thin layer over ``impact run --step`` (:mod:`impact.workflow.scripts`): the same step functions
and configuration as ``impact run``; a step whose inputs and configuration are unchanged is reused
from the run folder, and the steps it reads run first when they are not current.

Usage: ``python analyses/06_diagnostics.py [--config analyses/config/small.toml] [--data DIR] [--out DIR]
[--fresh]``
"""

from impact.workflow.scripts import main

if __name__ == "__main__":
    main("06_diagnostics")
