"""``exp`` of non-positive numbers, in a form LLVM vectorizes.

numba lowers ``math.exp`` to one libm call per element (llvmlite from PyPI has no
SIMD math library), about 4 ns each: the largest cost of a softmax. Every ``exp``
the kernels need is of a non-positive number (``x - rowmax`` in softmax,
``-|z|`` in the sigmoid), so this module computes just that case:

    exp(x) = 2**n * exp(r),  n = round(x / ln 2),  r = x - n ln 2,  |r| <= ln(2) / 2

with ``exp(r)`` from its Taylor series (degree 7 for float32, 12 for float64: the
truncation error is below the dtype's rounding) and ``2**n`` built directly in
the exponent bits. Results agree with ``numpy.exp`` to a few units in the last
place; results below the smallest normal number (x < -87.3 in float32, -708.3
in float64) are returned as 0, NaN stays NaN, and -inf gives 0.
"""

from __future__ import annotations

import math
from typing import Any

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from fastnn.kernels.jit import PRECISE, kernel

# ln(2) split in two so that n * LN2_HIGH is exact (Cody and Waite's reduction).
_LN2_HIGH_64 = 6.93147180369123816490e-01
_LN2_LOW_64 = 1.90821492927058770002e-10
_LN2_HIGH_32 = 0.693359375
_LN2_LOW_32 = -2.12194440e-4
_LOG2E = 1.4426950408889634


@intrinsic
def _float32_from_bits(typingctx: object, bits: types.Type) -> tuple[object, object]:
    """Reinterpret an int32's bits as a float32 (an LLVM bitcast: free, vectorizable)."""
    signature = types.float32(types.int32)

    def codegen(context: object, builder: ir.IRBuilder, sig: object, args: list) -> object:
        return builder.bitcast(args[0], ir.FloatType())

    return signature, codegen


@intrinsic
def _float64_from_bits(typingctx: object, bits: types.Type) -> tuple[object, object]:
    """Reinterpret an int64's bits as a float64."""
    signature = types.float64(types.int64)

    def codegen(context: object, builder: ir.IRBuilder, sig: object, args: list) -> object:
        return builder.bitcast(args[0], ir.DoubleType())

    return signature, codegen


def exp_nonpositive(x: float) -> float:
    """``exp(x)`` for ``x <= 0``; inside kernels it compiles to the vectorizable form."""
    return math.exp(x)


@overload(exp_nonpositive, inline="always", jit_options={"fastmath": PRECISE})
def _exp_nonpositive_overload(x: Any) -> Any:
    if x == types.float32:
        return _exp32
    if x == types.float64:
        return _exp64
    return None


def _exp32(x: Any) -> Any:
    n = math.floor(x * types.float32(_LOG2E) + types.float32(0.5))
    r = (x - n * types.float32(_LN2_HIGH_32)) - n * types.float32(_LN2_LOW_32)
    p = types.float32(1.0 / 5040)
    for c in (1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0):
        p = p * r + types.float32(c)
    underflow = x < types.float32(-87.33)  # 2**n would leave the normal range
    bits = types.int32(127 - 126 if underflow else n + 127) << 23
    scaled = p * _float32_from_bits(bits)  # type: ignore[call-arg]  # typing context implicit
    return types.float32(0.0) if underflow else scaled


def _exp64(x: Any) -> Any:
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HIGH_64) - n * _LN2_LOW_64
    p = 1.0 / 479001600
    for c in (
        1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
        1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0,
    ):  # fmt: skip
        p = p * r + c
    underflow = x < -708.3
    bits = types.int64(1 if underflow else n + 1023) << 52
    scaled = p * _float64_from_bits(bits)  # type: ignore[call-arg]  # typing context implicit
    return 0.0 if underflow else scaled


@kernel
def exp_nonpositive_array(x: object, out: object) -> None:
    """``out = exp(x)`` for a 1-D array of non-positive values (used by the tests)."""
    for i in range(x.shape[0]):  # type: ignore[attr-defined]
        out[i] = exp_nonpositive(x[i])  # type: ignore[index]
