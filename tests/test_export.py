"""SavedModel and TFLite export (keras_attnpool.export). Tests on the trained demo model are
`slow`: training it takes ~35 s on 2 cores; input checks use an untrained export."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool import build_action_model  # noqa: E402
from keras_attnpool.data.synthetic.cluttered_digits import load_cluttered_digits  # noqa: E402
from keras_attnpool.export import (VersionExistsError, export_saved_model,  # noqa: E402
                                   export_tflite, load_interpreter, read_models_config,
                                   run_tflite, update_models_config)
from keras_attnpool.data.input import augment  # noqa: E402
from keras_attnpool.export.preprocessing import resize_and_centre_crop  # noqa: E402
# fit_and_evaluate is the benchmarks' helper (benchmarks/arrays.py), not library code.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from arrays import fit_and_evaluate  # noqa: E402

SIZE = 64
BIN = os.path.dirname(sys.executable)


def _refresh_batch_norm(model: keras.Model, images: np.ndarray) -> None:
    """Sets BatchNorm moving statistics to those of `images`.

    One pass with momentum 0, then each layer's own momentum back: the exported model's
    inference then does not depend on how far the moving averages followed the weights.
    """
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images.astype("float32"), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A trained attention model (about 85% top-1 on held-out handwriting), exported."""
    train, test, names = load_cluttered_digits(1500, 500, 5, seed=0)
    keras.utils.set_random_seed(0)
    model = build_action_model(5, backbone="tiny", head="attention", input_shape=(SIZE, SIZE, 3))
    fit_and_evaluate(model, train, test, epochs=3)
    _refresh_batch_norm(model, train[0][:512])
    logits = model.predict(test[0].astype("float32"), verbose=0)
    assert np.mean(logits.argmax(-1) == test[1]) > 0.6, "the demo model did not train"
    base = tmp_path_factory.mktemp("savedmodels") / "digits"
    path = export_saved_model(model, str(base), names)
    return {"model": model, "train": train, "test": test, "names": names, "path": path,
            "loaded": tf.saved_model.load(path), "logits": logits}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """An untrained model, exported: enough for input checking, in seconds."""
    keras.utils.set_random_seed(2)
    model = build_action_model(3, backbone="tiny", head="attention", input_shape=(32, 32, 3))
    path = export_saved_model(model, tmp_path_factory.mktemp("small") / "m", list("abc"))
    images = np.random.default_rng(2).integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    return {"path": path, "loaded": tf.saved_model.load(path), "images": images}


def _softmax(logits):
    return tf.nn.softmax(logits).numpy()


def _png(image):
    return tf.io.encode_png(image).numpy()


def _bottom_up_reference(model, images):
    """The attention head's bottom-up map summed over rank, from the Keras layers."""
    features = model.get_layer("tiny_backbone")(images.astype("float32"))["final"]
    maps = model.get_layer("attention_head").attention_maps(features)["bottom_up"]
    return np.sum(maps, axis=3)


@pytest.mark.slow
def test_layout_and_assets(demo):
    path = demo["path"]
    assert os.path.basename(path) == "1"
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))
    with open(os.path.join(path, "assets", "labels.txt")) as f:
        assert f.read().splitlines() == demo["names"]
    assert os.listdir(os.path.dirname(path)) == ["1"]  # no staging folder left behind
    assert set(demo["loaded"].signatures) >= {"serving_default", "classify_images",
                                              "classify_video"}


