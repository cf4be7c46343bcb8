"""tf.data input pipelines over prepared records (`records.schema`): training and evaluation.

Stages, in order: list files -> shuffle files -> interleave read -> shuffle records -> parse
-> sample frame indices on the ENCODED frames -> decode only the sampled JPEGs -> augment ->
batch -> prefetch. Decoding is the expensive step, so everything that can be decided before
it (which frames, which crop) is decided first, on strings and headers. The stages are
Model Garden's split: a reader (`sources`: files -> records, in either storage layout of
the shards, chosen once from the files), a decoder (`decode`) and a parser for training
(`train`: a batch at a time) and for evaluation (`eval`: a record at a time). Both storage
layouts give the same batches.

Training elements (batched):
    video:  frames float32 [B, T, S, S, 3] in [0, 255], label
    images (image_mode=True, num_segments=1): image float32 [B, S, S, 3], label
    label:  int32 [B] (single-label), or float32 [B, K] with the record's multi-label values
            passed through unchanged (HICO: 1, -1, 0, NaN)
    with_keypoints=True: (frames, {"logits": label, "pose_heatmaps": float32 [B, (T,) h, w,
            16]}), the targets of `build_action_model(head="pose_attention")`.
    augment_on="device": ({"frames": uint8 [B, (T,) C, C, 3], "boxes": float32 [B, 4],
            "color": float32 [B, 4] with color_jitter}, target): each clip's square window
            (side: the frames' short side) at the top-left of a C x C canvas, of which only
            `augment.resampled_region` (the crop, a margin, and on the left up to the
            JPEG's block column) is decoded (the rest is 0), and the crop boxes on the
            canvas; `augment.device_augment(inputs, S)` in the training step makes the
            float32 frames above from them, exactly as from whole windows.
Evaluation elements: (frames [B * V, T, S, S, 3], label [B * V], video_id string [B * V]),
    the V views of each video folded into the batch next to each other; with
    `fold_frames=True` (or image_mode) frames are folded too: ([B * V * T, S, S, 3], ...).
    Average the model's logits per video with `keras_attnpool.metrics.average_per_video`.

Determinism: the file order, record order, frame indices and augmentation all come from
`seed` (each training batch's draws from the seed and the batch's position in the stream,
`train.batch_uniforms`), so two datasets built with the same arguments yield the same
batches.
"""

import os
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from keras_attnpool.data.input import augment, sampling
from keras_attnpool.data.input.decode import is_multi_label
from keras_attnpool.data.input.eval import EvalSpec, eval_example, fold_views
from keras_attnpool.data.input.files import (
    Records, list_record_files, read_manifest, split_record_files)
from keras_attnpool.data.input.sources import record_source
from keras_attnpool.data.input.train import TrainSpec, train_batch

