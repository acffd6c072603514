"""Fused PyTensor Ops for the log-likelihood of the hierarchical model.

- :class:`BinomialLogitLogp`, ``binomial_logit_logp(eta, k, n)``: the elementwise
  ``k * eta - n * log(1 + exp(eta))`` (the binomial log-likelihood without the constant
  ``log C(n, k)``) and its derivative ``k - n * expit(eta)``, sharing one ``exp`` per cell.
- :class:`PanelLogp`, built by :func:`panel_logp`: the whole observation model of a panel,
  ``eta[o] = a_unit[u[o]] + time_effect[t[o]] + tau[u[o]] * d[o] (+ extra[o]) (+ offset)`` and
  the normal or binomial log-likelihood of ``y[o]`` given ``eta[o]``, with ``d logp / d eta``
  as a second output, in one pass; its pullback (:class:`PanelLogpGrad`) is one more pass.

Why: written with PyTensor operations, the linear predictor and its gradient are five or six
passes over the observations (broadcast sums, gather, and in the gradient row and column sums
and products), the likelihood one or two more, and the binomial's transcendental functions
(several scalar ``exp`` / ``log1p`` per cell in ``pm.Binomial``) dominate its gradient. Measured
numbers are in :func:`impact.bayes.model.build_model`.

How :class:`PanelLogp` is fast:

- it works on the department x year grid in *time-major* order (cell ``t * n_unit + u``): the
  inner loops run over all units with contiguous loads (``a_unit``, ``tau``, the data), which
  vectorise, and the backward pass's per-unit sums are vector additions; cells without an
  observation (unbalanced panels) have zero weight. ``dlogp`` (the second output, only read by
  the pullback) stays in grid order; the elementwise ``logp`` is in observation order;
- when the elementwise ``logp`` is only summed (the model's total log-density: the case of every
  gradient evaluation), a graph rewrite (:func:`_local_reduce_panel_logp`, specialisation stage
  of PyTensor's ``fast_run`` rewrites) swaps in the ``reduce=True`` variant, which returns the
  sum and never writes the elementwise vector;
- the cotangent of a sum is one number broadcast to all observations: the pullback then passes
  that number (``scalar_cotangent=True``) instead of a vector of copies;
- the binomial uses branch-free polynomial ``exp`` / ``log`` that vectorise, with one division
  per cell.

Backends: ``perform`` (NumPy; used by PyTensor's C and Python linkers) and numba (the numba
linker, used by nutpie and by PyMC's default mode), registered with a cache key derived from
this module's source, so that compiled graphs containing these Ops stay in PyTensor's numba disk
cache. There is no JAX implementation: :func:`impact.bayes.model.build_model` uses
``pm.Binomial`` / ``pm.Normal`` for the JAX-based samplers.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op

__all__ = [
    "LIKELIHOODS",
    "BinomialLogitLogp",
    "PanelLogp",
    "PanelLogpGrad",
    "binomial_logit_logp",
    "panel_logp",
]

#: Likelihoods of :class:`PanelLogp`.
LIKELIHOODS = ("normal", "binomial")

_HALF_LOG_2PI = 0.9189385332046727  # 0.5 * log(2 pi)


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


# ----------------------------------------------------------------------------- panel Ops


def _check_likelihood(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def _as_float(x: Any, ndim: int, what: str) -> pt.TensorVariable:
    x = pt.as_tensor_variable(x)
    if x.ndim != ndim:
        raise TypeError(f"{what} must have {ndim} dimension(s), got {x.ndim}")
    return x.astype("float64")


def _as_index(x: Any, what: str) -> pt.TensorVariable:
    x = pt.as_tensor_variable(x)
    if x.ndim != 1 or not x.dtype.startswith(("int", "uint")):
        raise TypeError(f"{what} must be an integer vector")
    return x.astype("int64")


def _n_params(likelihood: str) -> int:
    """``a_unit, time_effect, tau, extra`` (and the normal's ``sigma``)."""
    return 5 if likelihood == "normal" else 4


def _grid_eta_numpy(
    a: np.ndarray,
    te: np.ndarray,
    tau: np.ndarray,
    extra: np.ndarray,
    cell_obs: np.ndarray,
    d_grid: np.ndarray,
    offset: float,
) -> np.ndarray:
    """``eta`` on the time-major grid (NumPy)."""
    eta = (a[None, :] + te[:, None] + tau[None, :] * d_grid.reshape(te.size, a.size)).ravel()
    eta = eta + offset
    return eta + extra[cell_obs] if extra.size else eta


class PanelLogp(Op):
    """Linear predictor and log-likelihood of a panel in one pass.

    For observation ``o`` of unit ``u`` and time ``t``, at grid cell ``j = t * n_unit + u``
    (``obs_cell[o] = j``)::

        eta[o] = a_unit[u] + time_effect[t] + tau[u] * d[o]  (+ extra[o])  (+ offset)

    Normal (``y`` standardised; ``sigma`` a scalar parameter)::

        logp[o] = -0.5 * ((y[o] - eta[o]) / sigma) ** 2 - log(sigma) - 0.5 * log(2 pi)

    Binomial on the logit scale (``k`` successes of ``n`` trials, ``log_choose`` the constant
    ``log C(n, k)``)::

        logp[o] = k[o] * eta[o] - n[o] * log(1 + exp(eta[o])) + log_choose[o]

    Inputs, in order: the parameters ``a_unit``, ``time_effect``, ``tau``, ``extra`` (a vector
    of length ``n_obs``, or of length 0 without ``has_extra``) and, normal only, ``sigma``; then
    the data ``obs_cell`` (grid cell of each observation), ``cell_obs`` (observation of each
    cell, 0 for empty cells), ``grid`` (a ``(3, n_cell)`` matrix in grid order: ``d``, ``y``
    and the 0/1 mask of observed cells for the normal; ``d``, ``k``, ``n`` for the binomial, with
    ``k = n = 0`` in empty cells) and, binomial only, ``log_choose`` (observation order) and the
    scalar ``offset``. Build nodes with :func:`panel_logp`, which checks the data (the kernels
    do not check indices).

    Outputs: ``logp`` (length ``n_obs``; with ``reduce``, its sum) and ``dlogp = d logp / d eta``
    in grid order (length ``n_cell``, 0 in empty cells; read by :class:`PanelLogpGrad`).

    Parameters
    ----------
    likelihood
        ``"normal"`` or ``"binomial"``.
    has_extra
        Whether ``extra`` is added to ``eta`` (otherwise it is an empty vector).
    reduce
        Return the summed log-likelihood (a scalar) instead of the elementwise one.
    """

    __props__ = ("likelihood", "has_extra", "reduce")

    def __init__(self, likelihood: str, has_extra: bool, reduce: bool = False) -> None:
        _check_likelihood(likelihood)
        self.likelihood = likelihood
        self.has_extra = bool(has_extra)
        self.reduce = bool(reduce)

    def make_node(self, *inputs: Any) -> Apply:
        """Parameters then data, as in the class docstring."""
        normal = self.likelihood == "normal"
        expected = 8 if normal else 9
        if len(inputs) != expected:
            raise TypeError(f"PanelLogp: expected {expected} inputs, got {len(inputs)}")
        params = [_as_float(x, 1, "PanelLogp: a_unit, time_effect, tau") for x in inputs[:3]]
        params.append(_as_float(inputs[3], 1, "PanelLogp: extra"))
        if normal:
            params.append(_as_float(inputs[4], 0, "PanelLogp: sigma"))
        n_par = _n_params(self.likelihood)
        obs_cell = _as_index(inputs[n_par], "PanelLogp: obs_cell")
        cell_obs = _as_index(inputs[n_par + 1], "PanelLogp: cell_obs")
        grid = _as_float(inputs[n_par + 2], 2, "PanelLogp: grid")
        data = [obs_cell, cell_obs, grid]
        if not normal:
            data.append(_as_float(inputs[n_par + 3], 1, "PanelLogp: log_choose"))
            data.append(_as_float(inputs[n_par + 4], 0, "PanelLogp: offset"))
        logp = pt.dscalar() if self.reduce else pt.dvector()
        return Apply(self, [*params, *data], [logp, pt.dvector()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage: list[list]) -> None:
        """NumPy implementation (C and Python linkers)."""
        a, te, tau, extra = inputs[:4]
        n_par = _n_params(self.likelihood)
        obs_cell, cell_obs, grid, *rest = inputs[n_par:]
        offset = float(rest[1]) if rest else 0.0
        eta = _grid_eta_numpy(a, te, tau, extra, cell_obs, grid[0], offset)
        if self.likelihood == "normal":
            sigma = float(inputs[4])
            if sigma > 0:
                r = (grid[1] - eta) / sigma * grid[2]
                logp = (-0.5 * r * r - np.log(sigma) - _HALF_LOG_2PI)[obs_cell]
                dlogp = r / sigma
            else:
                logp, dlogp = np.full(obs_cell.shape, -np.inf), np.zeros(eta.shape)
        else:
            lp, dlogp = _kernel_numpy(eta, grid[1], grid[2])
            logp = lp[obs_cell] + rest[0]
        output_storage[0][0] = np.asarray(logp.sum()) if self.reduce else logp
        output_storage[1][0] = dlogp

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        """``(n_obs,)`` (or ``()``) and ``(n_cell,)``."""
        n_par = _n_params(self.likelihood)
        n_obs = input_shapes[n_par]
        n_cell = input_shapes[n_par + 1]
        return [() if self.reduce else n_obs, n_cell]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Parameters (``extra`` only with ``has_extra``) are connected, data are not."""
        n_par = _n_params(self.likelihood)
        connected = [i < n_par and (i != 3 or self.has_extra) for i in range(len(node.inputs))]
        return [[c, c] for c in connected]

    def pullback(self, inputs: list, outputs: list, cotangents: list) -> list:
        """Through ``dlogp`` (the second output) and :class:`PanelLogpGrad`; first order only."""
        g_logp, g_dlogp = cotangents
        if not isinstance(g_dlogp.type, DisconnectedType):
            raise NotImplementedError("PanelLogp: no second derivatives")
        n_par = _n_params(self.likelihood)
        normal = self.likelihood == "normal"
        data = [disconnected_type() for _ in inputs[n_par:]]
        if isinstance(g_logp.type, DisconnectedType):
            return [disconnected_type() for _ in inputs[:n_par]] + data
        scalar = g_logp if self.reduce else _broadcast_scalar(g_logp)
        c = g_logp if scalar is None else scalar
        obs_cell, cell_obs, grid = inputs[n_par : n_par + 3]
        grad_op = PanelLogpGrad(self.likelihood, self.has_extra, scalar is not None)
        sigma = [inputs[4]] if normal else []
        grads = grad_op(c, outputs[1], inputs[1], inputs[3], *sigma, obs_cell, cell_obs, grid)
        g_a, g_t, g_tau, g_extra, *g_sigma = grads
        g_extra = g_extra if self.has_extra else disconnected_type()
        return [g_a, g_t, g_tau, g_extra, *g_sigma, *data]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """The same as :meth:`pullback` (the name PyTensor < 3 calls)."""
        return self.pullback(inputs, outputs, output_grads)


def _broadcast_scalar(c: Variable) -> Variable | None:
    """The scalar ``s`` if ``c`` is ``s`` broadcast to a vector (the cotangent of a sum)."""
    from pytensor.scalar.basic import Second
    from pytensor.tensor.basic import Alloc
    from pytensor.tensor.elemwise import Elemwise

    owner = c.owner
    if owner is None:
        return None
    value = None
    if isinstance(owner.op, Elemwise) and isinstance(owner.op.scalar_op, Second):
        value = owner.inputs[1]  # fill(x, value): value broadcast to the shape of x
    elif isinstance(owner.op, Alloc):
        value = owner.inputs[0]
    if value is None or not all(value.type.broadcastable):
        return None
    return value.dimshuffle([]).astype("float64") if value.ndim else value.astype("float64")


class PanelLogpGrad(Op):
    """The pullback of :class:`PanelLogp` in one pass.

    Inputs: the cotangent ``c`` of ``logp`` (a vector in observation order, or one number
    with ``scalar_cotangent``), ``dlogp`` (grid order, the forward node's second output),
    ``time_effect`` (for its length), ``extra`` (for its length), the normal's ``sigma``, and
    the data ``obs_cell``, ``cell_obs``, ``grid`` of the forward node. With
    ``w = c * dlogp`` the outputs are ``d / d a_unit = bincount(u, w)``,
    ``d / d time_effect = bincount(t, w)``, ``d / d tau = bincount(u, w * d)``,
    ``d / d extra = w`` in observation order (empty without ``has_extra``) and, normal only,
    ``d / d sigma = sigma * sum(w * dlogp) - sum(c) / sigma`` (from
    ``d logp[o] / d sigma = (r[o] ** 2 - 1) / sigma`` and ``dlogp[o] = r[o] / sigma``).

    Parameters
    ----------
    likelihood
        ``"normal"`` or ``"binomial"``.
    has_extra
        Whether ``d / d extra`` is computed.
    scalar_cotangent
        Whether ``c`` is one number (the cotangent of a sum).
    """

    __props__ = ("likelihood", "has_extra", "scalar_cotangent")

    def __init__(self, likelihood: str, has_extra: bool, scalar_cotangent: bool) -> None:
        _check_likelihood(likelihood)
        self.likelihood = likelihood
        self.has_extra = bool(has_extra)
        self.scalar_cotangent = bool(scalar_cotangent)

    def make_node(self, *inputs: Any) -> Apply:
        """``c, dlogp, time_effect, extra, [sigma], obs_cell, cell_obs, grid``."""
        normal = self.likelihood == "normal"
        if len(inputs) != 7 + normal:
            raise TypeError(f"PanelLogpGrad: expected {7 + normal} inputs, got {len(inputs)}")
        c = _as_float(inputs[0], 0 if self.scalar_cotangent else 1, "PanelLogpGrad: c")
        vectors = [_as_float(x, 1, "PanelLogpGrad: dlogp, time_effect, extra") for x in inputs[1:4]]
        sigma = [_as_float(inputs[4], 0, "PanelLogpGrad: sigma")] if normal else []
        obs_cell = _as_index(inputs[4 + normal], "PanelLogpGrad: obs_cell")
        cell_obs = _as_index(inputs[5 + normal], "PanelLogpGrad: cell_obs")
        grid = _as_float(inputs[6 + normal], 2, "PanelLogpGrad: grid")
        outputs = [pt.dvector() for _ in range(4)] + ([pt.dscalar()] if normal else [])
        return Apply(self, [c, *vectors, *sigma, obs_cell, cell_obs, grid], outputs)

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage: list[list]) -> None:
        """NumPy implementation (C and Python linkers)."""
        normal = self.likelihood == "normal"
        c, dlogp, te, _ = inputs[:4]
        obs_cell, cell_obs, grid = inputs[4 + normal :]
        n_time = te.shape[0]
        n_unit = dlogp.shape[0] // n_time
        c_grid = c if self.scalar_cotangent else c[cell_obs]
        w = (c_grid * dlogp).reshape(n_time, n_unit)
        out = [
            w.sum(axis=0),
            w.sum(axis=1),
            (w * grid[0].reshape(n_time, n_unit)).sum(axis=0),
            (c * dlogp[obs_cell]) if self.has_extra else np.zeros(0),
        ]
        if normal:
            sigma = float(inputs[4])
            sum_c = c * obs_cell.shape[0] if self.scalar_cotangent else np.sum(c)
            out.append(np.asarray(sigma * np.sum(w.ravel() * dlogp) - sum_c / sigma))
        for storage, value in zip(output_storage, out, strict=True):
            storage[0] = value

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        """``(n_unit,), (n_time,), (n_unit,)``, ``(n_obs,)`` or ``(0,)``, and ``()``."""
        normal = self.likelihood == "normal"
        n_time = input_shapes[2][0]
        n_unit = (input_shapes[1][0] // n_time,)
        n_extra = input_shapes[4 + normal] if self.has_extra else (0,)
        return [n_unit, input_shapes[2], n_unit, n_extra] + ([()] if normal else [])


def _local_reduce_panel_logp(fgraph: Any, node: Apply) -> dict | bool:
    """``sum(PanelLogp(...)[0])`` -> ``PanelLogp(..., reduce=True)[0]`` (and the same ``dlogp``).

    Applies when every client of the elementwise ``logp`` is a full ``Sum``: the reduced
    kernel sums without writing the elementwise vector.
    """
    from pytensor.tensor.math import Sum

    op = node.op
    if not isinstance(op, PanelLogp) or op.reduce:
        return False
    clients = fgraph.clients[node.outputs[0]]
    for client, _ in clients:
        if not isinstance(client.op, Sum) or client.outputs[0].dtype != "float64":
            return False
        if client.op.axis is not None and tuple(client.op.axis) != (0,):
            return False
    new = PanelLogp(op.likelihood, op.has_extra, reduce=True).make_node(*node.inputs)
    replacements = {client.outputs[0]: new.outputs[0] for client, _ in clients}
    replacements[node.outputs[1]] = new.outputs[1]
    return replacements


def _register_rewrite() -> None:
    from pytensor.graph.rewriting.basic import node_rewriter
    from pytensor.tensor.rewriting.basic import register_specialize

    rewriter = node_rewriter([PanelLogp])(_local_reduce_panel_logp)
    register_specialize(rewriter, name="impact_reduce_panel_logp")


_register_rewrite()


def _stack_grid(first: np.ndarray, second: Any, third: np.ndarray) -> Any:
    """The ``(3, n_cell)`` data matrix (symbolic if ``second`` is)."""
    if isinstance(second, Variable):
        return pt.stack([pt.as_tensor(first), second, pt.as_tensor(third)])
    return np.stack([first, second, third])


def panel_logp(
    likelihood: str,
    a_unit: Any,
    time_effect: Any,
    tau: Any,
    *,
    unit_idx: np.ndarray,
    time_idx: np.ndarray,
    d: np.ndarray,
    y: Any,
    n_unit: int,
    n_time: int,
    extra: Any = None,
    sigma: Any = None,
    n: np.ndarray | None = None,
    log_choose: np.ndarray | None = None,
    offset: float = 0.0,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Build a :class:`PanelLogp` node from observation-order data (checked here).

    Parameters
    ----------
    likelihood
        ``"normal"`` or ``"binomial"``.
    a_unit, time_effect, tau
        Parameter vectors (lengths ``n_unit``, ``n_time``, ``n_unit``).
    unit_idx, time_idx
        Unit and time index of each observation (any order; each (unit, time) pair at most
        once).
    d
        Treatment of each observation.
    y
        Outcome of each observation (standardised for the normal, successes for the binomial);
        may be symbolic (the value variable of an observed random variable: a constant is placed
        on the grid here; any other variable is placed by the graph at each evaluation).
    n_unit, n_time
        Lengths of ``a_unit`` and ``time_effect``.
    extra
        Optional observation-length term added to ``eta`` (a parameter).
    sigma
        The normal's scale (a scalar parameter); normal only.
    n, log_choose
        Trials and ``log C(n, y)`` (binomial only; ``log_choose`` defaults to zeros).
    offset
        Constant added to ``eta`` (binomial only; the normal's outcome is centred instead).

    Returns
    -------
    tuple of pytensor.tensor.TensorVariable
        ``logp`` (observation order) and ``dlogp / deta`` (grid order, see :class:`PanelLogp`).
    """
    _check_likelihood(likelihood)
    unit_idx = np.asarray(unit_idx, dtype=np.int64)
    time_idx = np.asarray(time_idx, dtype=np.int64)
    d = np.asarray(d, dtype=np.float64)
    n_obs = d.shape[0]
    if d.ndim != 1 or unit_idx.shape != d.shape or time_idx.shape != d.shape:
        raise ValueError("unit_idx, time_idx and d must be vectors of the same length")
    if n_obs and (unit_idx.min() < 0 or unit_idx.max() >= n_unit):
        raise ValueError(f"unit_idx must be in [0, {n_unit})")
    if n_obs and (time_idx.min() < 0 or time_idx.max() >= n_time):
        raise ValueError(f"time_idx must be in [0, {n_time})")
    n_cell = n_unit * n_time
    obs_cell = time_idx * n_unit + unit_idx
    if np.unique(obs_cell).size != n_obs:
        raise ValueError("each (unit, time) pair may be observed only once")
    cell_obs = np.zeros(n_cell, dtype=np.int64)
    cell_obs[obs_cell] = np.arange(n_obs)
    observed = np.zeros(n_cell)
    observed[obs_cell] = 1.0
    d_grid = np.zeros(n_cell)
    d_grid[obs_cell] = d

    if isinstance(y, pt.TensorConstant):  # PyMC's observed data: fold into the grid here
        y = y.data
    if isinstance(y, Variable):
        y = y.astype("float64")
        y_grid = pt.set_subtensor(pt.zeros(n_cell)[obs_cell], y)
    else:
        y = np.asarray(y, dtype=np.float64)
        if y.shape != d.shape:
            raise ValueError("y must have the length of d")
        y_grid = np.zeros(n_cell)
        y_grid[obs_cell] = y

    has_extra = extra is not None
    extra = extra if has_extra else np.zeros(0)
    params = [a_unit, time_effect, tau, extra]
    if likelihood == "normal":
        if sigma is None or n is not None:
            raise ValueError("panel_logp: the normal likelihood needs sigma (and no n)")
        if offset != 0.0:
            raise ValueError("panel_logp: centre y instead of an offset for the normal")
        data = [obs_cell, cell_obs, _stack_grid(d_grid, y_grid, observed)]
        params.append(sigma)
    else:
        if n is None or sigma is not None:
            raise ValueError("panel_logp: the binomial likelihood needs n (and no sigma)")
        n = np.asarray(n, dtype=np.float64)
        log_choose = np.zeros(n_obs) if log_choose is None else np.asarray(log_choose, float)
        if n.shape != d.shape or log_choose.shape != d.shape:
            raise ValueError("n and log_choose must have the length of d")
        n_grid = np.zeros(n_cell)
        n_grid[obs_cell] = n
        grid = _stack_grid(d_grid, y_grid, n_grid)
        data = [obs_cell, cell_obs, grid, log_choose, np.float64(offset)]
    return PanelLogp(likelihood, has_extra)(*params, *data)


# ------------------------------------------------------------------------- numba kernels

#: Constants of the vectorisable ``exp`` and ``log``. ``exp(r) = 1 + r + r**2 P(r)`` on
#: ``|r| <= ln(2) / 2`` (after the Cody-Waite reduction ``x = m ln 2 + r``) and
#: ``atanh(s) / s = 1 + z Q(z)``, ``z = s**2 <= ((sqrt(2) - 1) / (sqrt(2) + 1))**2``: ``P``
#: (degree 9) and ``Q`` (degree 6) interpolate these functions at Chebyshev nodes, computed in
#: extended precision (``numpy.longdouble``, Gaussian elimination on the Vandermonde system)
#: and rounded to float64. Their error contributes < 2e-17 relative to ``exp`` and < 5e-18 to
#: ``atanh(s) / s`` (the Taylor polynomials of the same accuracy have degrees 13 and 10).
_EXP_P = (
    0.5000000000000001,
    0.16666666666666669,
    0.04166666666662416,
    0.008333333333330103,
    0.0013888888917199815,
    0.00019841269862942352,
    2.4801521318014644e-05,
    2.755726857568343e-06,
    2.762007773431598e-07,
    2.5100343663768052e-08,
)
_ATANH_Q = (
    0.3333333333333335,
    0.19999999999949758,
    0.14285714312985814,
    0.11111105567654131,
    0.0909144454632212,
    0.07665861291256852,
    0.07308219220823006,
)
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9 = _EXP_P
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6 = _ATANH_Q
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_LN2 = 0.6931471805599453
_SQRT2_M1 = 0.41421356237309515  # sqrt(2) - 1
_ROUND = 6755399441055744.0  # 1.5 * 2**52: m + _ROUND holds the integer m in its low bits
_EXP_BITS = 0x4338000000000000 - 1023  # bits of _ROUND minus the exponent bias


@functools.cache
def _numba_kernels() -> SimpleNamespace:
    """The numba kernels (compiled on first call, once per process).

    numba calls the C library's scalar ``exp`` / ``log`` (no vector math library): measured,
    about 9 + 7 ns per cell. The polynomial versions below vectorise (AVX2 / AVX-512) and agree
    with ``exp`` / ``log1p`` to ~2e-16 relative. ``fastmath`` is ``contract`` (fused
    multiply-add) in the ``exp`` range reduction, which reassociation would break.

    Sums are deterministic: no loop reassociates (``fastmath`` ``reassoc`` let LLVM vectorise
    the sums, but their rounding then depended on the arrays' alignment, so two threads, e.g.
    nutpie's chains, got different log densities at the same point). The summands are written
    to a buffer and added by :func:`lane_sum` in a fixed order over eight lanes, which vectorises
    without reassociation.

    LLVM vectorises a loop only if it can check cheaply that the arrays it writes do not overlap
    those it reads (at most ~8 pairs of arrays): the loops below read few arrays (the data are
    rows of one matrix) and write one or two, never reading and writing the same array through
    two names (which the check would find overlapping, falling back to scalar code).
    """
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    opts = {"boundscheck": False, "error_model": "numpy", "cache": False}
    jit = numba.njit(fastmath={"contract"}, **opts)

    @jit
    def lane_sum(x):  # pragma: no cover - compiled by numba
        """Sum of ``x`` in a fixed order: eight lanes ``i % 8``, then the tail."""
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        m = x.shape[0] - x.shape[0] % 8
        for i in range(0, m, 8):
            s0 += x[i]
            s1 += x[i + 1]
            s2 += x[i + 2]
            s3 += x[i + 3]
            s4 += x[i + 4]
            s5 += x[i + 5]
            s6 += x[i + 6]
            s7 += x[i + 7]
        tail = 0.0
        for i in range(m, x.shape[0]):
            tail += x[i]
        return (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + tail

    @intrinsic
    def float_bits(typingctx, x):  # pragma: no cover - compiled by numba
        """The bits of a float64 as an int64 (a no-op ``bitcast``, vectorisable)."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(64))

        return types.int64(types.float64), codegen

    @intrinsic
    def bits_float(typingctx, x):  # pragma: no cover - compiled by numba
        """The float64 with the bits of an int64."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

    @jit
    def exp_neg_abs(eta, out):  # pragma: no cover - compiled by numba
        """``out = exp(-|eta|)``, in (0, 1]."""
        # exp(-|x|) = exp(r) * 2**m with m = round(-|x| / ln 2), r = -|x| - m ln 2
        for i in range(eta.shape[0]):
            x = -abs(eta[i])
            x = x if x > -700.0 else -700.0  # exp(-700) ~ 1e-304: negligible next to 1
            m = np.floor(x * _LOG2E + 0.5)
            r = (x - m * _LN2_HI) - m * _LN2_LO
            p = _P9
            p = p * r + _P8
            p = p * r + _P7
            p = p * r + _P6
            p = p * r + _P5
            p = p * r + _P4
            p = p * r + _P3
            p = p * r + _P2
            p = p * r + _P1
            p = p * r + _P0
            p = p * r + 1.0
            p = p * r + 1.0
            # 2**m: m + _ROUND holds m in its low bits; shifted into the exponent field
            out[i] = p * bits_float((float_bits(m + _ROUND) - _EXP_BITS) << 52)

    @jit
    def binomial_cells(eta, ee, k, n, lp, dlogp):  # pragma: no cover - compiled by numba
        """``lp = k * eta - n * softplus(eta)`` and ``dlogp = k - n * expit(eta)``.

        ``ee = exp(-|eta|)`` from :func:`exp_neg_abs`.
        """
        for i in range(eta.shape[0]):
            x = eta[i]
            e = ee[i]
            # log(1 + e) = b ln 2 + 2 atanh(s) with s = (e - b) / (e + 2 + b), b = [1 + e > sqrt 2]
            # (|s| <= 0.172); the numerator has no cancellation. One division gives s and
            # 1 / (1 + e): den = 1 / ((e + 2 + b) (1 + e)).
            b = 1.0 if e > _SQRT2_M1 else 0.0
            y = 1.0 + e
            den_s = e + (2.0 + b)
            den = 1.0 / (den_s * y)
            s = (e - b) * y * den
            inv = den_s * den  # 1 / (1 + e)
            z = s * s
            q = _Q6
            q = q * z + _Q5
            q = q * z + _Q4
            q = q * z + _Q3
            q = q * z + _Q2
            q = q * z + _Q1
            q = q * z + _Q0
            q = q * z + 1.0
            softplus = (x if x > 0.0 else 0.0) + (2.0 * s * q + b * _LN2)
            expit = inv * (1.0 if x >= 0.0 else e)
            lp[i] = k[i] * x - n[i] * softplus
            dlogp[i] = k[i] - n[i] * expit

    @jit
    def binomial(eta, k, n):  # pragma: no cover - compiled by numba
        """The kernel of :class:`BinomialLogitLogp`."""
        size = eta.shape[0]
        ee = np.empty(size)
        logp = np.empty(size)
        dlogp = np.empty(size)
        exp_neg_abs(eta, ee)
        binomial_cells(eta, ee, k, n, logp, dlogp)
        return logp, dlogp

    @jit
    def grid_eta(a, te, tau, extra, cell_obs, d, offset, eta):  # pragma: no cover
        """``eta[t * n_unit + u] = a[u] + te[t] + tau[u] * d (+ extra[obs]) + offset``."""
        n_unit = a.shape[0]
        use_extra = extra.shape[0] > 0
        for t in range(te.shape[0]):
            tt = te[t] + offset
            base = t * n_unit
            for u in range(n_unit):
                j = base + u
                v = a[u] + tt + tau[u] * d[j]
                eta[j] = v + extra[np.uint64(cell_obs[j])] if use_extra else v

    @jit
    def normal_cells(a, te, tau, extra, cell_obs, grid, inv, dlogp, sq):  # pragma: no cover
        """``sq = ((y - eta) / sigma) ** 2`` (0 in empty cells) and ``dlogp``."""
        n_unit = a.shape[0]
        use_extra = extra.shape[0] > 0
        d = grid[0]
        y = grid[1]
        mask = grid[2]
        for t in range(te.shape[0]):
            tt = te[t]
            base = t * n_unit
            for u in range(n_unit):
                j = base + u
                eta = a[u] + tt + tau[u] * d[j]
                if use_extra:
                    eta += extra[np.uint64(cell_obs[j])]
                r = (y[j] - eta) * (inv * mask[j])
                sq[j] = r * r
                dlogp[j] = r * inv

    @jit
    def normal_fwd(a, te, tau, extra, sigma, obs_cell, cell_obs, grid, reduce):  # pragma: no cover
        n_cell = grid.shape[1]
        n_obs = obs_cell.shape[0]
        dlogp = np.empty(n_cell)
        sq = np.empty(n_cell)
        sd = sigma[()]
        if not sd > 0.0:  # pm.Normal: -inf
            dlogp[:] = 0.0
            return np.full(n_obs if not reduce else 1, -np.inf), dlogp
        normal_cells(a, te, tau, extra, cell_obs, grid, 1.0 / sd, dlogp, sq)
        const = -np.log(sd) - _HALF_LOG_2PI
        if reduce:
            return np.full(1, n_obs * const - 0.5 * lane_sum(sq)), dlogp
        logp = np.empty(n_obs)
        for o in range(n_obs):
            logp[o] = -0.5 * sq[np.uint64(obs_cell[o])] + const
        return logp, dlogp

    @jit
    def add_gathered(lp, obs_cell, log_choose, out):  # pragma: no cover - compiled by numba
        """``out[o] = lp[obs_cell[o]] + log_choose[o]`` (grid to observation order)."""
        for o in range(obs_cell.shape[0]):
            out[o] = lp[np.uint64(obs_cell[o])] + log_choose[o]

    @jit
    def binomial_fwd(
        a, te, tau, extra, obs_cell, cell_obs, grid, lc, off, reduce
    ):  # pragma: no cover
        n_cell = grid.shape[1]
        eta = np.empty(n_cell)
        grid_eta(a, te, tau, extra, cell_obs, grid[0], off[()], eta)
        ee = np.empty(n_cell)
        exp_neg_abs(eta, ee)
        dlogp = np.empty(n_cell)
        lp = np.empty(n_cell)
        binomial_cells(eta, ee, grid[1], grid[2], lp, dlogp)
        if reduce:
            return np.full(1, lane_sum(lp) + lane_sum(lc)), dlogp
        logp = np.empty(obs_cell.shape[0])
        add_gathered(lp, obs_cell, lc, logp)
        return logp, dlogp

    @jit
    def grad_cells(c, scalar_c, dlogp, n_time, cell_obs, d, g_a, g_tau, g_t):  # pragma: no cover
        """Per-unit and per-time sums of ``w = c * dlogp``, per-unit of ``w * d``; ``sum(w * dlogp)``.

        With ``scalar_c`` the sums are of ``dlogp`` (the caller multiplies by ``c``).
        """
        n_unit = g_a.shape[0]
        row_w = np.empty(n_unit)
        row_wg = np.empty(n_unit)
        swg = 0.0
        for t in range(n_time):
            base = t * n_unit
            for u in range(n_unit):
                j = base + u
                w = dlogp[j] if scalar_c else c[np.uint64(cell_obs[j])] * dlogp[j]
                row_w[u] = w
                row_wg[u] = w * dlogp[j]
                g_a[u] += w
                g_tau[u] += w * d[j]
            g_t[t] = lane_sum(row_w)
            swg += lane_sum(row_wg)
        return swg

    @jit
    def grad(
        c, scalar_c, dlogp, te, extra, sd, use_sigma, obs_cell, cell_obs, grid
    ):  # pragma: no cover
        n_time = te.shape[0]
        n_unit = dlogp.shape[0] // n_time
        n_obs = obs_cell.shape[0]
        g_a = np.zeros(n_unit)
        g_tau = np.zeros(n_unit)
        g_t = np.empty(n_time)
        cc = c[0] if scalar_c else 1.0
        swg = grad_cells(c, scalar_c, dlogp, n_time, cell_obs, grid[0], g_a, g_tau, g_t)
        if scalar_c:
            for u in range(n_unit):
                g_a[u] *= cc
                g_tau[u] *= cc
            for t in range(n_time):
                g_t[t] *= cc
        g_extra = np.empty(n_obs if extra.shape[0] > 0 else 0)
        for o in range(g_extra.shape[0]):
            g_extra[o] = (cc if scalar_c else c[o]) * dlogp[np.uint64(obs_cell[o])]
        g_sigma = 0.0
        if use_sigma:
            sum_c = cc * n_obs if scalar_c else lane_sum(c)
            g_sigma = sd * swg * (cc if scalar_c else 1.0) - sum_c / sd
        return g_a, g_t, g_tau, g_extra, np.asarray(g_sigma)

    # entry points with the inputs and outputs of each Op variant

    @jit
    def normal_full(a, te, tau, extra, sigma, obs_cell, cell_obs, grid):  # pragma: no cover
        return normal_fwd(a, te, tau, extra, sigma, obs_cell, cell_obs, grid, False)

    @jit
    def normal_reduced(a, te, tau, extra, sigma, obs_cell, cell_obs, grid):  # pragma: no cover
        logp, dlogp = normal_fwd(a, te, tau, extra, sigma, obs_cell, cell_obs, grid, True)
        return np.asarray(logp[0]), dlogp

    @jit
    def binomial_full(a, te, tau, extra, obs_cell, cell_obs, grid, lc, off):  # pragma: no cover
        return binomial_fwd(a, te, tau, extra, obs_cell, cell_obs, grid, lc, off, False)

    @jit
    def binomial_reduced(a, te, tau, extra, obs_cell, cell_obs, grid, lc, off):  # pragma: no cover
        logp, dlogp = binomial_fwd(a, te, tau, extra, obs_cell, cell_obs, grid, lc, off, True)
        return np.asarray(logp[0]), dlogp

    @jit
    def normal_grad_vector(
        c, dlogp, te, extra, sigma, obs_cell, cell_obs, grid
    ):  # pragma: no cover
        return grad(c, False, dlogp, te, extra, sigma[()], True, obs_cell, cell_obs, grid)

    @jit
    def normal_grad_scalar(
        c, dlogp, te, extra, sigma, obs_cell, cell_obs, grid
    ):  # pragma: no cover
        cv = np.full(1, c[()])
        return grad(cv, True, dlogp, te, extra, sigma[()], True, obs_cell, cell_obs, grid)

    @jit
    def binomial_grad_vector(c, dlogp, te, extra, obs_cell, cell_obs, grid):  # pragma: no cover
        g_a, g_t, g_tau, g_x, _ = grad(
            c, False, dlogp, te, extra, 1.0, False, obs_cell, cell_obs, grid
        )
        return g_a, g_t, g_tau, g_x

    @jit
    def binomial_grad_scalar(c, dlogp, te, extra, obs_cell, cell_obs, grid):  # pragma: no cover
        cv = np.full(1, c[()])
        g_a, g_t, g_tau, g_x, _ = grad(
            cv, True, dlogp, te, extra, 1.0, False, obs_cell, cell_obs, grid
        )
        return g_a, g_t, g_tau, g_x

    return SimpleNamespace(
        binomial=binomial,
        forward={
            ("normal", False): normal_full,
            ("normal", True): normal_reduced,
            ("binomial", False): binomial_full,
            ("binomial", True): binomial_reduced,
        },
        backward={
            ("normal", False): normal_grad_vector,
            ("normal", True): normal_grad_scalar,
            ("binomial", False): binomial_grad_vector,
            ("binomial", True): binomial_grad_scalar,
        },
    )


def _make_numba_kernel() -> Any:
    """The numba kernel of :class:`BinomialLogitLogp` (``(eta, k, n) -> (logp, dlogp)``)."""
    return _numba_kernels().binomial


def _source_version() -> int:
    """An integer derived from this module's source: the numba cache key of the kernels."""
    try:
        source = inspect.getsource(sys.modules[__name__])
    except (OSError, TypeError):  # pragma: no cover - no source (frozen)
        return 0
    return int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)


def _register_numba() -> None:
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
    except ImportError:  # pragma: no cover - PyTensor without numba
        return

    register = getattr(numba_basic, "register_funcify_default_op_cache_key", None)
    if register is None:  # pragma: no cover - older PyTensor

        def register(op_type: type) -> Any:
            def decorator(func: Any) -> Any:
                numba_basic.numba_funcify.register(op_type)(lambda op, **kw: func(op, **kw)[0])
                return func

            return decorator

    # PyTensor >= 3: cacheable. The default key is the Op type and its props; the integer added
    # here changes with this module's source.
    version = _source_version()

    @register(BinomialLogitLogp)
    def _funcify_binomial(op: BinomialLogitLogp, **kwargs: Any) -> Any:
        return _numba_kernels().binomial, version

    @register(PanelLogp)
    def _funcify_panel(op: PanelLogp, **kwargs: Any) -> Any:
        return _numba_kernels().forward[op.likelihood, op.reduce], version

    @register(PanelLogpGrad)
    def _funcify_panel_grad(op: PanelLogpGrad, **kwargs: Any) -> Any:
        return _numba_kernels().backward[op.likelihood, op.scalar_cotangent], version


_register_numba()
