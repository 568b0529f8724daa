"""What every fine-tuned classifier answers, images and texts alike: probabilities,
labels, and a table of both with the reason each input failed."""

from __future__ import annotations

import numpy as np

from featurize import errors
from featurize._shared.reporting import warn_failures
from featurize._shared.results import failures_frame


class ProbabilityOutputs:
    """``predict_proba``, ``predict_frame`` and ``predict`` over a class's
    ``_proba(X, on_error) -> (probabilities, failures)``, ``classes_`` and
    ``noun`` (what the inputs are called in messages)."""

    noun = "inputs"

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one column per class in ``classes_``.

        Rows of NaN for inputs that failed under ``on_error="nan"`` (with a warning
        naming them; :meth:`predict_frame` returns the reasons).
        """
        proba, failures = self._proba(X)
        if failures:
            warn_failures(
                failures_frame(failures), len(proba), "clf.predict_frame(X)", self.noun
            )
        return proba

    def predict_frame(self, X):
        """Labels, probabilities and errors as a table, one row per input.

        Never raises for a bad input, whatever ``on_error`` says: its row has no
        label, NaN probabilities and the reason in ``error``.

        Returns
        -------
        pandas.DataFrame
            Columns ``label``, ``proba_<class>`` for each class, ``error`` (empty
            where the input was classified).
        """
        import pandas as pd

        proba, failures = self._proba(X, on_error="nan")
        frame = pd.DataFrame({"label": pd.Series([None] * len(proba), dtype=object)})
        ok = ~np.isnan(proba).any(axis=1)
        frame.loc[ok, "label"] = self.classes_[proba[ok].argmax(axis=1)]
        for k, label in enumerate(self.classes_):
            frame[f"proba_{label}"] = proba[:, k]
        reasons = [""] * len(proba)
        for failure in failures:
            reasons[failure.index] = failure.reason
        frame["error"] = reasons
        return frame

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Raises an error naming any input that could not be used, whatever
        ``on_error`` says (there is no label to give it): use
        :meth:`predict_proba`, which gives it a row of NaN.
        """
        proba = self.predict_proba(X)
        failed = np.flatnonzero(np.isnan(proba).any(axis=1))
        if len(failed):
            raise errors.InvalidInputError(
                f"{len(failed)} {self.noun} could not be classified (inputs "
                f"{failed[:5].tolist()}): predict_proba gives them rows of NaN."
            )
        return self.classes_[proba.argmax(axis=1)]