@pytest.mark.slow
def test_signatures_agree_with_keras(demo):
    images = demo["test"][0][:48]
    expected = _softmax(demo["logits"][:48])
    signatures = demo["loaded"].signatures
    out = signatures["classify_images"](images=tf.constant(images))
    np.testing.assert_allclose(out["scores"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["top_k_ids"], np.argsort(-expected, axis=1)[:, :5])
    names = np.array(demo["names"])[out["top_k_ids"].numpy()]
    np.testing.assert_array_equal(out["top_k_names"].numpy().astype(str), names)
    np.testing.assert_allclose(out["bottom_up_attention"],
                               _bottom_up_reference(demo["model"], images), atol=1e-5)

    from_bytes = signatures["serving_default"](
        image_bytes=tf.constant([_png(image) for image in images]))
    for key in ("scores", "bottom_up_attention"):
        np.testing.assert_allclose(from_bytes[key], out[key], atol=1e-5)

    pre = signatures["classify_preprocessed"](pixels=tf.constant(images, tf.float32))
    np.testing.assert_allclose(pre["logits"], demo["logits"][:48], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_video_scores_average_the_frames_logits(demo):
    frames = demo["test"][0][:12].reshape(3, 4, SIZE, SIZE, 3)
    out = demo["loaded"].signatures["classify_video"](frames=tf.constant(frames))
    # As the evaluation scores a clip: the softmax of its frames' mean logits.
    per_clip = _softmax(demo["logits"][:12].reshape(3, 4, -1).mean(axis=1))
    np.testing.assert_allclose(out["scores"], per_clip, atol=1e-5)
    assert out["top_k_ids"].shape == (3, 5) and out["top_k_names"].shape == (3, 5)
    np.testing.assert_allclose(
        out["bottom_up_attention"],
        _bottom_up_reference(demo["model"], demo["test"][0][:12]).reshape(3, 4, 8, 8),
        atol=1e-5)


@pytest.mark.slow
def test_images_of_other_sizes_are_resized_and_centre_cropped(demo):
    images = demo["test"][0][:4]
    signature = demo["loaded"].signatures["classify_images"]
    reference = signature(images=tf.constant(images))["scores"]
    # Short side already 64: only the centre crop acts, so padding on both sides is removed.
    padded = np.pad(images, ((0, 0), (0, 0), (20, 20), (0, 0)), constant_values=255)
    np.testing.assert_allclose(signature(images=tf.constant(padded))["scores"], reference,
                               atol=1e-5)
    # A flat colour stays flat whatever the resize; the scores equal those of a 64x64 one.
    flat = np.full((1, 150, 90, 3), 90, np.uint8)
    np.testing.assert_allclose(signature(images=tf.constant(flat))["scores"],
                               signature(images=tf.constant(flat[:, :64, :64]))["scores"],
                               atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 64), (30, 200), (201, 31), (500, 300)])
def test_resize_and_centre_crop_shape_eager_and_in_dataset(shape):
    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    eager = resize_and_centre_crop(tf.constant(image), (SIZE, 48))
    mapped = next(iter(tf.data.Dataset.from_tensors(image).map(
        lambda x: resize_and_centre_crop(x, (SIZE, 48)))))
    assert eager.shape == (SIZE, 48, 3) and eager.dtype == tf.float32
    np.testing.assert_allclose(eager, mapped, atol=1e-4)


def test_resize_short_resizes_before_the_centre_crop():
    image = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    # Short side already 80: no resize, the centre 64x64 window of the 80x100 image.
    cropped = resize_and_centre_crop(tf.constant(image), (SIZE, SIZE), resize_short=80)
    np.testing.assert_array_equal(cropped, image[8:72, 18:82].astype(np.float32))
    model = build_action_model(3, backbone="tiny", head="avg", input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="resize_short"):
        export_saved_model(model, "/nonexistent/never/written", list("abc"), resize_short=32)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """An untrained model exported with the evaluation's settings of a run: short side 37
    before the 32 crop, records stored at short side 48."""
    keras.utils.set_random_seed(3)
    model = build_action_model(3, backbone="tiny", head="attention", input_shape=(32, 32, 3))
    path = export_saved_model(model, tmp_path_factory.mktemp("evaluated") / "m", list("abc"),
                              resize_short=37, prepared_short_side=48)
    return {"model": model, "loaded": tf.saved_model.load(path)}


