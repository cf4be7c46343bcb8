"""Where the training pipeline's CPU time goes: its stages, cumulatively, against the
decode-only limit.

    python benchmarks/input_stages.py
    python benchmarks/input_stages.py --augment_on=cpu --videos=8 --repeats=3

On `input_pipeline.py`'s HMDB51-like records (`input_methods.write_video` /
`write_records`: 320x240 clips stored at short side 256, with frame indexes), each row runs
the pipeline of `pipeline.train_dataset` up to one more stage of `train.train_batch` and
ends there (a small tensor of what that stage made leaves the pipeline), so that a row's
cost minus the row above is that stage's (the stages are `train.batch_stages`'):

  parse       the batch's index entries parsed
  sample      + the batch's uniforms and TSN frame indices
  read        + the sampled JPEGs read from the shards (`indexed.read_frames`)
  draw        + the frame sizes (JPEG headers) and the augmentation draws
  decode      + every clip's decode (and, augment_on=cpu, resize and flip), summed
  element     + the whole batch handed on (what a training step receives)

and `decode_limit`: `tf.io.decode_jpeg` of the same kind of sampled frames held in memory
(`input_methods.decode_only_dataset`), the limit any pipeline is measured against.
Interleaved repeats (every repeat runs every row once, in a rotating order), medians of
clips/s and of CPU milliseconds per clip.
"""

import os
import statistics
import tempfile
import time

from absl import flags

from keras_attnpool import cli

_VIDEOS = flags.DEFINE_integer("videos", 16, "Test videos written.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Interleaved repeats.", lower_bound=1)
_BATCHES = flags.DEFINE_integer("batches", 60, "Batches per timed run (at least).",
                                lower_bound=1)
_AUGMENT_ON = flags.DEFINE_enum("augment_on", "device", ["cpu", "device"],
                                "The pipeline's augmentation mode.")


def _small(made):
    """A small tensor that depends on everything a stage made (so none of it is pruned)."""
    import tensorflow as tf

    values = [v.flat_values if isinstance(v, tf.RaggedTensor) else v
              for v in tf.nest.flatten(made)]
    return tf.add_n([tf.reduce_sum(tf.cast(tf.reshape(v, [-1])[:1], tf.float32))
                     if v.dtype != tf.string else tf.cast(tf.reduce_sum(
                         tf.strings.length(tf.reshape(v, [-1]))), tf.float32)
                     for v in values])


def _stage_dataset(files, stage: str, augment_on: str):
    """The training pipeline over `files`, ending after `stage` (a small tensor of what
    that stage made leaves it, or for the last, the element itself)."""
    import tensorflow as tf

    from input_methods import BATCH, IMAGE_SIZE, NUM_SEGMENTS, SHORT_SIDE
    from keras_attnpool.data.input import pipeline, train
    from keras_attnpool.data.input.sources import record_source

    source = record_source(files)
    spec = train.TrainSpec(NUM_SEGMENTS, IMAGE_SIZE, False, augment_on=augment_on,
                           canvas=SHORT_SIDE if augment_on == "device" else 0)

    def run(index, batch):
        for name, made in train.batch_stages(index, batch, spec, source):
            if name == stage:
                return made if stage == train.STAGES[-1] else _small(made)

    ds = source.training_records(0, 8, 16, True).batch(BATCH, drop_remainder=True)
    ds = ds.enumerate().map(run, tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(pipeline._options())


def main(argv) -> None:
    del argv
    start = time.perf_counter()
    with cli.quiet_native_logs():
        import tensorflow as tf

        from input_methods import clips_per_second, decode_only_dataset
        from input_methods import write_records, write_video
        from keras_attnpool.data.input.train import STAGES

    tmp = tempfile.mkdtemp(prefix="input_stages_")
    videos = [os.path.join(tmp, f"clip{i:03d}.avi") for i in range(_VIDEOS.value)]
    for i, path in enumerate(videos):
        write_video(path, i)
    files = write_records(videos, tmp)
    rows = {stage: (lambda s=stage: _stage_dataset(files, s, _AUGMENT_ON.value))
            for stage in STAGES}
    rows["decode_limit"] = lambda: decode_only_dataset(files)
    results = {name: [] for name in rows}
    names = list(rows)
    for r in range(_REPEATS.value):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(clips_per_second(rows[name], _BATCHES.value))
    print(f"augment_on={_AUGMENT_ON.value}, {_VIDEOS.value} clips, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__}; medians of {_REPEATS.value} interleaved repeats")
    previous = 0.0
    for name in names:
        speed = statistics.median(r[0] for r in results[name])
        cost = statistics.median(r[1] for r in results[name])
        step = f"(+{cost - previous:.3f})" if name in STAGES else ""
        previous = cost if name in STAGES else previous
        print(f"  {name:12s} {speed:8.1f} clips/s {cost:6.3f} CPU-ms/clip {step}")
    limit = statistics.median(r[0] for r in results["decode_limit"])
    whole = statistics.median(r[0] for r in results[STAGES[-1]])
    print(f"pipeline / decode-only limit: {whole / limit:.2f} by clips/s")
    print(f"Whole benchmark: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
