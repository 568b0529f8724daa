"""Fine-tuned encoder weights on disk: one ``.safetensors`` file per set of
weights, named by their checksum, in the checkpoint's own tensor names (what
``TextFeaturizer(weights=...)`` reads)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

FOLDER = "fine-tuned"


def _digest(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensors[name]).tobytes())
    return digest.hexdigest()[:20]


def _write(tensors: dict, name: str, digest: str) -> str:
    from safetensors.numpy import save_file

    from featurize._backbones.converted import weights_dir

    folder = weights_dir() / FOLDER
    path = folder / f"{name}-{digest}.safetensors"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{path.name}.{os.getpid()}.partial"
        save_file(tensors, str(partial))
        os.replace(partial, path)  # readers never see half a file
    return str(path)


def save_tuned_encoder(model, name: str) -> tuple[str, str]:
    """Write a tuned BERT model's weights; return the file's path and digest."""
    from featurize._texts.bert import checkpoint_tensors

    tensors = checkpoint_tensors(model)
    digest = _digest(tensors)
    return _write(tensors, name, digest), digest


def ensure_tuned_encoder(path: str, digest: str, tensors, name: str) -> str:
    """The weights file, written again from ``tensors`` (a loaded model's copy)
    where it is missing: a model loaded on another machine, or after the weights
    folder was cleared."""
    if Path(path).is_file():
        return path
    if tensors is None:
        from featurize.errors import WeightsUnavailableError

        raise WeightsUnavailableError(
            f"The fine-tuned {name} weights file {path} is gone, and this model "
            f"holds no copy of them; fit it again."
        )
    return _write(tensors, name, digest)
