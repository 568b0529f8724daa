"""The backbone registry: the rows, looked up by name, and backbones users add.

A row is plain data (:class:`featurize._backbones.row.Backbone`); the built-in rows
are in :mod:`featurize._backbones.rows`.
"""

from __future__ import annotations

import threading
from functools import partial

from featurize._backbones.pretrained import LocalFile, ModelWeights
from featurize._backbones.row import PREPROCESSING_MODES, Backbone
from featurize._backbones.rows import ROWS
from featurize._shared.rules import normalize_name
from featurize.errors import (
    InvalidParameterError,
    InvalidParameterTypeError,
    UnknownBackboneError,
)

__all__ = ["Backbone", "all_backbones", "get_backbone", "list_backbones",
           "normalize_name", "register_backbone"]  # fmt: skip


_LOCK = threading.Lock()
_REGISTRY: dict[str, Backbone] = {}


def _add(backbone: Backbone, *, overwrite: bool = False) -> Backbone:
    key = normalize_name(backbone.name)
    with _LOCK:
        if key in _REGISTRY and not overwrite:
            raise InvalidParameterError(
                f"A backbone named {backbone.name!r} is already registered. Pass "
                f"overwrite=True to replace it, or choose another name."
            )
        _REGISTRY[key] = backbone
    return backbone


for _row in ROWS:
    _add(_row)


def get_backbone(name) -> Backbone:
    """Look a backbone up by name (case and separators ignored).

    Raises
    ------
    UnknownBackboneError
        Listing the known names.
    """
    if isinstance(name, Backbone):
        return name
    if not isinstance(name, str):
        raise UnknownBackboneError(
            f"`backbone` must be a string name; received {name!r} of type "
            f"{type(name).__name__}. Register a keras.Model with "
            f"featurize.register_backbone(name, model) and pass its name."
        )
    backbone = _REGISTRY.get(normalize_name(name))
    if backbone is None:
        known = sorted(b.name for b in _REGISTRY.values())
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}. Known backbones: {known}. See "
            f"featurize.list_backbones()."
        )
    return backbone


def all_backbones() -> list[Backbone]:
    """Every registered backbone, in registration order."""
    with _LOCK:
        return list(_REGISTRY.values())


def register_backbone(
    name: str,
    model,
    *,
    preprocessing: str | None = "none",
    preprocess=None,
    input_size: int | tuple[int, int] | None = None,
    weights_file=None,
    overwrite: bool = False,
) -> None:
    """Add your own Keras model to the registry, with its preprocessing.

    Parameters
    ----------
    name : str
        The name to use as ``ImageFeaturizer(backbone=name)``.
    model : keras.Model or callable
        A headless model mapping ``(batch, height, width, 3)`` images to a 4-D
        feature map, or a callable ``(input_shape, weights) -> keras.Model`` that
        builds one (``weights`` is None or ``"imagenet"``).
    preprocessing : {"caffe", "tf", "torch", "none"}, default="none"
        A ``keras.applications.imagenet_utils.preprocess_input`` mode, applied to
        RGB pixels in [0, 255]; ``"none"`` when the model preprocesses itself.
        Ignored when ``preprocess`` is given.
    preprocess : callable, optional
        Your own preprocessing, ``x -> x``, written with ``keras.ops``.
    input_size : int or (int, int), optional
        Native ``(height, width)``; by default read from a model's fixed input shape.
    weights_file : path-like, optional
        For a builder: the weights ``weights="imagenet"`` loads (``.weights.h5``,
        ``.keras`` or legacy ``.h5``), identified by their SHA-256 so that
        embeddings are cached. Without it, the builder receives ``weights`` itself
        and its embeddings are not cached (nothing identifies its weights).
    overwrite : bool, default=False
        Replace an existing backbone of the same name.

    Examples
    --------
    >>> import keras
    >>> from featurize import ImageFeaturizer, register_backbone
    >>> inputs = keras.Input((32, 32, 3))
    >>> tiny = keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2)(inputs))
    >>> register_backbone("tiny_cnn", tiny, preprocessing="tf", overwrite=True)
    >>> ImageFeaturizer("tiny_cnn").fit().n_features_out_
    8
    """
    if preprocess is not None:
        if not callable(preprocess):
            raise InvalidParameterTypeError(
                f"`preprocess` must be callable; received {preprocess!r}."
            )
        mode, function = "custom", preprocess
    elif preprocessing in (None, "none"):
        mode, function = "none", None
    elif preprocessing in PREPROCESSING_MODES:
        mode, function = preprocessing, _imagenet_preprocess(preprocessing)
    else:
        raise InvalidParameterError(
            f"`preprocessing` must be one of {list(PREPROCESSING_MODES)}; received "
            f"{preprocessing!r}. Pass preprocess=callable for anything else."
        )
    is_model = hasattr(model, "layers") and hasattr(model, "inputs")
    if not is_model and not callable(model):
        raise InvalidParameterTypeError(
            f"`model` must be a keras.Model or a callable building one; received "
            f"{type(model).__name__}."
        )
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    feature_shape = None
    if is_model:
        shape = tuple(model.input_shape[1:3])
        if input_size is None and None not in shape:
            input_size = tuple(int(d) for d in shape)
        if len(model.output_shape) != 4:
            raise InvalidParameterError(
                f"Backbone {name!r} must output a 4-D (batch, height, width, "
                f"channels) feature map; its output shape is {model.output_shape}."
            )
        if None not in model.output_shape[1:]:
            feature_shape = tuple(int(d) for d in model.output_shape[1:])
    if is_model and weights_file is not None:
        raise InvalidParameterError(
            f"`weights_file` is for builders; the model registered as {name!r} "
            f"already holds its weights. Load them into it first, or register a "
            f"builder."
        )
    if is_model:
        constructor, pretrained = model, ModelWeights()
    else:
        constructor = partial(_call_builder, model)
        pretrained = None if weights_file is None else LocalFile(str(weights_file))
    _add(
        Backbone(
            name=name,
            family="custom",
            constructor=constructor,
            pretrained=pretrained,
            preprocessing=mode,
            preprocess=function,
            input_size=tuple(input_size) if input_size is not None else None,
            feature_shape=feature_shape,
            key=(name, id(model)),
        ),
        overwrite=overwrite,
    )


