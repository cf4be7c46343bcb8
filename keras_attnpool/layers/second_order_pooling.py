"""Full second-order (bilinear) pooling: the baseline that attentional pooling makes low-rank."""

import keras
from keras import ops

from keras_attnpool.layers import common
from keras_attnpool.layers.base import PoolingHead


@keras.saving.register_keras_serializable(package="keras_attnpool")
class SecondOrderPooling(PoolingHead):
    """Bilinear pooling X^T X / n, signed square root, L2 normalisation, linear classifier.

    The classifier sees every entry of the C x C second-moment matrix, so its size grows with
    C^2 K: with 2048-channel features, project to `projection_dim` channels first (a 1x1
    convolution), as compact bilinear models do.

    Args:
        num_classes: number of classes K, >= 1.
        projection_dim: if set, a linear 1x1 projection to this many channels before pooling.
        use_bias: whether the projection and the classifier have biases.
        dropout: dropout rate on the normalised bilinear features.
        activation: applied to the scores (None: logits).
        kernel_initializer: initialiser of the projection and classifier kernels.
        kernel_regularizer: regulariser of those kernels.
        epsilon: keeps the signed square root differentiable at 0 and the norm finite.
        seed: seed of the dropout.

    Input shape:
        `(batch, height, width, channels)` or `(batch, time, height, width, channels)`.

    Output shape:
        `(batch, num_classes)`.

    Example:

    >>> layer = SecondOrderPooling(num_classes=5, projection_dim=16)
    >>> layer(np.ones((2, 7, 7, 64), "float32")).shape
    (2, 5)
    """

    def __init__(
        self,
        num_classes,
        projection_dim=None,
        use_bias=True,
        dropout=0.0,
        activation=None,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        epsilon=1e-12,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            num_classes, use_bias=use_bias, dropout=dropout, activation=activation,
            kernel_regularizer=kernel_regularizer, seed=seed, **kwargs,
        )
        if projection_dim is not None:
            common.check_positive_int("projection_dim", projection_dim)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0; got {epsilon!r}.")
        self.projection_dim = projection_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.epsilon = float(epsilon)
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=5, name="features")

    def build(self, input_shape):
        channels = self.channels(input_shape)
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=5, axes={-1: channels},
                                          name="features")
        self.projection_kernel = self.projection_bias = None
        if self.projection_dim is not None:
            self.projection_kernel = self.add_weight(
                name="projection_kernel",
                shape=(channels, self.projection_dim),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )
            if self.use_bias:
                self.projection_bias = self.add_weight(
                    name="projection_bias", shape=(self.projection_dim,), initializer="zeros"
                )
            channels = self.projection_dim
        self.classifier_kernel = self.add_weight(
            name="classifier_kernel",
            shape=(channels * channels, self.num_classes),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.classifier_bias = None
        if self.use_bias:
            self.classifier_bias = self.add_weight(
                name="classifier_bias", shape=(self.num_classes,), initializer="zeros"
            )

    def bilinear_features(self, inputs):
        """The normalised second-order descriptor, float32 (B, C'^2)."""
        inputs = self.checked_inputs(inputs)
        x = self.positions_in_float32(inputs)
        if self.projection_kernel is not None:
            x = ops.matmul(x, common.float32(self.projection_kernel))
            if self.projection_bias is not None:
                x = x + common.float32(self.projection_bias)
        num_positions = ops.cast(ops.shape(x)[1], "float32")
        gram = ops.einsum("bnc,bnd->bcd", x, x) / num_positions
        gram = ops.reshape(gram, (-1, x.shape[-1] * x.shape[-1]))
        signed_root = ops.sign(gram) * ops.sqrt(ops.abs(gram) + self.epsilon)
        norm = ops.sqrt(ops.sum(ops.square(signed_root), axis=-1, keepdims=True) + self.epsilon)
        return signed_root / norm

    def call(self, inputs, training=None):
        features = self.apply_dropout(self.bilinear_features(inputs), training)
        logits = ops.matmul(features, common.float32(self.classifier_kernel))
        if self.classifier_bias is not None:
            logits = logits + common.float32(self.classifier_bias)
        return self.scores(logits)

    def get_config(self):
        return {
            **super().get_config(),
            "projection_dim": self.projection_dim,
            **self.initializer_config("kernel_initializer"),
            "epsilon": self.epsilon,
        }
