r"""Attention pictures of a trained model for image and video files.

    python training/visualize.py --workdir=workdir/demo_attention --out=pictures \
        --inputs ~/.keras_attnpool/demo/digit_3/digit_3_031.avi photo.jpg
    python training/visualize.py --workdir=W --out=DIR --inputs=a.avi,b.png --classes=digit_1

For each input writes DIR/<name>_attention.png: the input (prepared as the test protocol
prepares it) beside the bottom-up map, the top-down map of the predicted class (and of each
--classes entry) and their product, the map whose mean is the class's logit, with the top-k
labels written on the picture. A video gives one strip of --frames uniformly spaced frames.
The maps are the trained head's own (`AttentionalPooling.attention_maps`). A workdir without
a trained attention model, or an unreadable input, ends with exit code 2 and one line.
"""

import os

from absl import flags

from keras_attnpool import cli
from keras_attnpool.cli import fail, quiet_native_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "A training/fit.py workdir (model.keras).")
_INPUTS = flags.DEFINE_list("inputs", [], "Image or video files (comma-separated, or "
                            "listed after the flags).")
_OUT = flags.DEFINE_string("out", None, "Folder for the PNG pictures (created).")
_CLASSES = flags.DEFINE_list("classes", [], "Extra classes (names or indices) whose "
                             "top-down and product maps are drawn too.")
_TOP_K = flags.DEFINE_integer("top_k", 3, "Labels written on the picture.")
_FRAMES = flags.DEFINE_integer("frames", 6, "Frames in a video's strip.")


def _class_indices(names: list) -> list:
    indices = []
    for entry in _CLASSES.value:
        if entry in names:
            indices.append(names.index(entry))
        elif entry.isdigit() and int(entry) < len(names):
            indices.append(int(entry))
        else:
            fail(f"--classes: {entry!r} is not a class of this model (classes: "
                 f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''}).")
    return indices


def _check_flags(inputs: list) -> None:
    if not _WORKDIR.value:
        fail("--workdir is required: a training/fit.py workdir holding model.keras.")
    if not _OUT.value:
        fail("--out is required: the folder for the pictures.")
    if not inputs:
        fail("--inputs is required: image or video files.")
    for flag in (_TOP_K, _FRAMES):
        if flag.value < 1:
            fail(f"--{flag.name}={flag.value}: must be >= 1.")


def main(argv: list) -> None:
    inputs = [os.path.expanduser(p) for p in list(_INPUTS.value) + list(argv[1:])]
    _check_flags(inputs)
    with quiet_native_logs():
        from keras_attnpool import visualize, visualize_inputs

    try:
        run = visualize_inputs.load_run(_WORKDIR.value)
        visualize.attention_layers(run.model)
        frames = [visualize_inputs.input_frames(run, path, _FRAMES.value) for path in inputs]
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    classes = _class_indices(run.class_names)
    os.makedirs(_OUT.value, exist_ok=True)
    for path, clip in zip(inputs, frames):
        picture = visualize.attention_picture(
            run.model, clip, run.class_names, classes=classes, top_k=_TOP_K.value,
            title=os.path.basename(path))
        target = os.path.join(_OUT.value, visualize_inputs.picture_name(path))
        visualize.save_png(picture, target)
        print(target)


if __name__ == "__main__":
    cli.run(main)
