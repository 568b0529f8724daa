"""One registry row: a backbone described as data (the built-in rows are in
:mod:`featurize._backbones.rows`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class Backbone:
    """One registry row.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"resnet50"``.
    family : str
        The module it comes from, e.g. ``"resnet"``.
    constructor : str, callable or keras.Model
        A ``keras.applications``-style constructor (``include_top``, ``weights``,
        ``input_shape`` keywords), or its import path; or a registered
        ``keras.Model``.
    preprocessing : str
        ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"`` (inside the model),
        ``"(x-127)/128"`` or ``"custom"``.
    preprocess : str, callable or None
        Import path of the family's ``preprocess_input``, or a callable.
    input_size : (int, int) or None
        Native ``(height, width)``; None when the model accepts any size and has no
        preferred one.
    feature_shape : (int, int, int) or None
        ``(height, width, channels)`` of the final feature map at the native size.
    stages : tuple of str
        Stage outputs usable as ``layer``, shallowest first.
    patch_layers : tuple of str
        Where :class:`featurize.AnomalyDetector` takes patch features by default:
        block outputs at strides 8 and 16. Empty: stages -3 and -2.
    pretrained : KerasDownload, ConvertedPackage, LocalFile, ModelWeights or None
        Where ``weights="imagenet"`` comes from; None for a registered builder that
        handles ``weights`` itself.
    """

    name: str
    family: str
    constructor: str | Callable | object
    preprocessing: str
    preprocess: str | Callable | None
    input_size: tuple[int, int] | None
    feature_shape: tuple[int, int, int] | None
    stages: tuple[str, ...] = ()
    pretrained: object = None
    patch_layers: tuple[str, ...] = ()
    key: object = field(default=None, compare=False)

    def __post_init__(self):
        if self.key is None:  # what the in-process model cache keys on
            object.__setattr__(self, "key", self.name)

    @classmethod
    def keras(
        cls, name: str, *, module: str, constructor: str, preprocessing: str,
        input_size: int, feature_shape: tuple[int, int, int],
        stages: tuple[str, ...], pretrained: object,
    ) -> Backbone:  # fmt: skip
        """A row for a ``keras.applications`` model, from its module's names."""
        return cls(
            name=name,
            family=module,
            constructor=f"keras.applications.{constructor}",
            preprocessing=preprocessing,
            preprocess=None
            if preprocessing == "none"
            else f"keras.applications.{module}.preprocess_input",
            input_size=(input_size, input_size),
            feature_shape=feature_shape,
            stages=stages,
            pretrained=pretrained,
        )

    def preprocess_function(self) -> Callable:
        """The preprocessing callable (imported on first use)."""
        if callable(self.preprocess):
            return self.preprocess
        if self.preprocess is None or self.preprocessing == "none":
            return _identity
        return _import(self.preprocess)

    def build(self, input_shape: tuple[int, int, int], weights):
        """Call the constructor without the classification head.

        ``weights`` goes to the constructor as it is; pretrained weights from
        other sources are loaded by the row's ``pretrained`` source.
        """
        constructor = self.constructor
        if hasattr(constructor, "layers") and hasattr(constructor, "inputs"):
            return constructor
        if isinstance(constructor, str):
            constructor = _import(constructor)
        return constructor(include_top=False, weights=weights, input_shape=input_shape)


def _identity(x):
    return x


def _import(path: str):
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)
