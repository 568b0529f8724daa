"""Build backbones as Keras models, cut them at a layer, and share them in-process.

Models are derived state: an estimator never holds one. Every estimator with the same
settings (clones in a grid search included) gets the same model object from
:func:`feature_model`, which builds it on first use. At most ``max_models()`` backbones
are held, least recently used out first, so a process that goes through many
backbones (a model search, a notebook) holds a bounded amount of memory.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from featurize._backbones.registry import Backbone
from featurize._backbones.stages import canonicalize_layer_names, find_stages
from featurize.errors import InvalidParameterError

# The precision parameter -> the Keras dtype policy models are built under.
PRECISION_POLICIES = {"float32": "float32", "mixed": "mixed_bfloat16"}
MAX_MODELS_ENV = "FEATURIZE_MAX_MODELS"
# Two: a notebook that goes back and forth between two backbones does not rebuild
# them, and the largest ones (ConvNeXt XLarge: 350M parameters, 1.4 GB) still fit
# twice in the memory of a laptop.
DEFAULT_MAX_MODELS = 2

_LOCK = threading.RLock()
# (backbone, weights, input size, precision) -> {cut layer name or None: model}
_MODELS: OrderedDict[tuple, dict] = OrderedDict()


def max_models() -> int:
    """How many backbones are held in-process (``FEATURIZE_MAX_MODELS``, default 2)."""
    text = os.environ.get(MAX_MODELS_ENV, "")
    if not text:
        return DEFAULT_MAX_MODELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidParameterError(
            f"{MAX_MODELS_ENV} must be a whole number of at least 1; received "
            f"{text!r}. Unset it for the default ({DEFAULT_MAX_MODELS})."
        )
    return value


@dataclass(frozen=True)
class FeatureModel:
    """A backbone cut at one layer, ready to run.

    Attributes
    ----------
    model : keras.Model
        Maps preprocessed NHWC float32 images to the chosen layer's output.
    layer : str
        The name of the layer the model ends at.
    stages : tuple of str
        Stage outputs of the whole backbone, shallowest first.
    output_shape : tuple of int
        ``(height, width, channels)`` of the layer's output.
    """

    model: object
    layer: str
    stages: tuple[str, ...]
    output_shape: tuple[int, int, int]


def weights_key(weights) -> object:
    """A hashable identity for a ``weights`` argument (files by path, size, mtime)."""
    if weights is None or weights == "imagenet":
        return weights
    path = os.path.abspath(os.fspath(weights))
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, stat.st_size, stat.st_mtime_ns)


def build_backbone(backbone: Backbone, weights, input_size, precision: str):
    """Build under the precision's Keras dtype policy (weights stay float32)."""
    import keras

    from featurize._backbones.weights import build_with_weights

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[precision])
    try:
        model = build_with_weights(backbone, weights, input_size)
    finally:
        keras.config.set_dtype_policy(previous)
    canonicalize_layer_names(model)
    return model


def resolve_layer(layer, stages: tuple[str, ...], layer_names, backbone_name: str):
    """Turn a ``layer`` parameter into a layer name of the backbone."""
    if layer is None:
        return stages[-1]
    if isinstance(layer, int):
        if not -len(stages) <= layer <= -1:
            raise InvalidParameterError(
                f"layer={layer} is out of range for backbone {backbone_name!r}, which "
                f"has {len(stages)} stages {list(stages)}: use -1 (last stage) to "
                f"-{len(stages)} (first stage)."
            )
        return stages[layer]
    if layer not in layer_names:
        close = [name for name in layer_names if layer in name][:10]
        hint = f" Names containing it: {close}." if close else ""
        raise InvalidParameterError(
            f"Backbone {backbone_name!r} has no layer {layer!r}. Its stage outputs "
            f"are {list(stages)}; any name in the model's `layers` also works.{hint}"
        )
    return layer


def feature_model(
    backbone: Backbone,
    weights,
    input_size: tuple[int, int],
    layer,
    precision: str = "float32",
) -> FeatureModel:
    """Return the (shared) backbone model ending at ``layer``, building it if needed."""
    base_key = (backbone.key, weights_key(weights), tuple(input_size), precision)
    with _LOCK:
        cuts = _MODELS.get(base_key)
        if cuts is None:
            model = build_backbone(backbone, weights, input_size, precision)
            stages = tuple(find_stages(model))
            cuts = {None: FeatureModel(model, stages[-1], stages, _shape(model.output))}
            _MODELS[base_key] = cuts
            while len(_MODELS) > max_models():
                _MODELS.popitem(last=False)
        _MODELS.move_to_end(base_key)
        full = cuts[None]
        name = resolve_layer(
            layer, full.stages, [x.name for x in full.model.layers], backbone.name
        )
        if name == full.layer:
            return full
        cut = cuts.get(name)
        if cut is None:
            import keras

            output = full.model.get_layer(name).output
            sub = keras.Model(
                full.model.inputs, output, name=f"{full.model.name}_{name}"
            )
            cut = FeatureModel(sub, name, full.stages, _shape(output))
            cuts[name] = cut
        return cut


def is_held(features: FeatureModel) -> bool:
    """Whether ``features`` is still one of the held models (not evicted)."""
    with _LOCK:
        return any(
            held is features for cuts in _MODELS.values() for held in cuts.values()
        )


def _shape(tensor) -> tuple[int, int, int]:
    shape = tuple(tensor.shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise InvalidParameterError(
            f"Expected a 4-D (batch, height, width, channels) feature map with a known "
            f"size; the layer's output has shape {tuple(tensor.shape)}."
        )
    return tuple(int(d) for d in shape)


def clear_model_cache() -> None:
    """Forget every model built in this process."""
    with _LOCK:
        _MODELS.clear()
