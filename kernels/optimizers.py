"""Optimizer updates: one fused, in-place pass over each parameter.

NumPy's way of writing these makes a temporary array per operator and walks
memory once per temporary; here every weight is read and written once per step.

The state arrays (velocity, moments) of weights whose gradient stays 0 (inputs
that are always 0, like MNIST's border pixels) decay geometrically into the
subnormal range, where x86 arithmetic takes a slow path. Values below the dtype's
smallest normal number (``tiny``) are flushed to 0: the change is below 1e-38
and keeps the step time flat over long runs.

Arrays are 1-D and contiguous (the backend passes flat views); scalars come in
the parameter's dtype so arithmetic stays in that precision, as in NumPy.

Every update takes Keras's gradient clipping and weight decay too, as its last four
scalars, so that they cost no pass of their own: each gradient entry is clipped to
``+-limit`` (``clipvalue``) and multiplied by ``scale`` (the factor ``clipnorm`` or
``global_clipnorm`` found from the norms), and each weight first loses ``weight *
weight_decay * rate`` (Keras's decoupled decay). Each is None when not wanted: Numba
compiles a version of the kernel for None in which that work is gone, and the plain
update runs as fast as it did before clipping existed (a clip and a multiply per entry
cost it 7%).
"""

from __future__ import annotations

import math

import numpy as np

from fastnn.kernels.jit import kernel, sum_kernel, unsigned


@kernel
def count_step(state: np.ndarray) -> None:
    """``state[0] += 1``: the optimizer's step count (uint64), counted by a kernel so that
    an update makes every change it makes in kernels (a replayed step launches them
    alone: ``fastnn/backends/replay.py``)."""
    state[0] = state[0] + unsigned(1)


@kernel
def _flush(value: float, tiny: float) -> float:
    # Written as a two-sided compare and a select of ``tiny - tiny`` (a zero of the right
    # type): the form LLVM turns into vector code; abs() or ``value * 0`` kept it scalar.
    return tiny - tiny if -tiny < value < tiny else value


@kernel
def _gradient(g: float, scale: float | None, limit: float | None) -> float:
    """A gradient entry as the update uses it: clipped to +-limit, then scaled (NaN kept,
    as ``np.clip`` keeps it)."""
    if limit is not None:
        if g > limit:
            g = limit
        elif g < -limit:
            g = -limit
    if scale is not None:
        g = g * scale
    return g


@kernel
def _decayed(p: float, weight_decay: float | None, rate: float) -> float:
    """``p - p * weight_decay * rate``, in Keras's order."""
    if weight_decay is None:
        return p
    return p - p * weight_decay * rate


@kernel
def _finite(scale: float | None) -> bool:
    """Whether a clipping scale is finite (no scale is)."""
    if scale is None:
        return True
    return math.isfinite(scale)


@sum_kernel
def sum_of_squares(values: np.ndarray) -> float:
    """``sum(values**2)`` in float64: a gradient's squared L2 norm, for clipping."""
    total = 0.0
    for i in range(values.shape[0]):
        total += np.float64(values[i]) * values[i]
    return total


@kernel
def sgd(
    param: np.ndarray,
    grad: np.ndarray,
    learning_rate: float,
    scale: float | None,
    limit: float | None,
    weight_decay: float | None,
    rate: float,
) -> None:
    """``param -= learning_rate * grad``."""
    for i in range(param.shape[0]):
        g = _gradient(grad[i], scale, limit)
        param[i] = _decayed(param[i], weight_decay, rate) - learning_rate * g


@kernel
def momentum(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    learning_rate: float,
    momentum: float,
    nesterov: bool,
    tiny: float,
    scale: float | None,
    limit: float | None,
    weight_decay: float | None,
    rate: float,
) -> None:
    """``v = momentum * v - lr * g``; ``param += v`` (Nesterov: ``momentum * v - lr * g``)."""
    for i in range(param.shape[0]):
        step = learning_rate * _gradient(grad[i], scale, limit)
        v = _flush(momentum * velocity[i] - step, tiny)
        velocity[i] = v
        param[i] = _decayed(param[i], weight_decay, rate) + (momentum * v - step if nesterov else v)


#: :func:`rmsprop` looks at the gradient this many entries at a time
ZERO_BLOCK = 128


@sum_kernel
def _magnitude(values: np.ndarray) -> float:
    """``sum(|values|)``: 0 exactly when every value is +-0 (a NaN makes it NaN)."""
    total = values.dtype.type(0)
    for i in range(values.shape[0]):
        total += abs(values[i])
    return total


