"""The Keras layer contract, after the idea of Keras's own `run_layer_test`.

One function checks what every public layer must do: get_config/from_config round trip,
build, symbolic and eager call with the documented shapes, a `.keras` save/load under
safe_mode, one training step that changes every trainable weight, and mixed precision
(float32 variables, outputs in the compute dtype, close to the float32 result).
"""

import keras
import numpy as np
from keras import ops


def _shapes(structure):
    return keras.tree.map_structure(lambda t: tuple(t.shape), structure)


def _numpy(structure):
    return keras.tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)), structure)


def _model_with(layer, input_data):
    if isinstance(input_data, (list, tuple)):
        inputs = [keras.Input(x.shape[1:]) for x in input_data]
    else:
        inputs = keras.Input(input_data.shape[1:])
    return keras.Model(inputs, layer(inputs))


def check_config_round_trip(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() of {layer_cls.__name__} lacks {key!r}"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config
    return config


def check_symbolic_and_eager(layer_cls, init_kwargs, input_data, expected_shape):
    layer = layer_cls(**init_kwargs)
    symbolic_input = keras.tree.map_structure(
        lambda x: keras.KerasTensor((None,) + x.shape[1:]), input_data)
    symbolic = layer(symbolic_input)
    if isinstance(expected_shape, dict):
        expected_symbolic = {k: (None,) + tuple(v[1:]) for k, v in expected_shape.items()}
    else:
        expected_symbolic = (None,) + tuple(expected_shape[1:])
    assert _shapes(symbolic) == expected_symbolic
    input_shapes = ([tuple(t.shape) for t in symbolic_input] if isinstance(symbolic_input, list)
                    else tuple(symbolic_input.shape))
    computed = layer.compute_output_shape(input_shapes)
    if isinstance(computed, dict):
        computed = {k: tuple(v) for k, v in computed.items()}
    assert (computed if isinstance(computed, dict) else tuple(computed)) == expected_symbolic
    eager = layer(input_data)
    assert _shapes(eager) == expected_shape
    assert all(w.dtype == "float32" for w in layer.weights)
    return layer


def check_save_and_load(layer_cls, init_kwargs, input_data, tmp_path):
    model = _model_with(layer_cls(**init_kwargs), input_data)
    expected = _numpy(model(input_data))
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    revived = keras.saving.load_model(path, safe_mode=True)
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
        expected, _numpy(revived(input_data)))
    clone = _model_with(layer_cls.from_config(model.layers[-1].get_config()), input_data)
    clone.set_weights(model.get_weights())
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
        expected, _numpy(clone(input_data)))


def check_training_step(layer_cls, init_kwargs, input_data, targets):
    model = _model_with(layer_cls(**init_kwargs), input_data)
    before = [np.array(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    logs = model.train_on_batch(input_data, targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    for old, new, weight in zip(before, model.trainable_weights, model.trainable_weights):
        assert not np.array_equal(old, np.array(new)), f"{weight.path} did not train"


def check_mixed_precision(layer_cls, init_kwargs, input_data, rtol=2e-2):
    reference = layer_cls(**init_kwargs)
    expected = _numpy(reference(input_data))
    layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
    half_input = keras.tree.map_structure(lambda x: x.astype("float16"), input_data)
    layer(half_input)
    layer.set_weights(reference.get_weights())
    outputs = layer(half_input)
    assert all(w.dtype == "float32" for w in layer.weights)
    for out in keras.tree.flatten(outputs):
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a.astype("float32"), b, rtol=rtol,
                                                atol=rtol * np.abs(b).max()),
        _numpy(outputs), expected)
