"""`AveragePoolingHead`: the baseline the paper compares against, as a pooling head."""

import keras
from keras import ops

from keras_attnpool.layers import common
from keras_attnpool.layers.base import PoolingHead


@keras.saving.register_keras_serializable(package="keras_attnpool")
class AveragePoolingHead(PoolingHead):
    """Average pooling over positions, dropout, then a linear classifier: score_k = 1ᵀ X w_k / n.

    Attentional pooling with a constant bottom-up map is this head; `build_action_model`'s
    head="avg".

    Args:
        num_classes: number of classes K.
        use_bias: whether the classifier has a bias.
        dropout: dropout rate on the pooled features in training, in [0, 1).
        activation: applied to the scores (None: logits).
        kernel_initializer: initialiser of the classifier's (C, K) kernel.
        kernel_regularizer: its regulariser.
        seed: seed of the dropout.

    Input shape:
        (B, H, W, C).

    Output shape:
        (B, K).

    Example:

    >>> layer = AveragePoolingHead(num_classes=5)
    >>> layer(np.ones((2, 7, 7, 64), "float32")).shape
    (2, 5)
    """

    def __init__(self, num_classes, use_bias=True, dropout=0.0, activation=None,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, seed=None,
                 **kwargs):
        super().__init__(num_classes, use_bias=use_bias, dropout=dropout,
                         activation=activation, kernel_regularizer=kernel_regularizer,
                         seed=seed, **kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.input_spec = keras.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = self.channels(input_shape)
        self.input_spec = keras.InputSpec(ndim=4, axes={-1: channels})
        self.kernel = self.add_weight(name="kernel", shape=(channels, self.num_classes),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight(name="bias", shape=(self.num_classes,),
                                     initializer="zeros") if self.use_bias else None)

    def call(self, inputs, training=None):
        pooled = ops.mean(self.positions_in_float32(inputs), axis=1)
        logits = ops.matmul(self.apply_dropout(pooled, training), common.float32(self.kernel))
        if self.bias is not None:
            logits = logits + common.float32(self.bias)
        return self.scores(logits)

    def get_config(self):
        return {**super().get_config(), **self.initializer_config("kernel_initializer")}
