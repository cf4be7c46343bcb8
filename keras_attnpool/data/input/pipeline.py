"""tf.data input pipelines over prepared records (`records.schema`): training and evaluation.

Stages, in order: list files -> shuffle files -> interleave read -> shuffle records -> parse
-> sample frame indices on the ENCODED frames -> decode only the sampled JPEGs -> augment ->
batch -> prefetch. Decoding is the expensive step, so everything that can be decided before
it (which frames, which crop) is decided first, on strings and headers. Training forms its
batches right after the shuffle and does the later steps a batch at a time (one parse, one
draw, one read of the sampled JPEGs per batch; decoding and augmenting per clip inside it):
a tf.data stage or a TF op costs microseconds per call, and per clip that added up to a
third of the decoding time.

Where the shards have frame indexes (`frame_index`; `prepare` writes them), "read" and
"parse" work on the small index entries and only the sampled JPEGs are read from the
shards; otherwise whole records are read and the sampled JPEGs picked from them. Both give
the same batches; the index saves reading, checksumming and copying the ~97 frames of a
100-frame clip that a 3-segment sample does not use. Training holds indexes of up to
`INDEX_IN_MEMORY_BYTES` in memory (HMDB51's take a few MB): then the whole dataset is
shuffled each epoch, where streamed records are only mixed in a buffer.

Training elements (batched):
    video:  frames float32 [B, T, S, S, 3] in [0, 255], label
    images (image_mode=True, num_segments=1): image float32 [B, S, S, 3], label
    label:  int32 [B] (single-label), or float32 [B, K] with the record's multi-label values
            passed through unchanged (HICO: 1, -1, 0, NaN)
    with_keypoints=True: (frames, {"logits": label, "pose_heatmaps": float32 [B, (T,) h, w,
            16]}), the targets of `build_action_model(head="pose_attention")`.
    augment_on="device": ({"frames": uint8 [B, (T,) C, C, 3], "boxes": float32 [B, 4],
            "color": float32 [B, 4] with color_jitter}, target): the clips' square windows
            and their crop boxes; `augment.device_augment(inputs, S)` in the training step
            makes the float32 frames above from them.
Evaluation elements: (frames [B * V, T, S, S, 3], label [B * V], video_id string [B * V]),
    the V views of each video folded into the batch next to each other; with
    `fold_frames=True` (or image_mode) frames are folded too: ([B * V * T, S, S, 3], ...).
    Average the model's logits per video with `keras_attnpool.metrics.average_per_video`.

Determinism: the file order, record order, frame indices and augmentation all come from
`seed` (each training batch's draws from the seed and the batch's position in the stream,
`batch_uniforms`), so two datasets built with the same arguments yield the same batches.
"""

import dataclasses
import os
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from keras_attnpool.data.input import augment, heatmaps, sampling
from keras_attnpool.data.input.files import (
    Records, list_record_files, pipeline_files, read_manifest, split_record_files)
from keras_attnpool.data.joints import NUM_JOINTS
from keras_attnpool.data.records import frame_index
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC, parse_example