@kernel
def rmsprop(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    learning_rate: float,
    rho: float,
    one_minus_rho: float,
    epsilon: float,
    tiny: float,
    scale: float | None,
    limit: float | None,
    weight_decay: float | None,
    rate: float,
) -> None:
    """``v = rho * v + (1 - rho) * g**2``; ``param -= lr * g / sqrt(v + epsilon)``.

    Where a block of the gradient is all 0 (a third of the first layer's rows on an
    MNIST batch: pixels that are 0 in every image of it), ``param`` keeps its value
    and is neither read nor written (but for its decay), only ``v = rho * v`` is;
    unless some ``v + epsilon`` there is 0 or NaN, where 0 / sqrt(v + epsilon) makes
    NaN in the reference, or the clipping scale is not finite (0 * inf is NaN too).
    """
    skips = _finite(scale)
    for start in range(0, param.shape[0], ZERO_BLOCK):
        # slices, so LLVM sees loops from 0 and vectorizes them
        p = param[start : start + ZERO_BLOCK]
        g = grad[start : start + ZERO_BLOCK]
        v = velocity[start : start + ZERO_BLOCK]
        if _magnitude(g) != 0 or not skips:
            for i in range(p.shape[0]):
                gi = _gradient(g[i], scale, limit)
                vi = _flush(rho * v[i] + one_minus_rho * gi * gi, tiny)
                v[i] = vi
                p[i] = _decayed(p[i], weight_decay, rate) - learning_rate * gi / math.sqrt(
                    vi + epsilon
                )
            continue
        settled = True
        for i in range(v.shape[0]):
            vi = _flush(rho * v[i], tiny)
            v[i] = vi
            settled &= vi + epsilon > 0
        if weight_decay is not None:
            for i in range(p.shape[0]):
                p[i] = _decayed(p[i], weight_decay, rate)
        if not settled:
            for i in range(p.shape[0]):
                p[i] -= learning_rate * g[i] / math.sqrt(v[i] + epsilon)


@kernel
def rmsprop_with_state(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray,
    buffer: np.ndarray,
    average: np.ndarray,
    learning_rate: float,
    rho: float,
    one_minus_rho: float,
    epsilon: float,
    momentum: float,
    tiny: float,
    scale: float | None,
    limit: float | None,
    weight_decay: float | None,
    rate: float,
) -> None:
    """RMSprop's momentum form (``buffer`` not empty) and centered form (``average`` not
    empty), either or both: ``v = rho * v + (1 - rho) * g**2``; centered, ``a = rho * a
    + (1 - rho) * g`` and ``step = lr * g / sqrt(v - a**2 + epsilon)``, else ``lr * g /
    sqrt(v + epsilon)``; with momentum ``b = momentum * b + step``, ``param -= b``, else
    ``param -= step``. A zero gradient still moves ``param`` through ``b``, so there is
    no skipping of zero blocks here.
    """
    use_momentum = buffer.shape[0] > 0
    centered = average.shape[0] > 0
    for i in range(param.shape[0]):
        g = _gradient(grad[i], scale, limit)
        vi = _flush(rho * velocity[i] + one_minus_rho * g * g, tiny)
        velocity[i] = vi
        denominator = vi + epsilon
        if centered:
            ai = _flush(rho * average[i] + one_minus_rho * g, tiny)
            average[i] = ai
            denominator = vi - ai * ai + epsilon
        step = learning_rate * g / math.sqrt(denominator)
        if use_momentum:
            step = _flush(momentum * buffer[i] + step, tiny)
            buffer[i] = step
        param[i] = _decayed(param[i], weight_decay, rate) - step


@kernel
def adam(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    v_hat: np.ndarray,
    step_size: float,
    one_minus_beta_1: float,
    one_minus_beta_2: float,
    epsilon: float,
    tiny: float,
    scale: float | None,
    limit: float | None,
    weight_decay: float | None,
    rate: float,
) -> None:
    """``m += (1 - b1)(g - m)``; ``v += (1 - b2)(g**2 - v)``;
    ``param -= alpha * m / (sqrt(v) + eps)``, ``alpha`` (``step_size``) being Adam's
    bias-corrected step size for this step. AMSGrad, where ``v_hat`` is not empty:
    ``v_hat = max(v_hat, v)`` divides instead of ``v`` (a NaN in ``v`` kept, as
    ``np.maximum`` keeps it).
    """
    amsgrad = v_hat.shape[0] > 0
    for i in range(param.shape[0]):
        g = _gradient(grad[i], scale, limit)
        mi = _flush(m[i] + one_minus_beta_1 * (g - m[i]), tiny)
        vi = _flush(v[i] + one_minus_beta_2 * (g * g - v[i]), tiny)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = v_hat[i] if v_hat[i] >= vi else vi
            v_hat[i] = vi
        param[i] = _decayed(param[i], weight_decay, rate) - step_size * mi / (
            math.sqrt(vi) + epsilon
        )
