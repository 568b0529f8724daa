"""Compiled forward passes: preprocessing, backbone and pooling in one function.

One function is compiled per (model, pooling) and shared in-process. The backend decides
how: ``tf.function`` on TensorFlow (no XLA: it slows depthwise convolutions on CPU),
``jax.jit`` over ``stateless_call`` on JAX, plain eager calls elsewhere.
"""

from __future__ import annotations

import threading

import numpy as np

from featurize._backbones import Backbone
from featurize._models import FeatureModel, clear_model_cache, feature_model

POOLINGS = ("avg", "max", "gem", None)
GEM_POWER = 3.0
GEM_EPSILON = 1e-6

_LOCK = threading.RLock()
_FORWARDS: dict[tuple, Forward] = {}


def n_pooled_features(shape: tuple[int, int, int], pooling: str | None) -> int:
    """Width of the embedding for a ``(height, width, channels)`` feature map."""
    height, width, channels = shape
    return channels if pooling is not None else height * width * channels


def _pool(x, pooling):
    from keras import ops

    if pooling == "avg":
        return ops.mean(x, axis=(1, 2))
    if pooling == "max":
        return ops.max(x, axis=(1, 2))
    if pooling == "gem":
        clipped = ops.maximum(x, GEM_EPSILON)
        return ops.power(
            ops.mean(ops.power(clipped, GEM_POWER), axis=(1, 2)), 1.0 / GEM_POWER
        )
    return ops.reshape(x, (ops.shape(x)[0], -1))


class Forward:
    """Run preprocessing, the cut backbone and pooling on a float32 NHWC batch.

    Parameters
    ----------
    backbone : Backbone
    features : FeatureModel
    pooling : {"avg", "max", "gem", None}
    """

    def __init__(self, backbone: Backbone, features: FeatureModel, pooling):
        import keras

        self.features = features
        self.pooling = pooling
        self.n_features = n_pooled_features(features.output_shape, pooling)
        preprocess = backbone.preprocess_function()
        model = features.model

        def graph(x, call=model):
            x = preprocess(keras.ops.cast(x, "float32"))
            return keras.ops.cast(_pool(call(x), pooling), "float32")

        self._run = _compile(graph, model)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``batch`` (``(n, height, width, 3)`` float32 in [0, 255])."""
        return np.asarray(self._run(np.asarray(batch, dtype=np.float32)), np.float32)


def _compile(graph, model):
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _compile_tensorflow(graph, model)
    if backend == "jax":
        return _compile_jax(graph, model)
    return lambda x: keras.ops.convert_to_numpy(
        graph(x, lambda t: model(t, training=False))
    )


def _compile_tensorflow(graph, model):
    import tensorflow as tf

    shape = [None, *model.input_shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)], jit_compile=False)
    def run(x):
        return graph(x, lambda t: model(t, training=False))

    return lambda x: run(tf.constant(x)).numpy()


def _compile_jax(graph, model):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def stateless(trainable, frozen, x):
        def call(t):
            return model.stateless_call(trainable, frozen, t, training=False)[0]

        return graph(x, call)

    run = jax.jit(stateless)

    def call(x):
        # jit compiles once per shape: pad to a power of two to bound recompiles.
        n = x.shape[0]
        padded = 1 << max(n - 1, 0).bit_length()
        if padded != n:
            x = np.concatenate([x, np.zeros((padded - n, *x.shape[1:]), x.dtype)])
        return np.asarray(run(trainable, frozen, x))[:n]

    return call


def get_forward(
    backbone: Backbone, weights, input_size: tuple[int, int], layer, pooling
) -> Forward:
    """Return the shared compiled forward function for these settings."""
    features = feature_model(backbone, weights, input_size, layer)
    key = (id(features.model), pooling)
    with _LOCK:
        forward = _FORWARDS.get(key)
        if forward is None or forward.features is not features:
            forward = Forward(backbone, features, pooling)
            _FORWARDS[key] = forward
        return forward


def clear_caches() -> None:
    """Forget every model and compiled function built in this process."""
    with _LOCK:
        _FORWARDS.clear()
        clear_model_cache()
