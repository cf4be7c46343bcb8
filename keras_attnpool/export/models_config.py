"""TF Serving's `--model_config_file`: write it, or add / update one model in it.

The file is a text-format `tensorflow.serving.ModelServerConfig`:

    model_config_list {
      config { name: "hmdb51_attention" base_path: "/models/hmdb51_attention"
               model_platform: "tensorflow" }
    }

Entries for other models, and any other fields of this one (version policies, labels), are
kept as they are. Needs `tensorflow-serving-api` (`pip install keras-attnpool[serving]`).
"""

import os

from keras_attnpool import files


def _config_proto():
    try:
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ImportError(
            "Writing models.config needs tensorflow-serving-api: "
            "pip install 'keras-attnpool[serving]'.") from error
    return model_server_config_pb2


def read_models_config(config_path: str):
    """The parsed `ModelServerConfig` of a file (empty if the file does not exist)."""
    from google.protobuf import text_format

    proto = _config_proto().ModelServerConfig()
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            text = f.read()
        try:
            text_format.Parse(text, proto)
        except text_format.ParseError as error:
            raise ValueError(
                f"{config_path}: not a TF Serving model config ({error}); fix or remove the "
                "file and export again.") from error
    return proto


def update_models_config(config_path: str, name: str, base_path: str,
                         model_platform: str = "tensorflow") -> str:
    """Adds model `name` (served from `base_path`) to the config, or updates its base path.

    Args:
        config_path: e.g. "savedmodels/models.config" (created if missing).
        name: the model name clients use (`/v1/models/<name>:predict`).
        base_path: the model base path *as the server sees it*, e.g. "/models/<name>" when
            `savedmodels/` is mounted at `/models` in the container.
        model_platform: TF Serving's platform name.

    Returns:
        `config_path`.
    """
    from google.protobuf import text_format

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Model name {name!r} is not usable by TF Serving; use the export "
                         "folder's name, e.g. 'hmdb51_attention'.")
    proto = read_models_config(config_path)
    if proto.HasField("custom_model_config"):
        raise ValueError(f"{config_path} holds a custom_model_config, not a model_config_list; "
                         "add the model to it by hand.")
    entries = [entry for entry in proto.model_config_list.config if entry.name == name]
    entry = entries[0] if entries else proto.model_config_list.config.add()
    entry.name = name
    entry.base_path = base_path
    entry.model_platform = model_platform
    folder = os.path.dirname(os.path.abspath(config_path))
    os.makedirs(folder, exist_ok=True)
    files.write_text(config_path, text_format.MessageToString(proto))
    return config_path
