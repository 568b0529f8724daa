"""Trace a Keras computation to an ONNX graph (tf2onnx, on the TensorFlow backend).

The traced function is the one the compile path runs (the model wrapped by its
preprocessing and pooling), so the graph computes what the featurizer computes.
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import contextmanager

from featurize._standalone.serving import (
    ATTENTION_MASK,
    EMBEDDING,
    PIXELS,
    POOLED,
    PROBABILITIES,
    TOKEN_IDS,
)
from featurize.errors import ExportError, MissingDependencyError

# Opset 17: LayerNormalization is fused from 17 on, and onnxruntime 1.16 and newer
# (every release of the last three years) runs it.
OPSET = 17
REQUIRED = ("onnx", "onnxruntime", "tf2onnx")


def require(*modules: str) -> None:
    """Raise a clear error if a module the ONNX path needs is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"ONNX export and runtime='onnx' need {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            f"pip install 'keras-featurize[onnx]'."
        )


def can_convert() -> bool:
    """Whether this process can trace Keras models to ONNX (TensorFlow backend and
    the converters installed)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    return all(importlib.util.find_spec(m) is not None for m in REQUIRED)


def to_onnx(model, inputs: list[tuple[str, tuple, str]], wrap, outputs: list[str]):
    """The ONNX graph of ``wrap(call, *inputs)``, where ``call`` runs ``model``.

    Parameters
    ----------
    model : keras.Model
    inputs : list of (name, shape without the batch axis, dtype)
    wrap : callable
        As for :func:`featurize._shared.compiled.compile_inference`; returns one
        tensor per name in ``outputs`` (a tensor, or a tuple of them).
    outputs : list of str
        Names of the graph's outputs.

    Returns
    -------
    onnx.ModelProto
    """
    import keras

    require(*REQUIRED)
    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"ONNX conversion traces the model with TensorFlow; this process runs "
            f"Keras on {keras.backend.backend()!r}. Run it with "
            f"KERAS_BACKEND=tensorflow (the exported graph runs anywhere)."
        )
    import tensorflow as tf
    import tf2onnx

    signature = [
        tf.TensorSpec([None, *shape], tf.as_dtype(dtype), name=name)
        for name, shape, dtype in inputs
    ]

    def call(*tensors):
        return model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)

    @tf.function(input_signature=signature, jit_compile=False)
    def graph(*tensors):
        result = wrap(call, *tensors)
        result = result if isinstance(result, (tuple, list)) else (result,)
        return {name: tf.identity(t) for name, t in zip(outputs, result)}

    with _quiet_converter():
        proto, _ = tf2onnx.convert.from_function(
            graph, input_signature=signature, opset=OPSET
        )
    _inline_captured(proto.graph, graph.get_concrete_function(), signature)
    _replace_erfc(proto.graph)
    # tf2onnx leaves its own producer and graph names; ours say what this is.
    proto.producer_name = "featurize"
    proto.graph.name = getattr(model, "name", "featurize")
    return proto


def forward_graph(forward):
    """A featurizer's forward pass (:class:`featurize._images.forward.Forward`) as
    a graph ``pixels -> embedding``."""
    height, width = forward.features.model.input_shape[1:3]
    return to_onnx(
        forward.features.model,
        [(PIXELS, (height, width, 3), "float32")],
        forward.graph,
        [EMBEDDING],
    )


def encoder_graph(encoder):
    """A text encoder's network as a graph ``(token_ids, attention_mask) ->
    pooled``."""
    return to_onnx(
        encoder.network,
        [(TOKEN_IDS, (None,), "int32"), (ATTENTION_MASK, (None,), "int32")],
        lambda call, ids, mask: call(ids, mask),
        [POOLED],
    )


def classifier_graph(keras_model):
    """A Keras classifier of pixels in [0, 255] as a graph ``pixels ->
    probabilities`` (a fine-tuned model: preprocessing is inside)."""
    height, width = keras_model.input_shape[1:3]
    return to_onnx(
        keras_model,
        [(PIXELS, (height, width, 3), "float32")],
        lambda call, x: call(x),
        [PROBABILITIES],
    )


def _inline_captured(graph, concrete, signature) -> None:
    """Constants the traced function captured (a Normalization layer's statistics
    are tensors, not variables) as initializers: tf2onnx leaves them as inputs."""
    from onnx import numpy_helper

    ours = {spec.name for spec in signature}
    values = {}
    for external, internal in concrete.graph.captures:
        if external.dtype.name != "resource":
            values[internal.name] = external.numpy()
    kept = []
    for value in graph.input:
        if value.name in ours or value.name not in values:
            kept.append(value)
            continue
        graph.initializer.append(
            numpy_helper.from_array(values[value.name], value.name)
        )
    del graph.input[:]
    graph.input.extend(kept)


def _replace_erfc(graph) -> None:
    """Write ``Erfc(x)`` as ``1 - Erf(x)``: TensorFlow's exact GELU uses erfc,
    which tf2onnx passes through although ONNX has no such operator."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = list(graph.node)
    if not any(node.op_type == "Erfc" for node in nodes):
        return
    graph.initializer.append(numpy_helper.from_array(np.ones((), np.float32), "one"))
    del graph.node[:]
    for node in nodes:
        if node.op_type != "Erfc":
            graph.node.append(node)
            continue
        erf = f"{node.name}/erf"
        graph.node.extend(
            [
                helper.make_node("Erf", list(node.input), [erf], name=erf),
                helper.make_node(
                    "Sub", ["one", erf], list(node.output), name=node.name
                ),
            ]
        )


@contextmanager
def _quiet_converter():
    # tf2onnx logs tracebacks of optimisations it skips (harmless) at ERROR level.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
