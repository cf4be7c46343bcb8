"""Input pipeline speed: prepared records against the decode-only limit and PyAV on the fly.

    python benchmarks/input_pipeline.py
    python benchmarks/input_pipeline.py --videos=8 --repeats=3 --batches=15   # a quick look
    python benchmarks/input_pipeline.py --methods=pipeline,pipeline_py,decode --repeats=9

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
                only the crop and a margin are decoded, in their place in the square
                window that holds the crop, batched as uint8 canvases with the crop
                boxes; resize and flip are left to the training step
                (`augment.device_augment`, not timed here: on a GPU it is one
                `crop_and_resize` per batch).
  pipeline_cj   the same as pipeline with `color_jitter=True`.
  pipeline_whole  the same without the frame index: whole records (all ~105 JPEGs of a
                clip) are read and parsed, the sampled JPEGs picked from them.
  pipeline_py, pipeline_dev_py  pipeline and pipeline_dev with the sampled frames read in
                Python (`input_methods.PythonReadShards`: os.pread in a tf.numpy_function),
                as the library read them before its reads were TensorFlow ops.
  service1, service2  pipeline_dev through a tf.data service (`data_service=`) with 1 and
                2 workers, all in this process (same CPUs: what the service's hand-off
                costs, not what more hosts would add).
  decode        the decode-only limit: `tf.io.decode_jpeg` of the same kind of sampled
                frames (3 per clip, gathered into memory beforehand), parallel map, batched.
  decode_augment  the same in-memory frames through the pipeline's own crop-decode, flip
                and resize ops (no reading, no sampling): the limit for any pipeline that
                augments on the CPU.
  pyav_gopN     on the fly: per clip, PyAV decodes the 3 TSN-sampled frames of the .avi
                (`input_methods.pyav_sampled`: from the nearest keyframe, no wasted seeks)
                in a parallel tf.data map over `tf.numpy_function`, then the pipeline's own
                crop / resize / flip ops, batched.
  pyav_dev_gopN the same, ending like pipeline_dev (square window and crop box, no resize).
  pool_gopN     PyAV sampled-frame decoding only (no augmentation) in 2 worker processes:
                an upper bound for any on-the-fly PyAV loader on 2 CPU cores.
  pyav_seq      on the fly as toolkits commonly do it (MMAction2's PyAVDecode in its
                default "accurate" mode): decode from the start up to the last sampled
                frame, every decoded frame converted to RGB, keep the sampled ones; then
                the same ops as pyav_gopN. Its cost does not depend on the GOP (run on the
                GOP-12 files; given one RGB thread, which is faster than PyAV's default).
  pyav_dev_seq  pyav_seq ending like pipeline_dev.
  dev_aug_on_cpu  `augment.device_augment` of pipeline_dev batches run on this CPU (only
                its CPU time is meaningful: it is the cost a CPU-only run would pay).

Then the resume time: seconds from building the pipeline to its first batch, at step 0
and at step 50,000 (`skip_batches`), with the bytes read meanwhile.

Targets: pipeline_dev / decode >= 0.9; pipeline / pyav >= 3 (each pipeline against the
on-the-fly loader that ends the same way, CPU or device augmentation); pipeline no slower
than pipeline_py; resume in seconds. With augmentation on the CPU the resize costs about
as much as the decoding, so pipeline / decode is bounded by decode_augment / decode (about
0.55 on these cores): pipeline / decode_augment says how close it comes.
(c), prepare's speed, is measured last (skip it with --skip_prepare) by
`prepare_methods.measure_prepare`, as `benchmarks/prepare_speed.py` measures it.
"""

import multiprocessing
import os
import statistics
import tempfile
import time

from absl import flags

from keras_attnpool import cli

_VIDEOS = flags.DEFINE_integer("videos", 16, "Test videos written per GOP.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repeats.", lower_bound=1)
_BATCHES = flags.DEFINE_integer("batches", 40, "Batches per timed run (at least).",
                                lower_bound=1)
_SKIP_PREPARE = flags.DEFINE_bool("skip_prepare", False, "Leave out (c).")
_METHODS = flags.DEFINE_list("methods", None, "Run only these methods (the names below), "
                             "e.g. pipeline,pipeline_py,decode for a closer look with more "
                             "--repeats; default: all.")


def _prepare_speed(video_paths):
    """(c): prepare's speed on the GOP-12 videos (`prepare_methods.measure_prepare`)."""
    from prepare_methods import measure_prepare

    print("(c) prepare speed (benchmarks/prepare_methods.measure_prepare):")
    result = measure_prepare(video_paths)
    for key, value in result.items():
        print(f"    {key}: {value}")


