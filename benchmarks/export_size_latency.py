"""Export formats side by side: file size, CPU latency at batch 1 and top-1 agreement.

    python benchmarks/export_size_latency.py
    python benchmarks/export_size_latency.py --repeats=300 --threads=1

Trains the cluttered-digit demo model (tiny backbone, attention head, 64x64 input; 1500
frames, 8 epochs, BatchNorm statistics refreshed on 512 training frames), exports it as a
SavedModel and as TFLite float32, dynamic-range and int8 (calibrated on 300 training frames),
and compares them with the Keras model:

- size: the `.keras` file, the SavedModel folder (all files), each `.tflite` file;
- latency: one image (batch 1, float pixels at the input size) per call, the median over
  `--repeats` rounds; every round calls every format once, in a rotating order, so a shared
  machine's slow spells hit all formats alike. Keras is timed as `model(x)` (eager, what
  Python users call) and as a `tf.function`; the SavedModel through `classify_preprocessed`
  and, with JPEG decoding and resizing, `serving_default`; TFLite through ai_edge_litert's
  signature runner;
- agreement: the share of the 500 held-out test frames whose top-1 class equals Keras's, and
  each format's own test accuracy.
"""

import os
import statistics
import tempfile
import time

import numpy as np
from absl import flags

from keras_attnpool import cli

_REPEATS = flags.DEFINE_integer("repeats", 200, "Timed rounds.", lower_bound=1)
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for TF and TFLite.", lower_bound=1)
_NUM_TRAIN = flags.DEFINE_integer("num_train", 1500, "Training frames.", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", 8, "Training epochs.", lower_bound=1)

QUANTIZATIONS = ("float", "dynamic", "int8")


def _train_demo(num_train: int, epochs: int):
    import keras

    from arrays import fit_and_evaluate
    from keras_attnpool import build_action_model
    from keras_attnpool.data.synthetic.cluttered_digits import load_cluttered_digits

    train, test, names = load_cluttered_digits(num_train, 500, 5, seed=0)
    keras.utils.set_random_seed(0)
    model = build_action_model(5, backbone="tiny", head="attention", input_shape=(64, 64, 3))
    fit_and_evaluate(model, train, test, epochs=epochs)
    # Moving averages lag the weights after a few hundred steps: set them from one pass.
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(train[0][:512].astype("float32"), training=True)
    for layer in norms:
        layer.momentum = 0.99
    return model, train, test, names


def _folder_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, files in os.walk(path) for name in files)


def _export_all(model, train, names, folder):
    """{format: (size in bytes, predict(pixels (1, 64, 64, 3)) -> logits or scores)}.

    The JPEG row decodes one fixed training frame per call whatever the pixels given: it
    times the whole `serving_default` path (decode, resize, model).
    """
    import tensorflow as tf

    from keras_attnpool.export import export_saved_model, export_tflite, load_interpreter

    keras_path = os.path.join(folder, "model.keras")
    model.save(keras_path)
    saved = export_saved_model(model, os.path.join(folder, "sm"), names)
    signatures = tf.saved_model.load(saved).signatures
    compiled = tf.function(lambda x: model(x, training=False))
    formats = {
        "Keras model(x)": (os.path.getsize(keras_path), lambda x: model(x, training=False)),
        "Keras tf.function": (os.path.getsize(keras_path), compiled),
        "SavedModel classify_preprocessed": (
            _folder_size(saved), lambda x: signatures["classify_preprocessed"](pixels=x)["logits"]),
    }
    for kind in QUANTIZATIONS:
        path = export_tflite(saved, os.path.join(folder, f"model_{kind}.tflite"), kind,
                             representative_data=train[0][:300] if kind == "int8" else None)
        runner = load_interpreter(path, num_threads=_THREADS.value).get_signature_runner(
            "classify_preprocessed")
        formats[f"TFLite {kind}"] = (
            os.path.getsize(path), lambda x, run=runner: run(pixels=np.asarray(x))["logits"])
    jpeg = tf.constant([tf.io.encode_jpeg(train[0][0], quality=95).numpy()])
    formats["SavedModel serving_default (JPEG)"] = (
        _folder_size(saved), lambda x: signatures["serving_default"](image_bytes=jpeg)["scores"])
    return formats


def _time_call(fn, x) -> float:
    start = time.perf_counter()
    np.asarray(fn(x))
    return time.perf_counter() - start


def _latencies(formats, test, repeats: int) -> dict:
    import tensorflow as tf

    pixels = [tf.constant(image[None].astype(np.float32)) for image in test[0][:16]]
    names = list(formats)
    for name in names:  # warm up: tracing, allocation, XNNPACK packing
        for x in pixels[:3]:
            _time_call(formats[name][1], x)
    times = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_time_call(formats[name][1], pixels[round_index % len(pixels)]))
    return {name: statistics.median(values) for name, values in times.items()}


def _agreement(formats, test, reference) -> dict:
    """{format: (top-1 agreement with Keras, test accuracy)} over the test set."""
    import tensorflow as tf

    result = {}
    for name, (_, fn) in formats.items():
        if "JPEG" in name:  # JPEG is lossy: its answers are for other pixels
            continue
        top1 = np.array([np.argmax(fn(tf.constant(image[None].astype(np.float32))))
                         for image in test[0]])
        result[name] = (np.mean(top1 == reference), np.mean(top1 == test[1]))
    return result


def _report(formats, latencies, agreement):
    base_size = formats["Keras model(x)"][0]
    base_time = latencies["Keras tf.function"]
    print("\n| format | size (KiB) | size / .keras | latency b=1 (ms, median) | "
          "latency / Keras tf.function | top-1 = Keras | test top-1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (size, _) in formats.items():
        same, accuracy = ((f"{value:.3f}" for value in agreement[name]) if name in agreement
                          else ("–", "–"))
        print(f"| {name} | {size / 1024:,.0f} | {size / base_size:.2f} | "
              f"{latencies[name] * 1e3:.2f} | {latencies[name] / base_time:.2f} | {same} | "
              f"{accuracy} |")


def main(argv):
    del argv
    with cli.quiet_native_logs():
        import keras
        import tensorflow as tf

    # Before any op runs: TensorFlow fixes its thread pools at the first one.
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {_THREADS.value} "
          f"thread(s), {os.cpu_count()} CPU cores visible")
    start = time.perf_counter()
    model, train, test, names = _train_demo(_NUM_TRAIN.value, _EPOCHS.value)
    reference = np.argmax(model.predict(test[0].astype("float32"), verbose=0), axis=-1)
    with tempfile.TemporaryDirectory() as folder:
        formats = _export_all(model, train, names, folder)
        latencies = _latencies(formats, test, _REPEATS.value)
        agreement = _agreement(formats, test, reference)
    _report(formats, latencies, agreement)
    print(f"\nTraining, export and timing: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