AUTOTUNE = tf.data.AUTOTUNE
AUGMENT_ON = ("cpu", "device")
INDEX_IN_MEMORY_BYTES = 64 * 2**20
# The entry points: a prepared split's files, and the two pipelines over them.
__all__ = ["eval_dataset", "split_record_files", "train_dataset"]


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Everything the per-record functions need (hashable: no tensors)."""

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
    indexed: bool = False
    augment_on: str = "cpu"
    canvas: int = 0
    pipeline_id: int = 0


def _use_index(files: Sequence[str], use_index: Optional[bool]) -> bool:
    """Whether to read through the frame indexes (`frame_index`): all shards have one."""
    if use_index is False:
        return False
    missing = [f for f in files if not frame_index.has_index(f)]
    if use_index and missing:
        raise FileNotFoundError(f"{frame_index.index_path(missing[0])}: no frame index "
                                "(rerun training/prepare.py, which writes it, or pass "
                                "use_index=False to read whole records)")
    return not missing


def _parse(item: Tuple[tf.Tensor, tf.Tensor], indexed: bool, keypoints: bool = False) -> dict:
    """(shard, serialized) -> the record's features (an index entry's when indexed);
    keypoints are parsed only when asked for."""
    parse = frame_index.parse_index_entry if indexed else parse_example
    return parse(item[1], keypoints=keypoints)


def _encoded_frames(item: Tuple[tf.Tensor, tf.Tensor], record: dict, indices: tf.Tensor,
                    indexed: bool) -> tf.Tensor:
    """The JPEGs of the frames at `indices`, tf.string [len(indices)]: read from the shard
    through the index, or gathered from the parsed record."""
    if not indexed:
        return sampling.gather_frames(record["frames"], indices)
    return frame_index.read_frames(item[0], tf.gather(record["frame_offsets"], indices),
                                   tf.gather(record["frame_lengths"], indices),
                                   indices.shape[0])


def _first_record(files: Sequence[str], indexed: bool) -> dict:
    """The first record's features (an index entry's when indexed)."""
    for item in _records(tf.constant(files[0]), indexed).take(1):
        return _parse(item, indexed)
    raise _no_records(files)


def _no_records(files: Sequence[str]) -> ValueError:
    return ValueError(f"{files[0]} ... {files[-1]}: no records in these files; rerun "
                      "training/prepare.py")


def _is_multi_label(record: dict) -> bool:
    """Multi-label datasets store a non-empty `labels`."""
    return int(tf.size(record["labels"])) > 0


def _label(record: dict, multi_label: bool) -> tf.Tensor:
    if multi_label:
        labels = record["labels"]  # ragged [B, (K)] when parsed as a batch
        return labels.to_tensor() if isinstance(labels, tf.RaggedTensor) else labels
    return tf.cast(record["label"], tf.int32)


def _decode(encoded: tf.Tensor, count: int, crop_box: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Decodes `count` JPEGs to uint8 [count, h, w, 3], cropped while decoding if asked.

    The loop is unrolled (count is static), so TF runs the decodes in parallel.
    """
    frames = []
    for i in range(count):
        if crop_box is None:
            frames.append(tf.io.decode_jpeg(encoded[i], channels=3))
        else:
            frames.append(tf.io.decode_and_crop_jpeg(encoded[i], crop_box, channels=3))
    return tf.stack(frames)


def batch_uniforms(seed: int, batch_index: tf.Tensor, batch_size, num_segments: int,
                   pipeline_id: int = 0) -> tf.Tensor:
    """The uniforms in [0, 1) that decide the `batch_index`-th training batch: float32
    [batch_size, num_segments + augment.NUM_DRAW_UNIFORMS]. Row b's first `num_segments`
    pick clip b's frames (`sampling.segment_indices_from_uniforms`), the rest draw its
    augmentation (`augment.draw_from_uniforms`)."""
    batch_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, pipeline_id], tf.int64), tf.cast(batch_index, tf.int64))
    return tf.random.stateless_uniform(
        tf.stack([batch_size, num_segments + augment.NUM_DRAW_UNIFORMS]), batch_seed)


def _parse_batch(serialized: tf.Tensor, indexed: bool, keypoints: bool) -> dict:
    """A batch of records (or index entries) -> their features, batched: context values
    [B], `labels` ragged [B, (K)], `frames` [B, max num_frames] (padded with empty
    strings) or `frame_offsets`, `frame_lengths` ragged [B, (num_frames)], and when asked
    `keypoints` ragged [B, (num_frames), (people * 48)]."""
    if indexed:
        context_spec = frame_index.INDEX_CONTEXT_SPEC
        sequence_spec = dict(frame_index.INDEX_SEQUENCE_SPEC) if keypoints else {}
    else:
        context_spec = CONTEXT_SPEC
        sequence_spec = dict(SEQUENCE_SPEC) if keypoints else {
            "frames": SEQUENCE_SPEC["frames"]}
    context, sequence, _ = tf.io.parse_sequence_example(
        serialized, context_features=context_spec, sequence_features=sequence_spec)
    return {**context, **sequence}


