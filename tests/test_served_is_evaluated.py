"""What is served is what was evaluated: for a video-dataset workdir, fit's own export and
`training/export.py --workdir` serve the same scores, both with the evaluation's crop.

The run uses the HMDB51 preset (the evaluation resizes the short side to
image_size x 256/224 before the centre crop, a value the preset leaves to be derived), on
the demo's videos, which are in the HMDB51 layout.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_attnpool.models  # noqa: E402,F401  registers the layers for load_model
from keras_attnpool.data.input import augment  # noqa: E402
from keras_attnpool.data.synthetic.demo import make_demo_dataset  # noqa: E402

from tools import run_tool  # noqa: E402

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    data = make_demo_dataset(str(root / "data"), num_classes=3, clips_per_class=4,
                             num_frames=6, test_fraction=0.5)
    workdir = root / "run"
    run_tool("fit.py", "--dataset=hmdb51", f"--data_dir={data}", f"--records_dir={root / 'rec'}",
             f"--workdir={workdir}", "--backbone=tiny", f"--image_size={IMAGE_SIZE}", "--steps=2",
             "--batch_size=4", "--test_frames=2", "--workers=0")
    run_tool("export.py", f"--workdir={workdir}", f"--export_dir={root / 'savedmodels' / 'm'}")
    return workdir, workdir / "export" / "1", root / "savedmodels" / "m" / "1"


def _images():
    """Smooth RGB images smaller than the evaluation's short side (so that no resize in
    either path shrinks them) and not square (so the crop position matters)."""
    y, x = np.meshgrid(np.linspace(0, 1, 24), np.linspace(0, 1, 30), indexing="ij")
    images = [np.stack([y * 255, x * 255, (1 - x * y) * 255 * k / 3], -1) for k in range(3)]
    return np.round(images).astype(np.uint8)


def test_both_exports_serve_the_evaluated_crop(exports):
    workdir, fit_export, tool_export = exports
    config = json.loads((workdir / "config.json").read_text())
    # The evaluation's short side: derived once, stored, and what both exports state.
    assert config["resize_short"] == round(IMAGE_SIZE * 256 / 224) > IMAGE_SIZE
    for export in (fit_export, tool_export):
        info = json.loads((export / "assets" / "preprocessing.json").read_text())
        assert info["resize_short"] == config["resize_short"]

    images = _images()
    served = [tf.saved_model.load(str(path)).signatures["classify_images"](
        images=tf.constant(images))["scores"].numpy() for path in (fit_export, tool_export)]
    np.testing.assert_array_equal(served[0], served[1])

    # The evaluation pipeline's own crop function, then the trained model.
    model = keras.saving.load_model(workdir / "model.keras", safe_mode=True)
    crops = augment.eval_views(tf.constant(images), IMAGE_SIZE, config["resize_short"])[0]
    expected = tf.nn.softmax(model(crops, training=False), axis=-1).numpy()
    np.testing.assert_allclose(served[0], expected, rtol=1e-5, atol=1e-6)
    # The test can tell crops apart: the model's input size as the short side (the crop a
    # served model took when the derived value was not passed on) scores differently.
    other = augment.eval_views(tf.constant(images), IMAGE_SIZE, IMAGE_SIZE)[0]
    skewed = tf.nn.softmax(model(other, training=False), axis=-1).numpy()
    assert np.max(np.abs(skewed - expected)) > 1e-4
