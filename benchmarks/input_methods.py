"""The ways of loading training clips that `input_pipeline.py` times, and its timers.

Test videos (HMDB51-like .avi written with PyAV), prepared records with their frame index,
on-the-fly PyAV decoders (from the nearest keyframe, or sequentially as toolkits commonly
do), the decode-only limits, and `clips_per_second` / `pool_clips_per_second`, which run a
method for a while and return (clips per second, CPU milliseconds per clip).
"""

import os
import struct
import time

import av
import numpy as np
import tensorflow as tf

from keras_attnpool.data.input import augment, pipeline, sampling, sources
from keras_attnpool.data.input import train as train_lib
from keras_attnpool.data.records import frame_index, stored_frame
from keras_attnpool.data.records.schema import (
    encode_example, parse_example, shard_name, write_tfrecord)
from keras_attnpool.data.video import encode_video

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


def pyav_sampled(path: str, indices) -> np.ndarray:
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


def pyav_sequential(path: str, indices) -> np.ndarray:
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
    pyav_sampled(path, indices)
    return time.process_time() - start


def pyav_dataset(video_paths, num_frames: int, seed: int = 0, decoder=pyav_sampled,
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


def _pread_frames(shards: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The JPEGs of stored frames read with os.pread: each record's 12-byte header gives
    its length, then its data (no checksum check)."""
    out = np.empty(positions.shape, dtype=object)
    handles = {}
    try:
        for index in np.ndindex(positions.shape):
            name = shards[index[0]]
            fd = handles.get(name) or handles.setdefault(name, os.open(name, os.O_RDONLY))
            position = int(positions[index])
            (length,) = struct.unpack("<Q", os.pread(fd, 8, position))
            out[index] = stored_frame.jpeg_of(os.pread(fd, length, position + 12))
    finally:
        for fd in handles.values():
            os.close(fd)
    return out


class PythonReadShards(sources.IndexedShards):
    """Indexed shards whose sampled frames are read in Python, in a `tf.numpy_function`
    (positioned `os.pread`s), as the library read them before its reads were TensorFlow
    ops: the baseline of the TensorFlow-only read."""

    def frame_batch(self, shards, records, indices):
        positions = sources._gather_rows(records["frame_records"], indices)
        frames = tf.numpy_function(_pread_frames, [shards, positions], tf.string,
                                   stateful=False)
        return tf.ensure_shape(frames, indices.shape)


def python_read_dataset(files, augment_on: str = "cpu", canvas: int = SHORT_SIDE,
                        seed: int = 0) -> tf.data.Dataset:
    """`pipeline.train_dataset(files, ...)` as `input_pipeline.py` times it, with the
    sampled frames read by `PythonReadShards` instead of TensorFlow ops."""
    source = PythonReadShards(files, in_memory=True)
    spec = train_lib.TrainSpec(NUM_SEGMENTS, IMAGE_SIZE, False, seed=seed,
                               augment_on=augment_on, canvas=canvas)
    ds = source.training_records(seed, 8, 16, repeat=True).batch(BATCH, drop_remainder=True)
    ds = ds.enumerate().map(lambda i, b: train_lib.train_batch(i, b, spec, source),
                            tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(pipeline._options())


def seconds_to_first_batch(files, skip_batches: int) -> tuple:
    """(seconds from building the training pipeline to its first batch, with
    `skip_batches` batches skipped: a resumed run's start; bytes read meanwhile)."""
    def read_bytes():
        with open("/proc/self/io") as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])
    start, before = time.perf_counter(), read_bytes()
    ds = pipeline.train_dataset(files, num_segments=NUM_SEGMENTS, image_size=IMAGE_SIZE,
                                batch_size=BATCH, seed=0, shuffle_buffer=16,
                                skip_batches=skip_batches)
    next(iter(ds))
    return time.perf_counter() - start, read_bytes() - before


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
        record = parse_example(serialized)
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
