"""A vectorisable exp for numba kernels.

``math.exp`` compiles to a scalar libm call, which keeps LLVM from
vectorising the loops of the Sinkhorn kernels (about 10 ns an element).
This version is the classic Cody-Waite reduction, x = k ln2 + r with
|r| <= ln2/2, a degree-11 Taylor polynomial for e^r (relative error below
1e-14) and 2^k assembled in the exponent bits: only arithmetic and bit
casts, so loops that call it vectorise (about 1 ns an element with AVX2).

The argument is clamped to [-500, 700]: below -500 the result (7e-218) is
negligible against any entry that carries mass, yet stays a normal number,
so no denormal ever slows down later arithmetic.
"""

from numba import njit, types
from numba.extending import intrinsic

_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
LOWER = -500.0
UPPER = 700.0


@intrinsic
def _f64_bits(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def _bits_f64(typingctx, x):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


# No 'reassoc' here: it would fold (t + MAGIC) - MAGIC back to t and undo the
# rounding the reduction relies on.  Callers keep their own flags.
@njit(fastmath={"nsz", "contract"}, cache=True)
def _reduce(x):
    """``(t, r)``: ``x = k ln2 + r``, ``|r| <= ln2 / 2``, with ``k`` in the low
    bits of ``t`` (see :func:`_scale`)."""
    x = min(max(x, LOWER), UPPER)
    t = x * _LOG2E + _MAGIC
    k = t - _MAGIC
    return t, (x - k * _LN2_HI) - k * _LN2_LO


@njit(fastmath={"nsz", "contract"}, cache=True)
def _scale(p, t):
    # The low bits of t hold k; shifting them into the exponent field gives 2^k.
    return p * _bits_f64((_f64_bits(t) + 1023) << 52)


@njit(fastmath={"nsz", "contract"}, cache=True)
def fast_exp(x):
    t, r = _reduce(x)
    p = 1.0 + r * (
        1.0
        + r
        * (
            0.5
            + r
            * (
                1.0 / 6
                + r
                * (
                    1.0 / 24
                    + r
                    * (
                        1.0 / 120
                        + r
                        * (
                            1.0 / 720
                            + r
                            * (
                                1.0 / 5040
                                + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800))))
                            )
                        )
                    )
                )
            )
        )
    )
    return _scale(p, t)


# The same reduction with Taylor terms to degree 13 (the remainder, r^14 / 14!, is below 5e-18 for
# |r| <= ln2 / 2): within an ulp of libm's exp, for values that must resolve differences near rounding
# (a loss compared along a line search).
@njit(fastmath={"nsz", "contract"}, cache=True)
def exact_exp(x):
    t, r = _reduce(x)
    # Horner's rule written out, 1/13! down to 1
    p = 1.0 / 479001600 + r * (1.0 / 6227020800)
    p = 1.0 / 39916800 + r * p
    p = 1.0 / 3628800 + r * p
    p = 1.0 / 362880 + r * p
    p = 1.0 / 40320 + r * p
    p = 1.0 / 5040 + r * p
    p = 1.0 / 720 + r * p
    p = 1.0 / 120 + r * p
    p = 1.0 / 24 + r * p
    p = 1.0 / 6 + r * p
    p = 0.5 + r * p
    p = 1.0 + r * p
    p = 1.0 + r * p
    return _scale(p, t)


@njit(fastmath={"nsz", "contract"}, cache=True, error_model="numpy")  # no zero test before the division
def log1p_unit(e):
    """``log(1 + e)`` for ``0 <= e <= 1``, vectorisable: ``2 atanh(s)`` with
    ``s = e / (2 + e) <= 1/3``, its series to ``s^35`` (the remainder is below
    2e-18 relative), exact for tiny ``e`` where ``1 + e`` would round."""
    s = e / (2.0 + e)
    q = s * s
    p = 1.0 / 33 + q * (1.0 / 35)
    p = 1.0 / 31 + q * p
    p = 1.0 / 29 + q * p
    p = 1.0 / 27 + q * p
    p = 1.0 / 25 + q * p
    p = 1.0 / 23 + q * p
    p = 1.0 / 21 + q * p
    p = 1.0 / 19 + q * p
    p = 1.0 / 17 + q * p
    p = 1.0 / 15 + q * p
    p = 1.0 / 13 + q * p
    p = 1.0 / 11 + q * p
    p = 1.0 / 9 + q * p
    p = 1.0 / 7 + q * p
    p = 1.0 / 5 + q * p
    p = 1.0 / 3 + q * p
    p = 1.0 + q * p
    return 2.0 * s * p
