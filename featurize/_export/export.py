"""``featurize.export``: one fitted model, in the format asked for."""

from __future__ import annotations

from featurize._export.agreement import int8_agreement
from featurize._export.folder import Export
from featurize._export.parts import take_apart
from featurize._standalone.serving import RUNTIMES
from featurize.errors import ExportError

# The formats an export is written in: each is served by the runtime of its name.
FORMATS = RUNTIMES
QUANTIZE = (None, "int8")


def export(model, *, format="onnx", quantize=None, calibration=None) -> Export:
    """Turn a fitted featurize model into a folder's worth of graphs and metadata
    that serve it without featurize (``Export.save(folder)`` writes it).

    Parameters
    ----------
    model : Pipeline, ImageFeaturizer, TextFeaturizer, FineTunedClassifier or
        FineTunedTextClassifier
        A pipeline starting with a featurizer (then a scikit-learn head), a
        featurizer alone (the graph gives embeddings), or a fine-tuned classifier.
    format : {"onnx", "litert", "saved_model"}
        ``"onnx"``: served by onnxruntime; every kind of model, and any head
        skl2onnx converts. ``"litert"``: a ``.tflite`` flatbuffer served by
        ``ai-edge-litert`` (phones, small boards, any CPU).
        ``"saved_model"``: a TensorFlow SavedModel served by TensorFlow (TF
        Serving). Both take image and MiniLM text models whose head is scalers
        and a linear classifier (or none), and fine-tuned classifiers.
    quantize : {None, "int8"}
        int8: static, calibrated quantization of an image network (needs
        ``calibration``), dynamic quantization of a text encoder. ONNX and LiteRT.
    calibration : collection of images, optional
        Inputs to calibrate int8 activation ranges on (a few hundred training
        images), read as the featurizer reads them. The int8 model is then
        served on them beside the float one: ``metadata["int8_agreement"]``
        holds the share of equal labels (``cosine`` for a featurizer alone), and
        a :class:`featurize.QuantizationWarning` says when it is below
        ``featurize.INT8_AGREEMENT`` (98%). A head stays float.

    Returns
    -------
    Export

    Examples
    --------
    >>> from featurize import ImageFeaturizer, export
    >>> featurizer = ImageFeaturizer("efficientnet_lite0", input_size=64, cache=None)
    >>> export(featurizer, format="onnx").metadata["graphs"]
    {'model': 'model.onnx'}
    """
    if format not in FORMATS:
        raise ExportError(
            f"`format` must be one of {list(FORMATS)}; received {format!r}."
        )
    if quantize not in QUANTIZE:
        raise ExportError(
            f"`quantize` must be one of {list(QUANTIZE)}; received {quantize!r}."
        )
    parts = take_apart(model)
    if parts.metadata.get("kind") == "anomaly" and (format, quantize) != ("onnx", None):
        raise ExportError(
            f"An AnomalyDetector exports as float ONNX (its scores are distances "
            f"to float patches); received format={format!r}, quantize={quantize!r}."
        )
    if parts.kind == "encoder" and calibration is not None:
        raise ExportError(
            "calibration is for image models: a text encoder's int8 is dynamic "
            "(activations scaled per batch) and needs none. Leave it out "
            "(--calibrate)."
        )
    if format == "onnx":
        from featurize._export.onnx import onnx_export

        exported = onnx_export(parts, quantize, calibration)
    else:
        from featurize._export.tensorflow import tensorflow_export

        exported = tensorflow_export(parts, format, quantize, calibration)
    if quantize and parts.kind != "encoder":
        exported.metadata["int8_agreement"] = int8_agreement(
            model, exported, calibration
        )
    return exported


def export_onnx(model, *, quantize=None, calibration=None) -> Export:
    """:func:`export` with ``format="onnx"``."""
    return export(model, format="onnx", quantize=quantize, calibration=calibration)
