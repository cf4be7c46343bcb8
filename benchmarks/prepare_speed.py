"""prepare's speed: 2 worker processes against 1, and against PyAV decode-only (issue 3 (c)).

    python benchmarks/prepare_speed.py
    python benchmarks/prepare_speed.py --repeats=2 --images   # + the images choice

Writes HMDB51-like clips (320x240 mpeg4 .avi at 30 fps, 3.5 s, a textured background panning
with a moving block) with PyAV, lists them (repeated up to 144 entries) as a `video_folder`
dataset, then, interleaved (every repeat runs every method once, in a
rotating order), medians reported:

  prepare_1   `prepare_dataset("video_folder", ..., workers=1)`: the whole call, wall time
              (reading the dataset, starting the pool, decoding, JPEG encoding, writing
              shards and manifest), frames stored per second.
  prepare_2   the same with 2 worker processes.
  decode      PyAV decode-only of the same videos in one process, one decoder thread (no
              RGB conversion, no resize, no JPEG): the per-core limit of any decoder.
  decode_rgb  the same plus conversion to RGB arrays: what any PyAV loader must at least do
              to produce pixels.

Every method runs in a fresh `python -c` process: the timing then does not depend on the
calling script (a spawned worker re-runs the parent's `__main__` file, so one that imports
TensorFlow at the top would make every worker pay for that import), and no warm cache carries
over between methods. Ratios: prepare_2 / prepare_1 per repeat (paired), then the median.
Target (issue 3): prepare_2 / prepare_1 >= 1.6.

`--images` also times the choice for image datasets: reading 1280x720 source JPEGs and
resizing to short side 480 in tf.data, against reading 1-frame prepared records (short side
480) and decoding their JPEG.

`prepare_methods.measure_prepare(video_paths, ...)` returns the numbers as a dict (also used
by `benchmarks/input_pipeline.py` for part (c)); `main()` prints them.
"""

import os
import tempfile
import time

from absl import flags

from keras_attnpool import cli

_VIDEOS = flags.DEFINE_integer("videos", 16, "Test videos written.", lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 3.5, "Length of each clip.", lower_bound=0.1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Interleaved repeats.", lower_bound=1)
_MIN_VIDEOS = flags.DEFINE_integer("min_videos", 144, "Repeat the clips as dataset entries "
                                   "up to this many.", lower_bound=1)
_IMAGES = flags.DEFINE_bool("images", False, "Also time the image choice.")


def main(argv) -> None:
    del argv
    import av

    from prepare_methods import FPS, HEIGHT, WIDTH, measure_images, measure_prepare, write_video

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prepare_videos_") as tmp:
        paths = [os.path.join(tmp, f"clip{i:03d}.avi") for i in range(_VIDEOS.value)]
        frames = sum(write_video(p, i, _SECONDS.value) for i, p in enumerate(paths))
        result = measure_prepare(paths, repeats=_REPEATS.value, min_videos=_MIN_VIDEOS.value)
        print(f"{_VIDEOS.value} videos {WIDTH}x{HEIGHT} at {FPS} fps ({frames} frames), repeated"
              f" to {result['videos']} dataset entries, {result['frames']} frames; "
              f"{os.cpu_count()} CPUs; PyAV {av.__version__}; {_REPEATS.value} interleaved "
              f"repeats, each method in a fresh process; load average before/after "
              f"{result['load_average']}")
    for name, value in result["frames_per_second"].items():
        runs = " ".join(f"{v:.0f}" for v in result["runs"][name])
        print(f"  {name:10s} median {value:7.0f} frames/s   runs {runs}")
    print(f"(c) prepare 2 workers / 1 worker  = {result['speedup_2_vs_1']:.2f}   "
          "(target >= 1.6; paired per repeat, median)")
    print(f"    prepare 1 worker / PyAV decode-only (1 process) = "
          f"{result['prepare_1_vs_decode_only']:.2f}")
    print(f"    prepare 2 workers / PyAV decode-only (1 process) = "
          f"{result['prepare_2_vs_decode_only']:.2f}")
    print(f"    prepare 1 worker / PyAV decode + RGB (1 process) = "
          f"{result['prepare_1_vs_decode_rgb']:.2f}")
    print(f"    CPU cores prepare got on average (CPU seconds / wall seconds, medians): "
          f"{result['cores_busy']}")
    print(f"    prepare 2 workers, convert phase only: {result['prepare_2_convert_only_fps']:.0f}"
          " frames/s (pool start, decode, JPEG, shards; not reading the dataset)")
    if _IMAGES.value:
        images = measure_images(repeats=_REPEATS.value)
        print(f"images (1280x720 sources, short side 480): {images['images_per_second']} "
              f"images/s; record / source JPEG = {images['record_vs_source']:.2f}")
    print(f"Whole benchmark: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
