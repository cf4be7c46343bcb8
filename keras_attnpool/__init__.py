"""Attentional pooling for action recognition (Girdhar & Ramanan, NIPS 2017) in Keras 3.

The public names load on first use (PEP 562), so `import keras_attnpool` imports neither
TensorFlow nor Keras: command-line tools parse their flags at once, and prepare's worker
processes import only the modules they use. The first public name used (or
`import keras_attnpool.models`) registers every layer of the package with Keras, as
`keras.saving.load_model` needs.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "AttentionalPooling": "keras_attnpool.layers",
    "PoseRegularizedAttention": "keras_attnpool.layers",
    "SecondOrderPooling": "keras_attnpool.layers",
    "build_action_model": "keras_attnpool.models",
    "list_backbones": "keras_attnpool.models",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_attnpool' has no attribute {name!r}")
    importlib.import_module("keras_attnpool.models")  # registers every layer
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
