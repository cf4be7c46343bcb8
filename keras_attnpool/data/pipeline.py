"""tf.data input pipelines over prepared records (`record_format`): training and evaluation.

Stages, in order: list files -> shuffle files -> interleave read -> shuffle records -> parse
-> sample frame indices on the ENCODED frames -> decode only the sampled JPEGs -> augment ->
batch -> prefetch. Decoding is the expensive step, so everything that can be decided before
it (which frames, which crop) is decided first, on strings and headers.

Where the shards have frame indexes (`frame_index`; `prepare` writes them), "read" and
"parse" work on the small index entries and only the sampled JPEGs are read from the
shards; otherwise whole records are read and the sampled JPEGs picked from them. Both give
the same batches; the index saves reading, checksumming and copying the ~97 frames of a
100-frame clip that a 3-segment sample does not use.

Training elements (batched):
    video:  frames float32 [B, T, S, S, 3] in [0, 255], label
    images (image_mode=True, num_segments=1): image float32 [B, S, S, 3], label
    label:  int32 [B] (single-label), or float32 [B, K] with the record's multi-label values
            passed through unchanged (HICO: 1, -1, 0, NaN)
    with_keypoints=True: (frames, {"logits": label, "pose_heatmaps": float32 [B, (T,) h, w,
            16]}), the targets of `build_action_model(head="pose_attention")`.
Evaluation elements: (frames [B * V, T, S, S, 3], label [B * V], video_id string [B * V]),
    the V views of each video folded into the batch next to each other; with
    `fold_frames=True` (or image_mode) frames are folded too: ([B * V * T, S, S, 3], ...).
    Average the model's logits per video with `keras_attnpool.metrics.average_per_video`.

Determinism: the file order, record order, frame indices and augmentation all come from
`seed` (each record's draws from the seed and its position in the stream), so two datasets
built with the same arguments yield the same batches.
"""

import dataclasses
import json
import os
import re
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from keras_attnpool.data import augment, frame_index, heatmaps, sampling
from keras_attnpool.data.record_format import NUM_JOINTS, parse_example

AUTOTUNE = tf.data.AUTOTUNE
Records = Union[str, Sequence[str]]


def list_record_files(records: Records) -> list:
    """Record files from a glob pattern, a file, or a list of files (sorted, checked)."""
    patterns = [records] if isinstance(records, (str, os.PathLike)) else list(records)
    if not patterns:
        raise ValueError("no record files given; run training/prepare.py first")
    files = []
    for pattern in map(os.fspath, patterns):
        # An existing file is taken as named: names may hold glob characters ('[', '?').
        matches = [pattern] if tf.io.gfile.exists(pattern) else sorted(
            tf.io.gfile.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"{pattern}: no record files match; run "
                                    "training/prepare.py first or check the path")
        files += matches
    return files


def split_record_files(directory: str, split: str) -> list:
    """The shards of `split` in a prepared directory: from manifest.json when present."""
    manifest = os.path.join(directory, "manifest.json")
    if tf.io.gfile.exists(manifest):
        with tf.io.gfile.GFile(manifest) as f:
            shards = json.load(f).get("shards", {})
        if split in shards:
            return list_record_files([os.path.join(directory, name)
                                      for name in shards[split]])
    return list_record_files(os.path.join(directory, f"{split}-*-of-*.tfrecord"))


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


def _is_multi_label(files: Sequence[str], indexed: bool) -> bool:
    """Peeks at the first record: multi-label datasets store a non-empty `labels`."""
    for item in _records(tf.constant(files[0]), indexed).take(1):
        return int(tf.size(_parse(item, indexed)["labels"])) > 0
    raise ValueError(f"{files[0]} ... {files[-1]}: no records in these files; rerun "
                     "training/prepare.py")


def _label(record: dict, multi_label: bool) -> tf.Tensor:
    if multi_label:
        return record["labels"]
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


