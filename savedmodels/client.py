r"""Classify images or a video with a model served by TF Serving (REST or gRPC).

    python savedmodels/client.py --model_name=digits frame1.jpg frame2.png
    python savedmodels/client.py --model_name=digits --protocol=grpc --server=host:8500 a.jpg
    python savedmodels/client.py --model_name=hmdb51 --video=clip.mp4 --num_frames=25 \
        --attention_png=attention.png

Images go to the `serving_default` signature as their file bytes (REST: `{"b64": ...}`;
gRPC: a DT_STRING tensor); a video is decoded here (PyAV), `--num_frames` frames are sampled
uniformly and sent as uint8 to `classify_video`, which averages the frame scores. Prints the
top-k classes with their names and can save the returned bottom-up attention map as a PNG
over the input. REST needs `requests`; gRPC needs `tensorflow-serving-api`
(`pip install 'keras-attnpool[serving]'`). The payload builders are plain functions, so they
can be checked without a server (tests/test_client.py).
"""

import base64
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from absl import flags

from keras_attnpool import cli

_SERVER = flags.DEFINE_string("server", "localhost", "TF Serving host[:port]; the port "
                              "defaults to 8501 for REST and 8500 for gRPC.")
_PROTOCOL = flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "How to talk to the server.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "The model's name in models.config.")
_MODEL_VERSION = flags.DEFINE_integer("model_version", None, "A version; default: the latest.")
_VIDEO = flags.DEFINE_string("video", None, "A video file to classify instead of images.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 25, "Frames sampled uniformly from --video "
                                   "(the paper's test protocol uses 25).", lower_bound=1)
_MAX_SIDE = flags.DEFINE_integer("max_side", 320, "Video frames are shrunk so their short "
                                 "side is at most this before sending (payload size).",
                                 lower_bound=16)
_ATTENTION_PNG = flags.DEFINE_string("attention_png", None, "Save the first input's bottom-up "
                                     "attention map over it as this PNG.")
_TIMEOUT = flags.DEFINE_float("timeout_s", 30.0, "Request timeout in seconds.")

Inputs = Dict[str, Union[np.ndarray, List[bytes]]]
REST_PORT, GRPC_PORT = 8501, 8500


class ClientError(RuntimeError):
    """A request could not be built or answered; the message says why."""


# ----------------------------------------------------------------------------- inputs
def read_image_bytes(paths: Sequence[str]) -> List[bytes]:
    """The raw bytes of JPEG / PNG files, as `serving_default` takes them."""
    images = []
    for path in paths:
        if not os.path.isfile(path):
            raise ClientError(f"{path}: no such image file.")
        with open(path, "rb") as f:
            images.append(f.read())
    return images


