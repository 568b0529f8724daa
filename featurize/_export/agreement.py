"""How far an int8 export moved from the float model it came from, measured on
the calibration images: the figure every int8 folder carries in its metadata."""

from __future__ import annotations

import tempfile
import warnings

import numpy as np

from featurize.errors import QuantizationWarning

# Labels of the int8 and the float model must agree on this share of the
# calibration images, or the export warns (issue 39: 85.6% went unnoticed).
INT8_AGREEMENT = 0.98


def int8_agreement(model, exported, calibration) -> dict:
    """Serve ``exported`` (an :class:`~featurize.Export`, int8) from a scratch
    folder on ``calibration`` beside ``model``'s own float predictions.

    Returns
    -------
    dict
        ``images``, and ``labels`` (the share of equal labels) for a classifier
        or ``cosine`` (the mean cosine similarity of the embeddings) for a
        featurizer alone. A :class:`~featurize.QuantizationWarning` says when the
        labels agree on less than ``INT8_AGREEMENT``.
    """
    from featurize._images.decode import as_image_list
    from featurize._standalone.serving import Model

    items = list(as_image_list(calibration))
    with tempfile.TemporaryDirectory(prefix="featurize-int8-") as scratch:
        exported.save(f"{scratch}/int8")
        served = Model(f"{scratch}/int8", verify=False).run(items)
    ok = np.array([not error for error in served.errors])
    if not hasattr(model, "predict"):  # a featurizer alone: embeddings
        reference = np.asarray(model.transform(items), np.float64)[ok]
        quantized = np.asarray(served.embeddings, np.float64)[ok]
        cosine = np.sum(reference * quantized, axis=1) / np.maximum(
            np.linalg.norm(reference, axis=1) * np.linalg.norm(quantized, axis=1),
            1e-12,
        )
        return {"images": int(ok.sum()), "cosine": round(float(cosine.mean()), 6)}
    expected = np.asarray(model.predict(items))[ok]
    labels = np.asarray(served.labels, dtype=object)[ok]
    agree = float(np.mean([str(a) == str(b) for a, b in zip(labels, expected)]))
    if agree < INT8_AGREEMENT:
        warnings.warn(
            f"The int8 model's labels agree with the float model's on "
            f"{agree:.1%} of the {len(expected)} calibration images (below "
            f"{INT8_AGREEMENT:.0%}): expect its accuracy to drop. Export without "
            f"quantize (or with format='onnx', whose int8 keeps more in float), "
            f"or calibrate on more images.",
            QuantizationWarning,
            stacklevel=3,
        )
    return {"images": int(ok.sum()), "labels": round(agree, 6)}
