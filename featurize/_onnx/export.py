"""A fitted featurize model as ONNX graphs and the metadata that serves them.

Image models are one graph: pixels in [0, 255] (decoded and resized as featurize
does, by :mod:`featurize._standalone.pixels`) to embeddings, probabilities or scores.
Text models are two: the encoder (token ids and mask to mean-pooled states) and the
head (embeddings to probabilities), because between them a long text's windows are
averaged and the result normalised (:mod:`featurize._standalone.tokens`), as
featurize does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurize._onnx.convert import (
    EMBEDDING,
    OPSET,
    PIXELS,
    PROBABILITIES,
    classifier_graph,
    encoder_graph,
    forward_graph,
)
from featurize._onnx.heads import HeadOutputs, append_head
from featurize._standalone.serving import FORMAT, FORMAT_VERSIONS, METADATA
from featurize.errors import ExportError

QUANTIZE = (None, "int8")
# What the exported folder needs, as its requirements.txt: opset 17 runs on
# onnxruntime 1.16 and newer.
SERVING_REQUIREMENTS = ("numpy>=1.24", "pillow>=10.0", "onnxruntime>=1.16")
TEXT_REQUIREMENTS = ("tokenizers>=0.15",)


@dataclass
class OnnxExport:
    """What :func:`export_onnx` gives: graphs by role, the files to write beside
    them, and the metadata that says how to feed them.

    Attributes
    ----------
    graphs : dict
        ``{"model": proto}`` for images; ``{"encoder": proto, "head": proto}`` for
        texts (no ``head`` for a featurizer alone).
    files : dict
        Other files a server needs, ``{name: bytes}`` (the tokenizer).
    metadata : dict
        Plain data: kind, classes, input, outputs, preprocessing, fingerprint.
    """

    graphs: dict
    files: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def serialized(self) -> dict:
        """``{file name: bytes}`` of the graphs, named ``<role>.onnx``."""
        return {
            f"{role}.onnx": g.SerializeToString() for role, g in self.graphs.items()
        }

    def save(self, folder) -> dict:
        """Write the export folder: graphs, files, ``predict.py`` with the modules
        it reads inputs with, ``requirements.txt`` and ``metadata.json`` (listing
        every other file's SHA-256, which ``predict.py`` checks).

        The folder appears whole or not at all (written beside it, then renamed);
        an existing one is replaced only where it is an earlier export.

        Returns
        -------
        dict
            ``{file name: size in bytes}``.

        Raises
        ------
        ExportError
            ``folder`` exists and is not an export folder (nothing is written).
        """
        folder = Path(folder)
        _check_replaceable(folder)
        contents = {**self.serialized(), **self.files, **_serving_files(self.kind)}
        metadata = {
            **self.metadata,
            "graphs": list(self.graphs),
            "files": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(contents.items())
            },
        }
        contents[METADATA] = (json.dumps(metadata, indent=2) + "\n").encode()
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            for name, data in contents.items():
                (staging / name).write_bytes(data)
            retired = folder.with_name(f".{folder.name}.{os.getpid()}.old")
            if folder.exists():
                os.replace(folder, retired)
            os.replace(staging, folder)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {name: len(data) for name, data in contents.items()}

    @property
    def kind(self) -> str:
        return self.metadata["kind"]


def _check_replaceable(folder: Path) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(
            f"{str(folder)!r} is a file; an export is a folder: name a new one."
        )
    if not any(folder.iterdir()):
        return
    try:
        earlier = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or earlier.get("format") != FORMAT:
        raise ExportError(
            f"{str(folder)!r} exists and is not an export folder (no featurize "
            f"{METADATA}): name a new or empty folder; an earlier export is "
            f"replaced, anything else is left alone."
        )


def _serving_files(kind: str) -> dict:
    """``predict.py`` and the standalone modules it imports, as an export folder
    holds them."""
    from featurize._standalone import serving

    here = Path(serving.__file__).parent
    files = {"predict.py": (here / "predict.py").read_bytes()}
    for module, name in serving.COPIES.items():
        files[name] = (here / f"{module}.py").read_bytes()
    needs = SERVING_REQUIREMENTS + (TEXT_REQUIREMENTS if kind == "text" else ())
    files["requirements.txt"] = ("\n".join(needs) + "\n").encode()
    return files


def export_onnx(model, *, quantize=None, calibration=None) -> OnnxExport:
    """Turn a fitted featurize model into ONNX graphs with their metadata.

    Parameters
    ----------
    model : Pipeline, ImageFeaturizer, TextFeaturizer or FineTunedClassifier
        A pipeline starting with a featurizer (then any scikit-learn head: linear
        ones fold into the graph, others go through skl2onnx), a featurizer alone
        (the graph gives embeddings), or a fine-tuned classifier.
    quantize : {None, "int8"}
        int8: static, calibrated quantization of an image network (needs
        ``calibration``), dynamic quantization of a text encoder.
    calibration : collection of images, optional
        Inputs to calibrate int8 activation ranges on (a few hundred training
        images), read as the featurizer reads them.

    Returns
    -------
    OnnxExport
    """
    from sklearn.pipeline import Pipeline

    from featurize._images.featurizer import ImageFeaturizer
    from featurize._texts.featurizer import TextFeaturizer
    from featurize._tuning.classifier import FineTunedClassifier

    if quantize not in QUANTIZE:
        raise ExportError(
            f"`quantize` must be one of {list(QUANTIZE)}; received {quantize!r}."
        )
    head = None
    first = model
    if isinstance(model, Pipeline):
        first, head = model.steps[0][1], model[1:]
    if isinstance(first, ImageFeaturizer):
        return _image(first, head, quantize, calibration)
    if isinstance(first, TextFeaturizer):
        return _text(first, head, quantize)
    if isinstance(first, FineTunedClassifier) and head is None:
        return _fine_tuned(first, quantize, calibration)
    raise ExportError(
        f"Cannot export a {type(model).__name__}: expected a Pipeline starting with "
        f"an ImageFeaturizer or TextFeaturizer, a featurizer alone, or a "
        f"FineTunedClassifier."
    )


def _classes(head) -> list:
    classes = getattr(head, "classes_", None)
    return [] if classes is None else [_plain(c) for c in classes]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _image_network(featurizer, quantize, calibration):
    featurizer.fit()
    settings = featurizer._settings()
    forward = featurizer._forward(settings)
    network = forward_graph(forward)
    if quantize:
        network = _quantize_pixels(network, featurizer, calibration)
    return network, settings, forward


def _pixel_input(params: dict, size) -> dict:
    return {
        "name": PIXELS,
        "size": list(size),
        "resize": params["resize"],
        "max_pixels": params["max_pixels"],
        "layout": "NHWC float32 RGB in [0, 255]",
    }


def _image(featurizer, head, quantize, calibration) -> OnnxExport:
    network, settings, forward = _image_network(featurizer, quantize, calibration)
    graph, outputs = append_head(network, head, forward.n_features)
    backbone = settings.backbone
    return OnnxExport(
        {"model": graph},
        metadata=_metadata(
            "image",
            _classes(head),
            outputs,
            input=_pixel_input(settings.params, settings.input_size),
            batch_size=settings.params["batch_size"] or 8,
            preprocessing=backbone.preprocessing,
            backbone=backbone.name,
            fingerprint=featurizer.fingerprint(),
            quantize=quantize,
        ),
    )


def _fine_tuned(classifier, quantize, calibration) -> OnnxExport:
    from sklearn.utils.validation import check_is_fitted

    from featurize._backbones.registry import get_backbone

    check_is_fitted(classifier, "history_")
    network = classifier_graph(classifier.keras_model())
    if quantize:
        network = _quantize_pixels(network, classifier, calibration)
    params = classifier.get_params()
    return OnnxExport(
        {"model": network},
        metadata=_metadata(
            "image",
            _classes(classifier),
            HeadOutputs(probabilities=PROBABILITIES),
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
            quantize=quantize,
        ),
    )


def _quantize_pixels(network, estimator, calibration):
    from featurize._images.decode import as_image_list, load_image
    from featurize._onnx.quantize import quantize_static

    if calibration is None:
        raise ExportError(
            "quantize='int8' calibrates the network's activation ranges on real "
            "images: pass calibration=[paths of a few hundred training images] "
            "(featurize export --calibrate DIR)."
        )
    params = estimator.get_params()
    size = getattr(estimator, "input_size_", None) or estimator._settings().input_size
    items = as_image_list(calibration)

    def batches():
        for start in range(0, len(items), 8):
            pixels = [
                load_image(item, size=size, resize=params["resize"], index=k)
                for k, item in enumerate(items[start : start + 8], start)
            ]
            yield np.stack(pixels).astype(np.float32)

    return quantize_static(network, PIXELS, batches())


def _text(featurizer, head, quantize) -> OnnxExport:
    from featurize._texts.encoders import load_encoder

    params, row, length = featurizer._settings()
    encoder = load_encoder(row)
    if encoder.network is None:
        raise ExportError(
            f"Text encoder {row.name!r} ({type(encoder).__name__}) has no network "
            f"to export; export a pipeline of a Transformer encoder (minilm_l6)."
        )
    graphs = {"encoder": encoder_graph(encoder)}
    if quantize:
        from featurize._onnx.quantize import quantize_dynamic

        graphs["encoder"] = quantize_dynamic(graphs["encoder"])
    outputs = HeadOutputs()
    if head is not None:
        graphs["head"], outputs = append_head(
            _identity(row.dimension), head, row.dimension
        )
    tokenizer = (row.files() / row.vocabulary).read_bytes()
    return OnnxExport(
        graphs,
        files={"tokenizer.json": tokenizer},
        metadata=_metadata(
            "text",
            _classes(head),
            outputs,
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
            quantize=quantize,
        ),
    )


def _identity(width: int):
    """A graph passing its input on as ``embedding``: the base a text head is
    appended to."""
    import onnx
    from onnx import helper

    def value(name):
        return helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, width]
        )

    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], [EMBEDDING])],
        "head",
        [value("features")],
        [value(EMBEDDING)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _metadata(kind, classes, outputs: HeadOutputs, **fields) -> dict:
    from featurize._shared.versions import featurize_version

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSIONS[-1],
        "kind": kind,
        "classes": classes,
        "outputs": {
            "label": outputs.label,
            "probabilities": outputs.probabilities,
            "scores": outputs.scores,
            "embedding": EMBEDDING
            if not (outputs.label or outputs.probabilities or outputs.scores)
            else None,
        },
        "featurize_version": featurize_version(),
        **fields,
    }
