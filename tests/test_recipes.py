"""The start of a run: real datasets fine-tune ImageNet weights with the paper's recipe; a
random start (`--weights=none`, or a backbone without ImageNet weights) takes the
from-scratch recipe; a weights file works for every backbone, `tiny` included."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_attnpool.trainer import experiment  # noqa: E402
from keras_attnpool.trainer.config import with_epoch_steps  # noqa: E402
from keras_attnpool.trainer.presets import make_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hmdb51"))


def test_real_datasets_start_from_imagenet_with_the_papers_recipe(data_dir):
    config = make_config("hmdb51", data_dir=data_dir)
    assert (config.weights, config.recipe) == ("imagenet", "paper")
    # The paper's recipe (PAPER.md): momentum SGD at 0.001 x0.33 every 5000 steps, 12000
    # steps, weight decay 5e-4, dropout 0.8.
    assert (config.optimizer, config.learning_rate, config.lr_decay_steps,
            config.lr_decay_rate, config.steps, config.weight_decay, config.dropout) == \
        ("sgd", 0.001, 5000, 0.33, 12000, 5e-4, 0.8)
    assert make_config("mpii", data_dir=data_dir).weights == "imagenet"
    assert make_config("demo").weights is None and make_config("demo").recipe == "demo"


def test_a_random_start_takes_the_from_scratch_recipe(data_dir):
    config = make_config("hmdb51", data_dir=data_dir, weights="none")
    assert (config.weights, config.recipe) == (None, "from_scratch")
    assert (config.optimizer, config.learning_rate, config.weight_decay, config.dropout,
            config.lr_decay_rate, config.lr_decay_steps) == ("adam", 0.001, 0.0, 0.0, 0.3, 4000)
    short = make_config("hmdb51", data_dir=data_dir, weights="none", steps=600)
    assert short.lr_decay_steps == 200  # a third of the run
    # Settings given on the command line are kept.
    given = make_config("hmdb51", data_dir=data_dir, weights="none", learning_rate=0.01,
                        dropout=0.5, lr_decay_steps=50)
    assert (given.optimizer, given.learning_rate, given.dropout, given.lr_decay_steps) == \
        ("adam", 0.01, 0.5, 50)
    # A backbone without ImageNet weights starts at random, with that recipe.
    tiny = make_config("hmdb51", data_dir=data_dir, backbone="tiny")
    assert (tiny.weights, tiny.recipe, tiny.optimizer) == (None, "from_scratch", "adam")
    assert json.loads(json.dumps(config.to_json()))["recipe"] == "from_scratch"


def test_epochs_keep_the_decay_at_a_third_of_the_run(data_dir):
    config = make_config("hmdb51", data_dir=data_dir, weights="none", epochs=10.0)
    resolved = with_epoch_steps(config, num_train=320)  # batch 32: 100 steps
    assert (resolved.steps, resolved.lr_decay_steps) == (100, 33)
    fixed = with_epoch_steps(make_config("hmdb51", data_dir=data_dir, weights="none",
                                         epochs=10.0, lr_decay_steps=7), num_train=320)
    assert fixed.lr_decay_steps == 7
    paper = with_epoch_steps(make_config("hmdb51", data_dir=data_dir, epochs=10.0), 320)
    assert paper.lr_decay_steps == 5000


def test_the_log_says_which_recipe(data_dir):
    line = experiment._recipe_line(make_config("hmdb51", data_dir=data_dir, weights="none",
                                               steps=600))
    assert line == ("Recipe: from scratch (the paper's fine-tuning recipe stays at chance "
                    "from random weights): adam at lr 0.001 x0.3 every 200 steps, dropout 0, "
                    "weight decay 0; from random weights")
    assert experiment._recipe_line(make_config("hmdb51", data_dir=data_dir)).startswith(
        "Recipe: the paper's (fine-tuning): sgd at lr 0.001 x0.33 every 5000 steps")


def test_a_weights_file_works_for_the_tiny_backbone(tmp_path):
    from keras_attnpool.models import build_action_model, get_backbone_spec

    # The network keras.applications-style: what a 'notop' weights file holds.
    source = get_backbone_spec("tiny").constructor(input_shape=(32, 32, 3),
                                                   include_top=False, weights=None)
    for variable in source.trainable_variables:  # weights no fresh start would have
        variable.assign(np.random.default_rng(0).normal(size=variable.shape))
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    model = build_action_model(4, backbone="tiny", head="avg", input_shape=(32, 32, 3),
                               weights=path)
    loaded = [v.numpy() for v in model.variables]
    for variable in source.trainable_variables:  # each file value is in the model
        assert any(v.shape == variable.shape and np.array_equal(v, variable.numpy())
                   for v in loaded), variable.path
    config = make_config("hmdb51", data_dir=str(tmp_path), backbone="tiny", weights=path)
    assert (config.weights, config.recipe) == (path, "paper")


@pytest.mark.slow
def test_offline_the_imagenet_default_ends_in_one_line_saying_where_the_file_goes(tmp_path):
    from keras_attnpool.data.synthetic.demo import make_demo_dataset

    data = make_demo_dataset(str(tmp_path / "data"), num_classes=3, clips_per_class=3,
                             num_frames=4, test_fraction=0.34)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "training", "fit.py"), "--dataset=hmdb51",
         f"--data_dir={data}", "--backbone=resnet50", "--image_size=32", "--steps=1",
         "--batch_size=2", "--workers=0", f"--workdir={tmp_path / 'w'}"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_HOME": str(tmp_path / "k")})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "Could not download ImageNet weights for backbone 'resnet50'" in result.stderr
    assert "~/.keras/models/" in result.stderr and "weights=" in result.stderr
