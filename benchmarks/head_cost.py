"""What the attention head costs: parameters and latency against average pooling, side by side.

    python benchmarks/head_cost.py
    python benchmarks/head_cost.py --configs=resnet50@224 --repeats=5

For each backbone@size (ResNet-50 at 224 and ResNet-101 at 450 by default, 393 classes as in
MPII, batch 8, random weights), builds the same network with the average-pooling, attention
(rank 1) and second-order heads (projected to 256 channels first: the full 2048^2 x 393
classifier would need 1.6 billion parameters), then times an inference call and a training
step (SGD) of each, interleaved: every repeat runs every head once, in a rotating order.
Each inference time is the best of 3 back-to-back calls. Ratios to the average-pooling
head are taken within each repeat (paired, so slow drifts of a shared machine cancel) and
their median is reported, for the whole network (the paper's "virtually no increase in
computation"); the head alone on the backbone's features is timed too.
"""

import os
import statistics
import time

import numpy as np
from absl import flags

from keras_attnpool import cli

_CONFIGS = flags.DEFINE_list("configs", "resnet50@224,resnet101@450",
                             "Comma-separated backbone@size.")
_BATCH = flags.DEFINE_integer("batch", 8, "Images per call.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 7, "Interleaved repeats.", lower_bound=1)

HEADS = {"avg": {}, "attention": {}, "second_order": {"projection_dim": 256}}
NUM_CLASSES = 393


def _compiled_steps(model):
    """tf.functions for one inference call and one SGD training step."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False)
    def infer(images):
        return model(images, training=False)

    @tf.function(jit_compile=False)
    def train(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return infer, train


def _timed(fn, *args):
    import keras

    start = time.perf_counter()
    result = fn(*args)
    keras.tree.map_structure(lambda t: t.numpy(), result)
    return time.perf_counter() - start


def _head_parameters(model, head):
    layer = model.get_layer(f"{head}_head")
    return layer.count_params()


def _head_only(model, head):
    import tensorflow as tf

    layer = model.get_layer(f"{head}_head")
    return tf.function(lambda x: layer(x, training=False), jit_compile=False)


def measure(backbone, size, batch, repeats):
    import keras
    import tensorflow as tf

    from keras_attnpool import build_action_model

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, NUM_CLASSES, batch))
    models, steps, heads_only = {}, {}, {}
    for head, kwargs in HEADS.items():
        keras.utils.set_random_seed(0)
        models[head] = build_action_model(NUM_CLASSES, backbone=backbone, head=head,
                                          input_shape=(size, size, 3), **kwargs)
        steps[head] = _compiled_steps(models[head])
    features = models["avg"].get_layer(f"{backbone}_backbone")(images)["final"]
    for head in HEADS:
        heads_only[head] = _head_only(models[head], head)
        _timed(steps[head][0], images)  # trace and warm up
        _timed(steps[head][1], images, labels)
        _timed(heads_only[head], features)
    times = {head: {"infer": [], "train": [], "head": []} for head in HEADS}
    order = list(HEADS)
    for repeat in range(repeats):
        order = order[1:] + order[:1]
        for head in order:
            times[head]["infer"].append(min(_timed(steps[head][0], images) for _ in range(3)))
            times[head]["train"].append(_timed(steps[head][1], images, labels))
            times[head]["head"].append(
                min(_timed(heads_only[head], features) for _ in range(5)))
    medians = {h: {k: statistics.median(v) for k, v in t.items()} for h, t in times.items()}
    for head in HEADS:
        for kind in ("infer", "train"):
            medians[head][f"{kind}_ratio"] = statistics.median(
                a / b for a, b in zip(times[head][kind], times["avg"][kind]))
    return models, medians


def report(backbone, size, batch, repeats, models, medians):
    feature_shape = models["avg"].get_layer(f"{backbone}_backbone").output["final"].shape
    print(f"\n{backbone} @ {size}px, batch {batch}, {NUM_CLASSES} classes, features "
          f"{tuple(feature_shape[1:])}, medians of {repeats} interleaved repeats")
    print(f"{'head':<13}{'params':>12}{'head params':>13}{'infer ms':>10}{'ratio':>7}"
          f"{'train ms':>10}{'ratio':>7}{'head-only ms':>14}")
    for head, m in medians.items():
        print(f"{head:<13}{models[head].count_params():>12,}"
              f"{_head_parameters(models[head], head):>13,}"
              f"{m['infer'] * 1e3:>10.1f}{m['infer_ratio']:>7.3f}"
              f"{m['train'] * 1e3:>10.1f}{m['train_ratio']:>7.3f}"
              f"{m['head'] * 1e3:>14.2f}")
    ratio = max(medians["attention"]["infer_ratio"], medians["attention"]["train_ratio"])
    verdict = "holds" if ratio <= 1.03 else "does NOT hold"
    print(f"attention / avg latency, worst of inference and training: {ratio:.3f} "
          f"(claim: <= 1.03, {verdict})")


def _checked_configs() -> list:
    """[(backbone, size)] from --configs; exits 2 on a malformed entry."""
    configs = []
    for entry in _CONFIGS.value:
        backbone, _, size = entry.partition("@")
        if not backbone or not size.isdigit() or int(size) < 1:
            cli.fail(f"--configs: {entry!r} is not backbone@size, e.g. resnet50@224")
        configs.append((backbone, int(size)))
    if not configs:
        cli.fail("--configs is empty; e.g. --configs=resnet50@224")
    return configs


def main(argv):
    del argv
    configs = _checked_configs()
    with cli.quiet_native_logs():
        import keras
        import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores, float32")
    start = time.perf_counter()
    for backbone, size in configs:
        models, medians = measure(backbone, size, _BATCH.value, _REPEATS.value)
        report(backbone, size, _BATCH.value, _REPEATS.value, models, medians)
    print(f"\nAll configurations: {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
