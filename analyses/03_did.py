"""Step 3 of the study: the difference-in-differences estimates: the headline (imputation DiD, every
tool at once), the att_gt, TWFE and Bacon contrasts, effects by subgroup, tenants by letting
channel.

A thin layer over ``impact run --step`` (:mod:`impact.workflow.scripts`): the same step functions
and configuration as ``impact run``; a step whose inputs and configuration are unchanged is reused
from the run folder, and the steps it reads run first when they are not current.

Usage: ``python analyses/03_did.py [--config analyses/config/small.toml] [--data DIR] [--out DIR]
[--fresh]``
"""

from impact.workflow.scripts import main

if __name__ == "__main__":
    main("03_did")
