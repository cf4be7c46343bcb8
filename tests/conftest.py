import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tensorflow_only(reason): needs TensorFlow itself (tf.function, tf.data, SavedModel); "
        "skipped, with the reason, under another KERAS_BACKEND",
    )


def pytest_collection_modifyitems(config, items):
    """The layer tests also run under KERAS_BACKEND=jax (.ci/run): TF-only ones skip there."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    for item in items:
        marker = item.get_closest_marker("tensorflow_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs TensorFlow"
            item.add_marker(pytest.mark.skip(reason=f"{reason}; the Keras backend is {backend}"))


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends under the float32 policy, whatever it set."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
