"""The training pipeline of this checkout against the one of an earlier commit, side by side.

    python benchmarks/input_versions.py --before=187ad4b
    python benchmarks/input_versions.py --before=HEAD~5 --repeats=3 --videos=8

`git archive` extracts the earlier commit into a temp dir. The same HMDB51-like clips
(`input_methods.write_video`: 320x240 mpeg4 .avi, 105 frames) are prepared by each version
with its own `input_methods.write_records` (short side 256, JPEG q90, frame indexes; each
version reads the record format it writes). Then, alternating the two versions (one fresh
process per version and repeat, in a changing order, so neither runs warm or first), each
process times on its own package, in a rotating order:

  cpu      `train_dataset(num_segments=3, image_size=224, batch_size=8)`, augmentation on
           the CPU (the default recipe)
  device   the same with `augment_on="device"` (what `fit.py` uses on a GPU)
  decode   the decode-only limit (`input_methods.decode_only_dataset`: `tf.io.decode_jpeg` of
           sampled frames held in memory)

each for at least --batches batches and 1.5 s after 3 batches of start-up. Reported: medians
of clips/s and CPU ms per clip, each pipeline's ratio to the decode-only limit of the same
process (median over repeats), and this checkout's speed over the earlier one's.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from keras_attnpool import cli

_BEFORE = flags.DEFINE_string("before", None, "The earlier commit (any git revision).")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Runs of each version.", lower_bound=1)
_VIDEOS = flags.DEFINE_integer("videos", 16, "Test videos written.", lower_bound=1)
_BATCHES = flags.DEFINE_integer("batches", 50, "Batches per timed run (at least).",
                                lower_bound=1)
MODES = ("cpu", "device", "decode")
HERE = os.path.dirname(os.path.abspath(__file__))

# Run in a fresh process with one version's package first on the path: prepares that
# version's records once (into RECORDS), then prints {mode: [clips/s, CPU ms/clip]}.
_WORKER = r"""
import glob, json, os, sys, time
root, videos, records, rotation, batches = sys.argv[1:6]
sys.path[:0] = [root, os.path.join(root, "benchmarks")]
import tensorflow as tf
import keras_attnpool
assert os.path.abspath(keras_attnpool.__file__).startswith(root), keras_attnpool.__file__
import input_methods
from keras_attnpool.data.input import pipeline
if not os.path.isdir(records):
    os.makedirs(records + ".part", exist_ok=True)
    input_methods.write_records(sorted(glob.glob(os.path.join(videos, "*.avi"))),
                                records + ".part")
    os.rename(records + ".part", records)
files = sorted(glob.glob(os.path.join(records, "*.tfrecord")))

def measure(make):
    iterator = iter(make())
    for _ in range(3):
        next(iterator)
    start, cpu, done = time.perf_counter(), time.process_time(), 0
    while done < int(batches) or time.perf_counter() - start < 1.5:
        tf.nest.map_structure(lambda t: t.numpy(), next(iterator))
        done += 1
    clips = 8 * done
    return [clips / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / clips]

def train(mode):
    return lambda: pipeline.train_dataset(files, num_segments=3, image_size=224, batch_size=8,
                                          seed=0, shuffle_buffer=16, augment_on=mode)
rows = {"cpu": train("cpu"), "device": train("device"),
        "decode": lambda: input_methods.decode_only_dataset(files)}
names = list(rows)[int(rotation) % 3:] + list(rows)[:int(rotation) % 3]
print("RESULT " + json.dumps({name: measure(rows[name]) for name in names}))
"""


def _extract(revision: str, into: str) -> str:
    """The tree of `revision` of this repository, extracted under `into`."""
    root = os.path.join(into, "before")
    os.makedirs(root)
    try:
        archive = subprocess.run(["git", "-C", os.path.dirname(HERE), "archive", revision],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"") or str(error).encode()
        cli.fail(f"--before={revision}: git archive failed "
                 f"({detail.decode(errors='replace').strip().splitlines()[-1]}); pass a "
                 "commit of this repository (git log --oneline)")
    subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    return root


def _run(root: str, videos: str, records: str, rotation: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _WORKER, root, videos, records,
                          str(rotation), str(_BATCHES.value)], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        cli.fail(f"{root}: the timing run failed (exit {out.returncode}): "
                 f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv) -> None:
    del argv
    if not _BEFORE.value:
        cli.fail("--before: name the earlier commit, e.g. --before=HEAD~10")
    start = time.perf_counter()
    with cli.quiet_native_logs():
        from input_methods import write_video
    tmp = tempfile.mkdtemp(prefix="input_versions_")
    roots = {"before": _extract(_BEFORE.value, tmp), "now": os.path.dirname(HERE)}
    videos = os.path.join(tmp, "videos")
    os.makedirs(videos)
    for i in range(_VIDEOS.value):
        write_video(os.path.join(videos, f"clip{i:03d}.avi"), i)
    results = {tag: [] for tag in roots}
    for r in range(_REPEATS.value):
        for tag in list(roots)[::(-1) ** r]:
            results[tag].append(_run(roots[tag], videos, os.path.join(tmp, f"records_{tag}"),
                                     r))
    print(f"{_VIDEOS.value} videos 320x240, short side 256; batch 8, 3 frames at 224; "
          f"{_REPEATS.value} runs of each version, alternating; {os.cpu_count()} CPUs; "
          f"before = {_BEFORE.value}")
    median = statistics.median
    for tag, runs in results.items():
        for mode in MODES:
            print(f"  {tag:6s} {mode:6s} {median(r[mode][0] for r in runs):7.1f} clips/s "
                  f"{median(r[mode][1] for r in runs):5.2f} CPU-ms/clip   runs (clips/s) "
                  + " ".join(f"{r[mode][0]:.0f}" for r in runs))
    for tag, runs in results.items():
        for mode in MODES[:2]:
            print(f"  {tag:6s} {mode:6s} / decode-only limit: "
                  f"{median(r[mode][0] / r['decode'][0] for r in runs):.2f} by clips/s, "
                  f"{median(r['decode'][1] / r[mode][1] for r in runs):.2f} by CPU time")
    now, before = results["now"], results["before"]
    for mode in MODES[:2]:
        speed = median(r[mode][0] for r in now) / median(r[mode][0] for r in before)
        cost = median(r[mode][1] for r in before) / median(r[mode][1] for r in now)
        print(f"  now / before, {mode:6s}: {speed:.2f} by clips/s, {cost:.2f} by CPU time")
    print(f"Whole benchmark: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
