"""Input pipeline speed: prepared records against the decode-only limit and PyAV on the fly.

    python benchmarks/input_pipeline.py               # ~3 min on 2 quiet CPU cores, ~10 when shared
    python benchmarks/input_pipeline.py --videos=8 --repeats=3 --batches=15   # ~1 min

Writes HMDB51-like clips with PyAV into a temp dir: 320x240 mpeg4 .avi, 3.5 s at 30 fps,
twice: with FFmpeg's default GOP of 12 frames (a keyframe every 0.4 s: seeking is cheap, the
most favourable case for on-the-fly decoding) and with a GOP of 300 (XviD's default maximum
keyframe interval; HMDB51's .avi files are XviD/DivX, so a 3.5 s clip usually has one
keyframe). Prepared records hold JPEG frames (short side 256, quality 90), with the frame
index that prepare writes beside each shard. Then, interleaved (every repeat runs every
method once, in a rotating order, each for at least --batches batches and one second),
medians reported:

  pipeline      `train_dataset(num_segments=3, image_size=224, batch_size=8)`: read the
                index entries, shuffle, TSN sampling, read the 3 sampled JPEGs, decode
                their crops, flip, resize, batch (the default recipe, the paper's and
                TSN's: no colour jitter).
  pipeline_dev  the same with `augment_on="device"` (what `fit.py` uses on a GPU): per clip
                only the square window holding the crop is decoded, batched as uint8 with
                the crop boxes; resize and flip are left to the training step
                (`augment.device_augment`, not timed here: on a GPU it is one
                `crop_and_resize` per batch).
  pipeline_cj   the same as pipeline with `color_jitter=True`.
  pipeline_whole  the same without the frame index: whole records (all ~105 JPEGs of a
                clip) are read and parsed, the sampled JPEGs picked from them.
  decode        the decode-only limit: `tf.io.decode_jpeg` of the same kind of sampled
                frames (3 per clip, gathered into memory beforehand), parallel map, batched.
  decode_augment  the same in-memory frames through the pipeline's own crop-decode, flip
                and resize ops (no reading, no sampling): the limit for any pipeline that
                augments on the CPU.
  pyav_gopN     on the fly: per clip, PyAV decodes the 3 TSN-sampled frames of the .avi
                (`_pyav_sampled`: from the nearest keyframe, no wasted seeks) in a parallel
                tf.data map over `tf.numpy_function`, then the pipeline's own crop / resize /
                flip ops, batched.
  pyav_dev_gopN the same, ending like pipeline_dev (square window and crop box, no resize).
  pool_gopN     PyAV sampled-frame decoding only (no augmentation) in 2 worker processes:
                an upper bound for any on-the-fly PyAV loader on this 2-core machine.
  pyav_seq      on the fly as toolkits commonly do it (MMAction2's PyAVDecode in its
                default "accurate" mode): decode from the start up to the last sampled
                frame, every decoded frame converted to RGB, keep the sampled ones; then
                the same ops as pyav_gopN. Its cost does not depend on the GOP (run on the
                GOP-12 files; given one RGB thread, which is faster than PyAV's default).
  pyav_dev_seq  pyav_seq ending like pipeline_dev.
  dev_aug_on_cpu  `augment.device_augment` of pipeline_dev batches run on this CPU (only
                its CPU time is meaningful: it is the cost a CPU-only run would pay).

Targets (issue 3): pipeline / decode >= 0.8; pipeline / pyav >= 3. Each pipeline is
compared with the on-the-fly loader that ends the same way (CPU or device augmentation).
(c), prepare's speed, is measured by `benchmarks/prepare_speed.py` (`measure_prepare`)
when that file exists.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data import augment, frame_index, pipeline, sampling  # noqa: E402
from keras_attnpool.data.record_format import (  # noqa: E402
    encode_example, shard_name, write_tfrecord)
from keras_attnpool.data.video import encode_video  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 30, 3.5
SHORT_SIDE, NUM_SEGMENTS, IMAGE_SIZE, BATCH = 256, 3, 224, 8


def _scene(rng: np.random.Generator, t: int, texture: np.ndarray) -> np.ndarray:
    """A textured background panning slowly with a moving block: compresses like video."""
    y0, x0 = (t // 2) % 64, t % 64
    frame = texture[y0:y0 + HEIGHT, x0:x0 + WIDTH].copy()
    cx = int(40 + (WIDTH - 120) * (t % FPS) / FPS)
    frame[90:170, cx:cx + 60] = (200, 60, 40)
    return frame


def write_video(path: str, seed: int, gop: int = 12) -> int:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (HEIGHT // 8 + 10, WIDTH // 8 + 10, 3), dtype=np.uint8)
    texture = tf.image.resize(coarse[None], [HEIGHT + 80, WIDTH + 80]).numpy()[0]
    texture = np.clip(texture + rng.normal(0, 6, texture.shape), 0, 255).astype(np.uint8)
    num_frames = int(SECONDS * FPS)
    return encode_video(path, (_scene(rng, t, texture) for t in range(num_frames)), FPS,
                        gop_size=gop)


def write_records(video_paths, out_dir: str, shards: int = 4) -> list:
    """Decodes every video once (PyAV), short side 256, JPEG q90, into `shards` files,
    each with its frame index."""
    files = [os.path.join(out_dir, shard_name("train", i, shards)) for i in range(shards)]
    records = [[] for _ in files]
    for i, path in enumerate(video_paths):
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        resized = tf.cast(tf.round(tf.image.resize(
            np.stack(frames), [SHORT_SIDE, SHORT_SIDE * WIDTH // HEIGHT])), tf.uint8)
        jpegs = [tf.io.encode_jpeg(f, quality=90).numpy() for f in resized]
        records[i % shards].append(encode_example(
            f"video{i}", jpegs, label=i % 51, fps=FPS,
            height=int(resized.shape[1]),
            width=int(resized.shape[2])))
    for path, shard_records in zip(files, records):
        write_tfrecord(path, shard_records)
        frame_index.write_index(path, shard_records)  # as prepare does
    return files


def _pyav_sampled(path: str, indices) -> np.ndarray:
    """Decodes the sampled frames of a video with the least decoding work PyAV allows.

    The packets are demuxed first (cheap: no decoding), which shows where the keyframes
    are; each sampled frame is then decoded from the last keyframe before it, or onwards
    from the frame decoded last when that is closer: a seek that costs nothing extra.
    Assumes one packet per frame in display order (no B-frames), as FFmpeg's mpeg4 writes.
    """
    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        # One thread per clip (decoder and RGB conversion): the maps decode clips in
        # parallel, and PyAV's automatic threading only adds hand-offs on top.
        stream.codec_context.thread_count = 1
        packets = [p for p in container.demux(stream) if p.size]
        keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
        codec, position, last = stream.codec_context, -1, None
        for target in indices:
            target = min(int(target), len(packets) - 1)
            keyframe = max(k for k in keyframes if k <= target)
            if not keyframe - 1 <= position <= target:
                codec.flush_buffers()  # jump: restart decoding at the keyframe
                position = keyframe - 1
            while position < target:
                position += 1
                for frame in codec.decode(packets[position]):
                    last = frame
            out.append(last.to_ndarray(format="rgb24", threads=1))
    return np.stack(out)


def _pyav_sequential(path: str, indices) -> np.ndarray:
    """Decodes from the first frame to the last sampled one, each frame to RGB."""
    wanted, out = [int(i) for i in indices], {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for position, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24", threads=1)
            if position in wanted:
                out[position] = rgb
            if position >= max(wanted):
                break
    last = out[max(out)]
    return np.stack([out.get(i, last) for i in wanted])


def _pyav_job(args):
    """One clip in a worker process; returns the CPU seconds it took there."""
    path, indices = args
    start = time.process_time()
    _pyav_sampled(path, indices)
    return time.process_time() - start


def pyav_dataset(video_paths, num_frames: int, seed: int = 0, decoder=_pyav_sampled,
                 device: bool = False) -> tf.data.Dataset:
    """On-the-fly decoding with the pipeline's own sampling and augmentation ops; with
    `device`, like `augment_on="device"`: the clip's square window holding its crop and
    the crop box, for `augment.device_augment`."""
    def load(index, path):
        seed_ = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, 0], tf.int64), index)
        indices = sampling.segment_indices(num_frames, NUM_SEGMENTS, seed_)
        frames = tf.numpy_function(lambda p, i: decoder(p.decode(), i),
                                   [path, indices], tf.uint8, stateful=False)
        frames = tf.ensure_shape(frames, [NUM_SEGMENTS, HEIGHT, WIDTH, 3])
        if not device:
            clip, _ = augment.augment_train_clip(frames, seed_, IMAGE_SIZE)
            return clip, index
        draw = augment.draw_train_augmentation(HEIGHT, WIDTH, seed_)
        window = augment.crop_window(HEIGHT, WIDTH, draw["crop_box"])
        y, x, side, _ = tf.unstack(window)
        inputs = {"frames": tf.ensure_shape(frames[:, y:y + side, x:x + side],
                                            [NUM_SEGMENTS, HEIGHT, HEIGHT, 3]),
                  "boxes": augment.canvas_box(draw["crop_box"], window, HEIGHT,
                                              draw["flip"])}
        return inputs, index
    ds = tf.data.Dataset.from_tensor_slices(video_paths).repeat().enumerate()
    ds = ds.map(load, tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE).with_options(_options())


def device_augment_cost(files, batches: int) -> tuple:
    """What `augment.device_augment` costs when the "device" is this CPU: (clips/s,
    CPU-ms per clip) of finishing `augment_on="device"` batches already in memory."""
    data = pipeline.train_dataset(files, num_segments=NUM_SEGMENTS, image_size=IMAGE_SIZE,
                                  batch_size=BATCH, seed=0, shuffle_buffer=16,
                                  augment_on="device")
    inputs = [x for x, _ in data.take(4)]
    finish = tf.function(lambda x: augment.device_augment(x, IMAGE_SIZE))
    finish(inputs[0])
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(batches):
        finish(inputs[i % len(inputs)]).numpy()
    clips = batches * BATCH
    return (clips / (time.perf_counter() - start),
            1000 * (time.process_time() - cpu) / clips)


def _options() -> tf.data.Options:
    """The threading the training pipeline uses (one op thread per clip), for all."""
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return options


def decode_only_dataset(files, augmented: bool = False) -> tf.data.Dataset:
    """`tf.io.decode_jpeg` of sampled frames held in memory: the decode limit; with
    `augmented`, the pipeline's crop-decode, flip and resize of them instead."""
    clips = []
    for i, serialized in enumerate(tf.data.TFRecordDataset(files)):
        record = pipeline.parse_example(serialized)
        indices = sampling.segment_indices(record["num_frames"], NUM_SEGMENTS, [i, 1])
        clips.append(sampling.gather_frames(record["frames"], indices))

    def decode(encoded):
        return tf.stack([tf.io.decode_jpeg(encoded[k], channels=3)
                         for k in range(NUM_SEGMENTS)])

    def decode_augment(index, encoded):
        shape = tf.io.extract_jpeg_shape(encoded[0])
        draw = augment.draw_train_augmentation(
            shape[0], shape[1],
            tf.random.experimental.stateless_fold_in(tf.constant([0, 1], tf.int64), index))
        cropped = tf.stack([tf.io.decode_and_crop_jpeg(encoded[k], draw["crop_box"],
                                                       channels=3)
                            for k in range(NUM_SEGMENTS)])
        return augment.apply_train_augmentation(cropped, draw, IMAGE_SIZE)
    ds = tf.data.Dataset.from_tensor_slices(tf.stack(clips)).repeat()
    if augmented:
        ds = ds.enumerate().map(decode_augment, tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(decode, tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE).with_options(_options())


def clips_per_second(make_dataset, batches: int, min_seconds: float = 1.0) -> tuple:
    """(clips per second, CPU milliseconds per clip, all threads of this process): at least
    `batches` batches and at least `min_seconds` (fast methods would otherwise be timed
    over a fraction of a second, where the machine's noise dominates)."""
    iterator = iter(make_dataset())
    for _ in range(2):  # start-up (threads, tracing, filling buffers) is not throughput
        next(iterator)
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < batches or time.perf_counter() - start < min_seconds:
        tf.nest.map_structure(lambda t: t.numpy(), next(iterator))
        done += 1
    clips = done * BATCH
    return (clips / (time.perf_counter() - start),
            1000 * (time.process_time() - cpu) / clips)


def pool_clips_per_second(pool, video_paths, num_frames: int, clips: int, seed: int) -> tuple:
    """(clips per second, CPU milliseconds per clip in the workers)."""
    jobs = [(video_paths[i % len(video_paths)],
             sampling.segment_indices(num_frames, NUM_SEGMENTS, [seed + i, 0]).numpy())
            for i in range(clips)]
    pool.map(_pyav_job, jobs[:4])
    start = time.perf_counter()
    cpu = sum(pool.map(_pyav_job, jobs, chunksize=2))
    return clips / (time.perf_counter() - start), 1000 * cpu / clips


def _prepare_speed(video_paths):
    """(c): prepare's speed, if `benchmarks/prepare_speed.py` provides `measure_prepare`."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        from prepare_speed import measure_prepare  # type: ignore
    except ImportError as e:
        print(f"(c) prepare speed: not measured here ({e}); see benchmarks/prepare_speed.py")
        return
    print("(c) prepare speed (benchmarks/prepare_speed.measure_prepare):")
    result = measure_prepare(video_paths)
    for key, value in result.items():
        print(f"    {key}: {value}")


def _setup(args) -> dict:
    tmp = tempfile.mkdtemp(prefix="input_pipeline_")
    start = time.perf_counter()
    videos = {}
    for gop in (12, 300):
        videos[gop] = [os.path.join(tmp, f"gop{gop}_clip{i:03d}.avi")
                       for i in range(args.videos)]
        num_frames = [write_video(p, i, gop) for i, p in enumerate(videos[gop])][0]
    files = write_records(videos[12], tmp)
    size_mb = sum(os.path.getsize(f) for f in files) / 2**20
    print(f"{args.videos} videos {WIDTH}x{HEIGHT}, {num_frames} frames at {FPS} fps; records "
          f"{size_mb:.1f} MB (short side {SHORT_SIDE}); set-up {time.perf_counter() - start:.0f}"
          f" s; {os.cpu_count()} CPUs; TF {tf.__version__}, PyAV {av.__version__}")
    print(f"clips of {NUM_SEGMENTS} frames at {IMAGE_SIZE}, batch {BATCH}, "
          f"{args.batches} batches per run, {args.repeats} interleaved repeats")
    return {"videos": videos, "files": files, "num_frames": num_frames}


def _methods(data: dict, pool, args) -> dict:
    """name -> a function that runs the method once and returns clips/s."""
    files, videos, n = data["files"], data["videos"], data["num_frames"]

    def train(jitter, records=files, use_index=True, augment_on="cpu"):
        return lambda: pipeline.train_dataset(
            records, num_segments=NUM_SEGMENTS, image_size=IMAGE_SIZE, batch_size=BATCH,
            seed=0, shuffle_buffer=16, color_jitter=jitter, use_index=use_index,
            augment_on=augment_on)

    makers = {"pipeline": train(False), "pipeline_cj": train(True),
              "pipeline_whole": train(False, use_index=False),
              "pipeline_dev": train(False, augment_on="device"),
              "decode": lambda: decode_only_dataset(files),
              "decode_augment": lambda: decode_only_dataset(files, augmented=True)}
    methods = {name: (lambda m=m: clips_per_second(m, args.batches))
               for name, m in makers.items()}
    for gop, paths in videos.items():
        methods[f"pyav_gop{gop}"] = lambda p=paths: clips_per_second(
            lambda: pyav_dataset(p, n), args.batches)
        methods[f"pyav_dev_gop{gop}"] = lambda p=paths: clips_per_second(
            lambda: pyav_dataset(p, n, device=True), args.batches)
        methods[f"pool_gop{gop}"] = lambda p=paths: pool_clips_per_second(
            pool, p, n, args.batches * BATCH, seed=0)
    methods["pyav_seq"] = lambda: clips_per_second(
        lambda: pyav_dataset(videos[12], n, decoder=_pyav_sequential), args.batches)
    methods["pyav_dev_seq"] = lambda: clips_per_second(
        lambda: pyav_dataset(videos[12], n, decoder=_pyav_sequential, device=True),
        args.batches)
    methods["dev_aug_on_cpu"] = lambda: device_augment_cost(files, args.batches)
    return methods


def _report(results: dict) -> None:
    """Medians of clips/s and of CPU ms per clip, and the target ratios on both bases.

    On a machine shared with other work, clips/s swings with the load; CPU time per clip
    is the steadier measure of what each method costs (its ratios are speed ratios on an
    otherwise idle machine with the same cores, if both methods use the cores alike).
    """
    speed = {n: statistics.median(r[0] for r in runs) for n, runs in results.items()}
    cost = {n: statistics.median(r[1] for r in runs) for n, runs in results.items()}
    for name, runs in results.items():
        print(f"  {name:12s} {speed[name]:7.1f} clips/s {cost[name]:6.2f} CPU-ms/clip   "
              "runs (clips/s) " + " ".join(f"{r[0]:.0f}" for r in runs))

    def ratio(a, b):
        return f"{speed[a] / speed[b]:.2f} by clips/s, {cost[b] / cost[a]:.2f} by CPU time"
    print(f"(a) pipeline / decode-only limit:    {ratio('pipeline', 'decode')}"
          "   (target >= 0.8; augmentation on the CPU)")
    print(f"(a) pipeline_dev / decode-only limit: {ratio('pipeline_dev', 'decode')}"
          "   (target >= 0.8; augment_on='device', what training on a GPU uses)")
    print(f"    pipeline_cj / decode-only limit: {ratio('pipeline_cj', 'decode')}")
    print(f"    pipeline_whole / decode-only limit: {ratio('pipeline_whole', 'decode')}"
          "   (no frame index)")
    print(f"    decode+augment / decode-only limit: {ratio('decode_augment', 'decode')}"
          "   (the ceiling with augmentation on the CPU)")
    print(f"    pipeline / decode+augment limit:    {ratio('pipeline', 'decode_augment')}")
    print(f"    device_augment run on this CPU: {cost['dev_aug_on_cpu']:.2f} CPU-ms/clip "
          f"(pipeline_dev + it: {cost['pipeline_dev'] + cost['dev_aug_on_cpu']:.2f}; the "
          "reason augment_on='auto' picks 'cpu' without a GPU)")
    for gop in (12, 300):
        print(f"(b) pipeline / PyAV on the fly, GOP {gop:3d}:        "
              f"{ratio('pipeline', f'pyav_gop{gop}')}   (target >= 3)")
        print(f"(b) pipeline_dev / PyAV on the fly (device aug.), GOP {gop:3d}: "
              f"{ratio('pipeline_dev', f'pyav_dev_gop{gop}')}   (target >= 3)")
        print(f"    pipeline / PyAV decode-only (2 proc.), GOP {gop:3d}: "
              f"{ratio('pipeline', f'pool_gop{gop}')}")
        print(f"    pipeline_whole / PyAV on the fly, GOP {gop:3d}:  "
              f"{ratio('pipeline_whole', f'pyav_gop{gop}')}")
    print(f"(b) pipeline / PyAV sequential (toolkits' way):  {ratio('pipeline', 'pyav_seq')}"
          "   (target >= 3)")
    print(f"(b) pipeline_dev / PyAV sequential (device aug.): "
          f"{ratio('pipeline_dev', 'pyav_dev_seq')}   (target >= 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--skip_prepare", action="store_true", help="leave out (c)")
    args = parser.parse_args()
    data = _setup(args)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        methods = _methods(data, pool, args)
        results = {name: [] for name in methods}
        for r in range(args.repeats):
            names = list(methods)
            for name in names[r % len(names):] + names[:r % len(names)]:
                results[name].append(methods[name]())
    _report(results)
    if not args.skip_prepare:
        _prepare_speed(data["videos"][12])


if __name__ == "__main__":
    main()