def _gather_rows(values: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """values[b, indices[b, t]] for values [B, n] (or ragged [B, (n)]), indices [B, T]."""
    out = tf.gather(values, indices, batch_dims=1)
    return out.to_tensor() if isinstance(out, tf.RaggedTensor) else out


def _check_windows(sides: tf.Tensor, canvas: int) -> tf.Tensor:
    """Whether any of a batch's windows (sides [B]) is smaller than the canvas and must be
    padded; fails for a window larger than the canvas."""
    tf.debugging.assert_less_equal(
        sides, canvas, message=f"a frame's short side is larger than the canvas ({canvas} "
        "px) of augment_on='device'; pass canvas_size=<the records' largest short side>")
    return tf.reduce_any(sides < canvas)


def _to_canvas(frames: tf.Tensor, side: tf.Tensor, canvas: int) -> tf.Tensor:
    """Square windows [T, side, side, 3] -> [T, canvas, canvas, 3], padded at the bottom
    and right (side <= canvas)."""
    pad = canvas - side
    frames = tf.pad(frames, [[0, 0], [0, pad], [0, pad], [0, 0]])
    return tf.ensure_shape(frames, [None, canvas, canvas, 3])


def _train_clip(clip: dict, spec: _Spec, pad: bool = False) -> dict:
    """One clip of a batch, whose draw is made: decode its sampled JPEGs (only the crop,
    or with augment_on="device" only the square window holding it, padded to the canvas
    if `pad`) and augment them (or leave that to `augment.device_augment`)."""
    encoded = clip["encoded"]
    if spec.augment_on == "device":
        window = clip["window"]
        frames = _decode(encoded, spec.num_frames, window)
        if pad:
            frames = _to_canvas(frames, window[2], spec.canvas)
        out = {"frames": tf.ensure_shape(frames, [spec.num_frames, spec.canvas, spec.canvas,
                                                  3])}
    else:
        cropped = _decode(encoded, spec.num_frames, clip["crop_box"])
        out = {"frames": augment.apply_train_augmentation(cropped, clip, spec.image_size,
                                                          spec.color_jitter)}
    if spec.heatmap_size is not None:
        people = sampling.people_keypoints(clip["keypoints"])
        out["heatmaps"] = heatmaps.keypoint_heatmaps(
            people.to_tensor(shape=[spec.num_frames, None, NUM_JOINTS, 3]), clip["crop_box"],
            clip["flip"], clip["width"], spec.heatmap_size, spec.heatmap_shape)
    return out


def _clip_signature(spec: _Spec) -> dict:
    """What `_train_clip` returns, as TensorSpecs (for `tf.map_fn`)."""
    t = spec.num_frames
    if spec.augment_on == "device":
        out = {"frames": tf.TensorSpec([t, spec.canvas, spec.canvas, 3], tf.uint8)}
    else:
        out = {"frames": tf.TensorSpec([t, spec.image_size, spec.image_size, 3], tf.float32)}
    if spec.heatmap_size is not None:
        out["heatmaps"] = tf.TensorSpec([t, *spec.heatmap_size, NUM_JOINTS], tf.float32)
    return out


def _train_batch(index: tf.Tensor, batch: Tuple[tf.Tensor, tf.Tensor], spec: _Spec):
    """The `index`-th batch of (shard, serialized) pairs -> a training element.

    Parsing, frame sampling, the draws and (with indexes) reading the sampled JPEGs are
    done for the whole batch at once; decoding and augmenting, per clip in `tf.map_fn`
    (a few ops per clip: each op costs microseconds however small its work).
    """
    shards, serialized = batch
    keypoints = spec.heatmap_size is not None
    records = _parse_batch(serialized, spec.indexed, keypoints)
    t = spec.num_frames
    u = batch_uniforms(spec.seed, index, tf.shape(serialized)[0], t, spec.pipeline_id)
    indices = sampling.segment_indices_from_uniforms(records["num_frames"], u[:, :t])
    if spec.indexed:
        encoded = frame_index.read_frame_batch(
            shards, _gather_rows(records["frame_offsets"], indices),
            _gather_rows(records["frame_lengths"], indices))
    else:
        encoded = _gather_rows(records["frames"], indices)
    # The JPEG headers give the frame sizes without decoding anything; the draws are
    # then made for the whole batch at once.
    shapes = tf.map_fn(tf.io.extract_jpeg_shape, encoded[:, 0],
                       fn_output_signature=tf.TensorSpec([3], tf.int32))
    height, width = shapes[:, 0], shapes[:, 1]
    draw = augment.draw_from_uniforms(height, width, u[:, t:], spec.scales, spec.max_distort)
    if not spec.flip:  # for classes that a mirror image changes (digits, text, left/right)
        draw["flip"] = tf.zeros_like(draw["flip"])
    # Only what `_train_clip` reads is passed to it (tf.map_fn unstacks every input).
    clips = {"encoded": encoded}
    extra = {}
    if spec.augment_on == "cpu":
        clips.update(crop_box=draw["crop_box"], flip=draw["flip"])
        if spec.color_jitter:
            clips["color"] = draw["color"]
    else:
        clips["window"] = augment.crop_window(height, width, draw["crop_box"])
        extra["boxes"] = augment.canvas_box(draw["crop_box"], clips["window"], spec.canvas,
                                            draw["flip"])
        if spec.color_jitter:
            extra["color"] = draw["color"]
    if keypoints:
        clips.update(crop_box=draw["crop_box"], flip=draw["flip"], width=width,
                     keypoints=tf.gather(records["keypoints"], indices, batch_dims=1))

    def decode_clips(pad: bool = False):
        return tf.map_fn(lambda clip: _train_clip(clip, spec, pad), clips,
                         fn_output_signature=_clip_signature(spec))
    if spec.augment_on == "device":
        # Frames with a short side below the canvas are padded; checked once per batch.
        out = tf.cond(_check_windows(clips["window"][:, 2], spec.canvas),
                      lambda: decode_clips(pad=True), decode_clips)
    else:
        out = decode_clips()
    out.update(extra)
    if spec.image_mode:
        out = {key: value[:, 0] if value.shape.rank > 2 else value
               for key, value in out.items()}
    label = _label(records, spec.multi_label)
    target = label if not keypoints else {"logits": label,
                                          "pose_heatmaps": out.pop("heatmaps")}
    inputs = out if spec.augment_on == "device" else out["frames"]
    return inputs, target


def _records(shard: tf.Tensor, indexed: bool) -> tf.data.Dataset:
    """One shard's (shard, serialized record or index entry) pairs."""
    if indexed:
        records = tf.data.TFRecordDataset(tf.strings.join([shard, frame_index.INDEX_SUFFIX]))
    else:
        records = tf.data.TFRecordDataset(shard)
    return records.map(lambda r: (shard, r))


def _read(files: Sequence[str], seed: Optional[int], cycle_length: int, repeat: bool,
          indexed: bool) -> tf.data.Dataset:
    """Files -> (shard, serialized) pairs, shuffled across shards when `seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices(list(files))
    if seed is not None:
        # File order first: records of one shard are neighbours, so a record-level buffer
        # alone would mix only a few shards.
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # Several shards read at once, round-robin; deterministic so the seed fixes the order.
    return ds.interleave(lambda shard: _records(shard, indexed),
                         cycle_length=min(cycle_length, len(files)),
                         block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True)


def _index_in_memory(files: Sequence[str], index_in_memory: Optional[bool]) -> bool:
    """Whether training holds the frame indexes in memory: asked for, or (None) when all
    of them together take at most INDEX_IN_MEMORY_BYTES."""
    if index_in_memory is not None:
        return bool(index_in_memory)
    size = sum(tf.io.gfile.stat(frame_index.index_path(f)).length for f in files)
    return size <= INDEX_IN_MEMORY_BYTES


def _read_index_in_memory(files: Sequence[str], seed: Optional[int],
                          repeat: bool) -> tf.data.Dataset:
    """Every index entry of `files`, loaded now: (shard, entry) pairs, in a new uniformly
    random order each epoch when `seed` is given (a shuffle of the whole dataset, which a
    stream of records can only approximate)."""
    shards, entries = [], []
    for shard in files:
        for chunk in tf.data.TFRecordDataset(frame_index.index_path(shard)).batch(4096):
            chunk = chunk.numpy().tolist()
            entries += chunk
            shards += [shard] * len(chunk)
    if not entries:
        raise _no_records(files)
    ds = tf.data.Dataset.from_tensor_slices((shards, entries))
    if seed is not None:
        ds = ds.shuffle(len(entries), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # The per-stage maps are written apart for reading; fusing them saves their overhead.
    options.experimental_optimization.map_fusion = True
    options.experimental_optimization.map_parallelization = True
    # Parallelism comes from the parallel maps (one clip per thread); an op that splits its
    # own work over threads (resize) only adds hand-offs and spinning on top.
    options.threading.max_intra_op_parallelism = 1
    return options


def _heatmap_size(image_mode: bool, num_segments: int, with_keypoints: bool,
                  heatmap_size: Union[int, Tuple[int, int], None]
                  ) -> Optional[Tuple[int, int]]:
    """Checks the mode arguments; the (h, w) of the heatmap targets, or None without them."""
    if image_mode and num_segments != 1:
        raise ValueError(f"image_mode yields single frames; got num_segments={num_segments}")
    if not with_keypoints:
        return None
    if heatmap_size is None:
        raise ValueError("with_keypoints=True needs heatmap_size, the model's feature-map "
                         "size (e.g. 15 for ResNet-101 at 450, 8 for 'tiny' at 64)")
    size = (heatmap_size,) * 2 if isinstance(heatmap_size, int) else heatmap_size
    return tuple(int(s) for s in size)


def train_dataset(records: Records, *, num_segments: int, image_size: int, batch_size: int,
                  seed: int, image_mode: bool = False, with_keypoints: bool = False,
                  heatmap_size: Union[int, Tuple[int, int], None] = None,
                  heatmap_shape: str = "disk", shuffle_buffer: int = 256,
                  scales: Sequence[float] = augment.MULTISCALE_SCALES, max_distort: int = 1,
                  color_jitter: bool = False, flip: bool = True,
                  multi_label: Optional[bool] = None,
                  repeat: bool = True, drop_remainder: bool = True, cycle_length: int = 8,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  use_index: Optional[bool] = None, skip_batches: int = 0,
                  augment_on: str = "cpu", canvas_size: Optional[int] = None,
                  index_in_memory: Optional[bool] = None) -> tf.data.Dataset:
    """The training pipeline (module docstring: element structure and determinism).

    Args:
        records: a glob pattern, a file or a list of files (`split_record_files` helps).
        num_segments: TSN segments, one frame sampled in each (1 for image_mode).
        image_size: side of the square model input.
        batch_size: per-dataset batch (the global batch under `experimental_distribute_dataset`,
            the per-replica one under `distribute_datasets_from_function`).
        seed: fixes file order, record order, frame sampling and augmentation.
        image_mode: yield images [B, S, S, 3] instead of clips (needs num_segments=1).
        with_keypoints: add pose heatmap targets (the records must carry keypoints).
        heatmap_size: the model's feature-map size (int or (h, w)); needed with keypoints.
        heatmap_shape: "disk" (the paper) or "gaussian".
        shuffle_buffer: records held for shuffling when they are streamed (without frame
            indexes a record is a whole clip of JPEGs, about 2 MB for 3 s of 256-px video;
            with them, an index entry of about 1 kB).
        scales, max_distort: the multi-scale crop (`augment.paper_image_scales(450, 480)` and
            max_distort=0 give the paper's image recipe).
        color_jitter: brightness/contrast/saturation/hue jitter, one draw per clip. Off by
            default: neither the paper nor TSN used it, and it costs about as much CPU as
            decoding the sampled crops (benchmarks/input_pipeline.py).
        flip: random horizontal flips (off for classes a mirror image changes, e.g. digits).
        multi_label: labels from the float `labels` feature; None looks at the first record.
        repeat: loop forever (reshuffling each epoch); False gives one epoch.
        drop_remainder: keep every batch full (static shapes for distributed training).
        cycle_length: shards read concurrently.
        input_context: from `strategy.distribute_datasets_from_function`; shards the files.
        use_index: read only the sampled frames through the shards' frame indexes
            (`frame_index`, written by prepare); None: when every shard has one. The
            batches are the same either way.
        skip_batches: start with the batch that would come after this many (resuming a
            run): the same batches as `.skip(skip_batches)`, but the skipped records are
            dropped before their frames are read or decoded.
        augment_on: "cpu": the elements are model-ready frames. "device": the pipeline
            decodes only a square window holding each clip's crop and yields
            {"frames": uint8 windows on a canvas, "boxes", ["color"]} in place of the
            frames; `augment.device_augment` finishes the crop, resize, flip (and colour
            jitter) on the accelerator, in the training step. Same draws as "cpu"; the
            resampling differs by under half a pixel (corner-aligned).
        canvas_size: the window canvas side for augment_on="device" (frames with a smaller
            short side are padded); default: prepare's short side from the manifest next
            to the shards, else the first record's short side.
        index_in_memory: hold the frame indexes in memory (with use of the index): the
            records are then shuffled as a whole each epoch (`shuffle_buffer` and
            `cycle_length` unused) and read without a per-record file stage. None: when
            the indexes take at most INDEX_IN_MEMORY_BYTES (64 MiB: about 60,000 clips).
    """
    size = _heatmap_size(image_mode, num_segments, with_keypoints, heatmap_size)
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    files = list_record_files(records)
    indexed = _use_index(files, use_index)
    first = _first_record(files, indexed)
    if augment_on == "device" and canvas_size is None:
        canvas_size = _default_canvas(files, first)
    pipeline_id = 0
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipeline_id = input_context.input_pipeline_id  # its own draws for each host
    spec = _Spec(num_segments, image_size,
                 _is_multi_label(first) if multi_label is None else multi_label,
                 image_mode, seed, tuple(scales), max_distort, color_jitter, size,
                 heatmap_shape, flip, indexed, augment_on, int(canvas_size or 0), pipeline_id)
    files = pipeline_files(files, input_context)
    if indexed and _index_in_memory(files, index_in_memory):
        # Small enough to hold: shuffled whole, and no per-record reading.
        ds = _read_index_in_memory(files, seed, repeat)
    else:
        ds = _read(files, seed, cycle_length, repeat, indexed)
        # Records of the interleaved shards are mixed further in a buffer (of ~1 kB
        # index entries, or of whole clips without indexes).
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Batches are formed before anything is parsed: every later step works on a whole
    # batch, which costs far fewer op launches per clip than one clip at a time.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Each batch's position in the (seeded) stream seeds its sampling and augmentation, so
    # the draws do not depend on thread timing, and a new epoch gets new draws.
    ds = ds.enumerate()
    if skip_batches:
        # After enumerate: the batches that follow keep their positions, hence their draws.
        ds = ds.skip(skip_batches)
    # Parse, sample frames, read and decode only the sampled JPEGs (only their crop), and
    # augment them; the same crop, flip and colours for all frames of a clip.
    ds = ds.map(lambda i, b: _train_batch(i, b, spec), AUTOTUNE, deterministic=True)
    # Overlap input work with the training step.
    return ds.prefetch(AUTOTUNE).with_options(_options())


def _default_canvas(files: Sequence[str], first: dict) -> int:
    """The canvas side for augment_on="device": the short side `prepare` stored frames at
    (the manifest next to the shards says), else the first record's."""
    manifest = read_manifest(os.path.dirname(files[0])) or {}
    short_side = manifest.get("settings", {}).get("short_side")
    if short_side:
        return int(short_side)
    side = int(min(first["height"], first["width"]))
    if side < 1:
        raise ValueError(f"{files[0]}: its first record has no frame size; pass "
                         "canvas_size (the records' largest short side) for "
                         "augment_on='device'")
    return side


def _eval_example(item: Tuple[tf.Tensor, tf.Tensor], spec: _Spec, resize_short: int,
                  views: str):
    """One record -> (views [V, T, S, S, 3], label, video_id): uniform frames, fixed crops."""
    record = _parse(item, spec.indexed)
    indices = sampling.uniform_indices(record["num_frames"], spec.num_frames)
    frames = _decode(_encoded_frames(item, record, indices, spec.indexed), spec.num_frames)
    crops = augment.eval_views(frames, spec.image_size, resize_short, views)
    return crops, _label(record, spec.multi_label), record["video_id"]


def _fold_views(crops: tf.Tensor, label: tf.Tensor, video_id: tf.Tensor, per_video: int,
                frame_shape: Sequence[int]):
    """[B, V, T, ...] -> [B * per_video, ...]; labels and ids repeated to match, so the
    views (and frames) of one video stay next to each other."""
    frames = tf.reshape(crops, [-1, *frame_shape])
    return (frames, tf.repeat(label, per_video, axis=0),
            tf.repeat(video_id, per_video, axis=0))


def eval_dataset(records: Records, *, image_size: int, batch_size: int,
                 test_frames: int = sampling.PAPER_TEST_FRAMES, views: str = "center",
                 resize_short: Optional[int] = None, image_mode: bool = False,
                 fold_frames: bool = False, multi_label: Optional[bool] = None,
                 cycle_length: int = 8,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 use_index: Optional[bool] = None) -> tf.data.Dataset:
    """The evaluation pipeline: every record once, in a fixed order (module docstring).

    Args:
        records: a glob pattern, a file or a list of files.
        image_size: side of the square centre crop (the model input).
        batch_size: videos per batch (the last batch may be smaller); a batch holds
            batch_size * num_views(views) clips, times test_frames with fold_frames.
        test_frames: uniformly spaced frames per video (25: the paper's protocol).
        views: one of `augment.VIEWS`: "center", "center_flip", "three_crop", ...
        resize_short: short side before cropping; default image_size * 256 / 224 (TSN's
            256 -> 224; the paper's images use resize_short=480, image_size=450).
        image_mode: images (1-frame records, test_frames=1): yields [B * V, S, S, 3].
        fold_frames: fold the frames into the batch as well, for a single-frame model.
        multi_label: as in `train_dataset`.
        cycle_length: shards read concurrently.
        input_context: from `distribute_datasets_from_function`; shards the files.
        use_index: as in `train_dataset`.
    """
    if image_mode:
        test_frames, fold_frames = 1, True
    if resize_short is None:
        resize_short = int(round(image_size * 256 / 224))
    files = list_record_files(records)
    indexed = _use_index(files, use_index)
    if multi_label is None:
        multi_label = _is_multi_label(_first_record(files, indexed))
    spec = _Spec(test_frames, image_size, multi_label, image_mode, indexed=indexed)
    ds = _read(pipeline_files(files, input_context), None, cycle_length, repeat=False,
               indexed=indexed)
    ds = ds.map(lambda *r: _eval_example(r, spec, resize_short, views), AUTOTUNE,
                deterministic=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    # Views (and, if asked, frames) become batch rows, as a model sees them; the model's
    # logits are averaged back per video with `metrics.average_per_video`.
    frame_shape = [image_size, image_size, 3]
    per_video = augment.num_views(views)
    if fold_frames:
        per_video *= test_frames
    else:
        frame_shape = [test_frames, *frame_shape]
    ds = ds.map(lambda c, y, v: _fold_views(c, y, v, per_video, frame_shape), AUTOTUNE,
                deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_options())