def _call_builder(builder, *, include_top, weights, input_shape):
    return builder(input_shape, weights)


def _imagenet_preprocess(mode: str):
    def preprocess(x):
        from keras.applications.imagenet_utils import preprocess_input

        return preprocess_input(x, mode=mode)

    preprocess.__name__ = f"preprocess_input_{mode}"
    return preprocess


def list_backbones(*, weights_status: bool = False):
    """The registry as a table.

    Parameters
    ----------
    weights_status : bool, default=False
        Add ``weights_status`` (``"present"``, ``"missing"``, ...) and
        ``weights_location`` (the file that is or would be used): whether each
        backbone's pretrained weights are on this machine.

    Returns
    -------
    pandas.DataFrame
        One row per backbone: ``name``, ``family``, ``input_size`` (native
        height and width), ``preprocessing`` mode and the ``preprocess_input`` used,
        output width per pooling (``features_avg``, ``features_max``,
        ``features_gem``, ``features_flatten`` at the native size), the ``stages``
        usable as ``layer``, and where the ``pretrained`` weights come from.

    Examples
    --------
    >>> from featurize import list_backbones
    >>> table = list_backbones()
    >>> table.loc[table.name == "resnet50", "features_avg"].item()
    2048
    """
    import pandas as pd

    rows = []
    for b in all_backbones():
        channels = b.feature_shape[2] if b.feature_shape else None
        flat = (
            int(b.feature_shape[0] * b.feature_shape[1] * channels)
            if channels
            else None
        )
        preprocess = b.preprocess
        if callable(preprocess):
            preprocess = getattr(preprocess, "__qualname__", repr(preprocess))
        rows.append(
            {
                "name": b.name,
                "family": b.family,
                "input_size": b.input_size,
                "preprocessing": b.preprocessing,
                "preprocess_input": preprocess or "(inside the model)",
                "features_avg": channels,
                "features_max": channels,
                "features_gem": channels,
                "features_flatten": flat,
                "stages": list(b.stages),
                "pretrained": b.pretrained.describe() if b.pretrained else None,
            }
        )
        if weights_status:
            status, location = (
                b.pretrained.status(b)
                if b.pretrained
                else ("decided by the builder", "")
            )
            rows[-1].update(weights_status=status, weights_location=location)
    return pd.DataFrame(rows)
