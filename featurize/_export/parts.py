"""A fitted featurize model taken apart into what every export format needs: the
network (with how it is called), the scikit-learn head, the files a server reads
(a tokenizer) and the metadata that says how to feed and read it.

Each format (:mod:`featurize._export.onnx`, :mod:`featurize._export.tensorflow`)
turns the same parts into its own graphs, so what one format's folder says about its
inputs the others say too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featurize._export.heads import HeadOutputs, head_steps
from featurize._standalone.serving import EMBEDDING, FORMAT, FORMAT_VERSIONS, PIXELS
from featurize.errors import ExportError


@dataclass
class Parts:
    """One fitted model, taken apart.

    Attributes
    ----------
    kind : {"features", "classifier", "encoder"}
        What ``network`` is: an image featurizer's forward pass
        (:class:`featurize._images.forward.Forward`, pixels to embeddings), a
        fine-tuned Keras model (pixels to probabilities), or a text encoder (token
        ids and mask to pooled states).
    network : object
    head : list
        The scikit-learn steps after the featurizer (empty: none).
    width : int
        The network's output width (what the head reads).
    metadata : dict
        Everything ``metadata.json`` says but the outputs, graphs and files.
    files : dict
        ``{name: bytes}`` a server reads besides the graphs (the tokenizer).
    """

    kind: str
    network: object
    head: list
    width: int
    metadata: dict
    files: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple:
        """An image network's input ``(height, width)``."""
        return tuple(self.metadata["input"]["size"])

    def calibration_batches(self, calibration, batch_size: int = 8):
        """Pixel batches of ``calibration`` (images), read as the model reads them,
        for int8 calibration; an :class:`ExportError` saying what to pass where it
        is missing."""
        from featurize._images.decode import as_image_list, load_image

        if calibration is None:
            raise ExportError(
                "quantize='int8' calibrates the network's activation ranges on real "
                "images: pass calibration=[paths of a few hundred training images] "
                "(featurize export --calibrate DIR)."
            )
        resize = self.metadata["input"]["resize"]
        items = as_image_list(calibration)

        # A generator inside, so that a missing `calibration` is said here, before
        # a converter starts reading.
        def batches():
            for start in range(0, len(items), batch_size):
                pixels = [
                    load_image(item, size=self.size, resize=resize, index=k)
                    for k, item in enumerate(items[start : start + batch_size], start)
                ]
                yield np.stack(pixels).astype(np.float32)

        return batches()


def take_apart(model) -> Parts:
    """The :class:`Parts` of a fitted model.

    Parameters
    ----------
    model : Pipeline, ImageFeaturizer, TextFeaturizer, FineTunedClassifier or
        FineTunedTextClassifier
        A pipeline starting with a featurizer, a featurizer alone, or a fine-tuned
        classifier (a text one exports as its tuned encoder and its head).
    """
    from sklearn.pipeline import Pipeline

    from featurize._anomaly.detector import AnomalyDetector
    from featurize._images.featurizer import ImageFeaturizer
    from featurize._texts.featurizer import TextFeaturizer
    from featurize._tuning.classifier import FineTunedClassifier
    from featurize._tuning.text_classifier import FineTunedTextClassifier

    head = None
    first = model
    if isinstance(model, Pipeline):
        first, head = model.steps[0][1], model[1:]
    if isinstance(first, AnomalyDetector) and head is None:
        return _detector(first)
    if isinstance(first, ImageFeaturizer):
        return _image(first, head)
    if isinstance(first, TextFeaturizer):
        return _text(first, head)
    if isinstance(first, FineTunedClassifier) and head is None:
        return _fine_tuned(first)
    if isinstance(first, FineTunedTextClassifier) and head is None:
        return _text(first.to_featurizer(), first.head_)
    raise ExportError(
        f"Cannot export a {type(model).__name__}: expected a Pipeline starting with "
        f"an ImageFeaturizer or TextFeaturizer, a featurizer alone, a "
        f"FineTunedClassifier or a FineTunedTextClassifier."
    )


