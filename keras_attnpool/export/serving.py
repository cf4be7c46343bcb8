"""The serving graph: a trained image model wrapped in TF Serving signatures.

Every signature returns the same named outputs:
    scores               float32 [B, K]  class probabilities (softmax; sigmoid if multi-label)
    top_k_ids            int32   [B, k]  classes by decreasing score
    top_k_names          string  [B, k]  their names
    bottom_up_attention  float32 [B, h, w] (per frame for video: [B, T, h, w])

`bottom_up_attention` is the class-agnostic saliency map the head pools with
(`HeadSpec.bottom_up`): the bottom-up map summed over its rank (with class-specific bottom-up
maps, the map of the top-1 class); heads without attention maps weigh every position alike,
so they return the uniform map 1 / (h * w). A video's scores are those of its logits
averaged over the frames, as the evaluation scores a clip.

The graph runs the model's own backbone and head layers (`split_model`), the same layers and
weights the model runs, so the served logits are the evaluated model's.
"""

from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from keras_attnpool.export.image_bytes import DEFAULT_MAX_PIXELS, decode_and_resize
from keras_attnpool.export.preprocessing import check_not_empty, resize_and_centre_crop
from keras_attnpool.models import split_model


def check_exportable(model: keras.Model) -> tuple:
    """Returns (height, width) of the model's `image` input, or raises ValueError."""
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:]:
        raise ValueError(
            f"Model '{model.name}' must take one image input of shape (B, H, W, 3) with a fixed "
            f"H and W (a single-frame `build_action_model`); got inputs "
            f"{[tuple(t.shape) for t in model.inputs]}. Video signatures run it per frame."
        )
    split_model(model)  # a `build_action_model` model: one backbone, one registered head
    return int(shape[1]), int(shape[2])