def clip_seeds(seed: int, index: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(sampling seed, augmentation seed) of the `index`-th record of a training stream."""
    # The index's dtype picks the seed's dtype (and so the draws): always int64.
    clip = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, 0], tf.int64), tf.cast(index, tf.int64))
    sample_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(clip, 2))
    return sample_seed, augment_seed


def _sample_train(index: tf.Tensor, item: Tuple[tf.Tensor, tf.Tensor], spec: _Spec) -> dict:
    """Parse, pick the frames (TSN) and draw the clip's augmentation, all before decoding;
    only the picked frames' JPEGs are read (with an index) or kept (without)."""
    sample_seed, augment_seed = clip_seeds(spec.seed, index)
    record = _parse(item, spec.indexed, keypoints=spec.heatmap_size is not None)
    indices = sampling.segment_indices(record["num_frames"], spec.num_frames, sample_seed)
    encoded = _encoded_frames(item, record, indices, spec.indexed)
    # The JPEG header gives the frame size without decoding anything.
    shape = tf.io.extract_jpeg_shape(encoded[0])
    draw = augment.draw_train_augmentation(shape[0], shape[1], augment_seed, spec.scales,
                                           spec.max_distort)
    if not spec.flip:  # for classes that a mirror image changes (digits, text, left/right)
        draw["flip"] = tf.constant(False)
    out = {"encoded": encoded, "label": _label(record, spec.multi_label), "width": shape[1],
           **draw}
    if spec.heatmap_size is not None:
        people = sampling.gather_keypoints(record["keypoints"], indices)
        out["keypoints"] = people.to_tensor(shape=[spec.num_frames, None, NUM_JOINTS, 3])
    return out


def _decode_train(example: dict, spec: _Spec) -> dict:
    example = dict(example)
    example["frames"] = _decode(example.pop("encoded"), spec.num_frames, example["crop_box"])
    return example


def _augment_train(example: dict, spec: _Spec):
    frames = augment.apply_train_augmentation(example["frames"], example, spec.image_size,
                                              spec.color_jitter)
    frames = frames[0] if spec.image_mode else frames
    if spec.heatmap_size is None:
        return frames, example["label"]
    maps = heatmaps.keypoint_heatmaps(example["keypoints"], example["crop_box"],
                                      example["flip"], example["width"], spec.heatmap_size,
                                      spec.heatmap_shape)
    maps = maps[0] if spec.image_mode else maps
    return frames, {"logits": example["label"], "pose_heatmaps": maps}


def _records(shard: tf.Tensor, indexed: bool) -> tf.data.Dataset:
    """One shard's (shard, serialized record or index entry) pairs."""
    if indexed:
        records = tf.data.TFRecordDataset(tf.strings.join([shard, frame_index.INDEX_SUFFIX]))
    else:
        records = tf.data.TFRecordDataset(shard)
    return records.map(lambda r: (shard, r))


def _read(files: Sequence[str], seed: Optional[int], cycle_length: int,
          input_context: Optional[tf.distribute.InputContext], repeat: bool,
          indexed: bool) -> tf.data.Dataset:
    """Files -> (shard, serialized) pairs, shuffled across shards when `seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices(list(files))
    if input_context is not None and input_context.num_input_pipelines > 1:
        # One disjoint subset of the files per input pipeline (host) when the strategy
        # calls us once per pipeline (`distribute_datasets_from_function`).
        if len(files) < input_context.num_input_pipelines:
            raise ValueError(f"{len(files)} record files for {input_context.num_input_pipelines}"
                             " input pipelines; prepare with more shards")
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
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


def input_error_message(error: BaseException) -> Optional[str]:
    """One line for an error raised while a pipeline read its records (a
    `tf.errors.OpError` from a dataset iterator: a stale frame index, a corrupt shard), for
    the command-line tools to print instead of TensorFlow's traceback; None for any other
    error."""
    if not isinstance(error, tf.errors.OpError) or "Iterator" not in str(error):
        return None
    text = str(error)
    # A message of ours, raised in a tf.numpy_function (frame_index.read_frames).
    ours = re.findall(r"^(?:ValueError|OSError): (.+)$", text, flags=re.M)
    if ours:
        return ours[-1].strip()
    core = re.sub(r"\{\{[^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\]", " ", text, flags=re.S)
    core = re.sub(r"\s+name:\s*$", "", " ".join(core.split())).rstrip(" .")
    return (f"reading the prepared records failed ({type(error).__name__}: {core}); check "
            "the record files, or prepare them again (training/prepare.py --overwrite)")


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
                  use_index: Optional[bool] = None, skip_batches: int = 0
                  ) -> tf.data.Dataset:
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
        shuffle_buffer: records held for shuffling (without frame indexes a record is a
            whole clip of JPEGs, about 2 MB for 3 s of 256-px video; with them, an index
            entry of about 1 kB).
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
    """
    size = _heatmap_size(image_mode, num_segments, with_keypoints, heatmap_size)
    files = list_record_files(records)
    indexed = _use_index(files, use_index)
    spec = _Spec(num_segments, image_size,
                 _is_multi_label(files, indexed) if multi_label is None else multi_label,
                 image_mode, seed, tuple(scales), max_distort, color_jitter, size,
                 heatmap_shape, flip, indexed)
    ds = _read(files, seed, cycle_length, input_context, repeat, indexed)
    # Records of the interleaved shards are mixed further in a buffer of whole clips.
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Each record's position in the (seeded) stream seeds its sampling and augmentation, so
    # the draws do not depend on thread timing, and a new epoch gets new draws.
    ds = ds.enumerate()
    if skip_batches:
        # After enumerate: the records that follow keep their positions, hence their draws.
        ds = ds.skip(skip_batches * batch_size)
    # Parse, choose frames and crop on the still-encoded record: cheap, strings only.
    ds = ds.map(lambda i, r: _sample_train(i, r, spec), AUTOTUNE, deterministic=True)
    # The costly step: decode only the sampled JPEGs, and only their crop window.
    ds = ds.map(lambda e: _decode_train(e, spec), AUTOTUNE, deterministic=True)
    # Resize, flip and colour jitter (and heatmap targets), the same for all frames of a clip.
    ds = ds.map(lambda e: _augment_train(e, spec), AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
                  deterministic=True)
    # Overlap input work with the training step.
    return ds.prefetch(AUTOTUNE).with_options(_options())


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
    spec = _Spec(test_frames, image_size,
                 _is_multi_label(files, indexed) if multi_label is None else multi_label,
                 image_mode, indexed=indexed)
    ds = _read(files, None, cycle_length, input_context, repeat=False, indexed=indexed)
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
