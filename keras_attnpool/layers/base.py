"""`PoolingHead`: what every pooling head shares, after Keras's own pooling base classes."""

import keras
from keras import ops

from keras_attnpool.layers import common


class PoolingHead(keras.layers.Layer):
    """Base of the layers that pool a channels-last feature map into `num_classes` scores.

    It owns the arguments every head takes (validated with `ValueError`, one attribute each,
    all listed by `get_config`), the training-time dropout with its seed generator, and the
    accumulation policy: a head computes in float32 whatever the dtype policy, because its sums
    run over every position of the map and would overflow float16 (`positions_in_float32`),
    and returns its scores in the layer's compute dtype (`scores`).

    A subclass declares the inputs it accepts in `self.input_spec` (ranks, and the channel
    count once built), which Keras checks on every call; its public methods that take
    features directly (`attention_maps`) pass them through `checked_inputs` for the same
    check.

    Args:
        num_classes: number of classes K, >= 1.
        use_bias: whether the head's linear maps have biases.
        dropout: dropout rate in [0, 1), applied by the subclass in training only.
        activation: applied to the pooled scores (None: logits).
        kernel_regularizer: regulariser of the head's kernels.
        seed: seed of the dropout.
    """

    def __init__(
        self,
        num_classes,
        use_bias=True,
        dropout=0.0,
        activation=None,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        common.check_positive_int("num_classes", num_classes)
        common.check_rate("dropout", dropout)
        self.num_classes = int(num_classes)
        self.use_bias = bool(use_bias)
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        # The attribute name is part of the saved `.keras` file's layout: keep it.
        self.seed_generator = keras.random.SeedGenerator(seed)

    def channels(self, input_shape):
        """The static channel count (last axis) of `input_shape`, which the weights need."""
        if input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known channel count (last axis); "
                f"got shape {tuple(input_shape)}."
            )
        return int(input_shape[-1])

    def checked_inputs(self, inputs):
        """`inputs` as tensors, the layer built for them and checked as `__call__` checks."""
        inputs = keras.tree.map_structure(ops.convert_to_tensor, inputs)
        # Keras's own input-spec check, the one `__call__` runs before and after building.
        self._assert_input_compatibility(inputs)
        if not self.built:
            self.build(keras.tree.map_structure(lambda t: tuple(t.shape), inputs))
            self._assert_input_compatibility(inputs)
        return inputs

    def positions_in_float32(self, inputs):
        """(B, ..., C) features -> float32 (B, N, C), every position on one axis."""
        return common.flatten_positions(ops.cast(inputs, "float32"))

    def apply_dropout(self, x, training):
        """Dropout at `self.dropout` in training, the identity otherwise."""
        if training and self.dropout > 0:
            return keras.random.dropout(x, self.dropout, seed=self.seed_generator)
        return x

    def scores(self, logits):
        """float32 logits -> the activation's output in the compute dtype."""
        return ops.cast(self.activation(logits), self.compute_dtype)

    def initializer_config(self, *names):
        """`get_config` entries of the initialiser attributes `names`."""
        return {name: keras.initializers.serialize(getattr(self, name)) for name in names}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "use_bias": self.use_bias,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "seed": self.seed,
            }
        )
        return config
