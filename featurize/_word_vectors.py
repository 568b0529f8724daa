"""Averaged static word vectors (GloVe): the fast, classic text baseline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

# GloVe 6B was trained on lowercased text split by the Stanford tokenizer, which keeps
# punctuation as tokens and splits clitics ("don't" -> "do", "n't"; "it's" -> "it",
# "'s"): the vocabulary has those pieces, so the same split finds them.
_TOKENS = re.compile(r"\w+(?=n't)|n't|'\w+|\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """The tokens GloVe's vocabulary is keyed by."""
    return _TOKENS.findall(text.lower())


class WordVectors:
    """A vocabulary and its vectors; a text is the mean of its known words'."""

    def __init__(self, vectors: Path, vocabulary: Path):
        import pandas as pd

        self.vectors = np.load(vectors)
        tokens = pd.read_parquet(vocabulary).iloc[:, 0].tolist()
        if len(tokens) != len(self.vectors):
            raise ValueError(
                f"{vocabulary} lists {len(tokens)} words for {len(self.vectors)} "
                f"vectors in {vectors}"
            )
        self.index = {token: row for row, token in enumerate(tokens)}

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's known words as vocabulary rows (unknown words dropped)."""
        index = self.index
        return [[index[w] for w in words(text) if w in index] for text in texts]

    def mean(self, ids: list[int]) -> np.ndarray:
        """The mean vector of ``ids``; zeros when there are none."""
        if not ids:
            return np.zeros(self.vectors.shape[1], np.float32)
        return self.vectors[ids].mean(axis=0, dtype=np.float32)
