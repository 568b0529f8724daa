"""Compiled forward passes: preprocessing, backbone and pooling in one function.

One function is compiled per (model, pooling) and shared in-process, by the compile
path text encoders use too (:mod:`featurize._shared.compiled`).
"""

from __future__ import annotations

import os
import threading
import warnings
from functools import partial

import numpy as np

from featurize._backbones.models import (
    FeatureModel,
    clear_model_cache,
    feature_model,
    is_held,
)
from featurize._backbones.registry import Backbone
from featurize._shared.compiled import compile_inference
from featurize._shared.devices import on_accelerator

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

    A subclass computing something else from the feature map (the anomaly wing's
    patch grids) gives :meth:`width` and :meth:`finisher`; the rest is shared.
    """

    def __init__(self, backbone: Backbone, features: FeatureModel, pooling):
        import keras

        self.features = features
        self.pooling = pooling
        self.n_features = self.width(features.output_shape)
        preprocess = backbone.preprocess_function()
        finish = self.finisher()
        model = features.model

        def graph(call, x):
            x = preprocess(keras.ops.cast(x, "float32"))
            return keras.ops.cast(finish(call(x)), "float32")

        # Kept: ONNX export traces this same computation.
        self.graph = graph
        self._run = compile_inference(
            model, [(model.input_shape[1:], "float32")], graph
        )
        self.max_batch: int | None = None  # lowered when the device runs out of memory

    @property
    def source(self) -> FeatureModel:
        """The held model this pass is valid while the model cache keeps."""
        return self.features

    def width(self, shape: tuple[int, int, int]) -> int:
        """The row width for a ``(height, width, channels)`` feature map."""
        return n_pooled_features(shape, self.pooling)

    def finisher(self):
        """A function from the model's output (a tensor, or a list for several
        layers) to rows. It must not hold ``self``: the compiled graph keeps it, and
        a cycle through the graph would keep an evicted model alive."""
        return partial(_pool, pooling=self.pooling)

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


class OnnxForward:
    """A :class:`Forward`'s computation run by onnxruntime (``runtime="onnx"``).

    Parameters
    ----------
    forward : Forward
        What it computes the same as (checked on a probe batch when traced).
    path : Path or None
        Where the traced graph is stored (None: held with ``forward``).
    """

    def __init__(self, forward: Forward, path):
        from featurize._onnx.convert import forward_graph
        from featurize._onnx.runtime import session

        self.features = forward.features
        self.n_features = forward.n_features
        height, width = forward.features.model.input_shape[1:3]
        probe = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3))
        self._session = session(
            forward,
            path,
            lambda: forward_graph(forward),
            (probe.astype(np.float32),),
            forward,
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``batch`` (``(n, height, width, 3)`` float32 in [0, 255])."""
        from featurize._onnx.runtime import run

        if not len(batch):
            return np.empty((0, self.n_features), np.float32)
        return run(self._session, np.asarray(batch, dtype=np.float32))


def _is_out_of_memory(error: BaseException) -> bool:
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in str(error)
        or "out of memory" in str(error).lower()
    )


CPU_BATCH_SIZE = 8
ACCELERATOR_BATCH_SIZE = 64
CPU_DECODE_WORKERS = 4


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
    return shared_forward(
        ("pooled", id(features.model), pooling),
        features,
        lambda: Forward(backbone, features, pooling),
    )


def shared_forward(key: tuple, source: FeatureModel, build) -> Forward:
    """The compiled pass cached under ``key`` for the held model ``source``, or
    ``build()``'s, kept. Passes whose model was evicted are dropped first, so
    that both can be freed."""
    with _LOCK:
        for old in [k for k, f in _FORWARDS.items() if not is_held(f.source)]:
            del _FORWARDS[old]
        forward = _FORWARDS.get(key)
        if forward is None or forward.source is not source:
            forward = build()
            _FORWARDS[key] = forward
        return forward


def forget_forwards() -> None:
    """Drop every compiled function and held model (the framework's caches stay)."""
    with _LOCK:
        _FORWARDS.clear()
        clear_model_cache()
