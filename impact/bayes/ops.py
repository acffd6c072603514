"""A fused PyTensor Op for the binomial log-likelihood on the logit scale.

``binomial_logit_logp(eta, k, n)`` returns the elementwise ``k * eta - n * log(1 + exp(eta))``
(the binomial log-likelihood without the constant ``log C(n, k)``) and its derivative
``k - n * expit(eta)`` together, sharing one ``exp`` per cell.

Why: the binomial model's gradient is dominated by transcendental functions. Written with
``pm.Binomial(logit_p=...)`` the compiled logp and gradient evaluate several ``exp`` / ``log1p``
per cell plus bound checks; measured at report scale (6,000 department-years, numba backend,
with the dense layout of :func:`impact.bayes.model.dense_layout`) that is ~360 microseconds
per gradient evaluation against ~35 for the whole normal model. With this Op (derivative as a
second output that the gradient reuses, polynomial ``exp`` / ``log`` that vectorise) the
binomial gradient takes ~60 microseconds, and the report-scale binomial fit with nutpie went
from 107-178 s to ~25 s (``benchmarks/bench_bayes.py``).

Backends: ``perform`` (NumPy; used by PyTensor's C and Python linkers) and a numba
implementation (the numba linker, used by nutpie and by PyMC's default mode). There is no JAX
implementation: :func:`impact.bayes.model.build_model` uses ``pm.Binomial`` for the JAX-based
samplers.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = ["BinomialLogitLogp", "binomial_logit_logp"]


def _kernel_numpy(eta: np.ndarray, k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.exp(-np.abs(eta))  # in (0, 1]: no overflow
    softplus = np.maximum(eta, 0.0) + np.log1p(e)
    expit = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return k * eta - n * softplus, k - n * expit


class BinomialLogitLogp(Op):
    """``(eta, k, n) -> (k * eta - n * softplus(eta), k - n * expit(eta))``, elementwise.

    ``k`` and ``n`` are data (no gradient). The gradient with respect to ``eta`` is
    ``output_grad * dlogp``, the second output of the same node (computed in the same pass).
    """

    __props__ = ()

    def make_node(self, eta: Any, k: Any, n: Any) -> Apply:
        """Vectors of equal length (float64)."""
        eta = pt.as_tensor_variable(eta).astype("float64")
        k = pt.as_tensor_variable(k).astype("float64")
        n = pt.as_tensor_variable(n).astype("float64")
        if not eta.ndim == k.ndim == n.ndim == 1:
            raise TypeError("BinomialLogitLogp: eta, k and n must be vectors")
        return Apply(self, [eta, k, n], [eta.type(), eta.type()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage: list[list]) -> None:
        """NumPy implementation (C and Python linkers)."""
        logp, dlogp = _kernel_numpy(*inputs)
        output_storage[0][0] = logp
        output_storage[1][0] = dlogp

    def pullback(self, inputs: list, outputs: list, cotangents: list) -> list:
        """d logp / d eta is the second output; ``k`` and ``n`` are disconnected."""
        g_logp, g_dlogp = cotangents
        if not isinstance(g_dlogp.type, DisconnectedType):
            raise NotImplementedError("BinomialLogitLogp: no second derivatives")
        return [g_logp * outputs[1], disconnected_type(), disconnected_type()]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """The same as :meth:`pullback` (the name PyTensor < 3 calls)."""
        return self.pullback(inputs, outputs, output_grads)

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Only ``eta`` is connected to the outputs (for the gradient)."""
        return [[True, True], [False, False], [False, False]]


binomial_logit_logp = BinomialLogitLogp()


#: Constants of the vectorisable ``exp`` (Cody-Waite reduction, degree-13 Taylor polynomial on
#: ``|r| <= ln(2) / 2``, relative error < 1e-16) and ``log`` on ``(1, 2]`` (``2 atanh(s)`` series
#: after halving ``y > sqrt(2)``, ``|s| <= 0.172``).
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_ROUND = 6755399441055744.0  # 1.5 * 2**52: m + _ROUND holds the integer m in its low bits
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND


