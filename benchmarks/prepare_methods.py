"""What `prepare_speed.py` times: prepare with 1 and 2 workers, PyAV decode-only, and the
choice for image datasets; each method in a fresh process.

`measure_prepare(video_paths, ...)` returns the numbers as a dict (also used by
`input_pipeline.py` for its part (c)); `measure_images()` times the image choice.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import av
import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 30
_HERE = os.path.dirname(os.path.abspath(__file__))


def write_video(path: str, seed: int, seconds: float = 3.5) -> int:
    """An HMDB51-like clip: textured background panning, a moving block. Returns frames."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (HEIGHT // 8 + 12, WIDTH // 8 + 12, 3), dtype=np.uint8)
    texture = np.kron(coarse, np.ones((8, 8, 1), np.uint8))
    texture = np.clip(texture + rng.normal(0, 6, texture.shape), 0, 255).astype(np.uint8)
    # Imported here, not at the top: the timed child processes import this module and need
    # only PyAV for the decode-only methods.
    from keras_attnpool.data.video import encode_video

    return encode_video(path, (_frame(texture, t) for t in range(int(seconds * FPS))), FPS)


def _frame(texture: np.ndarray, t: int) -> np.ndarray:
    y0, x0 = (t // 2) % 64, t % 64
    frame = texture[y0:y0 + HEIGHT, x0:x0 + WIDTH].copy()
    cx = int(40 + (WIDTH - 120) * (t % FPS) / FPS)
    frame[90:170, cx:cx + 60] = (200, 60, 40)
    return frame


def _dataset_tree(video_paths, root: str, min_videos: int) -> str:
    """A `video_folder` tree of symlinks to the videos (4 classes, round robin), the list
    repeated until it has `min_videos` entries."""
    data_dir = os.path.join(root, "videos")
    for i in range(max(len(video_paths), min_videos)):
        path = video_paths[i % len(video_paths)]
        folder = os.path.join(data_dir, f"class{i % 4}")
        os.makedirs(folder, exist_ok=True)
        link = os.path.join(folder, f"clip{i:04d}{os.path.splitext(path)[1] or '.avi'}")
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(path), link)
    return data_dir


