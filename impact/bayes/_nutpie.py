"""Lighter C callbacks for nutpie's compiled PyMC models (compile time only).

nutpie runs a PyMC model through two numba ``cfunc`` callbacks around PyTensor's compiled
functions: one returns the log density and its gradient, one "expands" a draw into every
variable of the trace. nutpie's callbacks copy the results with ``out[...] = values`` and check
``np.all(np.isfinite(out))``. numba implements that slice assignment with a shape-mismatch
error path that formats its message with f-strings, and compiling that formatter alone takes
~3 s once per process. ``benchmarks/bench_nutpie_compile.py`` (report scale, binomial, first
compile of a fresh process, three alternating runs, PyTensor's numba cache warm): 8.5-10.2 s for
``nutpie.compile_pymc_model`` with nutpie's callbacks, 4.9-6.5 s with the ones below.

The callbacks here have the same C signatures and return codes (0 ok, -1 wrong dimension, 3
non-finite gradient, 4 non-finite log density) and copy element by element, checking
finiteness in the same loop; log density, gradient and draws are identical
(``tests/test_bayes_speed.py``). They are swapped into ``nutpie.compile_pymc`` only while a
model compiles (:func:`light_callbacks`) and only when nutpie's private builders have the
signatures they were written against; otherwise nutpie's own callbacks are used.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: nutpie's private builders replaced here, with the parameters they were written against
#: (nutpie 0.16).
_BUILDERS = {
    "_make_c_logp_func": ("n_dim", "logp_fn", "user_data", "shared_keys", "shared_data"),
    "_make_c_expand_func": (
        "n_dim",
        "n_expanded",
        "expand_fn",
        "user_data",
        "shared_var_keys",
        "shared_data",
    ),
}


def _logp_callback(
    n_dim: int, logp_fn: Any, user_data: np.ndarray, shared_keys: Any, shared_data: Any
) -> tuple[Callable[..., int], Any]:
    """``int64 (dim, x*, grad_out*, logp_out*, user_data*)``: log density and gradient."""
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    call = make_extraction_fn(logp_fn, shared_data, shared_keys, user_data.dtype)
    double_p = numba.types.CPointer(numba.types.double)
    signature = numba.types.int64(
        numba.types.uint64, double_p, double_p, double_p, numba.types.voidptr
    )

    def logp_and_grad(dim, x_ptr, grad_ptr, logp_ptr, data_ptr):  # pragma: no cover - numba
        if dim != n_dim:
            return -1
        x = numba.carray(x_ptr, (n_dim,))
        grad_out = numba.carray(grad_ptr, (n_dim,))
        logp_out = numba.carray(logp_ptr, (1,))
        logp, grad = call(x, data_ptr)
        logp_out[0] = logp
        finite = True
        for i in range(n_dim):
            g = grad[i]
            grad_out[i] = g
            finite = finite and np.isfinite(g)
        if not finite:
            return 3
        if not np.isfinite(logp):
            return 4
        return 0

    return logp_and_grad, signature


def _expand_callback(
    n_dim: int,
    n_expanded: int,
    expand_fn: Any,
    user_data: np.ndarray,
    shared_var_keys: Any,
    shared_data: Any,
) -> tuple[Callable[..., int], Any]:
    """``int64 (dim, n_expanded, x*, out*, user_data*)``: every traced variable of a draw."""
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    call = make_extraction_fn(expand_fn, shared_data, shared_var_keys, user_data.dtype)
    double_p = numba.types.CPointer(numba.types.double)
    signature = numba.types.int64(
        numba.types.uint64, numba.types.uint64, double_p, double_p, numba.types.voidptr
    )

    def expand(dim, expanded, x_ptr, out_ptr, data_ptr):  # pragma: no cover - numba
        if dim != n_dim or expanded != n_expanded:
            return -1
        x = numba.carray(x_ptr, (n_dim,))
        out = numba.carray(out_ptr, (n_expanded,))
        (values,) = call(x, data_ptr)
        for i in range(n_expanded):
            out[i] = values[i]
        return 0

    return expand, signature


_REPLACEMENTS = {"_make_c_logp_func": _logp_callback, "_make_c_expand_func": _expand_callback}


def compatible() -> bool:
    """Whether nutpie's private callback builders have the signatures replaced here."""
    try:
        import nutpie.compile_pymc as cp
    except ImportError:
        return False
    if not hasattr(cp, "make_extraction_fn"):
        return False
    for name, params in _BUILDERS.items():
        builder = getattr(cp, name, None)
        if builder is None or tuple(inspect.signature(builder).parameters) != params:
            return False
    return True


@contextlib.contextmanager
def light_callbacks(enabled: bool = True) -> Iterator[bool]:
    """Compile nutpie models with the callbacks of this module inside the ``with`` block.

    Yields whether they are in use (``False`` when disabled or nutpie is incompatible).
    """
    if not (enabled and compatible()):
        yield False
        return
    import nutpie.compile_pymc as cp

    saved = {name: getattr(cp, name) for name in _REPLACEMENTS}
    try:
        for name, builder in _REPLACEMENTS.items():
            setattr(cp, name, builder)
        yield True
    finally:
        for name, builder in saved.items():
            setattr(cp, name, builder)
