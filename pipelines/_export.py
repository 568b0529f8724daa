"""Export a saved model for serving without featurize: a folder with its own
``predict.py``, in ONNX, LiteRT or TF SavedModel (see :func:`featurize.export`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from featurize import EXPORT_FORMATS, Export, ExportError, export
from pipelines._manifests import read_manifest
from pipelines._options import UsageError
from pipelines._predict import read_model

FORMATS = EXPORT_FORMATS
# Images a calibration reads at most, spread over the folder: ranges settle within
# a few hundred.
CALIBRATION_IMAGES = 256


@dataclass
class Exported:
    """What :func:`export_model` wrote.

    Attributes
    ----------
    folder : str
    sizes : dict
        ``{file name: bytes}``.
    metadata : dict
        The folder's ``metadata.json``.
    calibrated : int
        Images int8 ranges were calibrated on.
    """

    folder: str
    sizes: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    calibrated: int = 0


def export_model(
    model,
    out_dir,
    *,
    format: str = "onnx",
    quantize: str | None = None,
    calibrate=None,
    trust: bool = False,
) -> Exported:
    """Export a fitted model (or a saved one's path) to a folder that serves it.

    Parameters
    ----------
    model : Pipeline, FineTunedClassifier, FineTunedTextClassifier, featurizer,
        or path
        A fitted model, or a file saved by ``featurize train --out`` (loaded
        without running code unless ``trust``).
    out_dir : path
        The folder to write; it appears whole or not at all, and replaces only an
        earlier export holding nothing but its own files (never the model,
        another folder, or files the user put beside an export: those are named
        and the export refused, before any work).
    format : {"onnx", "litert", "saved_model"}
        What serves it: onnxruntime, LiteRT, or TensorFlow (see
        :func:`featurize.export` for the models each takes).
    quantize : {None, "int8"}
    calibrate : folder, glob, list file or manifest, optional
        Training images for int8 calibration of an image model (up to 256 of them,
        spread over what it lists).
    trust : bool
        Load a model file that holds types other than featurize's own.

    Returns
    -------
    Exported
    """
    if format not in FORMATS:
        raise ExportError(
            f"`format` must be one of {list(FORMATS)}; received {format!r}."
        )
    source = None
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        _check_folder(out_dir, source)
    Export.check_folder(out_dir)  # before any work, as save() will
    if source is not None:
        model, _ = read_model(source, trust=trust)
    calibration = None
    if calibrate is not None:
        paths = read_manifest(calibrate)["path"].tolist()
        if not paths:
            raise ExportError(f"--calibrate {calibrate!r} holds no images.")
        step = max(1, len(paths) / CALIBRATION_IMAGES)
        calibration = [
            paths[int(k * step)] for k in range(min(len(paths), CALIBRATION_IMAGES))
        ]
    written = export(model, format=format, quantize=quantize, calibration=calibration)
    sizes = written.save(out_dir)
    with open(os.path.join(out_dir, "metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    return Exported(os.fspath(out_dir), sizes, metadata, len(calibration or ()))


def _check_folder(out_dir, source: str) -> None:
    """The export folder must not be, or hold, the model file it exports."""
    folder = os.path.realpath(out_dir)
    model = os.path.realpath(source)
    if model == folder or model.startswith(folder.rstrip(os.sep) + os.sep):
        raise ExportError(
            f"The export folder {os.fspath(out_dir)!r} holds the model file "
            f"{source!r}: exporting would replace it. Name another folder."
        )


def export_command(args) -> int:
    """``featurize export``: export, then say what was written and how to serve it."""
    if args.calibrate is not None and args.quantize is None:
        raise UsageError("--calibrate goes with --quantize int8.")
    exported = export_model(
        args.model, args.out_dir, format=args.format, quantize=args.quantize,
        calibrate=args.calibrate, trust=args.trust,
    )  # fmt: skip
    total = sum(exported.sizes.values())
    meta = exported.metadata
    agreement = meta.get("int8_agreement", {})
    if "labels" in agreement:
        print(
            f"int8 labels agree with the float model's on {agreement['labels']:.1%} "
            f"of {agreement['images']} calibration images"
        )
    elif "cosine" in agreement:
        print(
            f"int8 embeddings: mean cosine {agreement['cosine']:.4f} to the float "
            f"model's on {agreement['images']} calibration images"
        )
    network = meta.get("backbone") or meta.get("encoder")
    print(
        f"exported the {meta['kind']} model ({network}, {len(meta['classes'])} "
        f"classes) to {exported.folder}: "
        f"{', '.join(sorted({name.split('/')[0] for name in exported.sizes}))} "
        f"({total / 2**20:.1f} MiB); serve it "
        f"with: python {exported.folder}/predict.py INPUT"
    )
    return 0


def add_export_command(command, model_options) -> None:
    """Declare ``featurize export`` (``command`` adds a sub-command)."""
    export = command(
        "export",
        export_command,
        [model_options],
        help="export a saved model to a folder that serves it without featurize",
        description="Write OUT_DIR: the model (ONNX, LiteRT or TF SavedModel), "
        "metadata.json (classes, input size and preprocessing, the files' SHA-256), "
        "and a predict.py that needs only numpy, Pillow and the format's runtime "
        "(and tokenizers for a text model) and writes the rows `featurize predict` "
        "writes. OUT_DIR appears whole or not at all, and replaces only an earlier "
        "export.",
    )
    export.add_argument("model", metavar="MODEL")
    export.add_argument("out_dir", metavar="OUT_DIR")
    export.add_argument(
        "--format", choices=FORMATS, default=FORMATS[0],
        help="onnx (onnxruntime; any head skl2onnx converts), litert (ai-edge-litert)"
        " or saved_model (TensorFlow): these two take linear heads (calibrated or "
        "not) only",
    )  # fmt: skip
    export.add_argument(
        "--quantize", choices=("int8",), default=None,
        help="int8: calibrated static quantization of an image network (needs "
        "--calibrate), dynamic quantization of a text encoder",
    )  # fmt: skip
    export.add_argument(
        "--calibrate", default=None, metavar="DIR",
        help="training images to calibrate int8 on (a folder, glob or manifest)",
    )  # fmt: skip