def _child_run(method: str, data_dir: str, out_dir: str, settings: dict) -> dict:
    """One timed run (in a fresh process): frames and seconds."""
    if method in ("decode", "decode_rgb"):
        paths = sorted(os.path.join(d, f) for d, _, files in os.walk(data_dir) for f in files)
        start, frames = time.perf_counter(), 0
        for path in paths:
            with av.open(path) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_count = 1
                for frame in container.decode(stream):
                    if method == "decode_rgb":
                        frame.to_ndarray(format="rgb24", threads=1)
                    frames += 1
        return {"frames": frames, "seconds": time.perf_counter() - start}
    from keras_attnpool.data.prepare.run import prepare_dataset
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    manifest = prepare_dataset("video_folder", data_dir, out_dir, overwrite=True,
                               workers=int(method.split("_")[1]), **settings)
    seconds = time.perf_counter() - start
    return {"frames": sum(manifest["num_frames"].values()), "seconds": seconds,
            "convert_seconds": manifest["this_run"]["convert_seconds"],
            "cores_busy": (_cpu_seconds() - cpu_start) / seconds}


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_in_fresh_process(method: str, data_dir: str, out_dir: str, settings: dict) -> dict:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import prepare_methods as p; "
            "print('RESULT ' + json.dumps(p._child_run(sys.argv[2], sys.argv[3], sys.argv[4], "
            "json.loads(sys.argv[5]))))")
    result = subprocess.run([sys.executable, "-c", code, _HERE, method, data_dir, out_dir,
                             json.dumps(settings)], capture_output=True, text=True)
    lines = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{method} run failed:\n{result.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def measure_prepare(video_paths, repeats: int = 3, short_side: int = 256,
                    jpeg_quality: int = 90, min_videos: int = 144) -> dict:
    """Times prepare with 1 and 2 workers and PyAV decode-only on `video_paths`.

    The list is repeated (as more dataset entries) up to `min_videos` entries: with fewer,
    the fixed costs of a run (reading the dataset, starting the worker pool) would weigh
    more than they do on a real dataset and hide the scaling with workers.

    Returns a dict: frames per second per method (medians and every run), the paired
    2-vs-1 speed-up (median of per-repeat ratios), prepare / decode-only ratios, and the
    workload (videos, frames, cpus).
    """
    methods = ["prepare_1", "prepare_2", "decode", "decode_rgb"]
    settings = {"short_side": short_side, "jpeg_quality": jpeg_quality}
    runs = {m: [] for m in methods}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="prepare_speed_") as root:
        data_dir = _dataset_tree(video_paths, root, min_videos)
        for r in range(repeats):
            for method in methods[r % 4:] + methods[:r % 4]:
                out = _run_in_fresh_process(method, data_dir, os.path.join(root, method),
                                            settings)
                runs[method].append(out)
    fps = {m: [x["frames"] / x["seconds"] for x in runs[m]] for m in methods}
    median = {m: statistics.median(v) for m, v in fps.items()}
    paired = [b / a for a, b in zip(fps["prepare_1"], fps["prepare_2"])]
    return {
        "videos": max(len(video_paths), min_videos), "frames": runs["decode"][0]["frames"],
        "cpus": os.cpu_count(), "repeats": repeats,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "frames_per_second": {m: round(v, 1) for m, v in median.items()},
        "runs": {m: [round(v, 1) for v in values] for m, values in fps.items()},
        "speedup_2_vs_1": round(statistics.median(paired), 2),
        "prepare_1_vs_decode_only": round(median["prepare_1"] / median["decode"], 2),
        "prepare_2_vs_decode_only": round(median["prepare_2"] / median["decode"], 2),
        "prepare_1_vs_decode_rgb": round(median["prepare_1"] / median["decode_rgb"], 2),
        "cores_busy": {m: round(statistics.median(x["cores_busy"] for x in runs[m]), 2)
                       for m in ("prepare_1", "prepare_2")},
        "prepare_2_convert_only_fps": round(statistics.median(
            x["frames"] / x["convert_seconds"] for x in runs["prepare_2"]), 1),
    }


def measure_images(count: int = 48, repeats: int = 3) -> dict:
    """Images per second: source JPEGs resized in tf.data vs prepared 1-frame records."""
    import tensorflow as tf
    from PIL import Image

    from keras_attnpool.data.prepare.run import prepare_dataset
    from keras_attnpool.data.records.schema import parse_example

    root = tempfile.mkdtemp(prefix="prepare_images_")
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, (45, 80, 3), dtype=np.uint8)
        image = np.kron(coarse, np.ones((16, 16, 1), np.uint8))
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        os.makedirs(os.path.join(root, "images", f"c{i % 2}"), exist_ok=True)
        Image.fromarray(image).save(os.path.join(root, "images", f"c{i % 2}", f"{i}.jpg"),
                                    quality=90)
    out = os.path.join(root, "records")
    prepare_dataset("image_folder", os.path.join(root, "images"), out, workers=0)
    files = sorted(tf.io.gfile.glob(os.path.join(out, "*.tfrecord")))
    sources = sorted(tf.io.gfile.glob(os.path.join(root, "images", "*", "*.jpg")))

    def straight(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, [480, 853])

    def from_record(serialized):
        return tf.io.decode_jpeg(parse_example(serialized)["frames"][0], channels=3)

    makers = {"source_jpeg": lambda: tf.data.Dataset.from_tensor_slices(sources).map(
                  straight, num_parallel_calls=tf.data.AUTOTUNE),
              "record": lambda: tf.data.TFRecordDataset(files).map(
                  from_record, num_parallel_calls=tf.data.AUTOTUNE)}
    runs = {name: [] for name in makers}
    for r in range(repeats):
        for name in list(makers)[r % 2:] + list(makers)[:r % 2]:
            start = time.perf_counter()
            n = sum(1 for _ in makers[name]().prefetch(4))
            runs[name].append(n / (time.perf_counter() - start))
    median = {k: statistics.median(v) for k, v in runs.items()}
    return {"images": count, "images_per_second": {k: round(v, 1) for k, v in median.items()},
            "record_vs_source": round(median["record"] / median["source_jpeg"], 2)}
