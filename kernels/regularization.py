"""Weight penalties: the L1/L2 sum and its gradient in one pass over a weight."""

from __future__ import annotations

import numpy as np

from fastnn.kernels.jit import sum_kernel


@sum_kernel
def weight_penalty(
    param: np.ndarray, l1: float, l2: float, grad: np.ndarray, add_grad: bool
) -> float:
    """``l1 * sum(|w|) + l2 * sum(w**2)`` over the flat weight, summed in float64; with
    ``add_grad``, also ``grad += l1 * sign(w) + 2 * l2 * w`` (grad flat, like param), a
    term below the dtype's smallest normal number counting as 0. A term whose coefficient
    is 0 is left out, as in the NumPy reference, not added as ``0 * inf = NaN``."""
    abs_sum = 0.0
    square_sum = 0.0
    l1_64, two_l2 = np.float64(l1), 2 * np.float64(l2)
    use_l1, use_l2 = l1 != 0, l2 != 0
    tiny = np.finfo(param.dtype).tiny
    for i in range(param.shape[0]):
        # in float64: an L2 penalty decays unused weights to ~1e-30, whose float32 squares
        # and products would be subnormal, each costing a microcode assist
        w = np.float64(param[i])
        abs_sum += abs(w)
        square_sum += w * w
        if add_grad:
            sign = 1.0 if w > 0 else (-1.0 if w < 0 else w)  # np.sign: 0 at 0, NaN for NaN
            term = (l1_64 * sign if use_l1 else 0.0) + (two_l2 * w if use_l2 else 0.0)
            grad[i] += term if not -tiny < term < tiny else 0.0
    return (l1 * abs_sum if use_l1 else 0.0) + (l2 * square_sum if use_l2 else 0.0)
