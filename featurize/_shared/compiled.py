"""One compile path for inference, shared by image backbones and text encoders.

The backend decides how: ``tf.function`` with a fixed input signature on TensorFlow
(no XLA: it slows depthwise convolutions on CPU), ``jax.jit`` over ``stateless_call``
on JAX with batches padded to a power of two (jit compiles once per shape, so this
bounds the compilations), and plain eager calls elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def compile_inference(model, specs: list[tuple[tuple, str]], wrap=None) -> Callable:
    """A numpy -> numpy function running ``model`` in inference mode, compiled.

    Parameters
    ----------
    model : keras.Model
    specs : list of (shape, dtype)
        Each input's shape without the batch axis (None for a free length) and
        dtype.
    wrap : callable, optional
        ``wrap(call, *inputs)``: the computation around the model, where
        ``call(*tensors)`` runs it (preprocessing before, pooling after, say). By
        default the model alone.

    Returns
    -------
    callable
        ``run(*arrays) -> ndarray``, batches on the first axis.
    """
    import keras

    wrap = wrap or (lambda call, *inputs: call(*inputs))
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow(model, specs, wrap)
    if backend == "jax":
        return _jax(model, wrap)

    def eager(*arrays):
        return keras.ops.convert_to_numpy(
            wrap(lambda *t: model(_inputs(t), training=False), *arrays)
        )

    return eager


def _inputs(tensors: tuple):
    return list(tensors) if len(tensors) > 1 else tensors[0]


def _tensorflow(model, specs, wrap):
    import tensorflow as tf

    signature = [
        tf.TensorSpec([None, *shape], tf.as_dtype(dtype)) for shape, dtype in specs
    ]

    @tf.function(input_signature=signature, jit_compile=False)
    def run(*tensors):
        return wrap(lambda *t: model(_inputs(t), training=False), *tensors)

    return lambda *arrays: run(*[tf.constant(a) for a in arrays]).numpy()


def _jax(model, wrap):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def stateless(trainable, frozen, *arrays):
        def call(*tensors):
            return model.stateless_call(
                trainable, frozen, _inputs(tensors), training=False
            )[0]

        return wrap(call, *arrays)

    run = jax.jit(stateless)

    def call(*arrays):
        n = arrays[0].shape[0]
        padded = 1 << max(n - 1, 0).bit_length()
        if padded != n:
            arrays = [
                np.concatenate([a, np.zeros((padded - n, *a.shape[1:]), a.dtype)])
                for a in arrays
            ]
        return np.asarray(run(trainable, frozen, *arrays))[:n]

    return call
