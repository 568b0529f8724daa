"""What every featurizer shares: ``embed`` returns one call's :class:`Embeddings`,
``transform`` its array (warning about what failed), and scikit-learn's tags for
estimators of strings that need no fitting (like ``HashingVectorizer``)."""

from __future__ import annotations

import warnings

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)

from featurize._shared.reporting import warn_failures
from featurize._shared.results import Embeddings


class Featurizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """The base of ImageFeaturizer and TextFeaturizer (see them for parameters).

    A subclass gives ``parameter_rules``, ``_embed(X, on_error)``, ``_width()`` and,
    if it has any, ``_notes(stats)``: warnings about a call beyond its failures.
    """

    noun = "inputs"

    def embed(self, X, *, on_error=None) -> Embeddings:
        """Embed ``X`` and report on the call: failures, content digests, counts.

        Parameters
        ----------
        X : collection of inputs
            As for :meth:`transform`.
        on_error : {"raise", "nan"}, optional
            Overrides the ``on_error`` parameter for this call only.

        Returns
        -------
        Embeddings
            ``array`` (what :meth:`transform` returns), ``failures``, ``digests``,
            ``stats`` and ``errors`` of this call.
        """
        if on_error is not None:
            self.parameter_rules["on_error"].check("on_error", on_error)
        return self._embed(X, on_error)

    def transform(self, X):
        """Embed ``X``: images for an ImageFeaturizer, texts for a TextFeaturizer.

        Parameters
        ----------
        X : collection of inputs
            Images: a list, tuple, array or pandas Series of paths (``str``,
            ``pathlib.Path``), encoded ``bytes``, PIL images or ``(height, width[,
            channels])`` arrays; a single-column DataFrame of those; or a numeric
            ``(n, height, width, channels)`` batch. Texts: a list, tuple, 1-D
            array or pandas Series of strings, or a single-column DataFrame or
            ``(n, 1)`` array of them.

        Returns
        -------
        ndarray of shape (n_inputs, n_features_out_), dtype float32
            Rows of NaN for inputs that failed under ``on_error="nan"`` (a warning
            names them; :meth:`embed` returns them as a table).
        """
        result = self.embed(X)
        if len(result.failures):
            warn_failures(
                result.failures, len(result), "featurizer.embed(X).failures", self.noun
            )
        for note in self._notes(result.stats):
            warnings.warn(note, UserWarning, stacklevel=2)
        return result.array

    def _notes(self, stats: dict) -> list[str]:
        return []

    @property
    def _n_features_out(self):
        if hasattr(self, "n_features_out_"):
            return self.n_features_out_
        return self._width()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single column of paths or texts
        tags.transformer_tags.preserves_dtype = []
        return tags
