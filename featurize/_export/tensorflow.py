"""A fitted featurize model as a TensorFlow SavedModel or a LiteRT (``.tflite``)
flatbuffer, traced from the same computation the compile path runs.

Both start from a SavedModel written by Keras's own ``ExportArchive`` (which keeps
Keras 3 variables; a plain ``tf.Module`` does not), one per graph: ``model`` for an
image model, ``encoder`` and ``head`` for a text model, as in ONNX. LiteRT converts
that SavedModel with TensorFlow Lite's builtin operators only (no Flex delegate:
the ``ai-edge-litert`` runtime has none). A head of scalers and a linear classifier
folds into the graph as a matrix product (and a softmax); other scikit-learn heads
have no TensorFlow form and are refused with a pointer to ONNX, which converts them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from featurize._export.folder import Export, folder_files
from featurize._export.heads import HeadOutputs, describe, fold, fold_calibrated
from featurize._export.parts import Parts, metadata
from featurize._standalone.serving import (
    ATTENTION_MASK,
    EMBEDDING,
    FEATURES,
    PIXELS,
    POOLED,
    PROBABILITIES,
    TOKEN_IDS,
)
from featurize.errors import ExportError

NAMES = {"litert": "LiteRT", "saved_model": "TF SavedModel"}
# The LiteRT operators of a classification head (pooling, dense layer, softmax).
HEAD_OPS = ("MEAN", "FULLY_CONNECTED", "SOFTMAX")


def tensorflow_export(parts: Parts, runtime: str, quantize, calibration) -> Export:
    """``parts`` as SavedModel folders (``runtime="saved_model"``) or ``.tflite``
    files (``"litert"``), one per graph, with their metadata."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"{NAMES[runtime]} export traces the model with TensorFlow; this process "
            f"runs Keras on {keras.backend.backend()!r}. Run it with "
            f"KERAS_BACKEND=tensorflow (the exported model runs anywhere)."
        )
    if quantize and runtime == "saved_model":
        raise ExportError(
            "A SavedModel holds float32 weights: quantize='int8' is written for "
            "format='litert' and format='onnx'."
        )
    graphs, outputs = _graphs(parts, runtime, split_head=bool(quantize))
    files = {}
    with tempfile.TemporaryDirectory(prefix="featurize-export-") as scratch:
        for role, (signature, function) in graphs.items():
            saved = Path(scratch) / role
            _write_saved_model(saved, signature, function)
            if runtime == "saved_model":
                files.update(folder_files(saved, role))
                continue
            representative = None
            if quantize and role == "model":  # an image network
                representative = _representative(parts, calibration)
            # A head stays float, as in ONNX: quantized, its probabilities came
            # out in steps of 1/256 (labels agreed with float on 85.6% of 153).
            int8 = None if role == "head" else quantize
            # A fine-tuned classifier's head is inside its one graph: its ops stay
            # float there (calibrated as a whole, by TFLite's quantization debugger).
            kept = HEAD_OPS if int8 and parts.kind == "classifier" else ()
            files[f"{role}.tflite"] = _litert(saved, int8, representative, kept)
    paths = {
        role: role if runtime == "saved_model" else f"{role}.tflite" for role in graphs
    }
    return Export(
        {**files, **parts.files},
        metadata(parts, outputs, runtime, graphs=paths, quantize=quantize),
    )


def _graphs(parts: Parts, runtime: str, split_head: bool = False):
    """``({role: (input signature, function)}, HeadOutputs)``: each function
    returns ``{output name: tensor}``. With ``split_head``, an image pipeline's
    head is a graph of its own (``head``, from the embedding), as a text
    model's is, so that int8 quantizes the network alone."""
    import tensorflow as tf

    network = parts.network
    if parts.kind == "encoder":
        signature = [
            tf.TensorSpec([None, None], tf.int32, name=TOKEN_IDS),
            tf.TensorSpec([None, None], tf.int32, name=ATTENTION_MASK),
        ]

        def encode(ids, mask):
            return {POOLED: network.network([ids, mask], training=False)}

        graphs = {"encoder": (signature, encode)}
        outputs = HeadOutputs()
        if parts.head:
            head, outputs = _head(parts, runtime)
            features = [tf.TensorSpec([None, parts.width], tf.float32, name=FEATURES)]
            graphs["head"] = (features, head)
        return graphs, outputs
    height, width = parts.size
    signature = [tf.TensorSpec([None, height, width, 3], tf.float32, name=PIXELS)]
    if parts.kind == "classifier":

        def classify(pixels):
            return {PROBABILITIES: network(pixels, training=False)}

        outputs = HeadOutputs(probabilities=PROBABILITIES)
        return {"model": (signature, classify)}, outputs
    model = network.features.model
    head, outputs = _head(parts, runtime)

    def embedding(pixels):
        return network.graph(lambda x: model(x, training=False), pixels)

    if split_head and parts.head:
        features = [tf.TensorSpec([None, parts.width], tf.float32, name=FEATURES)]
        return {
            "model": (signature, lambda pixels: {EMBEDDING: embedding(pixels)}),
            "head": (features, head),
        }, outputs
    return {"model": (signature, lambda pixels: head(embedding(pixels)))}, outputs