class ServingGraph:
    """Builds the tf.functions that `export_saved_model` registers as signatures.

    Args:
        model: a single-frame model from `build_action_model` (input `image`).
        class_names: K names, in class-index order.
        top_k: how many classes `top_k_ids` / `top_k_names` list (capped at K).
        multi_label: scores are per-class sigmoids (HICO) instead of a softmax.
        resize_short: short side before the centre crop (None: the input size).
        prepared_short_side: the records' stored short side: larger images are first
            shrunk to it, antialiased, as `prepare` did (None: to the served short side).
        max_pixels: `serving_default` refuses image files with more pixels (by header).
    """

    def __init__(self, model: keras.Model, class_names: Sequence[str], top_k: int = 5,
                 multi_label: bool = False, resize_short: Optional[int] = None,
                 prepared_short_side: Optional[int] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.image_size = check_exportable(model)
        logits = model.output["logits"] if isinstance(model.output, dict) else model.output
        self.num_classes = int(logits.shape[-1])
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for a model with "
                             f"{self.num_classes} classes; pass one name per class.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be >= 1; got {top_k}.")
        self.backbone, self.head, self.spec = split_model(model)
        self.class_names = [str(name) for name in class_names]
        self.top_k = min(int(top_k), self.num_classes)
        self.multi_label = multi_label
        if resize_short is not None and resize_short < min(self.image_size):
            raise ValueError(f"`resize_short` ({resize_short}) must be >= the input size "
                             f"{self.image_size}: the crop is taken after the resize.")
        self.resize_short = resize_short
        for name, value in (("prepared_short_side", prepared_short_side),
                            ("max_pixels", max_pixels)):
            if value is not None and (isinstance(value, bool) or int(value) != value
                                      or value < 1):
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
        self.prepared_short_side = prepared_short_side
        self.max_pixels = int(max_pixels)

    def _core(self, pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The model's forward pass through its own layers, keeping the backbone features:
        float32 logits and the {"final", "pose"} feature maps."""
        features = self.backbone(pixels, training=False)
        outputs = self.head(self.spec.head_inputs(features), training=False)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs
        return {"logits": tf.cast(logits, tf.float32), **features}

    def _bottom_up(self, features: dict, class_ids: tf.Tensor) -> tf.Tensor:
        """(B, h, w) float32 saliency; `class_ids` (B,) picks class-specific maps."""
        maps = self.spec.bottom_up(self.head, features)
        if maps.shape.rank == 4:  # class-specific: (B, h, w, K)
            maps = tf.gather(maps, class_ids, axis=3, batch_dims=1)
        return maps

    def forward(self, pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
        """float32 (B, H, W, 3) at the model's size -> logits, scores, bottom_up_attention."""
        outputs = self._core(pixels)
        logits = outputs["logits"]
        scores = tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits, axis=-1)
        top1 = tf.argmax(scores, axis=-1, output_type=tf.int32)
        return {"logits": logits, "scores": scores,
                "bottom_up_attention": self._bottom_up(outputs, top1)}

    def _top_k(self, scores: tf.Tensor) -> Dict[str, tf.Tensor]:
        ids = tf.math.top_k(scores, k=self.top_k).indices
        names = tf.gather(tf.constant(self.class_names, tf.string), ids)
        return {"top_k_ids": tf.cast(ids, tf.int32), "top_k_names": names}

    def _classify(self, pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
        outputs = self.forward(pixels)
        return {"scores": outputs["scores"], **self._top_k(outputs["scores"]),
                "bottom_up_attention": outputs["bottom_up_attention"]}

    def functions(self) -> Dict[str, tf.types.experimental.GenericFunction]:
        """Signature name -> tf.function with its input signature."""
        height, width = self.image_size

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serving_default(image_bytes):
            image_bytes = check_not_empty(image_bytes, "image_bytes")
            pixels = decode_and_resize(image_bytes, self.image_size, self.resize_short,
                                       self.prepared_short_side, self.max_pixels)
            return self._classify(pixels)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8,
                                                    name="images")])
        def classify_images(images):
            images = check_not_empty(images, "images")
            return self._classify(self._crop(images))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.uint8,
                                                    name="frames")])
        def classify_video(frames):
            return self._classify_video(check_not_empty(frames, "frames"))

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32,
                                                    name="pixels")])
        def classify_preprocessed(pixels):
            # A loaded signature does not enforce its spec's sizes (other sizes fail deep
            # in the head without saying why), so the size is checked here.
            check = tf.debugging.Assert(
                tf.reduce_all(tf.shape(pixels)[1:3] == [height, width]),
                [f"pixels: must be (B, {height}, {width}, 3) float32, already resized and "
                 "centre-cropped (or send images to classify_images); got shape",
                 tf.shape(pixels)], name="check_pixels_size")
            with tf.control_dependencies([check]):
                return self.forward(tf.identity(pixels))

        return {"serving_default": serving_default, "classify_images": classify_images,
                "classify_video": classify_video,
                "classify_preprocessed": classify_preprocessed}

    def _crop(self, images: tf.Tensor) -> tf.Tensor:
        return resize_and_centre_crop(images, self.image_size, self.resize_short,
                                      self.prepared_short_side)

    def _classify_video(self, frames: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Scores of the logits averaged over the T frames, as the evaluation scores a clip
        (`metrics.average_per_video`, then softmax or sigmoid); maps per frame."""
        shape = tf.shape(frames)
        batch, num_frames = shape[0], shape[1]
        flat = tf.reshape(frames, tf.concat([[batch * num_frames], shape[2:]], axis=0))
        outputs = self._core(self._crop(flat))
        logits = tf.reduce_mean(
            tf.reshape(outputs["logits"], tf.stack([batch, num_frames, self.num_classes])),
            axis=1)
        scores = tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits, axis=-1)
        clip_top1 = tf.argmax(scores, axis=-1, output_type=tf.int32)
        maps = self._bottom_up(outputs, tf.repeat(clip_top1, num_frames))
        grid = tf.shape(maps)[1:]
        maps = tf.reshape(maps, tf.concat([[batch, num_frames], grid], axis=0))
        return {"scores": scores, **self._top_k(scores), "bottom_up_attention": maps}
