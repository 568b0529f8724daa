"""TextFeaturizer: a pretrained text encoder as a scikit-learn transformer."""

from __future__ import annotations

import os
import time

import numpy as np

from featurize._onnx.runtime import graph_path, session
from featurize._onnx.runtime import run as run_session
from featurize._shared.cache import resolve_cache
from featurize._shared.digests import content_digest
from featurize._shared.featurizer import Featurizer
from featurize._shared.reporting import ProgressBar
from featurize._shared.results import Embeddings, Failure, embeddings
from featurize._shared.rules import validate
from featurize._shared.session import CacheSession
from featurize._shared.versions import installed_versions
from featurize._standalone import tokens
from featurize._texts.encoders import TextEncoder, get_text_encoder, load_encoder
from featurize._texts.params import TEXT_FEATURIZER_RULES
from featurize._texts.values import (
    as_text_list,
    check_text,
)
from featurize.errors import InvalidParameterError, TextError

# Texts are encoded and stored in the cache this many at a time: an interrupted run
# keeps what it computed, and the progress bar moves.
CHUNK_TEXTS = 1024


class TextFeaturizer(Featurizer):
    """Embed texts with a pretrained encoder, offline.

    ``"minilm_l6"`` is sentence-transformers' all-MiniLM-L6-v2 run in Keras (the
    TensorFlow or JAX backend): the mean of the last layer's token states over the
    text's tokens, L2-normalised, as sentence-transformers computes it (cosine
    >= 0.9999 with the reference). ``"glove_50d"`` averages GloVe word vectors: the
    fast, classic baseline. Encoders load on first use, are shared in-process and are
    never pickled.

    Parameters
    ----------
    encoder : str, default="minilm_l6"
        A name from :func:`featurize.list_text_encoders` (case and separators
        ignored; ``"all-MiniLM-L6-v2"`` works too).
    weights : path-like or None, default=None
        A ``.safetensors`` file of the encoder's weights that replaces its own:
        a fine-tuned encoder (what :meth:`FineTunedTextClassifier.to_featurizer`
        writes). The cache keys on the file's checksum, so its embeddings are
        its own. Transformer encoders only.
    batch_size : int, default=32
        Token windows per forward pass. Windows are sorted by length and padded per
        batch, so short texts are not padded to the longest one.
    max_length : int or None, default=None
        Tokens read per text, [CLS] and [SEP] included (words, for word vectors).
        None: the encoder's limit (256 for MiniLM, as sentence-transformers; none
        for word vectors).
    long_text : {"truncate", "chunks"}, default="truncate"
        What a longer text gets: its first ``max_length`` tokens, or the mean of
        the embeddings of consecutive windows of ``max_length`` tokens (weighted by
        their token counts) that cover it all. :meth:`embed` counts both.
    normalize : bool, default=True
        Scale each embedding to unit length (cosine similarity is then a dot
        product; word-vector texts without a known word stay zero).
    runtime : {"auto", "keras", "onnx"}, default="auto"
        What runs a Transformer encoder: Keras, or onnxruntime on a graph traced
        from it once (stored beside the embedding cache, checked against Keras to
        cosine 0.9999; both share cached embeddings). ``"auto"`` is Keras: for
        MiniLM on CPU onnxruntime was measured at 1.04x Keras-TF's texts/s, and
        tracing the encoder takes about a minute (BENCHMARKS.md). Word vectors
        have no network: ``"onnx"`` is refused for them.
    on_error : {"raise", "nan"}, default="raise"
        What a missing value (None, NaN) or a non-string does: raise an error naming
        its row, or give a row of NaN (listed in :meth:`embed`'s ``failures`` and in
        a warning from :meth:`transform`). Never an empty text's embedding.
    cache : bool, path-like or EmbeddingCache, default=True
        The persistent embedding cache, as for :class:`ImageFeaturizer`: texts are
        keyed by content within a namespace of the encoder, its weights' checksum,
        ``max_length``, ``long_text``, pooling and normalisation.
    verbose : int, default=0
        If positive, show a progress bar on runs longer than two seconds.

    Attributes
    ----------
    encoder_ : str
        Canonical name of the encoder.
    max_length_ : int or None
        Tokens read per text.
    n_features_out_ : int
        Width of the embedding.

    Nothing about one call is kept on the estimator: :meth:`embed` returns the
    failures and counts (texts truncated included) of its call.

    Examples
    --------
    >>> from featurize import TextFeaturizer
    >>> featurizer = TextFeaturizer("glove_50d", cache=None)
    >>> featurizer.fit_transform(["free entry to win a prize", "see you at 6"]).shape
    (2, 50)
    """

    def __init__(
        self,
        encoder="minilm_l6",
        *,
        weights=None,
        batch_size=32,
        max_length=None,
        long_text="truncate",
        normalize=True,
        runtime="auto",
        on_error="raise",
        cache=True,
        verbose=0,
    ):
        self.encoder = encoder
        self.weights = weights
        self.batch_size = batch_size
        self.max_length = max_length
        self.long_text = long_text
        self.normalize = normalize
        self.runtime = runtime
        self.on_error = on_error
        self.cache = cache
        self.verbose = verbose

    parameter_rules = TEXT_FEATURIZER_RULES
    noun = "texts"

    def _settings(self) -> tuple[dict, TextEncoder, int | None]:
        params = validate(self, self.parameter_rules)
        row = get_text_encoder(params["encoder"])
        resolve_cache(params["cache"])  # validates
        if params["weights"] is not None:
            if row.kind != "transformer":
                raise InvalidParameterError(
                    f"`weights` replaces a Transformer's weights; {row.name!r} is "
                    f"{row.kind.replace('_', ' ')}, which is never fine-tuned. Use "
                    f"weights=None."
                )
            if not os.path.isfile(params["weights"]):
                raise InvalidParameterError(
                    f"`weights` file {params['weights']!r} does not exist; pass the "
                    f"path FineTunedTextClassifier.to_featurizer() wrote, or None."
                )
        length = params["max_length"]
        if row.max_tokens is not None:
            if length is not None and length > row.max_tokens:
                raise InvalidParameterError(
                    f"`max_length` must be at most {row.max_tokens} for "
                    f"{row.name!r} (the longest input it was trained on); received "
                    f"{length}. For longer texts use long_text='chunks'."
                )
            length = length or row.max_tokens
        return params, row, length

    # -- scikit-learn API

    def fit(self, X=None, y=None):
        """Validate the parameters and load the encoder; nothing is learned.

        Parameters
        ----------
        X : collection of texts, optional
            Checked to be a collection (the values are checked by
            :meth:`transform`).
        y : ignored

        Returns
        -------
        self : TextFeaturizer
        """
        if X is not None:
            as_text_list(X)
        params, row, length = self._settings()
        load_encoder(row, params["weights"])
        self.encoder_ = row.name
        self.max_length_ = length
        self.n_features_out_ = row.dimension
        return self

    def _embed(self, X, on_error) -> Embeddings:
        started = time.perf_counter()
        values, labels = as_text_list(X)
        params, row, length = self._settings()
        on_error = on_error or params["on_error"]
        texts, failures, repaired = {}, [], 0
        for index, value in enumerate(values):
            try:
                texts[index], fixed = check_text(
                    value, index, None if labels is None else labels[index]
                )
            except TextError as error:
                if on_error == "raise":
                    raise
                failures.append(Failure(index, repr(value)[:80], error))
                continue
            repaired += fixed
        encoder = load_encoder(row, params["weights"])
        digests = {index: content_digest(text) for index, text in texts.items()}
        text_of = {digest: texts[index] for index, digest in digests.items()}
        cache = resolve_cache(params["cache"])
        namespace = self._cache_settings(params, row, length)
        session = CacheSession(cache, namespace, row.dimension)
        found = session.lookup(list(text_of))
        # Cached texts are tokenized too (fast): the counts of long texts are the
        # same on a warm cache.
        cached = [text_of[d] for d in text_of if d in found]
        long = {
            text
            for text, flag in zip(
                cached, encoder.too_long(encoder.token_ids(cached), length)
            )
            if flag
        }
        missing = [d for d in text_of if d not in found]  # each distinct text once
        chunks = params["long_text"] == "chunks"
        run = _runner(params, row, encoder, cache, namespace, len(missing))

        def compute(chunk: list):
            batch = [text_of[d] for d in chunk]
            vectors, too_long = encoder.encode(
                batch, length, chunks, params["batch_size"], run
            )
            long.update(text for text, flag in zip(batch, too_long) if flag)
            return tokens.normalized(vectors) if params["normalize"] else vectors

        computed = set()
        with ProgressBar(len(missing), params["verbose"], row.name, "text") as bar:
            for start in range(0, len(missing), CHUNK_TEXTS):
                chunk = missing[start : start + CHUNK_TEXTS]
                vectors, fresh = session.fill(chunk, compute)
                found.update(vectors)
                computed.update(fresh)
                bar.update(len(chunk))
        out = np.full((len(values), row.dimension), np.nan, np.float32)
        for index, digest in digests.items():
            out[index] = found[digest]
        n_long = sum(1 for text in texts.values() if text in long)
        session.warn()
        return embeddings(
            out,
            failures,
            [digests[i].hex() if i in digests else None for i in range(len(values))],
            {
                "inputs": len(values),
                "texts": len(values),
                "cache_hits": sum(1 for d in digests.values() if d not in computed),
                "computed": len(computed),
                "failed": len(failures),
                "truncated": 0 if chunks else n_long,
                "chunked": n_long if chunks else 0,
                "repaired": repaired,
                "max_length": length,
                "seconds": round(time.perf_counter() - started, 4),
            },
            labels,
        )

    def fingerprint(self) -> dict:
        """Everything that defines this featurizer's embeddings, as plain data:
        what keys the embedding cache, and what the batch job writes in its Parquet
        metadata.

        Returns
        -------
        dict
        """
        params, row, length = self._settings()
        return self._cache_settings(params, row, length)

    @staticmethod
    def _cache_settings(params: dict, row: TextEncoder, length) -> dict:
        return {
            "encoder": row.name,
            "kind": row.kind,
            "weights": row.identity(params["weights"]),
            "max_length": length,
            "long_text": params["long_text"],
            "pooling": "mean",
            "normalize": params["normalize"],
            "dtype": "float32",
            **installed_versions("text"),
        }

    def _width(self) -> int:
        return get_text_encoder(self.encoder).dimension

    def _notes(self, stats: dict) -> list[str]:
        notes = []
        if stats["truncated"]:
            notes.append(
                f"{stats['truncated']} of {stats['texts']} texts were longer than "
                f"max_length={stats['max_length']} tokens and were truncated. Pass "
                f"long_text='chunks' to embed them whole."
            )
        if stats["repaired"]:
            notes.append(
                f"{stats['repaired']} of {stats['texts']} texts held lone surrogates "
                f"(undecodable bytes read with errors='surrogateescape'), which are "
                f"not valid Unicode: they were replaced by U+FFFD."
            )
        return notes


def _runner(params: dict, row: TextEncoder, encoder, cache, namespace, n_texts: int):
    """None (the encoder's Keras model), or an onnxruntime session's run."""
    if encoder.network is None:
        if params["runtime"] == "onnx":
            raise InvalidParameterError(
                f"TextFeaturizer: runtime='onnx' runs a network, and encoder "
                f"{row.name!r} has none (word vectors are averaged in numpy); "
                f"use runtime='auto' or 'keras'."
            )
        return None
    if params["runtime"] != "onnx":
        return None  # "auto": see the runtime parameter
    directory = None if cache is None else cache.path.parent
    path = graph_path(directory, namespace)
    from featurize._onnx.convert import encoder_graph

    probe = (
        np.array([[101, 7592, 2088, 102]] * 2, np.int32),
        np.ones((2, 4), np.int32),
    )
    made = session(encoder, path, lambda: encoder_graph(encoder), probe, encoder.run)
    return lambda ids, mask: run_session(made, ids, mask)