def _shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    scale = max_side / min(height, width)
    if scale >= 1:
        return frame
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def _count_frames(path: str) -> int:
    """Frames in the first video stream, by demuxing packets (no decoding)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def read_video_frames(path: str, num_frames: int = 25, max_side: int = 320) -> np.ndarray:
    """`num_frames` uniformly spaced RGB frames of a video: uint8 (T, H, W, 3).

    Frames are the centres of T equal segments (the paper's test protocol); only those are
    kept, so a long video costs one decode pass, not its memory.
    """
    import av

    if not os.path.isfile(path):
        raise ClientError(f"{path}: no such video file.")
    try:
        total = _count_frames(path)
        indices = ((np.arange(num_frames) + 0.5) * max(total, 1) / num_frames).astype(int)
        kept = {}
        with av.open(path) as container:
            for position, frame in enumerate(container.decode(video=0)):
                if position in indices:
                    rgb = frame.to_ndarray(format="rgb24", threads=1)
                    kept[position] = _shrink(rgb, max_side)
    except (av.error.FFmpegError, IndexError) as error:
        raise ClientError(f"{path}: cannot decode a video stream ({error}).") from error
    if not kept:
        raise ClientError(f"{path}: the video has no frames.")
    # A container can announce more packets than it decodes: reuse the last frame kept.
    last = max(kept)
    return np.stack([kept.get(i, kept[last]) if i <= last else kept[last] for i in indices])


# ----------------------------------------------------------------------------- payloads
def _json_value(value: Union[np.ndarray, List[bytes]]):
    if isinstance(value, np.ndarray) and value.dtype.kind not in "SO":
        return value.tolist()
    return [{"b64": base64.b64encode(item).decode("ascii")} for item in value]


def build_rest_payload(signature_name: str, inputs: Inputs) -> dict:
    """The JSON body of a REST `:predict` request, columnar ("inputs") format.

    Bytes become `{"b64": ...}` objects (TF Serving decodes them into DT_STRING elements);
    numeric arrays become nested lists, cast by the server to the signature's dtype.
    """
    return {"signature_name": signature_name,
            "inputs": {name: _json_value(value) for name, value in inputs.items()}}


def build_grpc_request(model_name: str, signature_name: str, inputs: Inputs,
                       version: Optional[int] = None):
    """A `tensorflow.serving.PredictRequest` carrying `inputs` as TensorProtos."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and value.dtype.kind not in "SO":
            proto = tf.make_tensor_proto(value)
        else:
            proto = tf.make_tensor_proto(list(value), dtype=tf.string, shape=[len(value)])
        request.inputs[name].CopyFrom(proto)
    return request


def image_inputs(paths: Sequence[str]) -> Inputs:
    """`serving_default` inputs for image files."""
    return {"image_bytes": read_image_bytes(paths)}


def video_inputs(frames: np.ndarray) -> Inputs:
    """`classify_video` inputs for one clip of uint8 frames (T, H, W, 3)."""
    return {"frames": np.asarray(frames, np.uint8)[None]}


# ----------------------------------------------------------------------------- transport
def _address(server: str, default_port: int) -> str:
    return server if ":" in server.rsplit("]", 1)[-1] else f"{server}:{default_port}"


def rest_url(server: str, model_name: str, version: Optional[int] = None) -> str:
    """TF Serving's REST predict URL (port 8501 unless `server` names one)."""
    version_part = f"/versions/{version}" if version is not None else ""
    return f"http://{_address(server, REST_PORT)}/v1/models/{model_name}{version_part}:predict"


def predict_rest(server: str, model_name: str, payload: dict, version: Optional[int] = None,
                 timeout: float = 30.0) -> Dict[str, np.ndarray]:
    """POSTs the payload; returns the outputs as arrays (names as str)."""
    import requests

    url = rest_url(server, model_name, version)
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as error:
        raise ClientError(f"{url}: no answer ({error}); is TF Serving running?") from error
    if response.status_code != 200:
        raise ClientError(f"{url}: HTTP {response.status_code}: {response.text.strip()}")
    return outputs_from_rest(response.json())


def outputs_from_rest(body: dict) -> Dict[str, np.ndarray]:
    """Arrays from a columnar REST response `{"outputs": {...}}`."""
    outputs = body["outputs"]
    return {name: np.asarray(value) for name, value in outputs.items()}


def predict_grpc(server: str, request, timeout: float = 30.0) -> Dict[str, np.ndarray]:
    """Sends a PredictRequest over gRPC; returns the outputs as arrays (names as str)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    limit = 256 * 1024 * 1024  # video payloads pass gRPC's 4 MiB default
    options = [("grpc.max_send_message_length", limit),
               ("grpc.max_receive_message_length", limit)]
    address = _address(server, GRPC_PORT)
    with grpc.insecure_channel(address, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ClientError(f"{address}: {error.code().name}: {error.details()}") from error
    return outputs_from_grpc(response)


def outputs_from_grpc(response) -> Dict[str, np.ndarray]:
    """Arrays from a `PredictResponse`; `top_k_names` decoded to str."""
    import tensorflow as tf

    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    if "top_k_names" in outputs:
        outputs["top_k_names"] = np.vectorize(lambda b: b.decode("utf-8"))(
            outputs["top_k_names"])
    return outputs


# ----------------------------------------------------------------------------- results
def format_top_k(outputs: Dict[str, np.ndarray], index: int = 0) -> List[str]:
    """Lines "rank. name (id)  score" for input `index`."""
    ids = outputs["top_k_ids"][index]
    names = outputs["top_k_names"][index]
    scores = np.asarray(outputs["scores"][index])
    return [f"{rank}. {name} ({int(class_id)})  {scores[int(class_id)]:.3f}"
            for rank, (class_id, name) in enumerate(zip(ids, names), start=1)]


def attention_picture(attention: np.ndarray, image: Optional[np.ndarray] = None):
    """A PIL image of a (h, w) attention map (min-max scaled, 'jet'), over `image` if given."""
    from matplotlib import colormaps
    from PIL import Image

    attention = np.asarray(attention, np.float32)
    span = float(attention.max() - attention.min())
    scaled = (attention - attention.min()) / span if span > 0 else np.full_like(attention, .5)
    colours = (colormaps["jet"](scaled)[..., :3] * 255).astype(np.uint8)
    heatmap = Image.fromarray(colours)
    if image is None:
        return heatmap.resize((attention.shape[1] * 16, attention.shape[0] * 16),
                              Image.BILINEAR)
    base = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    return Image.blend(base, heatmap.resize(base.size, Image.BILINEAR), 0.45)


def save_attention_png(attention: np.ndarray, path: str,
                       image: Optional[np.ndarray] = None) -> str:
    """Saves `attention_picture(...)` as a PNG; returns the path."""
    attention_picture(attention, image).save(path, format="PNG")
    return path


def _decode_for_picture(data: bytes) -> Optional[np.ndarray]:
    import io

    from PIL import Image

    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except OSError:
        return None


def _classify(paths: List[str]) -> None:
    if _VIDEO.value:
        frames = read_video_frames(_VIDEO.value, _NUM_FRAMES.value, _MAX_SIDE.value)
        signature, inputs, labels, picture = "classify_video", video_inputs(frames), [
            _VIDEO.value], frames[len(frames) // 2]
    else:
        signature, inputs, labels = "serving_default", image_inputs(paths), paths
        picture = _decode_for_picture(inputs["image_bytes"][0])
    if _PROTOCOL.value == "rest":
        outputs = predict_rest(_SERVER.value, _MODEL_NAME.value,
                               build_rest_payload(signature, inputs), _MODEL_VERSION.value,
                               _TIMEOUT.value)
    else:
        request = build_grpc_request(_MODEL_NAME.value, signature, inputs, _MODEL_VERSION.value)
        outputs = predict_grpc(_SERVER.value, request, _TIMEOUT.value)
    for index, label in enumerate(labels):
        print(label)
        print("\n".join(f"  {line}" for line in format_top_k(outputs, index)))
    if _ATTENTION_PNG.value:
        attention = np.asarray(outputs["bottom_up_attention"])[0]
        if attention.ndim == 3:  # video: one map per frame; show the middle frame's
            attention = attention[len(attention) // 2]
        print(f"attention map: {save_attention_png(attention, _ATTENTION_PNG.value, picture)}")


def main(argv):
    paths = argv[1:]
    if not _MODEL_NAME.value:
        cli.fail("--model_name is required (the name in models.config).")
    if bool(paths) == bool(_VIDEO.value):
        cli.fail("Pass image files as arguments, or --video=FILE (not both).")
    try:
        _classify(paths)
    except ClientError as error:
        cli.fail(str(error))


if __name__ == "__main__":
    cli.run(main)