def _resume_time(files) -> None:
    """Seconds to the first batch at step 0 and at step 50,000 (medians of 3)."""
    from input_methods import BATCH, NUM_SEGMENTS, seconds_to_first_batch

    for step in (0, 50_000):
        runs = [seconds_to_first_batch(files, step) for _ in range(3)]
        seconds = statistics.median(r[0] for r in runs)
        read = statistics.median(r[1] for r in runs) / 2**20
        print(f"(resume) first batch at step {step:6d}: {seconds:5.2f} s, {read:6.1f} MB "
              f"read (positions skipped: {step * BATCH} clips, {step * BATCH * NUM_SEGMENTS}"
              " sampled frames)")


def _setup() -> dict:
    import av
    import tensorflow as tf

    from input_methods import BATCH, FPS, HEIGHT, IMAGE_SIZE, NUM_SEGMENTS, SHORT_SIDE, WIDTH
    from input_methods import write_records, write_video

    tmp = tempfile.mkdtemp(prefix="input_pipeline_")
    start = time.perf_counter()
    videos = {}
    for gop in (12, 300):
        videos[gop] = [os.path.join(tmp, f"gop{gop}_clip{i:03d}.avi")
                       for i in range(_VIDEOS.value)]
        num_frames = [write_video(p, i, gop) for i, p in enumerate(videos[gop])][0]
    files = write_records(videos[12], tmp)
    size_mb = sum(os.path.getsize(f) for f in files) / 2**20
    print(f"{_VIDEOS.value} videos {WIDTH}x{HEIGHT}, {num_frames} frames at {FPS} fps; records "
          f"{size_mb:.1f} MB (short side {SHORT_SIDE}); set-up {time.perf_counter() - start:.0f}"
          f" s; {os.cpu_count()} CPUs; TF {tf.__version__}, PyAV {av.__version__}")
    print(f"clips of {NUM_SEGMENTS} frames at {IMAGE_SIZE}, batch {BATCH}, "
          f"{_BATCHES.value} batches per run, {_REPEATS.value} interleaved repeats")
    service = tf.data.experimental.service
    services, servers = {}, []
    for workers in (1, 2):  # one cluster per worker count, in this process
        dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
        servers.append(dispatcher)
        servers += [service.WorkerServer(service.WorkerConfig(
            dispatcher_address=dispatcher.target.split("://")[1])) for _ in range(workers)]
        services[workers] = dispatcher.target
    return {"videos": videos, "files": files, "num_frames": num_frames,
            "services": services, "servers": servers}


def _methods(data: dict, pool) -> dict:
    """name -> a function that runs the method once and returns (clips/s, CPU-ms per clip)."""
    from input_methods import (BATCH, IMAGE_SIZE, NUM_SEGMENTS, clips_per_second,
                               decode_only_dataset, device_augment_cost, pool_clips_per_second,
                               pyav_dataset, pyav_sequential)
    from keras_attnpool.data.input import pipeline

    from input_methods import python_read_dataset

    files, videos, n = data["files"], data["videos"], data["num_frames"]

    def train(jitter, records=files, use_index=True, augment_on="cpu"):
        return lambda: pipeline.train_dataset(
            records, num_segments=NUM_SEGMENTS, image_size=IMAGE_SIZE, batch_size=BATCH,
            seed=0, shuffle_buffer=16, color_jitter=jitter, use_index=use_index,
            augment_on=augment_on)

    makers = {"pipeline": train(False), "pipeline_cj": train(True),
              "pipeline_whole": train(False, use_index=False),
              "pipeline_dev": train(False, augment_on="device"),
              "pipeline_py": lambda: python_read_dataset(files),
              "pipeline_dev_py": lambda: python_read_dataset(files, augment_on="device"),
              "decode": lambda: decode_only_dataset(files),
              "decode_augment": lambda: decode_only_dataset(files, augmented=True)}
    for workers, address in data["services"].items():
        makers[f"service{workers}"] = lambda a=address: pipeline.train_dataset(
            files, num_segments=NUM_SEGMENTS, image_size=IMAGE_SIZE, batch_size=BATCH,
            seed=0, shuffle_buffer=16, augment_on="device", data_service=a)
    methods = {name: (lambda m=m: clips_per_second(m, _BATCHES.value))
               for name, m in makers.items()}
    for gop, paths in videos.items():
        methods[f"pyav_gop{gop}"] = lambda p=paths: clips_per_second(
            lambda: pyav_dataset(p, n), _BATCHES.value)
        methods[f"pyav_dev_gop{gop}"] = lambda p=paths: clips_per_second(
            lambda: pyav_dataset(p, n, device=True), _BATCHES.value)
        methods[f"pool_gop{gop}"] = lambda p=paths: pool_clips_per_second(
            pool, p, n, _BATCHES.value * BATCH, seed=0)
    methods["pyav_seq"] = lambda: clips_per_second(
        lambda: pyav_dataset(videos[12], n, decoder=pyav_sequential), _BATCHES.value)
    methods["pyav_dev_seq"] = lambda: clips_per_second(
        lambda: pyav_dataset(videos[12], n, decoder=pyav_sequential, device=True),
        _BATCHES.value)
    methods["dev_aug_on_cpu"] = lambda: device_augment_cost(files, _BATCHES.value)
    return methods


