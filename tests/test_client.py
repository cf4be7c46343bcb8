"""savedmodels/client.py: the REST and gRPC requests it builds, checked without a server.

TF Serving turns a REST body or a PredictRequest into the signature's input tensors; the
tests do that decoding here, following its documented rules, and check that the tensors are
exactly the ones the signature expects and that the signature answers them as it answers the
original data. A fake server (http.server / grpc.server in front of the SavedModel) checks the
client's transport and response parsing end to end.
"""

import base64
import importlib.util
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from keras_attnpool import build_action_model  # noqa: E402
from keras_attnpool.export import export_saved_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["walk", "run", "jump", "sit"]


def _load_client():
    """savedmodels/client.py as a module (once: it defines absl flags)."""
    if "savedmodels_client" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "savedmodels_client", os.path.join(ROOT, "savedmodels", "client.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["savedmodels_client"] = module
        spec.loader.exec_module(module)
    return sys.modules["savedmodels_client"]


client = _load_client()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = build_action_model(len(NAMES), backbone="tiny", head="attention",
                               input_shape=(48, 48, 3))
    path = export_saved_model(model, tmp_path_factory.mktemp("sm") / "actions", NAMES)
    return tf.saved_model.load(path)


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index, (size, fmt) in enumerate([((60, 80), "PNG"), ((48, 48), "JPEG")]):
        path = tmp_path / f"image{index}.{fmt.lower()}"
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path, fmt)
        paths.append(str(path))
    return paths


def _input_specs(signature):
    return signature.structured_input_signature[1]


def _decode_rest_like_tf_serving(body: dict, signature) -> dict:
    """TF Serving's columnar ("inputs") JSON decoding: {"b64"} -> bytes, lists -> arrays."""
    specs = _input_specs(signature)
    assert set(body["inputs"]) == set(specs)
    tensors = {}
    for name, value in body["inputs"].items():
        spec = specs[name]
        if spec.dtype == tf.string:
            array = np.array([base64.b64decode(item["b64"]) for item in value], dtype=object)
        else:
            array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
        assert spec.shape.is_compatible_with(array.shape), (name, array.shape, spec.shape)
        tensors[name] = tf.constant(array, dtype=spec.dtype)
    return tensors


def _decode_grpc_like_tf_serving(request, signature) -> dict:
    specs = _input_specs(signature)
    assert set(request.inputs) == set(specs)
    tensors = {}
    for name, proto in request.inputs.items():
        assert proto.dtype == specs[name].dtype.as_datatype_enum, name
        tensor = tf.constant(tf.make_ndarray(proto), dtype=specs[name].dtype)
        assert specs[name].shape.is_compatible_with(tensor.shape), name
        tensors[name] = tensor
    return tensors


def _assert_same_outputs(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy())


def test_rest_payload_for_image_files(served, image_files):
    signature = served.signatures["serving_default"]
    body = client.build_rest_payload("serving_default", client.image_inputs(image_files))
    body = json.loads(json.dumps(body))  # what goes over the wire
    assert body["signature_name"] == "serving_default"
    tensors = _decode_rest_like_tf_serving(body, signature)
    originals = [open(path, "rb").read() for path in image_files]
    assert list(tensors["image_bytes"].numpy()) == originals
    _assert_same_outputs(signature(**tensors),
                         signature(image_bytes=tf.constant(originals)))


def test_rest_payload_for_video_frames(served):
    frames = np.random.default_rng(1).integers(0, 256, (5, 50, 70, 3), dtype=np.uint8)
    signature = served.signatures["classify_video"]
    body = json.loads(json.dumps(
        client.build_rest_payload("classify_video", client.video_inputs(frames))))
    tensors = _decode_rest_like_tf_serving(body, signature)
    assert tensors["frames"].dtype == tf.uint8
    np.testing.assert_array_equal(tensors["frames"].numpy(), frames[None])
    out = signature(**tensors)
    assert out["scores"].shape == (1, 4) and out["bottom_up_attention"].shape == (1, 5, 6, 6)


@pytest.mark.parametrize("kind", ["images", "video"])
def test_grpc_request(served, image_files, kind):
    if kind == "images":
        signature_name, inputs = "serving_default", client.image_inputs(image_files)
        originals = {"image_bytes": tf.constant(inputs["image_bytes"])}
    else:
        frames = np.random.default_rng(2).integers(0, 256, (1, 3, 48, 64, 3), dtype=np.uint8)
        signature_name, inputs = "classify_video", {"frames": frames}
        originals = {"frames": tf.constant(frames)}
    request = client.build_grpc_request("actions", signature_name, inputs, version=7)
    assert request.model_spec.name == "actions" and request.model_spec.version.value == 7
    assert request.model_spec.signature_name == signature_name
    request = type(request).FromString(request.SerializeToString())  # over the wire
    signature = served.signatures[signature_name]
    tensors = _decode_grpc_like_tf_serving(request, signature)
    for name, original in originals.items():
        np.testing.assert_array_equal(tensors[name].numpy(), original.numpy())
    _assert_same_outputs(signature(**tensors), signature(**originals))