def _smooth_image(shape, seed):
    """Smooth RGB content (a gradient per channel), so a shifted crop changes the scores."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    a, b = rng.uniform(-1, 1, (2, 3))
    return np.clip(127.5 + 127.5 * (a * y[..., None] + b * x[..., None]), 0, 255).astype(
        np.uint8)


# (frame shape, the centre crop's free space along the long side after the resize to 37):
# odd free space of 3 mod 4 is where round(free / 2) (halves to even) and free // 2 differ.
@pytest.mark.parametrize("shape, free", [
    ((37, 39), 7), ((37, 42), 10), ((43, 37), 11), ((48, 56), 11), ((48, 60), 14),
    ((24, 30), 14), ((25, 28), 9)])
def test_served_crop_is_the_evaluated_crop(evaluated, shape, free):
    image = _smooth_image(shape, seed=sum(shape))
    crop = augment.eval_views(tf.constant(image[None]), 32, 37)[0]
    assert max(augment.resize_short_side(tf.constant(image, tf.float32), 37).shape) == 32 + free
    expected = _softmax(evaluated["model"](crop, training=False))
    served = evaluated["loaded"].signatures["classify_images"](images=tf.constant(image[None]))
    np.testing.assert_allclose(served["scores"], expected, rtol=1e-5, atol=1e-6)


def test_a_photo_larger_than_the_records_is_shrunk_as_prepare_shrank_them():
    """Above the records' short side (48 here), serving first shrinks an image as `prepare`
    did with PIL's bilinear filter (antialiased), then applies the evaluation's resize."""
    from PIL import Image

    noise = np.random.default_rng(5).integers(0, 256, (96, 120, 3), dtype=np.uint8)
    stored = np.asarray(Image.fromarray(noise).resize((60, 48), Image.Resampling.BILINEAR))
    evaluated = augment.eval_views(tf.constant(stored[None]), 32, 37)[0, 0].numpy()
    served = resize_and_centre_crop(tf.constant(noise), (32, 32), resize_short=37,
                                    prepared_short_side=48).numpy()
    assert np.abs(served - evaluated).max() < 2.0  # PIL stores uint8: rounding, not filtering
    # Resizing the photo straight to the evaluation's short side, as if it were a stored
    # frame, samples the noise instead of averaging it: far from what prepare stored.
    direct = augment.eval_views(tf.constant(noise[None]), 32, 37)[0, 0].numpy()
    assert np.abs(direct - evaluated).mean() > 10.0


def _palette_image(shape, seed):
    """Eight colours: a GIF holds them exactly."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (8, 3), dtype=np.uint8)[rng.integers(0, 8, shape)]


def _encode(image, fmt, **kwargs):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_gif_and_bmp_are_decoded(small):
    import io

    from PIL import Image

    first, second = _palette_image((40, 30), 6), _palette_image((40, 30), 7)
    gif = _encode(first, "GIF", save_all=True, append_images=[Image.fromarray(second)])
    with Image.open(io.BytesIO(gif)) as decoded:  # the first frame, as PIL reads it
        first_frame = np.asarray(decoded.convert("RGB"))
    bmp = _encode(second, "BMP")
    signatures = small["loaded"].signatures
    served = signatures["serving_default"](image_bytes=tf.constant([gif, bmp]))["scores"]
    expected = signatures["classify_images"](images=tf.constant(np.stack([first_frame,
                                                                          second])))["scores"]
    np.testing.assert_allclose(served, expected, atol=1e-6)


def _jpeg(image):
    return tf.io.encode_jpeg(image).numpy()


_RNG_BYTES = bytes(np.random.default_rng(8).integers(0, 256, 300, dtype=np.uint8))


