"""Weight penalties: the L1/L2 sum and its gradient in one pass over a weight."""

from __future__ import annotations

import numpy as np

from fastnn.kernels.jit import sum_kernel


@sum_kernel
def weight_penalty(
    param: np.ndarray, l1: float, l2: float, grad: np.ndarray, add_grad: bool
) -> float:
    """``l1 * sum(|w|) + l2 * sum(w**2)`` over the flat weight, summed in float64; with
    ``add_grad``, also ``grad += l1 * sign(w) + 2 * l2 * w`` (grad flat, like param)."""
    abs_sum = 0.0
    square_sum = 0.0
    two_l2 = 2 * l2
    for i in range(param.shape[0]):
        w = param[i]
        abs_sum += abs(w)
        square_sum += w * w
        if add_grad:
            # sign(w): 0 at 0 and NaN for NaN, as np.sign
            sign = 1 if w > 0 else (-1 if w < 0 else w)
            grad[i] += l1 * sign + two_l2 * w
    return l1 * abs_sum + l2 * square_sum
