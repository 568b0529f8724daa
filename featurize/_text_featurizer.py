"""TextFeaturizer: a pretrained text encoder as a scikit-learn transformer."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)

from featurize._cache import content_digest, installed_versions, resolve_cache
from featurize._embeddings import Embeddings, failures_frame
from featurize._featurizer import ProgressBar, warn_failures
from featurize._params import TEXT_FEATURIZER_RULES, validate
from featurize._text_encoders import TextEncoder, get_text_encoder, load_encoder
from featurize._texts import (
    as_text_list,
    check_text,
)
from featurize.errors import (
    CacheUnavailableError,
    CacheWarning,
    InvalidParameterError,
    TextError,
)

# Texts are encoded and stored in the cache this many at a time: an interrupted run
# keeps what it computed, and the progress bar moves.
CHUNK_TEXTS = 1024


class TextFeaturizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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
        batch_size=32,
        max_length=None,
        long_text="truncate",
        normalize=True,
        on_error="raise",
        cache=True,
        verbose=0,
    ):
        self.encoder = encoder
        self.batch_size = batch_size
        self.max_length = max_length
        self.long_text = long_text
        self.normalize = normalize
        self.on_error = on_error
        self.cache = cache
        self.verbose = verbose

    parameter_rules = TEXT_FEATURIZER_RULES

    def _settings(self) -> tuple[dict, TextEncoder, int | None]:
        params = validate(self, self.parameter_rules)
        row = get_text_encoder(params["encoder"])
        resolve_cache(params["cache"])  # validates
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
        load_encoder(row)
        self.encoder_ = row.name
        self.max_length_ = length
        self.n_features_out_ = row.dimension
        return self

    def transform(self, X):
        """Embed texts.

        Parameters
        ----------
        X : collection of texts
            A list, tuple, 1-D array or pandas Series of strings, or a single-column
            DataFrame or ``(n, 1)`` array of them.

        Returns
        -------
        ndarray of shape (n_texts, n_features_out_), dtype float32
            Rows of NaN for missing or non-text values under ``on_error="nan"``.
        """
        result = self.embed(X)
        if len(result.failures):
            warn_failures(
                result.failures,
                len(result),
                "featurizer.embed(X).failures",
                noun="texts",
            )
        stats = result.stats
        if stats["truncated"]:
            warnings.warn(
                f"{stats['truncated']} of {stats['texts']} texts were longer than "
                f"max_length={stats['max_length']} tokens and were truncated. Pass "
                f"long_text='chunks' to embed them whole.",
                UserWarning,
                stacklevel=2,
            )
        return result.array

    def embed(self, X, *, on_error=None) -> Embeddings:
        """Embed texts and report on the call: failures, digests, counts.

        Parameters
        ----------
        X : collection of texts
            As for :meth:`transform`.
        on_error : {"raise", "nan"}, optional
            Overrides the ``on_error`` parameter for this call only.

        Returns
        -------
        Embeddings
            ``array``, ``failures``, ``digests`` and ``stats``: ``texts``,
            ``cache_hits``, ``computed``, ``failed``, ``truncated`` and ``chunked``
            (texts longer than ``max_length``), ``max_length``, ``seconds``.
        """
        started = time.perf_counter()
        values, labels = as_text_list(X)
        params, row, length = self._settings()
        if on_error is not None:
            self.parameter_rules["on_error"].check("on_error", on_error)
        on_error = on_error or params["on_error"]
        texts, failures = {}, []
        for index, value in enumerate(values):
            try:
                texts[index] = check_text(
                    value, index, None if labels is None else labels[index]
                )
            except TextError as error:
                if on_error == "raise":
                    raise
                failures.append(
                    (index, repr(value)[:80], type(error).__name__, error.reason)
                )
        encoder = load_encoder(row)
        out = np.full((len(values), row.dimension), np.nan, np.float32)
        digests = {index: content_digest(text) for index, text in texts.items()}
        digest_of = {texts[index]: digest for index, digest in digests.items()}
        cache, namespace, cache_error = resolve_cache(params["cache"]), None, None
        settings = self._cache_settings(params, row, length)
        found = {}
        if cache is not None:
            try:
                namespace = cache.namespace(settings, row.dimension)
                found = cache.get_many(namespace, list(digests.values()), row.dimension)
            except CacheUnavailableError as error:
                cache, cache_error = None, error
        # Each distinct text is computed once, whatever its number of copies.
        missing = list(
            dict.fromkeys(
                text for index, text in texts.items() if digests[index] not in found
            )
        )
        hits = sum(1 for index in texts if digests[index] in found)
        # Cached texts are tokenized too (fast): the counts of long texts are the
        # same on a warm cache.
        cached = list(dict.fromkeys(texts[i] for i in texts if digests[i] in found))
        long = {
            text
            for text, tokens in zip(cached, encoder.token_ids(cached))
            if _too_long(row, tokens, length)
        }
        with ProgressBar(len(missing), params["verbose"], row.name, "text") as bar:
            for start in range(0, len(missing), CHUNK_TEXTS):
                chunk = missing[start : start + CHUNK_TEXTS]
                vectors, too_long = _encode(encoder, row, chunk, length, params)
                long.update(text for text, flag in zip(chunk, too_long) if flag)
                computed = {digest_of[text]: v for text, v in zip(chunk, vectors)}
                found.update(computed)
                if cache is not None:
                    try:
                        with cache.lock(namespace):
                            cache.put_many(namespace, computed.items())
                    except CacheUnavailableError as error:
                        cache, cache_error = None, error
                bar.update(len(chunk))
        for index in texts:
            out[index] = found[digests[index]]
        n_long = sum(1 for text in texts.values() if text in long)
        chunks = params["long_text"] == "chunks"
        if cache_error is not None:
            warnings.warn(str(cache_error), CacheWarning, stacklevel=2)
        return Embeddings(
            array=out,
            failures=failures_frame(failures),
            digests=tuple(
                digests[i].hex() if i in digests else None for i in range(len(values))
            ),
            stats={
                "texts": len(values),
                "cache_hits": hits,
                "computed": len(missing),
                "failed": len(failures),
                "truncated": 0 if chunks else n_long,
                "chunked": n_long if chunks else 0,
                "max_length": length,
                "seconds": round(time.perf_counter() - started, 4),
            },
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
            "weights": row.identity(),
            "max_length": length,
            "long_text": params["long_text"],
            "pooling": "mean",
            "normalize": params["normalize"],
            "dtype": "float32",
            **installed_versions("text"),
        }

    @property
    def _n_features_out(self):
        if hasattr(self, "n_features_out_"):
            return self.n_features_out_
        return get_text_encoder(self.encoder).dimension

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single column of texts
        tags.transformer_tags.preserves_dtype = []
        return tags


def _too_long(row: TextEncoder, tokens: list, length) -> bool:
    """Whether a text has more tokens than the encoder reads at once."""
    if length is None:
        return False
    room = length if row.kind == "word_vectors" else length - 2  # [CLS], [SEP]
    return len(tokens) > room


def _encode(encoder, row: TextEncoder, texts: list, length, params):
    """Embed distinct texts; return their vectors and which ones were too long."""
    chunks = params["long_text"] == "chunks"
    ids = encoder.token_ids(texts)
    long = [_too_long(row, tokens, length) for tokens in ids]
    if row.kind == "word_vectors":
        vectors = [
            encoder.mean(words if chunks or not too_long else words[:length])
            for words, too_long in zip(ids, long)
        ]
        vectors = np.stack(vectors) if vectors else np.empty((0, row.dimension))
    else:
        windows, owners, sizes = [], [], []
        for k, tokens in enumerate(ids):
            pieces = encoder.windows(tokens, length)
            if not chunks:
                pieces = pieces[:1]
            windows += pieces
            owners += [k] * len(pieces)
            sizes += [len(p) - 2 for p in pieces]
        pooled = encoder.forward(windows, params["batch_size"])
        vectors = np.zeros((len(texts), row.dimension), np.float32)
        weights = np.zeros(len(texts), np.float32)
        for k, size, vector in zip(owners, sizes, pooled):
            # A window's weight is its token count: the mean over windows is then
            # close to one mean over all of the text's tokens.
            vectors[k] += max(size, 1) * vector
            weights[k] += max(size, 1)
        vectors /= weights[:, None]
    vectors = np.asarray(vectors, np.float32)
    if params["normalize"]:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1)
    return list(vectors), long
