"""Pose-regularised attention (Girdhar & Ramanan 2017, Fig. 2b): bottom-up from a pose branch."""

import keras
from keras import ops

from keras_attnpool.layers import common
from keras_attnpool.layers.base import PoolingHead


def _is_pair(input_shape):
    """Whether `input_shape` is a list of shapes rather than one shape."""
    return bool(input_shape) and isinstance(input_shape[0], (list, tuple))


@keras.saving.register_keras_serializable(package="keras_attnpool")
class PoseRegularizedAttention(PoolingHead):
    """Rank-1 attentional pooling whose bottom-up map comes from a keypoint-predicting branch.

    A pose branch (1x1 convolution to `pose_channels` + ReLU) reads `pose_features` and feeds
    two linear 1x1 heads: `num_keypoints` keypoint heatmaps, trained against pose targets
    (`keras_attnpool.losses.MaskedHeatmapLoss`), and the single bottom-up attention map. The
    top-down maps come from the final features, and

        logit_k = mean_positions top_down_k * bottom_up

    as in `AttentionalPooling`. Sharing the branch makes the saliency map look at people's
    joints, which is what the paper found to help on MPII and HMDB51.

    Initialisation follows `AttentionalPooling`: the bottom-up head starts near zero with a
    bias of 1, so the layer starts as average pooling and still learns from scratch.

    Args:
        num_classes: number of classes K, >= 1.
        num_keypoints: number of heatmaps J (16: the MPII joint order), >= 1.
        pose_channels: width of the pose branch (768 in the paper), >= 1.
        use_bias: whether the 1x1 convolutions have biases.
        dropout: dropout rate on the top-down input.
        activation: applied to the pooled scores (None: logits).
        top_down_initializer, bottom_up_initializer, bottom_up_bias_initializer: as in
            `AttentionalPooling`.
        pose_initializer: initialiser of the pose branch and heatmap kernels.
        kernel_regularizer: regulariser of every kernel.
        seed: seed of the dropout.

    Input shape:
        final features `(batch, height, width, channels)`, or a list
        `[pose_features, final_features]` of two such maps with the same height and width.

    Output shape:
        `{"logits": (batch, num_classes), "pose_heatmaps": (batch, height, width, num_keypoints)}`.

    Example:

    >>> layer = PoseRegularizedAttention(num_classes=5, num_keypoints=16, pose_channels=32)
    >>> out = layer(np.ones((2, 7, 7, 64), "float32"))
    >>> out["logits"].shape, out["pose_heatmaps"].shape
    ((2, 5), (2, 7, 7, 16))
    """

    def __init__(
        self,
        num_classes,
        num_keypoints=16,
        pose_channels=768,
        use_bias=True,
        dropout=0.0,
        activation=None,
        top_down_initializer="glorot_uniform",
        bottom_up_initializer=None,
        bottom_up_bias_initializer=None,
        pose_initializer="glorot_uniform",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            num_classes, use_bias=use_bias, dropout=dropout, activation=activation,
            kernel_regularizer=kernel_regularizer, seed=seed, **kwargs,
        )
        common.check_positive_int("num_keypoints", num_keypoints)
        common.check_positive_int("pose_channels", pose_channels)
        self.num_keypoints = int(num_keypoints)
        self.pose_channels = int(pose_channels)
        self.top_down_initializer = keras.initializers.get(top_down_initializer)
        self.bottom_up_initializer, self.bottom_up_bias_initializer = (
            common.bottom_up_initializers(bottom_up_initializer, bottom_up_bias_initializer))
        self.pose_initializer = keras.initializers.get(pose_initializer)

    def _split_shapes(self, input_shape):
        """(pose_shape, final_shape) from one shape or a list of two, checked.

        The one check of what the layer accepts; Keras's input spec, set once the layer is
        built, then holds the input count, ranks and channel counts on every call, and this
        still checks that both maps share their grid (not known before the first call).
        """
        if _is_pair(input_shape):
            if len(input_shape) != 2:
                raise ValueError(
                    f"Layer '{self.name}' takes the final features or a list "
                    f"[pose_features, final_features]; got {len(input_shape)} inputs."
                )
            pose_shape, final_shape = tuple(input_shape[0]), tuple(input_shape[1])
            roles = {"pose_features": pose_shape, "final_features": final_shape}
        else:
            pose_shape = final_shape = tuple(input_shape)
            roles = {"features": final_shape}
        for role, shape in roles.items():
            if len(shape) != 4:
                raise ValueError(
                    f"Layer '{self.name}' expects {role} of rank 4 (batch, height, width, "
                    f"channels); got shape {shape}."
                )
        if tuple(pose_shape[1:3]) != tuple(final_shape[1:3]):
            raise ValueError(
                f"Layer '{self.name}': pose_features {pose_shape} and final_features "
                f"{final_shape} must have the same height and width; tap a layer of the "
                "same stride for the pose branch."
            )
        return pose_shape, final_shape

    def _set_input_spec(self, input_shape):
        """Once built: the input count and each input's rank and channel count are fixed."""
        if _is_pair(input_shape):
            # Unnamed: named specs make Keras suggest a dict, which this layer does not take.
            self.input_spec = [keras.InputSpec(ndim=4, axes={-1: self.channels(shape)})
                               for shape in input_shape]
        else:
            self.input_spec = keras.InputSpec(ndim=4, axes={-1: self.channels(input_shape)},
                                              name="features")

    def _add_conv(self, name, shape, initializer, bias_initializer="zeros"):
        kernel = self.add_weight(
            name=f"{name}_kernel", shape=shape, initializer=initializer,
            regularizer=self.kernel_regularizer,
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(name=f"{name}_bias", shape=shape[-1:],
                                   initializer=bias_initializer)
        return kernel, bias

    def build(self, input_shape):
        pose_shape, final_shape = self._split_shapes(input_shape)
        self._set_input_spec(input_shape)
        self.pose_kernel, self.pose_bias = self._add_conv(
            "pose", (pose_shape[-1], self.pose_channels), self.pose_initializer)
        self.heatmap_kernel, self.heatmap_bias = self._add_conv(
            "heatmap", (self.pose_channels, self.num_keypoints), self.pose_initializer)
        self.bottom_up_kernel, self.bottom_up_bias = self._add_conv(
            "bottom_up", (self.pose_channels, 1), self.bottom_up_initializer,
            self.bottom_up_bias_initializer)
        self.top_down_kernel, self.top_down_bias = self._add_conv(
            "top_down", (final_shape[-1], 1, self.num_classes), self.top_down_initializer)

    @staticmethod
    def _conv(x, kernel, bias):
        y = ops.tensordot(x, common.float32(kernel), 1)
        return y if bias is None else y + common.float32(bias)

    def _branches(self, inputs):
        """float32 (pose_heatmaps (B,H,W,J), bottom_up (B,H,W,1), final (B,H,W,C))."""
        if isinstance(inputs, (list, tuple)):
            self._split_shapes([tuple(t.shape) for t in inputs])
            pose_x, final_x = inputs
        else:
            self._split_shapes(tuple(inputs.shape))
            pose_x = final_x = inputs
        pose = ops.relu(self._conv(ops.cast(pose_x, "float32"), self.pose_kernel, self.pose_bias))
        heatmaps = self._conv(pose, self.heatmap_kernel, self.heatmap_bias)
        bottom_up = self._conv(pose, self.bottom_up_kernel, self.bottom_up_bias)
        return heatmaps, bottom_up, ops.cast(final_x, "float32")

    def call(self, inputs, training=None):
        heatmaps, bottom_up, final = self._branches(inputs)
        x = self.apply_dropout(common.flatten_positions(final), training)
        logits = common.pooled_attention_logits(
            x, common.flatten_positions(bottom_up), self.top_down_kernel,
            None if self.top_down_bias is None else ops.reshape(self.top_down_bias, (1, -1)),
        )
        return {
            "logits": self.scores(logits),
            "pose_heatmaps": ops.cast(heatmaps, self.compute_dtype),
        }

    def attention_maps(self, inputs):
        """`{"top_down": (B, H, W, 1, K), "bottom_up": (B, H, W, 1)}` in float32, no dropout."""
        _, bottom_up, final = self._branches(self.checked_inputs(inputs))
        top_down = self._conv(final, self.top_down_kernel, None)
        if self.top_down_bias is not None:
            top_down = top_down + ops.reshape(common.float32(self.top_down_bias), (1, -1))
        return {"top_down": top_down, "bottom_up": bottom_up}

    def compute_output_shape(self, input_shape):
        _, final_shape = self._split_shapes(input_shape)
        return {
            "logits": (final_shape[0], self.num_classes),
            "pose_heatmaps": tuple(final_shape[:3]) + (self.num_keypoints,),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "num_keypoints": self.num_keypoints,
            "pose_channels": self.pose_channels,
            **self.initializer_config(
                "top_down_initializer", "bottom_up_initializer", "bottom_up_bias_initializer",
                "pose_initializer"),
        }