AUTOTUNE = tf.data.AUTOTUNE
AUGMENT_ON = ("cpu", "device")
# The entry points: a prepared split's files, and the two pipelines over them.
__all__ = ["eval_dataset", "list_clips", "split_record_files", "train_dataset"]


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # The per-stage maps are written apart for reading; fusing them saves their overhead.
    options.experimental_optimization.map_fusion = True
    options.experimental_optimization.map_parallelization = True
    # Parallelism comes from the parallel maps (one clip per thread); an op that splits its
    # own work over threads (resize) only adds hand-offs and spinning on top.
    options.threading.max_intra_op_parallelism = 1
    # Under a distribution strategy, each worker keeps its share of the batches. The
    # automatic choice would shard by file, taking the shards that `indexed.read_frames`
    # reads frames from for a file list, and drop the shuffles on the way.
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
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
                  index_in_memory: Optional[bool] = None,
                  data_service: Optional[str] = None,
                  leave_out: Optional[Sequence[str]] = None) -> tf.data.Dataset:
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
            indexes a record is a whole clip of JPEGs; with them, a small index entry).
        scales, max_distort: the multi-scale crop (`augment.paper_image_scales(450, 480)` and
            max_distort=0 give the paper's image recipe).
        color_jitter: brightness/contrast/saturation/hue jitter, one draw per clip. Off by
            default: neither the paper nor TSN used it, and it costs CPU time of the order
            of decoding the sampled crops (benchmarks/input_pipeline.py measures it).
        flip: random horizontal flips (off for classes a mirror image changes, e.g. digits).
        multi_label: labels from the float `labels` feature; None looks at the first record.
        repeat: loop forever (reshuffling each epoch); False gives one epoch.
        drop_remainder: keep every batch full (static shapes for distributed training).
        cycle_length: shards read concurrently.
        input_context: from `strategy.distribute_datasets_from_function`; shards the files.
        use_index: read only the sampled frames through the shards' frame indexes
            (`records.frame_index`, written by prepare); None: when every shard has one. The
            batches are the same either way.
        skip_batches: start with the batch that would come after this many (resuming a
            run): the same batches as `.skip(skip_batches)`, but the skipped records are
            dropped before their frames are read or decoded.
        augment_on: "cpu": the elements are model-ready frames. "device": the pipeline
            decodes only each clip's crop and a margin, in its square window, and yields
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
            the indexes take at most `sources.INDEX_IN_MEMORY_BYTES` (64 MiB).
        data_service: a tf.data service dispatcher ("grpc://host:port"): the pipeline up
            to the finished batches runs on its workers (which need TensorFlow and the
            records' files, not this package), in its "distributed epoch" mode, which
            hands each source element (an index entry, or a shard file) to one worker:
            every clip still comes once per epoch. The batches are then not
            deterministic (workers race), and each worker numbers its own batches, so
            the draws fold in the batch's clips. `skip_batches` cannot position such a
            stream; it starts a new one instead (its order and draws seeded by `seed`
            and `skip_batches`), so a resumed run does not repeat the first epoch.
        leave_out: video ids of records to train without (a slice held out for
            evaluation, `eval_dataset(only=...)`); the other records' batches are formed
            as if the left-out ones were not in the files.
    """
    size = _heatmap_size(image_mode, num_segments, with_keypoints, heatmap_size)
    if data_service and skip_batches:
        seed, skip_batches = (seed * 1_000_003 + skip_batches) % 2**31, 0
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    files = list_record_files(records)
    source = record_source(files, use_index, index_in_memory).selected(leave_out, keep=False)
    first = source.first_record()
    if augment_on == "device" and canvas_size is None:
        canvas_size = _default_canvas(files, first)
    pipeline_id = 0
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipeline_id = input_context.input_pipeline_id  # its own draws for each host
    spec = TrainSpec(num_segments, image_size,
                     is_multi_label(first) if multi_label is None else multi_label,
                     image_mode, seed, tuple(scales), max_distort, color_jitter, size,
                     heatmap_shape, flip, augment_on, int(canvas_size or 0), pipeline_id,
                     salt_with_clips=bool(data_service))
    source = source.for_pipeline(input_context)
    # Shuffled across shards, then within a buffer (of small index entries, or of whole
    # clips without indexes), or as a whole when the indexes are held in memory.
    ds = source.training_records(seed, cycle_length, shuffle_buffer, repeat)
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
    ds = ds.map(lambda i, b: train_batch(i, b, spec, source), AUTOTUNE, deterministic=True)
    if data_service:
        ds = ds.with_options(_options()).apply(tf.data.experimental.service.distribute(
            tf.data.experimental.service.ShardingPolicy.DYNAMIC, data_service))
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


def eval_dataset(records: Records, *, image_size: int, batch_size: int,
                 test_frames: int = sampling.PAPER_TEST_FRAMES, views: str = "center",
                 resize_short: Optional[int] = None, image_mode: bool = False,
                 fold_frames: bool = False, multi_label: Optional[bool] = None,
                 cycle_length: int = 8,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 use_index: Optional[bool] = None, only: Optional[Sequence[str]] = None,
                 limit: Optional[int] = None) -> tf.data.Dataset:
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
        only: video ids: evaluate only their records (a held-out slice of train).
        limit: evaluate only the first `limit` records (of the fixed order).
    """
    if image_mode:
        test_frames, fold_frames = 1, True
    if resize_short is None:
        resize_short = int(round(image_size * 256 / 224))
    source = record_source(list_record_files(records), use_index).selected(only, keep=True)
    if multi_label is None:
        multi_label = is_multi_label(source.first_record())
    spec = EvalSpec(test_frames, image_size, resize_short, views, multi_label)
    ds = source.for_pipeline(input_context).stream(None, cycle_length, repeat=False)
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.map(lambda *item: eval_example(item, spec, source), AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    # Views (and, if asked, frames) become batch rows, as a model sees them; the model's
    # logits are averaged back per video with `metrics.average_per_video`.
    frame_shape = [image_size, image_size, 3]
    per_video = augment.num_views(views)
    if fold_frames:
        per_video *= test_frames
    else:
        frame_shape = [test_frames, *frame_shape]
    ds = ds.map(lambda c, y, v: fold_views(c, y, v, per_video, frame_shape), AUTOTUNE,
                deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_options())


def list_clips(records: Records) -> list:
    """(video_id, label) of every record in `records`, in file order (label -1 for
    multi-label records); only the ids and labels are parsed."""
    files = list_record_files(records)
    return record_source(files).clips()
