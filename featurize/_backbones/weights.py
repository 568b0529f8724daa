"""Build a backbone with the weights a featurizer asks for: pretrained, none, or a file.

``weights="imagenet"`` asks the backbone's registry row where its pretrained weights
come from (:mod:`featurize._backbones.pretrained`); a path loads a Keras weights file,
or a PyTorch state dict into a backbone whose weights are converted from one.
"""

from __future__ import annotations

import os

from featurize._backbones.converted import PYTORCH_SUFFIXES
from featurize._backbones.pretrained import (
    WEIGHT_SUFFIXES,
    file_sha256,
    load_weights_file,
)
from featurize._backbones.registry import Backbone, all_backbones
from featurize.errors import WeightsMismatchError, WeightsUnavailableError


def _is_imagenet(weights) -> bool:
    return isinstance(weights, str) and weights == "imagenet"


def weights_identity(backbone: Backbone, weights) -> str | None:
    """What the weights are, for the embedding cache; None when not reproducible.

    Pretrained weights are named by their source (a checksum), a weights file by its
    SHA-256. Random weights (``weights=None``) and backbones without a pretrained
    source have no identity, so their embeddings are never cached.
    """
    source = backbone.pretrained
    if source is not None and source.fixed:
        return source.identity(backbone)
    if weights is None:
        return None
    if not _is_imagenet(weights):
        return f"file-sha256:{file_sha256(os.fspath(weights))}"
    return None if source is None else source.identity(backbone)


def build_with_weights(backbone: Backbone, weights, input_size: tuple[int, int]):
    """Build ``backbone`` without its head at ``input_size`` and load ``weights``.

    Parameters
    ----------
    backbone : Backbone
    weights : {"imagenet", None} or path-like
        ``"imagenet"``: the row's pretrained source (or, for a builder registered
        without one, whatever the builder makes of it); None: the random
        initialisation; a path: a ``.weights.h5``/``.keras`` file, a legacy Keras 2
        ``.h5`` weights file, or a ``.pth`` state dict for converted backbones.
    input_size : (int, int)
    """
    input_shape = (int(input_size[0]), int(input_size[1]), 3)
    source = backbone.pretrained
    if source is not None and source.fixed:
        return source.build(backbone, input_shape)
    if weights is None:
        return backbone.build(input_shape, None)
    if _is_imagenet(weights):
        if source is None:  # a registered builder that handles `weights` itself
            return backbone.build(input_shape, weights)
        return source.build(backbone, input_shape)
    _existing_file(weights)  # before spending seconds on the build
    model = backbone.build(input_shape, None)
    load_file(model, backbone, weights)
    return model


def _existing_file(weights) -> str:
    path = os.fspath(weights)
    if not os.path.isfile(path):
        state = "is a directory" if os.path.isdir(path) else "does not exist"
        raise WeightsUnavailableError(
            f"weights={path!r} {state}. Pass 'imagenet', None, or the path of a "
            f"weights file ({', '.join(WEIGHT_SUFFIXES)})."
        )
    return path


def load_file(model, backbone: Backbone, weights) -> None:
    """Load a weights file into ``model``: a PyTorch state dict (``.pth``) for a
    backbone converted from PyTorch, else a Keras weights file (legacy ``.h5``
    files saved with their head included)."""
    path = _existing_file(weights)
    source = backbone.pretrained
    if path.endswith(PYTORCH_SUFFIXES):
        if not hasattr(source, "load_pytorch"):
            accepting = [
                b.name for b in all_backbones() if hasattr(b.pretrained, "load_pytorch")
            ]
            raise WeightsMismatchError(
                f"PyTorch weights ({path!r}) can only be loaded into {accepting}, "
                f"whose weights are converted from PyTorch; backbone "
                f"{backbone.name!r} takes Keras weights files "
                f"({', '.join(WEIGHT_SUFFIXES)})."
            )
        source.load_pytorch(model, backbone.name, path)
    else:
        load_weights_file(model, path)
