"""Averaged static word vectors (GloVe): the fast, classic text baseline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from featurize.errors import WeightsMismatchError

# GloVe 6B was trained on lowercased text split by the Stanford tokenizer, which keeps
# punctuation as tokens and splits clitics ("don't" -> "do", "n't"; "it's" -> "it",
# "'s"): the vocabulary has those pieces, so the same split finds them.
_TOKENS = re.compile(r"\w+(?=n't)|n't|'\w+|\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """The tokens GloVe's vocabulary is keyed by."""
    return _TOKENS.findall(text.lower())


class WordVectors:
    """A vocabulary and its vectors; a text is the mean of its known words'."""

    @classmethod
    def from_files(cls, folder: Path, row, weights=None) -> WordVectors:
        """The vectors of a registry row whose files are in ``folder`` (static
        vectors are never fine-tuned: ``weights`` is refused before this)."""
        return cls(folder / row.weights_file, folder / row.vocabulary)

    def __init__(self, vectors: Path, vocabulary: Path):
        import pandas as pd

        self.vectors = np.load(vectors)
        tokens = pd.read_parquet(vocabulary).iloc[:, 0].tolist()
        if len(tokens) != len(self.vectors):
            raise WeightsMismatchError(
                f"{vocabulary} lists {len(tokens)} words for {len(self.vectors)} "
                f"vectors in {vectors}"
            )
        self.index = {token: row for row, token in enumerate(tokens)}

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's known words as vocabulary rows (unknown words dropped)."""
        index = self.index
        return [[index[w] for w in words(text) if w in index] for text in texts]

    def too_long(self, ids: list[list[int]], max_length) -> list[bool]:
        """Whether each text has more known words than ``max_length``."""
        return [max_length is not None and len(words) > max_length for words in ids]

    # No network: nothing for runtime="onnx" to run.
    network = None

    def encode(
        self, texts: list[str], max_length, chunks: bool, batch_size: int, run=None
    ) -> tuple[np.ndarray, list[bool]]:
        """Mean word vectors of ``texts`` (not normalised), and which were too long
        (their first ``max_length`` words only, unless ``chunks``)."""
        ids = self.token_ids(texts)
        long = self.too_long(ids, max_length)
        vectors = [
            self.mean(words if chunks or not cut else words[:max_length])
            for words, cut in zip(ids, long)
        ]
        if not vectors:
            return np.empty((0, self.vectors.shape[1]), np.float32), long
        return np.stack(vectors).astype(np.float32), long

    def mean(self, ids: list[int]) -> np.ndarray:
        """The mean vector of ``ids``; zeros when there are none."""
        if not ids:
            return np.zeros(self.vectors.shape[1], np.float32)
        return self.vectors[ids].mean(axis=0, dtype=np.float32)
