"""Argument checks and the float32 pooling arithmetic shared by the pooling layers."""

import math

import keras
from keras import ops


def check_positive_int(name, value):
    """Raises ValueError unless `value` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")


def check_rate(name, value):
    """Raises ValueError unless `value` is a rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1); got {value!r}.")


def check_choice(name, value, accepted):
    """Raises ValueError naming the argument and the accepted values."""
    if value not in accepted:
        raise ValueError(
            f"Unknown `{name}`: {value!r}. Accepted values: {', '.join(map(repr, accepted))}."
        )


def float32(variable):
    """A weight (or None) as float32 arithmetic needs it, under any dtype policy."""
    return None if variable is None else ops.cast(variable, "float32")


def flatten_positions(x):
    """(B, ..., C) -> (B, N, C): every spatial (and temporal) position in one axis."""
    positions = tuple(x.shape[1:-1])
    if all(d is not None for d in positions):
        return ops.reshape(x, (-1, math.prod(positions), x.shape[-1]))
    return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))


def pooled_attention_logits(x, bottom_up, top_down_kernel, top_down_bias=None):
    """mean_n sum_p bottom_up[n, p] * (x[n] @ top_down_kernel[:, p] + top_down_bias[p]).

    Pooling first and classifying after gives the same number as building every top-down map
    and multiplying, for O(N*C*P + C*P*K) instead of O(N*C*P*K) work.

    Args:
        x: float32 (B, N, C) features (after the top-down dropout, if any).
        bottom_up: float32 (B, N, P) class-agnostic bottom-up maps.
        top_down_kernel: (C, P, K); top_down_bias: (P, K) or None.
    Returns:
        float32 (B, K) logits.
    """
    num_positions = ops.cast(ops.shape(x)[1], "float32")
    pooled = ops.einsum("bnp,bnc->bpc", bottom_up, x) / num_positions
    logits = ops.einsum("bpc,cpk->bk", pooled, float32(top_down_kernel))
    if top_down_bias is not None:
        mean_bottom_up = ops.mean(bottom_up, axis=1)
        logits = logits + ops.einsum("bp,pk->bk", mean_bottom_up, float32(top_down_bias))
    return logits


def near_zero_initializer():
    """N(0, 0.001): the authors' initialiser for both attention kernels."""
    return keras.initializers.RandomNormal(stddev=0.001)


def bottom_up_initializers(kernel=None, bias=None):
    """(kernel, bias) initialisers of a bottom-up map; by default N(0, 0.001) and 1.

    With these defaults the bottom-up map starts constant at 1, so an attention head starts
    as average pooling followed by a linear classifier.
    """
    return (keras.initializers.get(kernel or near_zero_initializer()),
            keras.initializers.get(bias or keras.initializers.Constant(1.0)))
