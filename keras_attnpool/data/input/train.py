"""The training parser: one batch of (shard, serialized) pairs -> one training element.

Everything that can be decided before decoding is decided first, for the whole batch at
once: parse, sample frame indices on the encoded frames, read the sampled JPEGs, read the
frame sizes from their headers and make the draws. Only decoding (of the crop; for
augment_on="device", of the crop and a margin, onto the canvas) and augmenting run per
clip, in `tf.map_fn` (or, for augment_on="device" and a static batch size, unrolled over
the batch): a tf.data stage or a TF op has a fixed cost per call, which per clip adds up
to a sizeable share of the decoding time (`benchmarks/input_pipeline.py` measures
the pipeline, `benchmarks/input_stages.py` each of `batch_stages`' stages).

Each batch's draws come from the seed and the batch's position in the stream
(`batch_uniforms`), so they do not depend on thread timing, and a new epoch gets new draws.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from keras_attnpool.data.input import augment, heatmaps, sampling
from keras_attnpool.data.input.decode import (
    decode_jpegs, decode_onto_canvas, record_label)
from keras_attnpool.data.input.sources import Item, RecordSource
from keras_attnpool.data.joints import NUM_JOINTS


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Everything the per-batch functions need (hashable: no tensors)."""

    num_frames: int
    image_size: int
    multi_label: bool
    image_mode: bool = False
    seed: int = 0
    scales: Tuple[float, ...] = augment.MULTISCALE_SCALES
    max_distort: int = 1
    color_jitter: bool = False
    heatmap_size: Optional[Tuple[int, int]] = None
    heatmap_shape: str = "disk"
    flip: bool = True
    augment_on: str = "cpu"
    canvas: int = 0
    pipeline_id: int = 0
    # Batches made on tf.data service workers: each worker numbers its own, so the draws
    # also fold in the batch's clips (`batch_uniforms`' `salt`).
    salt_with_clips: bool = False


def batch_uniforms(seed: int, batch_index: tf.Tensor, batch_size, num_segments: int,
                   pipeline_id: int = 0, salt: tf.Tensor | None = None) -> tf.Tensor:
    """The uniforms in [0, 1) that decide the `batch_index`-th training batch: float32
    [batch_size, num_segments + augment.NUM_DRAW_UNIFORMS]. Row b's first `num_segments`
    pick clip b's frames (`sampling.segment_indices_from_uniforms`), the rest draw its
    augmentation (`augment.draw_from_uniforms`). `salt` (int64), when given, is folded in
    as well."""
    batch_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, pipeline_id], tf.int64), tf.cast(batch_index, tf.int64))
    if salt is not None:
        batch_seed = tf.random.experimental.stateless_fold_in(batch_seed, salt)
    return tf.random.stateless_uniform(
        tf.stack([batch_size, num_segments + augment.NUM_DRAW_UNIFORMS]), batch_seed)


def _check_windows(sides: tf.Tensor, canvas: int) -> tf.Operation:
    """Fails for a window (sides [B]) larger than the canvas."""
    return tf.debugging.assert_less_equal(
        sides, canvas, message=f"a frame's short side is larger than the canvas ({canvas} "
        "px) of augment_on='device'; pass canvas_size=<the records' largest short side>")


def _train_clip(clip: dict, spec: TrainSpec) -> dict:
    """One clip of a batch, whose draw is made: decode its sampled JPEGs (only the crop;
    with augment_on="device", only the part of the square window holding the crop that
    `augment.device_augment` reads, in its place on the canvas) and augment them (or leave
    that to `augment.device_augment`); with augment_on="device" and no `encoded` in
    `clip`, only the heatmaps (`_decode_clips` decodes the batch's frames)."""
    out = {}
    if spec.augment_on == "cpu":
        cropped = decode_jpegs(clip["encoded"], spec.num_frames, clip["crop_box"])
        out["frames"] = augment.apply_train_augmentation(cropped, clip, spec.image_size,
                                                         spec.color_jitter)
    elif "encoded" in clip:
        out["frames"] = decode_onto_canvas(clip["encoded"], spec.num_frames, clip["region"],
                                           clip["window"], spec.canvas)
    if spec.heatmap_size is not None:
        people = sampling.people_keypoints(clip["keypoints"])
        out["heatmaps"] = heatmaps.keypoint_heatmaps(
            people.to_tensor(shape=[spec.num_frames, None, NUM_JOINTS, 3]), clip["crop_box"],
            clip["flip"], clip["width"], spec.heatmap_size, spec.heatmap_shape)
    return out


def _clip_signature(spec: TrainSpec, frames: bool = True) -> dict:
    """What `_train_clip` returns, as TensorSpecs (for `tf.map_fn`); `frames=False`:
    without the frames."""
    t = spec.num_frames
    out = {}
    if frames and spec.augment_on == "device":
        out["frames"] = tf.TensorSpec([t, spec.canvas, spec.canvas, 3], tf.uint8)
    elif frames:
        out["frames"] = tf.TensorSpec([t, spec.image_size, spec.image_size, 3], tf.float32)
    if spec.heatmap_size is not None:
        out["heatmaps"] = tf.TensorSpec([t, *spec.heatmap_size, NUM_JOINTS], tf.float32)
    return out