def _head(parts: Parts, runtime: str):
    """The head as a function of embeddings to its outputs, and what it gives."""
    import tensorflow as tf

    if not parts.head:
        return (lambda embedding: {EMBEDDING: embedding}), HeadOutputs()
    folded = fold(parts.head, parts.width)
    calibrated = None if folded else fold_calibrated(parts.head, parts.width)
    if calibrated is not None:
        return _calibrated_head(calibrated), HeadOutputs(probabilities=PROBABILITIES)
    if folded is None:
        raise ExportError(
            f"The head {describe(parts.head)} cannot be exported to "
            f"{NAMES[runtime]}: only scalers followed by a linear classifier "
            f"(logistic regression, a linear SVM, ridge; calibrated by sigmoids or "
            f"not) fold into a TensorFlow "
            f"graph. Export it with format='onnx' (--format onnx), which converts "
            f"this head through skl2onnx."
        )
    kernel, bias, probabilistic = folded
    name = PROBABILITIES if probabilistic else "scores"

    def head(embedding):
        scores = tf.matmul(embedding, tf.constant(kernel)) + tf.constant(bias)
        return {name: tf.nn.softmax(scores) if probabilistic else scores}

    outputs = HeadOutputs(**{"probabilities" if probabilistic else "scores": name})
    return head, outputs


def _calibrated_head(calibrated):
    """:meth:`Calibrated.probabilities` as a TensorFlow function of embeddings
    (a product per calibration fold: LiteRT's builtins hold matmul, not einsum)."""
    import tensorflow as tf

    classes = calibrated.n_classes
    folds = [
        tuple(tf.constant(array[k]) for array in (
            calibrated.kernels, calibrated.biases, calibrated.slopes,
            calibrated.offsets,
        ))
        for k in range(len(calibrated.kernels))
    ]  # fmt: skip

    def head(embedding):
        total = 0.0
        for kernel, bias, slope, offset in folds:
            scores = tf.matmul(embedding, kernel) + bias
            probabilities = tf.sigmoid(-(slope * scores + offset))
            if classes == 2:
                probabilities = tf.concat([1 - probabilities, probabilities], -1)
            else:
                sums = tf.reduce_sum(probabilities, axis=-1, keepdims=True)
                probabilities = tf.where(
                    sums > 0,
                    probabilities / tf.maximum(sums, 1e-30),
                    tf.fill(tf.shape(probabilities), 1.0 / classes),
                )
            total = total + probabilities
        return {PROBABILITIES: total / len(folds)}

    return head


def _write_saved_model(folder: Path, signature: list, function) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    # Not archive.track(model): it stores every weight a second time beside the
    # ones the endpoint captures (keras-team/keras#23553); the captured ones are
    # all the endpoint reads.
    traced = tf.function(function, input_signature=signature, jit_compile=False)
    archive.add_endpoint("serve", traced, input_signature=signature)
    archive.write_out(str(folder), verbose=False)


def _representative(parts: Parts, calibration):
    """A representative dataset of calibration images, one per sample (checked
    now; read each time the converter asks)."""
    parts.calibration_batches(calibration)

    def samples():
        for batch in parts.calibration_batches(calibration, batch_size=1):
            yield {PIXELS: batch}

    return samples


def _litert(saved: Path, quantize, representative, float_ops=()) -> bytes:
    """The SavedModel at ``saved`` as a LiteRT flatbuffer: float32, or int8
    (weights and, with ``representative``, activations; inputs and outputs stay
    float32 so every server feeds it the same pixels), the ``float_ops`` kinds
    left in float."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            converter.representative_dataset = representative
    try:
        if float_ops and representative is not None:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=representative,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=list(float_ops)
                ),
            )
            return debugger.get_nondebug_quantized_model()
        return converter.convert()
    except Exception as error:  # the converter raises its own many kinds
        raise ExportError(
            f"LiteRT cannot convert this model with its builtin operators "
            f"({type(error).__name__}: {str(error).strip().splitlines()[0]}). "
            f"Export it with format='onnx' (--format onnx)."
        ) from None
