"""Step 8 of the study: every step, then the disclosure checks, release/ and the manifests (the same
as impact run).

A thin layer over ``impact run --step`` (:mod:`impact.workflow.scripts`): the same step functions
and configuration as ``impact run``; a step whose inputs and configuration are unchanged is reused
from the run folder, and the steps it reads run first when they are not current.

Usage: ``python analyses/08_tables.py [--config analyses/config/small.toml] [--data DIR] [--out DIR]
[--fresh]``
"""

from impact.workflow.scripts import main

if __name__ == "__main__":
    main("08_tables")
