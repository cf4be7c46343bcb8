"""Attentional pooling: low-rank second-order pooling read as top-down x bottom-up attention."""

import keras
from keras import ops

from keras_attnpool.layers import common
from keras_attnpool.layers.base import PoolingHead


@keras.saving.register_keras_serializable(package="keras_attnpool")
class AttentionalPooling(PoolingHead):
    """Pools a feature map into class scores with rank-P attention (Girdhar & Ramanan, 2017).

    For features X (n positions x C channels) the score of class k is

        logit_k = (1/n) * sum_positions sum_p top_down[p, k] * bottom_up[p]

    where `top_down[p, k] = X a_k^(p) + a0_k^(p)` is a class-specific attention map and
    `bottom_up[p] = X b^(p) + b0^(p)` a class-agnostic saliency map (one per class when
    `class_specific_bottom_up=True`). Both are 1x1 convolutions. With `use_bias=False` the
    score is exactly the second-order pooling score (1/n) Tr(X^T X W_k) with the rank-P matrix
    W_k = sum_p b^(p) a_k^(p)T. With a constant bottom-up map the layer is average pooling
    followed by a linear classifier.

    Default initialisation: the bottom-up kernel starts near zero (N(0, 0.001)) and its bias
    at 1, so the layer starts exactly as average pooling + a linear classifier and learns
    where to look from there. When both maps start near zero (the authors' N(0, 0.001) for
    both, biases 0), the logits start near zero and each map's gradient is scaled by the
    other, near-zero map. Both settings learn from a random backbone on the cluttered-digit
    task; `benchmarks/init_study.py` compares them (results in the README, "Measured").
    With ImageNet features the authors' setting is what the paper used: pass
    `top_down_initializer=keras.initializers.RandomNormal(stddev=0.001),
    bottom_up_initializer=keras.initializers.RandomNormal(stddev=0.001),
    bottom_up_bias_initializer="zeros"`.

    The pooled products are accumulated in float32 whatever the dtype policy, so the layer is
    safe under `mixed_float16`; the result is returned in the layer's compute dtype. The top-down
    term is computed after pooling (`(1/n) sum_x bottom_up(x) X(x)` first, then the classifier),
    which is the same number at a fraction of the cost when the bottom-up map is class-agnostic.

    Args:
        num_classes: number of classes K, >= 1.
        rank: number P of (top-down, bottom-up) map pairs, >= 1.
        class_specific_bottom_up: one bottom-up map per class instead of one shared map.
        use_bias: whether both 1x1 convolutions have biases.
        dropout: dropout rate on the top-down input (the authors used 0.8 on ResNet-101).
        activation: applied to the pooled scores (None: logits).
        top_down_initializer, bottom_up_initializer: kernel initialisers.
        top_down_bias_initializer, bottom_up_bias_initializer: bias initialisers.
        kernel_regularizer: regulariser for both kernels.
        seed: seed of the dropout.

    Input shape:
        `(batch, height, width, channels)` or `(batch, time, height, width, channels)`;
        video features are pooled over time and space together.

    Output shape:
        `(batch, num_classes)`.

    Example:

    >>> layer = AttentionalPooling(num_classes=5, rank=2)
    >>> layer(np.ones((2, 7, 7, 64), "float32")).shape
    (2, 5)
    >>> maps = layer.attention_maps(np.ones((2, 7, 7, 64), "float32"))
    >>> maps["top_down"].shape, maps["bottom_up"].shape
    ((2, 7, 7, 2, 5), (2, 7, 7, 2))
    """

    def __init__(
        self,
        num_classes,
        rank=1,
        class_specific_bottom_up=False,
        use_bias=True,
        dropout=0.0,
        activation=None,
        top_down_initializer="glorot_uniform",
        bottom_up_initializer=None,
        top_down_bias_initializer="zeros",
        bottom_up_bias_initializer=None,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            num_classes, use_bias=use_bias, dropout=dropout, activation=activation,
            kernel_regularizer=kernel_regularizer, seed=seed, **kwargs,
        )
        common.check_positive_int("rank", rank)
        self.rank = int(rank)
        self.class_specific_bottom_up = bool(class_specific_bottom_up)
        self.top_down_initializer = keras.initializers.get(top_down_initializer)
        self.top_down_bias_initializer = keras.initializers.get(top_down_bias_initializer)
        self.bottom_up_initializer, self.bottom_up_bias_initializer = (
            common.bottom_up_initializers(bottom_up_initializer, bottom_up_bias_initializer))
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=5, name="features")

    def build(self, input_shape):
        channels = self.channels(input_shape)
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=5, axes={-1: channels},
                                          name="features")
        bottom_up_units = (self.rank, self.num_classes) if self.class_specific_bottom_up else (
            self.rank,)
        self.top_down_kernel = self.add_weight(
            name="top_down_kernel",
            shape=(channels, self.rank, self.num_classes),
            initializer=self.top_down_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bottom_up_kernel = self.add_weight(
            name="bottom_up_kernel",
            shape=(channels,) + bottom_up_units,
            initializer=self.bottom_up_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.top_down_bias = self.bottom_up_bias = None
        if self.use_bias:
            self.top_down_bias = self.add_weight(
                name="top_down_bias",
                shape=(self.rank, self.num_classes),
                initializer=self.top_down_bias_initializer,
            )
            self.bottom_up_bias = self.add_weight(
                name="bottom_up_bias",
                shape=bottom_up_units,
                initializer=self.bottom_up_bias_initializer,
            )

    def _bottom_up(self, x):
        """Bottom-up maps of float32 features x (B, N, C): (B, N, P) or (B, N, P, K)."""
        if self.class_specific_bottom_up:
            maps = ops.einsum("bnc,cpk->bnpk", x, common.float32(self.bottom_up_kernel))
        else:
            maps = ops.einsum("bnc,cp->bnp", x, common.float32(self.bottom_up_kernel))
        return maps if self.bottom_up_bias is None else maps + common.float32(self.bottom_up_bias)

    def _top_down(self, x):
        """Top-down maps of float32 features x (B, N, C): (B, N, P, K)."""
        maps = ops.einsum("bnc,cpk->bnpk", x, common.float32(self.top_down_kernel))
        return maps if self.top_down_bias is None else maps + common.float32(self.top_down_bias)

    def call(self, inputs, training=None):
        x = self.positions_in_float32(inputs)
        bottom_up = self._bottom_up(x)
        top_down_input = self.apply_dropout(x, training)
        if self.class_specific_bottom_up:
            logits = ops.mean(ops.sum(self._top_down(top_down_input) * bottom_up, axis=2), axis=1)
        else:
            logits = common.pooled_attention_logits(
                top_down_input, bottom_up, self.top_down_kernel, self.top_down_bias
            )
        return self.scores(logits)

    def attention_maps(self, inputs):
        """The maps whose product the layer pools, in float32, without dropout.

        Returns:
            `{"top_down": (B, [T,] H, W, rank, num_classes), "bottom_up": (B, [T,] H, W, rank)}`;
            `bottom_up` has a trailing `num_classes` axis when `class_specific_bottom_up`.
        """
        inputs = self.checked_inputs(inputs)
        x = self.positions_in_float32(inputs)
        grid = tuple(ops.shape(inputs)[:-1])
        top_down = ops.reshape(self._top_down(x), grid + (self.rank, self.num_classes))
        bottom_up = self._bottom_up(x)
        bottom_up = ops.reshape(bottom_up, grid + tuple(bottom_up.shape[2:]))
        return {"top_down": top_down, "bottom_up": bottom_up}

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            "class_specific_bottom_up": self.class_specific_bottom_up,
            **self.initializer_config(
                "top_down_initializer", "bottom_up_initializer", "top_down_bias_initializer",
                "bottom_up_bias_initializer"),
        }
