"""Regenerate ``pretrends_he_wang_inputs.csv`` from the R package ``pretrends``' shipped data.

``pretrends`` (github.com/jonathandroth/pretrends, commit 122731d) ships
``data/HeAndWangResults.rda``: the event study of He and Wang (2017, AEJ: Applied, Figure 2C)
used in its README (``beta``, ``sigma``, ``tVec``; reference period -1 omitted). This script
reads it with the ``rdata`` package (NOT a dependency of ``impact``) and writes one row per
coefficient: ``event_time, beta, sigma_0..sigma_6``. Run in a scratch environment::

    pip install --target /tmp/rd rdata
    git clone https://github.com/jonathandroth/pretrends /tmp/pretrends
    PYTHONPATH=/tmp/rd python tests/reference/generate_pretrends_reference.py \\
        /tmp/pretrends/data/HeAndWangResults.rda
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def main(rda: Path) -> None:
    import rdata

    res = rdata.read_rda(str(rda))["HeAndWangResults"]
    beta = np.asarray(res["beta"], float).ravel()
    sigma = np.asarray(res["sigma"], float)
    frame = pd.DataFrame({"event_time": np.asarray(res["tVec"], float).astype(int), "beta": beta})
    for j in range(len(beta)):
        frame[f"sigma_{j}"] = sigma[:, j]
    frame.to_csv(HERE / "pretrends_he_wang_inputs.csv", index=False, float_format="%.17g")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