class _FakeServing:
    """TF Serving's REST and gRPC predict APIs in front of a loaded SavedModel (in-process)."""

    def __init__(self, loaded):
        self.loaded = loaded

    def rest(self):
        import http.server
        import threading

        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                signature = fake.loaded.signatures[body["signature_name"]]
                out = signature(**_decode_rest_like_tf_serving(body, signature))
                reply = {"outputs": {key: (np.char.decode(value.numpy().astype(bytes)).tolist()
                                           if value.dtype == tf.string else value.numpy().tolist())
                                     for key, value in out.items()}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"127.0.0.1:{server.server_address[1]}"

    def grpc(self):
        from concurrent import futures

        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        fake = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802  (the gRPC method's name)
                signature = fake.loaded.signatures[request.model_spec.signature_name]
                out = signature(**_decode_grpc_like_tf_serving(request, signature))
                response = predict_pb2.PredictResponse()
                for key, value in out.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
                return response

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_round_trip_through_a_fake_server(served, image_files, protocol):
    fake = _FakeServing(served)
    inputs = client.image_inputs(image_files)
    expected = served.signatures["serving_default"](
        image_bytes=tf.constant(inputs["image_bytes"]))
    if protocol == "rest":
        server, address = fake.rest()
        try:
            outputs = client.predict_rest(address, "actions",
                                          client.build_rest_payload("serving_default", inputs))
        finally:
            server.shutdown()
    else:
        server, address = fake.grpc()
        try:
            request = client.build_grpc_request("actions", "serving_default", inputs)
            outputs = client.predict_grpc(address, request)
        finally:
            server.stop(None)
    np.testing.assert_allclose(outputs["scores"], expected["scores"], rtol=1e-6)
    assert outputs["top_k_names"][0][0] == expected["top_k_names"][0][0].numpy().decode()
    assert outputs["bottom_up_attention"].shape == (2, 6, 6)


def test_responses_parse_and_print_top_k(served, image_files):
    from tensorflow_serving.apis import predict_pb2

    out = served.signatures["serving_default"](
        image_bytes=tf.constant(client.read_image_bytes(image_files)))
    response = predict_pb2.PredictResponse()
    for key, value in out.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    from_grpc = client.outputs_from_grpc(response)
    rest_body = {"outputs": {key: (np.char.decode(value.numpy().astype(bytes)).tolist()
                                   if value.dtype == tf.string else value.numpy().tolist())
                             for key, value in out.items()}}
    from_rest = client.outputs_from_rest(json.loads(json.dumps(rest_body)))
    for outputs in (from_grpc, from_rest):
        lines = client.format_top_k(outputs, index=1)
        best = int(np.argmax(out["scores"][1]))
        assert len(lines) == 4 and lines[0].startswith(f"1. {NAMES[best]} ({best})")


def test_attention_png(served, image_files, tmp_path):
    data = client.read_image_bytes(image_files[:1])
    out = served.signatures["serving_default"](image_bytes=tf.constant(data))
    image = np.asarray(Image.open(image_files[0]).convert("RGB"))
    path = client.save_attention_png(out["bottom_up_attention"][0].numpy(),
                                     str(tmp_path / "attention.png"), image)
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.size == (image.shape[1], image.shape[0])
    flat = client.attention_picture(np.ones((6, 6)))  # a uniform map (avg head) is fine
    assert flat.size == (96, 96)


def test_video_frames_are_sampled_uniformly(tmp_path):
    import av

    path = str(tmp_path / "clip.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for value in range(20):  # frame t is uniformly grey at 10 * t
            frame = np.full((48, 64, 3), 10 * value, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = client.read_video_frames(path, num_frames=4, max_side=32)
    assert frames.shape == (4, 32, 43, 3) and frames.dtype == np.uint8
    # Centres of 4 segments of 20 frames: 2, 7, 12, 17.
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), [20, 70, 120, 170], atol=6)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(client.ClientError, match="nope.jpg: no such image file"):
        client.read_image_bytes([str(tmp_path / "nope.jpg")])
    with pytest.raises(client.ClientError, match="clip.avi: no such video file"):
        client.read_video_frames(str(tmp_path / "clip.avi"))
    assert client.rest_url("host", "m", 3) == "http://host:8501/v1/models/m/versions/3:predict"
    assert client.rest_url("host:9000", "m") == "http://host:9000/v1/models/m:predict"