def _frame_sizes(encoded: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(height, width) int32 [B] of a batch's frames, from the JPEG header of each clip's
    first sampled frame (nothing is decoded)."""
    first = encoded[:, 0]
    if first.shape[0] is not None:  # a static batch: unrolled, without a loop's overhead
        shapes = tf.stack([tf.io.extract_jpeg_shape(first[i]) for i in range(first.shape[0])])
    else:
        shapes = tf.map_fn(tf.io.extract_jpeg_shape, first,
                           fn_output_signature=tf.TensorSpec([3], tf.int32))
    return shapes[:, 0], shapes[:, 1]


def _draw(height: tf.Tensor, width: tf.Tensor, u: tf.Tensor, spec: TrainSpec) -> dict:
    """A batch of clips' draws (`augment.draw_from_uniforms`), without flips for
    `spec.flip=False`."""
    draw = augment.draw_from_uniforms(height, width, u, spec.scales, spec.max_distort)
    if not spec.flip:  # for classes that a mirror image changes (digits, text, left/right)
        draw["flip"] = tf.zeros_like(draw["flip"])
    return draw


def _clip_inputs(encoded: tf.Tensor, height: tf.Tensor, width: tf.Tensor, draw: dict,
                 spec: TrainSpec) -> Tuple[dict, dict]:
    """(what `_train_clip` reads per clip, what the batch carries past it as it is). Only
    what `_train_clip` reads goes in: tf.map_fn unstacks every input."""
    clips = {"encoded": encoded}
    extra = {}
    if spec.augment_on == "cpu":
        clips.update(crop_box=draw["crop_box"], flip=draw["flip"])
        if spec.color_jitter:
            clips["color"] = draw["color"]
    else:
        clips["window"] = augment.crop_window(height, width, draw["crop_box"])
        clips["region"] = augment.resampled_region(draw["crop_box"], clips["window"])
        extra["boxes"] = augment.canvas_box(draw["crop_box"], clips["window"], spec.canvas,
                                            draw["flip"])
        if spec.color_jitter:
            extra["color"] = draw["color"]
    if spec.heatmap_size is not None:
        clips.update(crop_box=draw["crop_box"], flip=draw["flip"], width=width)
    return clips, extra


def _decode_clips(clips: dict, spec: TrainSpec) -> dict:
    """`_train_clip` over the clips of a batch; with augment_on="device" and a static
    batch size, the frames of the whole batch are decoded at once, onto canvases that one
    concatenation assembles (`decode_onto_canvas`), not clip by clip and then stacked."""
    checks = []
    if spec.augment_on == "device":  # checked once per batch
        checks.append(_check_windows(clips["window"][:, 2], spec.canvas))
    with tf.control_dependencies(checks):
        if spec.augment_on == "cpu" or clips["encoded"].shape[0] is None:
            return tf.map_fn(lambda clip: _train_clip(clip, spec), clips,
                             fn_output_signature=_clip_signature(spec))
        rest = dict(clips)
        out = {"frames": decode_onto_canvas(rest.pop("encoded"), spec.num_frames,
                                            rest.pop("region"), rest.pop("window"),
                                            spec.canvas)}
        if spec.heatmap_size is not None:
            out.update(tf.map_fn(lambda clip: _train_clip(clip, spec), rest,
                                 fn_output_signature=_clip_signature(spec, frames=False)))
        return out


# `batch_stages`' stages, in order (`benchmarks/input_stages.py` times each).
STAGES = ("parse", "sample", "read", "draw", "decode", "element")


def batch_stages(index: tf.Tensor, batch: Item, spec: TrainSpec, source: RecordSource):
    """The work of `train_batch`, stage by stage: yields (stage, what it made) for each of
    `STAGES`, building each stage's ops only when the next item is asked for; the last,
    "element", is the training element."""
    shards, serialized = batch
    keypoints = spec.heatmap_size is not None
    records = source.parse_batch(serialized, keypoints)
    yield "parse", records
    t = spec.num_frames
    salt = None
    if spec.salt_with_clips:  # the batch's clips, which differ between workers
        salt = tf.reduce_sum(tf.strings.to_hash_bucket_fast(records["video_id"], 2**40))
    u = batch_uniforms(spec.seed, index, tf.shape(serialized)[0], t, spec.pipeline_id, salt)
    indices = sampling.segment_indices_from_uniforms(records["num_frames"], u[:, :t])
    yield "sample", indices
    encoded = source.frame_batch(shards, records, indices)
    yield "read", encoded
    height, width = _frame_sizes(encoded)
    draw = _draw(height, width, u[:, t:], spec)
    yield "draw", draw
    clips, extra = _clip_inputs(encoded, height, width, draw, spec)
    if keypoints:
        clips["keypoints"] = tf.gather(records["keypoints"], indices, batch_dims=1)
    out = {**_decode_clips(clips, spec), **extra}
    yield "decode", out
    if spec.image_mode:
        out = {key: value[:, 0] if value.shape.rank > 2 else value
               for key, value in out.items()}
    label = record_label(records, spec.multi_label)
    target = label if not keypoints else {"logits": label,
                                          "pose_heatmaps": out.pop("heatmaps")}
    inputs = out if spec.augment_on == "device" else out["frames"]
    yield "element", (inputs, target)


def train_batch(index: tf.Tensor, batch: Item, spec: TrainSpec, source: RecordSource):
    """The `index`-th batch of (shard, serialized) pairs -> a training element
    (`pipeline.train_dataset` documents its structure)."""
    for _, made in batch_stages(index, batch, spec, source):
        pass
    return made