def _make_numba_kernel() -> Any:
    """The numba kernel: branch-free polynomial ``exp`` and ``log`` that LLVM vectorises.

    numba calls the C library's scalar ``exp`` / ``log`` (no vector math library): measured,
    about 9 + 7 ns per cell, three times the rest of the report-scale gradient. The polynomial
    versions below vectorise (AVX2 / AVX-512) and agree with ``exp`` / ``log1p`` to ~1e-15
    relative; the kernel is about 10x faster. ``fastmath`` is limited to ``contract`` (fused
    multiply-add): reassociation would break the two-constant range reduction.
    """
    import numba

    @numba.njit(fastmath={"contract"}, boundscheck=False, error_model="numpy", cache=False)
    def kernel(eta, k, n):  # pragma: no cover - compiled by numba
        size = eta.shape[0]
        logp = np.empty(size)
        dlogp = np.empty(size)
        poly = np.empty(size)
        shift = np.empty(size)
        # exp(-|x|) = p(r) * 2**m with m = round(-|x| / ln 2), r = -|x| - m ln 2
        for i in range(size):
            x = -abs(eta[i])
            x = x if x > -700.0 else -700.0  # exp(-700) ~ 1e-304: negligible next to 1
            m = np.floor(x * _LOG2E + 0.5)
            r = (x - m * _LN2_HI) - m * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            poly[i] = p * r + 1.0
            shift[i] = m + _ROUND
        bits = shift.view(np.int64)
        for i in range(size):  # 2**m: exponent bits
            bits[i] = (bits[i] - _ROUND_BITS + 1023) << 52
        scale = bits.view(np.float64)
        for i in range(size):
            x = eta[i]
            ex = poly[i] * scale[i]  # exp(-|x|) in (0, 1]
            y = 1.0 + ex
            big = y > _SQRT2
            yy = y * (0.5 if big else 1.0)
            s = (yy - 1.0) / (yy + 1.0)
            s2 = s * s
            q = 1.0 / 23.0
            q = q * s2 + 1.0 / 21.0
            q = q * s2 + 1.0 / 19.0
            q = q * s2 + 1.0 / 17.0
            q = q * s2 + 1.0 / 15.0
            q = q * s2 + 1.0 / 13.0
            q = q * s2 + 1.0 / 11.0
            q = q * s2 + 1.0 / 9.0
            q = q * s2 + 1.0 / 7.0
            q = q * s2 + 1.0 / 5.0
            q = q * s2 + 1.0 / 3.0
            q = q * s2 + 1.0
            log_y = 2.0 * s * q + (_LN2 if big else 0.0)  # log(1 + exp(-|x|))
            softplus = (x if x > 0.0 else 0.0) + log_y
            inv = 1.0 / y
            expit = inv * (1.0 if x >= 0.0 else ex)
            logp[i] = k[i] * x - n[i] * softplus
            dlogp[i] = k[i] - n[i] * expit
        return logp, dlogp

    return kernel


def _register_numba() -> None:
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
    except ImportError:  # pragma: no cover - PyTensor without numba
        return

    register = getattr(numba_basic, "register_funcify_default_op_cache_key", None)
    if register is not None:  # PyTensor >= 3: cacheable, keyed on the kernel's source
        version = int(
            hashlib.sha256(inspect.getsource(_make_numba_kernel).encode()).hexdigest()[:12], 16
        )

        @register(BinomialLogitLogp)
        def _funcify_cached(op: BinomialLogitLogp, **kwargs: Any) -> Any:
            return _make_numba_kernel(), version

    else:  # pragma: no cover - older PyTensor

        @numba_basic.numba_funcify.register(BinomialLogitLogp)
        def _funcify(op: BinomialLogitLogp, node: Apply | None = None, **kwargs: Any) -> Any:
            return _make_numba_kernel()


_register_numba()
