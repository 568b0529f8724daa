"""Patch features: a backbone's mid-level maps, locally averaged, brought to one grid
and L2-normalised per patch (PatchCore's "locally aware" features).

The computation is a :class:`featurize._images.forward.Forward` with another graph, so
the image wing runs it unchanged: decoding threads, the embedding cache (one flattened
grid per image), onnxruntime and its traced graph, out-of-memory halving.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from featurize._backbones.models import (
    FeatureModel,
    feature_model,
    resolve_layer,
)
from featurize._backbones.registry import Backbone
from featurize._images.decode import DEFAULT_MAX_PIXELS
from featurize._images.featurizer import ImageFeaturizer
from featurize._images.forward import Forward, shared_forward
from featurize._images.params import IMAGE_FEATURIZER_RULES, Layer
from featurize._shared.rules import Rule
from featurize.errors import InvalidParameterError

# Each patch is averaged with its 3x3 neighbours: a receptive field a little wider
# than one cell, so a defect on a cell border counts in both cells.
NEIGHBOURHOOD = 3
EPSILON = 1e-6


@dataclass(frozen=True)
class Layers(Rule):
    """None (the backbone's ``patch_layers``), or a list of layer names and negative
    stage indices."""

    def check(self, name: str, value):
        if value is None:
            return None
        if isinstance(value, (str, int)) or not hasattr(value, "__iter__"):
            value = [value]
        layers = tuple(Layer().check(name, layer) for layer in value)
        if not layers or any(layer is None for layer in layers):
            raise InvalidParameterError(
                f"`{name}` must be None or a non-empty list of layer names or "
                f"negative stage indices; received {value!r}."
            )
        return layers

    accepts_none = True

    def parse(self, text: str):
        return [Layer().parse(part.strip()) for part in text.split(",")]


def default_layers(backbone: Backbone) -> tuple:
    """The row's ``patch_layers``, else its stages -3 and -2 (strides 8 and 16 for
    most backbones)."""
    return tuple(backbone.patch_layers) or (-3, -2)


class PatchForward(Forward):
    """Pixels -> flattened ``(height, width, channels)`` grid of patch features.

    ``source`` is the whole backbone the layers are taken from: while the model
    cache holds it, this pass stays valid.
    """

    def __init__(self, backbone: Backbone, features: FeatureModel, source):
        self._source = source
        super().__init__(backbone, features, "patches")

    @property
    def source(self) -> FeatureModel:
        return self._source

    def width(self, shape: tuple[int, int, int]) -> int:
        height, width, channels = shape
        return height * width * channels

    def finisher(self):
        return partial(patch_grid, grid=self.features.output_shape)


def patch_grid(maps, grid: tuple):
    """Feature maps -> each patch averaged with its neighbours, every map at the
    ``grid``'s size, joined, L2-normalised per patch, flattened per image."""
    import keras

    ops = keras.ops
    height, width, _ = grid
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    parts = []
    for part in maps:
        part = ops.average_pool(part, NEIGHBOURHOOD, 1, padding="same")
        if tuple(part.shape[1:3]) != (height, width):
            part = ops.image.resize(part, (height, width), "bilinear")
        parts.append(part)
    joined = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    norms = ops.sqrt(ops.sum(ops.square(joined), axis=-1, keepdims=True))
    joined = joined / (norms + EPSILON)
    return ops.reshape(joined, (ops.shape(joined)[0], -1))


def patch_forward(
    backbone: Backbone, weights, input_size: tuple[int, int], layers: tuple
) -> PatchForward:
    """The shared compiled patch-feature pass for these settings."""
    import keras

    full = feature_model(backbone, weights, input_size, None)
    known = [layer.name for layer in full.model.layers]
    names = []
    for layer in layers:
        name = resolve_layer(layer, full.stages, known, backbone.name)
        if name not in names:
            names.append(name)

    def build() -> PatchForward:
        outputs = [full.model.get_layer(name).output for name in names]
        shapes = [tuple(int(d) for d in output.shape[1:]) for output in outputs]
        height, width = max((s[:2] for s in shapes), key=lambda s: s[0] * s[1])
        model = keras.Model(
            full.model.inputs, outputs, name=f"{full.model.name}_patches"
        )
        features = FeatureModel(
            model,
            "+".join(names),
            full.stages,
            (height, width, sum(s[2] for s in shapes)),
        )
        return PatchForward(backbone, features, full)

    return shared_forward(("patches", id(full.model), tuple(names)), full, build)


PATCH_FEATURIZER_RULES = {
    **{
        name: rule
        for name, rule in IMAGE_FEATURIZER_RULES.items()
        if name not in ("layer", "pooling", "precision")
    },
    "layers": Layers(help="layers patch features come from"),
}


class PatchFeaturizer(ImageFeaturizer):
    """An :class:`ImageFeaturizer` whose rows are flattened grids of patch features
    (the anomaly detector's; its ``layers`` replace ``layer`` and ``pooling``)."""

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="imagenet",
        layers=None,
        input_size=None,
        resize="stretch",
        batch_size=None,
        on_error="raise",
        max_pixels=DEFAULT_MAX_PIXELS,
        cache=True,
        runtime="auto",
        decode_workers=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layers = layers
        self.input_size = input_size
        self.resize = resize
        self.batch_size = batch_size
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.cache = cache
        self.runtime = runtime
        self.decode_workers = decode_workers
        self.verbose = verbose

    parameter_rules = PATCH_FEATURIZER_RULES

    def fit(self, X=None, y=None):
        """As :meth:`ImageFeaturizer.fit`; also sets ``grid_shape_``, the
        ``(height, width, channels)`` each row unflattens to."""
        super().fit(X, y)
        forward = self._forward(self._settings())
        self.grid_shape_ = tuple(forward.features.output_shape)
        return self

    def _settings(self):
        settings = super()._settings()
        params = settings.params
        params.update(layer=None, pooling="patches", precision="float32")
        if params["layers"] is None:
            params["layers"] = default_layers(settings.backbone)
        return settings

    def _forward(self, settings):
        return patch_forward(
            settings.backbone,
            settings.params["weights"],
            settings.input_size,
            settings.params["layers"],
        )

    def _cache_settings(self, settings, forward, identity) -> dict:
        namespace = super()._cache_settings(settings, forward, identity)
        namespace["patches"] = {
            "neighbourhood": NEIGHBOURHOOD,
            "grid": list(forward.features.output_shape),
            "normalised": "l2",
        }
        return namespace
