"""BLAS thread control for the many small and thin matrix products of the DiD estimators.

OpenBLAS starts its worker threads for every product, however small; for the products with a
handful of columns in the group-time loop and the thin bootstrap products that costs more than
the arithmetic, and on a busy machine far more: ``att_gt`` on 600 units x 10 periods took 0.58 s
with OpenBLAS's default threads and 0.05 s with one thread on 2 loaded cores (measured once).
Where parallel work pays (the multiplier bootstrap of a large panel),
:mod:`impact.did.callaway_santanna._bootstrap` runs its own threads, each on single-threaded BLAS.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache


@cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_blas_thread() -> AbstractContextManager[object]:
    """A context in which BLAS (OpenBLAS, MKL, BLIS) uses one thread; restored on exit.

    Returns
    -------
    contextlib.AbstractContextManager
        A threadpoolctl limit (about 30 microseconds to enter once the controller exists).
    """
    return _controller().limit(limits=1, user_api="blas")