# Each bad file is the second element of a batch: the error must name element 1.
@pytest.mark.parametrize("make_bad, message", [
    (lambda good: _RNG_BYTES, r"is not a JPEG, PNG, GIF or BMP image"),
    (lambda good: b"RIFF\x24\x00\x00\x00WEBPVP8 " + _RNG_BYTES, r"is not a JPEG, PNG, GIF"),
    (lambda good: b"", r"is not a JPEG, PNG, GIF or BMP image.*size in bytes:\] \[0\]"),
    (lambda good: good[:len(good) // 2], r"is an incomplete\] \[PNG\] \[file \(truncated"),
    (lambda good: good[:-12], r"is an incomplete\] \[PNG\]"),
    (lambda good: _jpeg(_smooth_image((40, 30), 0))[:400], r"is an incomplete\] \[JPEG\]"),
    (lambda good: _jpeg(_smooth_image((40, 30), 0))[:-2], r"is an incomplete\] \[JPEG\]"),
    (lambda good: _jpeg(_smooth_image((40, 30), 0))[:40], r"is an incomplete\] \[JPEG\]"),
], ids=["random", "webp", "empty", "png_half", "png_no_end", "jpeg_body", "jpeg_no_end",
        "jpeg_header"])
def test_bad_image_files_are_refused_naming_the_element(small, make_bad, message):
    serve = small["loaded"].signatures["serving_default"]
    good = _png(small["images"][0])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image_bytes: element\] \[1\] \[" + message):
        serve(image_bytes=tf.constant([good, make_bad(good)]))
    assert serve(image_bytes=tf.constant([good]))["scores"].shape == (1, 3)  # still serving


def _claiming_size(data, fmt, height, width):
    """`data` with a header that claims height x width pixels (the pixels stay small)."""
    data = bytearray(data)
    if fmt == "JPEG":  # the baseline frame header: FF C0, length, precision, height, width
        at = data.index(b"\xff\xc0") + 5
        data[at:at + 4] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    else:  # PNG IHDR: width, height
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_images_above_the_pixel_limit_are_refused_before_decoding(small, fmt):
    image = small["images"][0]
    data = _jpeg(image) if fmt == "JPEG" else _png(image)
    huge = _claiming_size(data, fmt, 10000, 10000)
    serve = small["loaded"].signatures["serving_default"]
    # A decoder would fail on these pixels; the header check answers first.
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"element\] \[0\] \[is a\] \[{fmt}\] \[of \(height, width\)\] "
                             r"\[10000 10000\] \[pixels, more than the 64000000 pixels"):
        serve(image_bytes=tf.constant([huge]))


def test_max_image_pixels_is_set_at_export(tmp_path):
    model = build_action_model(3, backbone="tiny", head="avg", input_shape=(32, 32, 3))
    path = export_saved_model(model, tmp_path / "m", list("abc"), max_image_pixels=1000)
    info = json.loads((tmp_path / "m" / "1" / "assets" / "preprocessing.json").read_text())
    assert info["max_image_pixels"] == 1000
    assert info["image_formats"] == ["JPEG", "PNG", "GIF", "BMP"]
    serve = tf.saved_model.load(path).signatures["serving_default"]
    square = _smooth_image((30, 30), 1)  # 900 pixels
    assert serve(image_bytes=tf.constant([_png(square)]))["scores"].shape == (1, 3)
    for data in (_png(_smooth_image((40, 30), 1)), _jpeg(_smooth_image((30, 40), 1))):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[40 30\]|\[30 40\]"):
            serve(image_bytes=tf.constant([_png(square), data]))
    with pytest.raises(ValueError, match="max_image_pixels|max_pixels"):
        export_saved_model(model, tmp_path / "n", list("abc"), max_image_pixels=0)


def test_preprocessed_pixels_of_another_size_are_refused_by_the_signature(small):
    signature = small["loaded"].signatures["classify_preprocessed"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"pixels: must be \(B, 32, 32, 3\).*got shape\] \[1 40 40"):
        signature(pixels=tf.zeros((1, 40, 40, 3), tf.float32))


@pytest.mark.parametrize("name, value", [
    ("classify_images", np.zeros((1, 32, 32, 3), np.float32)),
    ("classify_images", np.zeros((32, 32, 3), np.uint8)),
    ("classify_images", np.zeros((1, 32, 32, 4), np.uint8)),
    ("classify_video", np.zeros((1, 32, 32, 3), np.uint8)),
    ("classify_preprocessed", np.zeros((1, 40, 40, 3), np.float32)),
    ("serving_default", np.zeros((1,), np.int32)),
    ("serving_default", np.array([[b"x"]])),
])
def test_wrong_dtype_or_shape_is_rejected(small, name, value):
    """By the signature itself: TF Serving answers such a request with an error."""
    signature = small["loaded"].signatures[name]
    (key,) = signature.structured_input_signature[1]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(**{key: tf.constant(value)})


@pytest.mark.parametrize("name, value", [
    ("serving_default", np.array([], dtype=object)),
    ("classify_images", np.zeros((0, 32, 32, 3), np.uint8)),
    ("classify_images", np.zeros((1, 0, 32, 3), np.uint8)),
    ("classify_video", np.zeros((1, 0, 32, 32, 3), np.uint8)),
])
def test_empty_inputs_fail_with_a_clear_invalid_argument(small, name, value):
    signature = small["loaded"].signatures[name]
    (key,) = signature.structured_input_signature[1]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{key}: every axis must be"):
        signature(**{key: tf.constant(value, dtype=signature.structured_input_signature[1][
            key].dtype)})


def test_versions_are_never_overwritten_unless_asked(tmp_path):
    model = build_action_model(3, backbone="tiny", head="avg", input_shape=(32, 32, 3))
    base = tmp_path / "m"
    assert export_saved_model(model, base, ["a", "b", "c"]).endswith(os.sep + "1")
    with pytest.raises(VersionExistsError, match="already exists.*overwrite"):
        export_saved_model(model, base, ["x", "y", "z"], version=1)
    assert export_saved_model(model, base, ["a", "b", "c"]).endswith(os.sep + "2")
    export_saved_model(model, base, ["x", "y", "z"], version=1, overwrite=True)
    assert (base / "1" / "assets" / "labels.txt").read_text().split() == ["x", "y", "z"]
    assert sorted(os.listdir(base)) == ["1", "2"]
    with pytest.raises(ValueError, match="one name per class"):
        export_saved_model(model, base, ["a", "b"])
    assert sorted(os.listdir(base)) == ["1", "2"]


@pytest.mark.parametrize("head", ["pose_attention", "avg", "second_order"])
def test_other_heads_export(tmp_path, head):
    keras.utils.set_random_seed(1)
    model = build_action_model(4, backbone="tiny", head=head, input_shape=(32, 32, 3))
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(export_saved_model(model, tmp_path, list("abcd")))
    out = loaded.signatures["classify_images"](images=tf.constant(images))
    logits = model(images.astype("float32"))
    logits = logits["logits"] if isinstance(logits, dict) else logits
    np.testing.assert_allclose(out["scores"], _softmax(logits), atol=1e-5)
    attention = out["bottom_up_attention"].numpy()
    assert attention.shape == (3, 4, 4)
    if head == "pose_attention":
        features = model.get_layer("tiny_backbone")(images.astype("float32"))
        maps = model.get_layer("pose_attention_head").attention_maps(
            [features["pose"], features["final"]])
        np.testing.assert_allclose(attention, maps["bottom_up"][..., 0], atol=1e-5)
    else:  # no attention: every position weighs 1 / (h * w)
        np.testing.assert_allclose(attention, np.full((3, 4, 4), 1 / 16), atol=1e-7)


def test_rank_2_class_specific_attention_exports_the_top1_map(tmp_path):
    keras.utils.set_random_seed(4)
    model = build_action_model(4, backbone="tiny", head="attention", input_shape=(32, 32, 3),
                               rank=2, class_specific_bottom_up=True)
    images = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(export_saved_model(model, tmp_path, list("abcd")))
    out = loaded.signatures["classify_images"](images=tf.constant(images))
    features = model.get_layer("tiny_backbone")(images.astype("float32"))["final"]
    maps = model.get_layer("attention_head").attention_maps(features)["bottom_up"]
    top1 = np.argmax(out["scores"], axis=-1)
    expected = np.sum(maps, axis=3)[np.arange(3), :, :, top1]  # (B, h, w, K) at the top-1
    np.testing.assert_allclose(out["bottom_up_attention"], expected, atol=1e-5)


@pytest.mark.slow
def test_saved_model_cli_show_and_run(demo, tmp_path):
    path = demo["path"]
    cli = os.path.join(BIN, "saved_model_cli")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    shown = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert shown.returncode == 0, shown.stderr
    for text in ("signature_def['serving_default']", "image_bytes", "DT_STRING",
                 "classify_video", "top_k_names", "bottom_up_attention", "DT_UINT8"):
        assert text in shown.stdout
    images = demo["test"][0][:3]
    np.save(tmp_path / "bytes.npy", np.array([_png(image) for image in images]))
    ran = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"image_bytes={tmp_path / 'bytes.npy'}", "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    scores = np.load(tmp_path / "out" / "scores.npy")
    np.testing.assert_allclose(scores, _softmax(demo["logits"][:3]), atol=1e-5)
    names = np.load(tmp_path / "out" / "top_k_names.npy", allow_pickle=True).astype(str)
    assert names[0, 0] == demo["names"][int(np.argmax(scores[0]))]


@pytest.fixture(scope="module")
def tflite_models(demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    calibration = demo["train"][0][:300]
    return {kind: export_tflite(demo["path"], str(folder / f"model_{kind}.tflite"), kind,
                                representative_data=calibration if kind == "int8" else None)
            for kind in ("float", "dynamic", "int8")}


@pytest.mark.slow
def test_tflite_float_agrees_with_keras(demo, tflite_models):
    pixels = demo["test"][0][:100].astype(np.float32)
    out = run_tflite(load_interpreter(tflite_models["float"]), pixels)
    np.testing.assert_allclose(out["logits"], demo["logits"][:100], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["scores"], _softmax(demo["logits"][:100]), atol=1e-4)
    np.testing.assert_allclose(out["bottom_up_attention"],
                               _bottom_up_reference(demo["model"], pixels), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind, agreement", [("dynamic", 0.99), ("int8", 0.98)])
def test_quantized_tflite_keeps_the_top1(demo, tflite_models, kind, agreement):
    interpreter = load_interpreter(tflite_models[kind])
    out = run_tflite(interpreter, demo["test"][0].astype(np.float32))
    same = np.mean(out["scores"].argmax(-1) == demo["logits"].argmax(-1))
    assert same >= agreement, f"{kind}: top-1 agrees on {same:.3f} of {len(out['scores'])}"
    if kind == "int8":
        dtypes = {detail["dtype"] for detail in interpreter.get_tensor_details()}
        assert np.int8 in dtypes and interpreter.get_input_details()[0]["dtype"] == np.float32


@pytest.mark.slow
def test_tflite_metadata_beside_the_model(demo, tflite_models):
    folder = os.path.dirname(tflite_models["int8"])
    with open(os.path.join(folder, "model_int8.json")) as f:
        metadata = json.load(f)
    assert metadata["input"]["shape"] == [1, SIZE, SIZE, 3]
    assert metadata["input"]["range"] == [0.0, 255.0]
    assert "tf" in metadata["input"]["normalisation"]  # the tiny backbone scales to [-1, 1]
    assert metadata["labels"] == demo["names"] and metadata["quantization"] == "int8"
    with open(os.path.join(folder, metadata["labels_file"])) as f:
        assert f.read().splitlines() == demo["names"]


def test_int8_needs_representative_data(small, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        export_tflite(small["path"], str(tmp_path / "m.tflite"), "int8")
    with pytest.raises(ValueError, match="quantization"):
        export_tflite(small["path"], str(tmp_path / "m.tflite"), "int4")


def test_models_config_adds_and_updates_entries(tmp_path):
    config = str(tmp_path / "models.config")
    update_models_config(config, "digits", "/models/digits")
    update_models_config(config, "hmdb51", "/models/hmdb51")
    update_models_config(config, "digits", "/models/digits_v2")
    entries = {c.name: c.base_path for c in read_models_config(config).model_config_list.config}
    assert entries == {"digits": "/models/digits_v2", "hmdb51": "/models/hmdb51"}
    (tmp_path / "bad.config").write_text("this is not a config {")
    with pytest.raises(ValueError, match="bad.config"):
        update_models_config(str(tmp_path / "bad.config"), "digits", "/models/digits")