# The ratios reported: (label, method, against, note); a line whose methods did not run
# (--methods) is left out.
_RATIOS = [
    ("(a) pipeline / decode-only limit", "pipeline", "decode",
     "augmentation on the CPU: at most decode+augment / decode-only, below"),
    ("(a) pipeline_dev / decode-only limit", "pipeline_dev", "decode",
     "target >= 0.9; augment_on='device', what training on a GPU uses"),
    ("    pipeline_cj / decode-only limit", "pipeline_cj", "decode", ""),
    ("    pipeline_whole / decode-only limit", "pipeline_whole", "decode", "no frame index"),
    ("    pipeline_py / decode-only limit", "pipeline_py", "decode",
     "frames read in Python, as before"),
    ("    pipeline_dev_py / decode-only limit", "pipeline_dev_py", "decode", ""),
    ("    pipeline / pipeline_py", "pipeline", "pipeline_py",
     "TensorFlow read / Python read; target >= 1: no slower than before"),
    ("    pipeline_dev / pipeline_dev_py", "pipeline_dev", "pipeline_dev_py", ""),
    ("    service1 / pipeline_dev", "service1", "pipeline_dev",
     "tf.data service, 1 local worker"),
    ("    service2 / pipeline_dev", "service2", "pipeline_dev",
     "tf.data service, 2 local workers"),
    ("    decode+augment / decode-only limit", "decode_augment", "decode",
     "the ceiling with augmentation on the CPU"),
    ("    pipeline / decode+augment limit", "pipeline", "decode_augment", ""),
    *[row for gop in (12, 300) for row in (
        (f"(b) pipeline / PyAV on the fly, GOP {gop}", "pipeline", f"pyav_gop{gop}",
         "target >= 3"),
        (f"(b) pipeline_dev / PyAV on the fly (device aug.), GOP {gop}", "pipeline_dev",
         f"pyav_dev_gop{gop}", "target >= 3"),
        (f"    pipeline / PyAV decode-only (2 proc.), GOP {gop}", "pipeline",
         f"pool_gop{gop}", ""),
        (f"    pipeline_whole / PyAV on the fly, GOP {gop}", "pipeline_whole",
         f"pyav_gop{gop}", ""))],
    ("(b) pipeline / PyAV sequential (toolkits' way)", "pipeline", "pyav_seq", "target >= 3"),
    ("(b) pipeline_dev / PyAV sequential (device aug.)", "pipeline_dev", "pyav_dev_seq",
     "target >= 3"),
]


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
    width = max(len(label) for label, *_ in _RATIOS) + 1
    for label, a, b, note in _RATIOS:
        if a in results and b in results:
            print(f"{label + ':':{width}s} {speed[a] / speed[b]:.2f} by clips/s, "
                  f"{cost[b] / cost[a]:.2f} by CPU time" + (f"   ({note})" if note else ""))
    if "dev_aug_on_cpu" in results and "pipeline_dev" in results:
        print(f"    device_augment run on this CPU: {cost['dev_aug_on_cpu']:.2f} CPU-ms/clip "
              f"(pipeline_dev + it: {cost['pipeline_dev'] + cost['dev_aug_on_cpu']:.2f}; "
              "the reason augment_on='auto' picks 'cpu' without a GPU)")


def main(argv) -> None:
    del argv
    start = time.perf_counter()
    with cli.quiet_native_logs():
        data = _setup()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        methods = _methods(data, pool)
        if _METHODS.value:
            unknown = sorted(set(_METHODS.value) - set(methods))
            if unknown:
                cli.fail(f"--methods: no method {', '.join(unknown)}; choose from "
                         f"{', '.join(methods)}")
            methods = {name: methods[name] for name in _METHODS.value}
        results = {name: [] for name in methods}
        for r in range(_REPEATS.value):
            names = list(methods)
            for name in names[r % len(names):] + names[:r % len(names)]:
                results[name].append(methods[name]())
    _report(results)
    _resume_time(data["files"])
    if not _SKIP_PREPARE.value:
        _prepare_speed(data["videos"][12])
    print(f"Whole benchmark: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
