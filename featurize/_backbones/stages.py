"""Find the stage outputs of a convolutional backbone.

A *stage output* is the last layer at a given spatial resolution through which every
path from the input to the output passes: cutting the graph there gives a smaller
feature extractor ("remove the last N stages"). Padding and
pixel-rescaling layers are never stage outputs.
"""

from __future__ import annotations

import math
import re

# Layers that only pad or rescale pixels: never a useful place to cut.
_SKIPPED_LAYERS = ("ZeroPadding2D", "Rescaling", "Normalization")


def _spatial_shape(layer) -> tuple[int, int] | None:
    shape = getattr(layer, "output", None)
    shape = getattr(shape, "shape", None)
    if shape is None or len(shape) != 4:
        return None
    height, width = shape[1], shape[2]
    if height is None or width is None:
        return None
    return int(height), int(width)


def _cut_layers(model) -> list:
    """Layers of a functional model that every input-to-output path goes through."""
    layers = list(model.layers)
    position = {id(layer): i for i, layer in enumerate(layers)}
    # furthest[i]: the largest position reached by an edge leaving layers[0..i].
    furthest = []
    reach = 0
    for layer in layers:
        for node in getattr(layer, "_outbound_nodes", []):
            target = position.get(id(node.operation))
            if target is not None:
                reach = max(reach, target)
        furthest.append(reach)
    cuts = []
    for i, layer in enumerate(layers):
        before = furthest[i - 1] if i > 0 else 0
        if before <= i:
            cuts.append(layer)
    return cuts


def find_stages(model) -> list[str]:
    """Return the names of ``model``'s stage outputs, shallowest first.

    The last entry is always the model's own output layer.

    Parameters
    ----------
    model : keras.Model
        A functional image model with a single 4-D (NHWC) output.

    Returns
    -------
    list of str
        Layer names, one per spatial resolution, ending with the output layer.
    """
    input_shape = _spatial_shape(model.layers[0])
    if input_shape is None:
        return [model.layers[-1].name]
    stages: dict[int, str] = {}
    for layer in _cut_layers(model)[1:]:
        if type(layer).__name__ in _SKIPPED_LAYERS:
            continue
        shape = _spatial_shape(layer)
        if shape is None:
            continue
        level = round(math.log2(max(input_shape[0] / max(shape[0], 1), 1.0)))
        stages[level] = layer.name
    names = [stages[level] for level in sorted(stages)]
    last = model.layers[-1].name
    if names and names[-1] != last and _spatial_shape(model.layers[-1]) is not None:
        names = [n for n in names if n != last] + [last]
    return names


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def canonicalize_layer_names(model) -> None:
    """Rename auto-named layers as a fresh Keras session would name them.

    Keras numbers automatic names (``activation_12``) across the whole process, so the
    same architecture gets different names depending on what was built before. This
    renumbers them per model, so that names given as ``layer=`` are stable.
    """
    counts: dict[str, int] = {}
    for layer in model.layers:
        prefix = _snake_case(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(prefix)}(_\d+)?", layer.name):
            seen = counts.get(prefix, 0)
            counts[prefix] = seen + 1
            layer.name = prefix if seen == 0 else f"{prefix}_{seen}"