def metadata(parts: Parts, outputs: HeadOutputs, runtime: str, **fields) -> dict:
    """``metadata.json`` of ``parts`` exported with ``outputs``, for ``runtime``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSIONS[-1],
        "runtime": runtime,
        **parts.metadata,
        "outputs": {
            "label": outputs.label,
            "probabilities": outputs.probabilities,
            "scores": outputs.scores,
            "embedding": EMBEDDING
            if not (outputs.label or outputs.probabilities or outputs.scores)
            else None,
        },
        **fields,
    }


def _classes(head) -> list:
    classes = getattr(head, "classes_", None)
    return [] if classes is None else [_plain(c) for c in classes]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _pixel_input(params: dict, size) -> dict:
    return {
        "name": PIXELS,
        "size": list(size),
        "resize": params["resize"],
        "max_pixels": params["max_pixels"],
        "layout": "NHWC float32 RGB in [0, 255]",
    }


def _common(kind: str, classes: list, **fields) -> dict:
    from featurize._shared.versions import featurize_version

    return {
        "kind": kind,
        "classes": classes,
        "featurize_version": featurize_version(),
        **fields,
    }


def _image(featurizer, head) -> Parts:
    featurizer.fit()
    settings = featurizer._settings()
    forward = featurizer._forward(settings)
    backbone = settings.backbone
    return Parts(
        "features",
        forward,
        head_steps(head),
        forward.n_features,
        _common(
            "image",
            _classes(head),
            input=_pixel_input(settings.params, settings.input_size),
            batch_size=settings.params["batch_size"] or 8,
            preprocessing=backbone.preprocessing,
            backbone=backbone.name,
            fingerprint=featurizer.fingerprint(),
        ),
    )


def _detector(detector) -> Parts:
    """The detector's featurizer as the network; its bank a file beside it."""
    import io

    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector, "bank_")
    parts = _image(detector.featurizer(), None)
    bank = io.BytesIO()
    centroids, starts = detector.cells_ or (np.zeros((0, 0), np.float32), [])
    np.savez(bank, bank=detector.bank_, centroids=centroids,
             starts=np.asarray(starts, np.int64))  # fmt: skip
    parts.files["bank.npz"] = bank.getvalue()
    parts.metadata.update(
        kind="anomaly",
        classes=["normal", "anomaly"],
        anomaly={
            "method": detector.method,
            "grid": list(detector.grid_shape_),
            "threshold": float(detector.threshold_),
            "false_alarm_rate": detector.false_alarm_rate,
            "bank": "bank.npz",
        },
    )
    return parts


def _fine_tuned(classifier) -> Parts:
    from sklearn.utils.validation import check_is_fitted

    from featurize._backbones.registry import get_backbone

    check_is_fitted(classifier, "history_")
    params = classifier.get_params()
    return Parts(
        "classifier",
        classifier.keras_model(),
        [],
        len(classifier.classes_),
        _common(
            "image",
            _classes(classifier),
            input=_pixel_input(params, classifier.input_size_),
            batch_size=params["batch_size"] or 8,
            preprocessing=get_backbone(classifier.backbone_).preprocessing,
            backbone=classifier.backbone_,
            fingerprint={
                "fine_tuned": classifier.backbone_,
                "layer": classifier.layer_,
                "input_size": list(classifier.input_size_),
                "resize": params["resize"],
            },
        ),
    )


def _text(featurizer, head) -> Parts:
    from featurize._texts.encoders import load_encoder

    params, row, length = featurizer._settings()
    encoder = load_encoder(row, params["weights"])
    if encoder.network is None:
        raise ExportError(
            f"Text encoder {row.name!r} ({type(encoder).__name__}) has no network "
            f"to export; export a pipeline of a Transformer encoder (minilm_l6)."
        )
    return Parts(
        "encoder",
        encoder,
        head_steps(head),
        row.dimension,
        _common(
            "text",
            _classes(head),
            input={
                "tokenizer": "tokenizer.json",
                "max_length": length,
                "long_text": params["long_text"],
                "normalize": params["normalize"],
                "cls": encoder.cls,
                "sep": encoder.sep,
                "positions": encoder.positions,
            },
            batch_size=params["batch_size"],
            preprocessing="wordpiece",
            encoder=row.name,
            fingerprint=featurizer.fingerprint(),
        ),
        files={"tokenizer.json": (row.files() / row.vocabulary).read_bytes()},
    )
