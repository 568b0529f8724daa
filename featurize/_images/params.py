"""ImageFeaturizer's parameter rules (and the image-only rule types)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from numbers import Integral

from featurize._backbones.models import PRECISION_POLICIES
from featurize._backbones.registry import get_backbone
from featurize._onnx.runtime import RUNTIMES
from featurize._shared.rules import (
    ON_ERROR,
    Anything,
    Integer,
    Options,
    RegistryName,
    Rule,
)
from featurize.errors import InvalidParameterError


@dataclass(frozen=True)
class InputSize(Rule):
    """None (the backbone's native size), an int, or ``(height, width)``."""

    def check(self, name: str, value):
        if value is None:
            return None
        if isinstance(value, Integral) and not isinstance(value, bool):
            value = (value, value)
        try:
            height, width = value
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"`{name}` must be None, an int or (height, width); received {value!r}."
            ) from None
        for side in (height, width):
            if isinstance(side, bool) or not isinstance(side, Integral) or side < 1:
                raise InvalidParameterError(
                    f"`{name}` must hold positive integers; received {value!r}."
                )
        return int(height), int(width)

    accepts_none = True

    def parse(self, text: str):
        height, _, width = text.lower().partition("x")
        return (int(height), int(width)) if width else int(height)


@dataclass(frozen=True)
class Layer(Rule):
    """None (the final feature map), a layer name, or a negative stage index.

    With ``auto``, also "auto": the estimator picks among its candidate layers.
    """

    auto: bool = False

    def check(self, name: str, value):
        if value == "auto" and not self.auto:
            raise InvalidParameterError(
                f"`{name}='auto'` is for FineTunedClassifier, which chooses the layer "
                f"by cross-validation; a featurizer needs None, a layer name or a "
                f"negative int."
            )
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, Integral) and not isinstance(value, bool) and value < 0:
            return int(value)
        raise InvalidParameterError(
            f"`{name}` must be None, a layer name or a negative int (-1 the last "
            f"stage, -2 the one before); received {value!r} of type "
            f"{type(value).__name__}."
        )

    accepts_none = True

    def parse(self, text: str):
        try:
            return int(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class Weights(Rule):
    """``"imagenet"``, None (random), or the path of a weights file."""

    def check(self, name: str, value):
        if value is None or isinstance(value, (str, os.PathLike)):
            return value
        raise InvalidParameterError(
            f"`{name}` must be 'imagenet', None or a path to a weights file; "
            f"received {value!r} of type {type(value).__name__}."
        )

    accepts_none = True


POOLINGS = ("avg", "max", "gem", None)
RESIZE_POLICIES = ("stretch", "center_crop")

# In the order the command line lists them.
IMAGE_FEATURIZER_RULES = {
    "backbone": RegistryName(
        get_backbone, help="a name from `featurize backbones`", comparable=True
    ),
    "weights": Weights(help="'imagenet', 'none' (random) or a weights file"),
    "layer": Layer(
        help="'none' (final feature map), a layer name, or -k: the k-th stage "
        "output from the end",
        comparable=True,
    ),
    "pooling": Options(
        POOLINGS, help="spatial pooling ('none' flattens)", comparable=True
    ),
    "input_size": InputSize(help="N or HxW pixels", shown="the backbone's native size"),
    "resize": Options(RESIZE_POLICIES, help="how images are fitted to the input"),
    "precision": Options(
        tuple(PRECISION_POLICIES), help="'mixed': bfloat16 compute (GPUs)"
    ),
    "runtime": Options(
        RUNTIMES,
        help="'onnx': onnxruntime; 'auto': onnxruntime on CPU where it pays",
    ),
    "batch_size": Integer(1, allow_none=True, help="images per forward pass"),
    "decode_workers": Integer(0, allow_none=True, help="image decoding threads"),
    "max_pixels": Integer(1, allow_none=True, help="refuse larger images"),
    "cache": Anything(
        help="embedding cache folder, or 'none' (off)", shown="the default folder"
    ),
    # The commands decide these themselves (a bad image is reported, never fatal).
    "on_error": Options(
        ON_ERROR, help="a bad image raises, or gives a NaN row", cli=False
    ),
    "verbose": Anything(help="a progress bar when true", cli=False),
}
