"""keras_attnpool.visualize and training/visualize.py: the pictures come from the trained
head's `attention_maps`, a hot spot lands where it is, and bad workdirs/inputs fail in one
line."""

import importlib.util
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402
from absl.testing import flagsaver  # noqa: E402

from keras_attnpool import AttentionalPooling, build_action_model, visualize  # noqa: E402
from keras_attnpool.data.video import encode_video  # noqa: E402
from keras_attnpool.trainer import summaries  # noqa: E402
from keras_attnpool.trainer.presets import make_config  # noqa: E402
from keras_attnpool.workdir import Workdir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VISUALIZE = os.path.join(ROOT, "training", "visualize.py")
NAMES = ["digit_0", "digit_1", "digit_2"]


def _luminance(picture):
    return picture.astype("float32") @ np.array([0.299, 0.587, 0.114], "float32")


def _brightest(picture):
    """(row, col) of the centroid of the brightest 1% of pixels."""
    light = _luminance(picture)
    rows, cols = np.nonzero(light >= np.quantile(light, 0.99))
    return rows.mean(), cols.mean()


def _hot_spot_head(num_classes=3, channels=4):
    """A rank-1 head whose bottom-up and top-down maps are channel 0 of the features."""
    layer = AttentionalPooling(num_classes)
    layer.build((None, None, None, channels))
    one_hot = np.zeros((channels, 1), "float32")
    one_hot[0] = 1.0
    layer.bottom_up_kernel.assign(one_hot)
    layer.bottom_up_bias.assign(np.zeros((1,), "float32"))
    layer.top_down_kernel.assign(np.repeat(one_hot[:, :, None], num_classes, axis=2))
    return layer


@pytest.mark.parametrize("grid, spot, image", [
    ((8, 8), (2, 5), (64, 64)), ((8, 8), (0, 0), (64, 64)), ((8, 8), (7, 7), (64, 64)),
    ((6, 10), (4, 1), (48, 80)),
])
def test_one_hot_spot_is_brightest_at_its_place(grid, spot, image):
    features = np.zeros((1, *grid, 4), "float32")
    features[0, spot[0], spot[1], 0] = 10.0
    maps = visualize.maps_from_head(_hot_spot_head(), features)
    gray = np.full((1, *image, 3), 90.0, "float32")
    rows = dict(visualize.overlay_panels(gray, maps, classes=[1]))
    stride = (image[0] / grid[0], image[1] / grid[1])
    for name in ("bottom-up", "top-down #1", "product #1"):
        row, col = _brightest(rows[name][0])
        assert spot[0] * stride[0] <= row < (spot[0] + 1) * stride[0], (name, row)
        assert spot[1] * stride[1] <= col < (spot[1] + 1) * stride[1], (name, col)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_action_model(3, backbone="tiny", head="attention", input_shape=(32, 32, 3),
                              rank=2)


def test_maps_are_the_heads_own_and_their_product_gives_the_logits(model):
    frames = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    maps = visualize.attention_maps_of(model, frames, batch_size=2)
    head = model.get_layer("attention_head")
    features = model.get_layer("tiny_backbone")(frames, training=False)["final"]
    direct = head.attention_maps(features)
    np.testing.assert_allclose(maps.top_down, np.mean(direct["top_down"], axis=3), atol=1e-5)
    np.testing.assert_allclose(maps.bottom_up, np.mean(direct["bottom_up"], axis=3),
                               atol=1e-5)
    np.testing.assert_allclose(maps.logits, model(frames), rtol=1e-4, atol=1e-4)


def test_pictures_follow_the_heads_attention_maps(model, monkeypatch):
    """Replacing what `attention_maps` returns moves the drawn hot spot with it."""
    head = model.get_layer("attention_head")
    original = head.attention_maps
    calls = []

    def spied(inputs):
        calls.append(1)
        maps = {k: np.asarray(v).copy() for k, v in original(inputs).items()}
        maps["bottom_up"][:] = 0.0
        maps["bottom_up"][:, 1, 2, :] = 5.0  # a hot spot at feature cell (1, 2)
        return maps

    monkeypatch.setattr(head, "attention_maps", spied)
    frames = np.full((1, 32, 32, 3), 90.0, "float32")
    maps = visualize.attention_maps_of(model, frames)
    assert calls
    row, col = _brightest(dict(visualize.overlay_panels(frames, maps, [0]))["bottom-up"][0])
    assert 8 <= row < 16 and 16 <= col < 24  # cell (1, 2) of the 4x4 map of a 32 px input
    picture = visualize.attention_picture(model, frames, NAMES)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and len(calls) == 2


