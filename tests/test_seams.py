"""Every seam at once: a tiny video dataset through prepare, fit, evaluate and export (the
CLIs, as real processes), then every served form of the model scores the test clips as the
evaluation scored them (its per-clip logits in the workdir's predictions.csv).

The served inputs are the test clips' frames as the records store them (the JPEG bytes
themselves for `serving_default`, their decoded pixels for `classify_video` and TFLite), so
JPEG storage, the one difference between a clip and what the evaluation read, is not a
difference here: served and evaluated scores must agree to float32 rounding.
"""

import csv
import glob
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data.records import schema  # noqa: E402
from keras_attnpool.data.synthetic.demo import make_demo_dataset  # noqa: E402
from keras_attnpool.export import load_interpreter, run_tflite  # noqa: E402
from keras_attnpool.export.preprocessing import resize_and_centre_crop  # noqa: E402

from tools import run_tool  # noqa: E402

IMAGE_SIZE = 32
TEST_FRAMES = 3
# The evaluation runs 8 clips' frames per batch, the signatures other batch sizes: float32
# sums in another order differ by ~1e-7 relative; the scores are probabilities.
SERVED_ATOL = 1e-5
# TFLite's float kernels (another convolution implementation) round differently again.
TFLITE_ATOL = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seams")
    data = make_demo_dataset(str(root / "data"), num_classes=3, clips_per_class=4,
                             num_frames=6, test_fraction=0.5)
    workdir, records = root / "run", root / "records"
    # fit prepares the records, trains, evaluates (predictions.csv); export.py exports.
    run_tool("fit.py", "--dataset=hmdb51", f"--data_dir={data}", f"--records_dir={records}",
             f"--workdir={workdir}", "--backbone=tiny", f"--image_size={IMAGE_SIZE}",
             "--steps=20", "--batch_size=4", f"--test_frames={TEST_FRAMES}", "--workers=0",
             "--noexport")
    run_tool("export.py", f"--workdir={workdir}", f"--export_dir={root / 'savedmodels' / 'm'}",
             "--tflite=float")
    return {"workdir": workdir, "records": records,
            "saved_model": root / "savedmodels" / "m" / "1",
            "tflite": root / "savedmodels" / "m" / "tflite" / "1" / "model_float.tflite"}


def _evaluated(workdir):
    """video id -> (per-clip logits, top-1 name) from the evaluation's predictions.csv."""
    with open(workdir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = list(rows[0])[3:]
    return names, {row["video_id"]: (np.array([float(row[n]) for n in names]),
                                     row["predicted"]) for row in rows}


def _test_clips(records):
    """video id -> the JPEG bytes of its test frames, as the records store them and at
    the indices the paper's protocol takes: floor((2i + 1) n / (2 T)), i < T."""
    clips = {}
    for shard in sorted(glob.glob(str(records / "test-*.tfrecord"))):
        for serialized in tf.data.TFRecordDataset(shard):
            record = schema.parse_example(serialized, keypoints=False)
            n = int(record["num_frames"])
            indices = [(2 * i + 1) * n // (2 * TEST_FRAMES) for i in range(TEST_FRAMES)]
            clips[record["video_id"].numpy().decode()] = record["frames"].numpy()[indices]
    return clips


def _softmax(logits):
    return tf.nn.softmax(np.asarray(logits, np.float32), axis=-1).numpy()


def test_served_scores_are_the_evaluated_ones(run):
    names, evaluated = _evaluated(run["workdir"])
    clips = _test_clips(run["records"])
    assert sorted(clips) == sorted(evaluated) and len(clips) >= 6  # every test clip scored
    signatures = tf.saved_model.load(str(run["saved_model"])).signatures
    info = json.loads((run["saved_model"] / "assets" / "preprocessing.json").read_text())
    interpreter = load_interpreter(run["tflite"])
    expected_scores = []
    for video_id, jpegs in clips.items():
        logits, top1 = evaluated[video_id]
        expected = _softmax(logits)
        assert names[int(np.argmax(expected))] == top1
        expected_scores.append(expected)
        # serving_default scores single images: a clip is the softmax of its frames' mean
        # logits, and log(scores) are the logits up to a per-frame constant that the
        # softmax removes.
        frame_scores = signatures["serving_default"](image_bytes=tf.constant(jpegs))["scores"]
        from_bytes = _softmax(np.mean(np.log(frame_scores.numpy()), axis=0))
        frames = tf.stack([tf.io.decode_jpeg(jpeg, channels=3) for jpeg in jpegs])
        video = signatures["classify_video"](frames=frames[None])
        pixels = resize_and_centre_crop(frames, (IMAGE_SIZE, IMAGE_SIZE),
                                        info["resize_short"], info["prepared_short_side"])
        from_tflite = _softmax(run_tflite(interpreter, pixels.numpy())["logits"].mean(axis=0))
        for served, atol in ((from_bytes, SERVED_ATOL), (video["scores"][0], SERVED_ATOL),
                             (from_tflite, TFLITE_ATOL)):
            np.testing.assert_allclose(served, expected, atol=atol, err_msg=video_id)
            assert names[int(np.argmax(served))] == top1, video_id
        assert video["top_k_names"][0, 0].numpy().decode() == top1
    # The clips score differently, so agreeing clip by clip is not agreeing on a constant.
    assert np.ptp(np.array(expected_scores), axis=0).max() > 1e-3
