"""TextFeaturizer's parameter rules."""

from __future__ import annotations

import os
from dataclasses import dataclass

from featurize._onnx.runtime import RUNTIMES
from featurize._shared.rules import (
    ON_ERROR,
    Anything,
    Boolean,
    Integer,
    Options,
    RegistryName,
    Rule,
)
from featurize._texts.encoders import get_text_encoder
from featurize.errors import InvalidParameterError


@dataclass(frozen=True)
class EncoderWeights(Rule):
    """None (the registry's weights) or the path of a ``.safetensors`` file."""

    def check(self, name: str, value):
        if value is None:
            return value
        if isinstance(value, (str, os.PathLike)) and os.fspath(value).endswith(
            ".safetensors"
        ):
            return os.fspath(value)
        raise InvalidParameterError(
            f"`{name}` must be None (the encoder's own weights) or the path of a "
            f".safetensors file of the same shape (FineTunedTextClassifier."
            f"to_featurizer() writes one); received {value!r}."
        )

    accepts_none = True


LONG_TEXT_POLICIES = ("truncate", "chunks")

TEXT_FEATURIZER_RULES = {
    "encoder": RegistryName(get_text_encoder, help="a name from `featurize encoders`"),
    "weights": EncoderWeights(
        help="a .safetensors file of fine-tuned weights", cli=False
    ),
    "batch_size": Integer(1, help="texts (token windows) per forward pass"),
    "max_length": Integer(
        3,
        allow_none=True,
        help="tokens read per text ('none': the encoder's limit)",
        shown="the encoder's limit",
    ),
    "long_text": Options(
        LONG_TEXT_POLICIES,
        help="longer texts are truncated, or embedded by windows and averaged",
    ),
    "runtime": Options(
        RUNTIMES,
        help="'onnx': onnxruntime; 'auto': onnxruntime on CPU where it pays",
    ),
    "normalize": Boolean(help="L2-normalise the embeddings", cli=False),
    "on_error": Options(
        ON_ERROR,
        help="a missing or non-text value raises, or gives a NaN row",
        cli=False,
    ),
    "cache": Anything(
        help="embedding cache folder, or 'none' (off)", shown="the default folder"
    ),
    "verbose": Anything(help="a progress bar when true", cli=False),
}
