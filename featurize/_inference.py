"""Compiled forward passes: preprocessing, backbone and pooling in one function.

One function is compiled per (model, pooling) and shared in-process. The backend decides
how: ``tf.function`` on TensorFlow (no XLA: it slows depthwise convolutions on CPU),
``jax.jit`` over ``stateless_call`` on JAX, plain eager calls elsewhere.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from featurize._backbones import Backbone
from featurize._models import FeatureModel, clear_model_cache, feature_model, is_held

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
        self.max_batch: int | None = None  # lowered when the device runs out of memory

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``batch`` (``(n, height, width, 3)`` float32 in [0, 255]).

        If the device runs out of memory, the batch is split in halves (and later
        batches are capped at the size that worked), down to one image.
        """
        batch = np.asarray(batch, dtype=np.float32)
        outputs, start = [], 0
        while start < len(batch):
            size = len(batch) - start
            if self.max_batch is not None:
                size = min(size, self.max_batch)
            try:
                outputs.append(np.asarray(self._run(batch[start : start + size])))
            except Exception as error:
                if not _is_out_of_memory(error) or size == 1:
                    raise
                self.max_batch = max(1, size // 2)
                warnings.warn(
                    f"Out of memory on a batch of {size} images; continuing with "
                    f"batches of {self.max_batch}. Lower batch_size to avoid this.",
                    ResourceWarning,
                    stacklevel=2,
                )
                continue
            start += size
        if not outputs:
            return np.empty((0, self.n_features), np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)


def _is_out_of_memory(error: BaseException) -> bool:
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in str(error)
        or "out of memory" in str(error).lower()
    )


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


CPU_BATCH_SIZE = 8
ACCELERATOR_BATCH_SIZE = 64
CPU_DECODE_WORKERS = 4


def on_accelerator() -> bool:
    """Whether the Keras backend computes on a GPU or TPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def default_batch_size() -> int:
    """Images per forward pass when ``batch_size=None``: small on CPU, larger on GPU.

    On CPU, small batches stay in cache: on 2 cores, batches of 8 gave 1.4x the
    images/s of batches of 32 for EfficientNet-Lite0 and 1.2x for ResNet50.
    """
    return ACCELERATOR_BATCH_SIZE if on_accelerator() else CPU_BATCH_SIZE


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_decode_workers() -> int:
    """Decode threads when ``decode_workers=None``.

    On CPU the backbone needs the cores as much as decoding does, so at most 4
    threads; on a GPU the cores have nothing else to do, so one thread per core.
    """
    cores = available_cores()
    return cores if on_accelerator() else min(CPU_DECODE_WORKERS, cores)


def get_forward(
    backbone: Backbone,
    weights,
    input_size: tuple[int, int],
    layer,
    pooling,
    precision: str = "float32",
) -> Forward:
    """Return the shared compiled forward function for these settings."""
    features = feature_model(backbone, weights, input_size, layer, precision)
    key = (id(features.model), pooling)
    with _LOCK:
        for old in [k for k, f in _FORWARDS.items() if not is_held(f.features)]:
            del _FORWARDS[old]  # its model was evicted: let both be freed
        forward = _FORWARDS.get(key)
        if forward is None or forward.features is not features:
            forward = Forward(backbone, features, pooling)
            _FORWARDS[key] = forward
        return forward


def forget_models() -> None:
    """Drop every held model and compiled function (the framework's caches stay)."""
    from featurize._text_encoders import forget_text_encoders

    with _LOCK:
        _FORWARDS.clear()
        clear_model_cache()
    forget_text_encoders()


def release_models() -> None:
    """Release every model and compiled function featurize holds in this process.

    Featurizers keep working: the next embedding builds its model again. Memory
    held by models is otherwise bounded by ``FEATURIZE_MAX_MODELS`` backbones
    (default 2), least recently used out first.
    """
    import gc

    import keras

    forget_models()
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.clear_caches()  # compiled functions hold their model's constants
    elif backend == "tensorflow":
        # What keras.backend.clear_session() does for TensorFlow, without resetting
        # Keras's global settings (a user's dtype policy): the eager kernel cache
        # keeps every traced model's kernels (measured over 10 backbones in a row:
        # the process grew by 200 MB when it was kept, 135 MB when it was cleared).
        import tensorflow as tf
        from tensorflow.python.eager import context

        context.context().clear_kernel_cache()
        tf.compat.v1.reset_default_graph()
    gc.collect()