def test_figure_writes_top_k_labels_and_a_strip_for_videos(model):
    frames = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    maps = visualize.attention_maps_of(model, frames)
    strip = visualize.attention_figure(frames, maps, NAMES, classes=[2], top_k=2)
    single = visualize.attention_figure(frames[:1], visualize.attention_maps_of(
        model, frames[:1]), NAMES, top_k=2)
    probabilities = visualize.class_probabilities(maps.logits)
    order = np.argsort(-probabilities)
    heading = strip._suptitle.get_text()
    assert f"{NAMES[order[0]]} {probabilities[order[0]]:.2f}" in heading
    assert heading.index(NAMES[order[0]]) < heading.index(NAMES[order[1]])
    assert NAMES[order[2]] not in heading.split("top-2:")[1]
    # A strip: a column per frame; rows: input, bottom-up, top-down + product per class.
    rows = 4 if order[0] == 2 else 6
    assert np.shape(strip.axes) == (rows * 4,) and len(single.axes) == 4
    a, b = visualize.figure_to_array(strip), visualize.figure_to_array(single)
    assert a.shape[1] > b.shape[1] and a.shape[0] > b.shape[0]


def test_tensorboard_pictures_are_drawn_by_the_same_module(model):
    frames = np.full((2, 32, 32, 3), 120.0, "float32")
    features = model.get_layer("tiny_backbone")(frames)["final"]
    maps = visualize.maps_from_head(model.get_layer("attention_head"), features)
    pictures = summaries.draw(frames, maps, NAMES, labels=np.array([0, 2]))
    expected = visualize.figure_to_array(visualize.attention_figure(
        frames[:1], visualize.AttentionMaps(*(x[:1] for x in (
            maps.bottom_up, maps.top_down, maps.product, maps.logits))), NAMES,
        true_label=0, title="test example 0"))
    np.testing.assert_array_equal(pictures[0], expected)


def _run(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, VISUALIZE, *flags], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir as training leaves it (an untrained model: the CLI is what is tested)."""
    root = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    build_action_model(3, backbone="tiny", head="attention",
                       input_shape=(32, 32, 3)).save(root / "model.keras")
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    (root / "config.json").write_text(json.dumps({"image_size": 32, "resize_short": 32,
                                                  "short_side": 32, "backbone": "tiny"}))
    rng = np.random.default_rng(0)
    encode_video(str(root / "clip.avi"), rng.integers(0, 255, (8, 32, 32, 3), np.uint8), 10)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8)).save(root / "photo.png")
    (root / "broken.avi").write_bytes(b"not a video")
    return root


def _load_cli():
    """training/visualize.py as a module (once: it defines absl flags)."""
    if "training_visualize" not in sys.modules:
        spec = importlib.util.spec_from_file_location("training_visualize", VISUALIZE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["training_visualize"] = module
        spec.loader.exec_module(module)
    return sys.modules["training_visualize"]


def _main(*arguments):
    """Runs the CLI's main in this process; returns its exit code (0 when it returns)."""
    cli = _load_cli()
    with flagsaver.flagsaver():
        argv = flags.FLAGS(["visualize.py", *arguments])
        try:
            cli.main(argv)
        except SystemExit as exit_:
            return exit_.code
    return 0


def test_cli_writes_a_picture_per_image_and_video(workdir, tmp_path, capsys):
    code = _main(f"--workdir={workdir}", f"--out={tmp_path}", "--frames=3",
                 "--classes=digit_1", "--inputs", str(workdir / "clip.avi"),
                 str(workdir / "photo.png"))
    assert code == 0, capsys.readouterr().err
    from PIL import Image

    strip = Image.open(tmp_path / "clip_attention.png")
    single = Image.open(tmp_path / "photo_attention.png")
    assert strip.size[0] > single.size[0] // 2 and strip.size[1] > single.size[1]
    assert capsys.readouterr().out.split() == [str(tmp_path / "clip_attention.png"),
                                               str(tmp_path / "photo_attention.png")]


def test_cli_draws_a_pose_regularised_model(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    build_action_model(3, backbone="tiny", head="pose_attention", input_shape=(32, 32, 3),
                       pose_channels=8).save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("\n".join(NAMES) + "\n")
    Workdir(tmp_path).write_config(make_config("demo", workdir=str(tmp_path), backbone="tiny",
                                               head="pose_attention", image_size=32,
                                               resize_short=32))
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "gray.png")
    code = _main(f"--workdir={tmp_path}", f"--out={tmp_path / 'out'}",
                 f"--inputs={tmp_path / 'gray.png'}")
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "gray_attention.png").exists()


def test_cli_fails_with_exit_2_and_one_line_without_a_trained_model(workdir, tmp_path):
    """A real process: the exit code, and stderr free of TensorFlow's start-up lines."""
    result = _run(f"--workdir={tmp_path}", f"--out={tmp_path / 'out'}",
                  f"--inputs={workdir / 'clip.avi'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{tmp_path / 'config.json'} not found; is {tmp_path} a training workdir? " \
        "Train one with training/fit.py" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--inputs={workdir}/broken.avi"], "broken.avi: not a readable video"),
    (["--inputs={workdir}/nope.png"], "nope.png: no such file"),
    (["--inputs={workdir}/clip.avi", "--classes=digit_7"], "--classes: 'digit_7' is not"),
    (["--inputs={workdir}/clip.avi", "--frames=0"], "--frames=0: must be >= 1"),
    ([], "--inputs is required"),
])
def test_cli_fails_with_exit_2_and_one_line(arguments, message, workdir, tmp_path, capsys):
    code = _main(f"--workdir={workdir}", f"--out={tmp_path / 'out'}",
                 *(a.format(workdir=workdir) for a in arguments))
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
