"""A fitted scikit-learn head, as every export format reads it.

Scalers followed by a linear classifier fold into one affine map (kernel and bias,
then a softmax where the classifier gives probabilities): the exported graph then
costs one small matrix product more than the network, in any runtime. A linear
classifier calibrated by sigmoids (``CalibratedClassifierCV``, as pipelines makes
the SVMs) folds into one affine map per calibration fold, its sigmoids and their
average. Other heads are converted per format (skl2onnx for ONNX) or refused with
a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A folded head must give the head's own numbers on random embeddings to this
# tolerance, or it is not folded.
FOLD_TOLERANCE = 1e-4


@dataclass(frozen=True)
class HeadOutputs:
    """What the graph gives: ``label`` (the class values), ``probabilities`` and
    ``scores`` (one column per class, in ``classes`` order) are output names or
    None."""

    label: str | None = None
    probabilities: str | None = None
    scores: str | None = None


def head_steps(head) -> list:
    """A head (an estimator, a Pipeline of them, or None) as a list of steps."""
    from sklearn.pipeline import Pipeline

    if head is None:
        return []
    if isinstance(head, Pipeline):
        return [step for _, step in head.steps if step not in (None, "passthrough")]
    return [head]


@dataclass(frozen=True)
class Calibrated:
    """A sigmoid-calibrated linear classifier: per calibration fold, an affine map
    to decision scores (``kernels[k]``, ``biases[k]``) and one sigmoid per score
    column, ``1 / (1 + exp(slopes[k] * score + offsets[k]))``; binary gives the
    second class's probability, more classes are normalised to sum to one; the
    folds' probabilities are averaged."""

    kernels: np.ndarray  # (folds, n_features, columns), float32
    biases: np.ndarray  # (folds, columns)
    slopes: np.ndarray
    offsets: np.ndarray
    n_classes: int

    def probabilities(self, x) -> np.ndarray:
        """The same computation in NumPy, to check the fold."""
        total = 0.0
        for kernel, bias, slope, offset in zip(
            self.kernels, self.biases, self.slopes, self.offsets
        ):
            calibrated = 1 / (1 + np.exp(slope * (x @ kernel + bias) + offset))
            if self.n_classes == 2:
                calibrated = np.concatenate([1 - calibrated, calibrated], axis=1)
            else:
                denominator = calibrated.sum(axis=1, keepdims=True)
                uniform = np.full_like(calibrated, 1 / self.n_classes)
                calibrated = np.divide(
                    calibrated, denominator, out=uniform, where=denominator != 0
                )
            total = total + calibrated
        return total / len(self.kernels)


def _linear(classifier) -> bool:
    from sklearn.linear_model._base import LinearClassifierMixin

    return isinstance(classifier, LinearClassifierMixin)


def _affine(scalers: list, classifier, n_features: int):
    """Kernel and bias of scalers + a linear classifier's decision scores (one
    column for two classes)."""
    # x -> (x - shift) * gain, composed over the scalers
    shift, gain = np.zeros(n_features), np.ones(n_features)
    for scaler in scalers:
        mean = scaler.mean_ if scaler.mean_ is not None else 0.0
        scale = scaler.scale_ if scaler.scale_ is not None else 1.0
        shift = shift + mean / gain
        gain = gain / scale
    coef = np.asarray(classifier.coef_, np.float64)
    intercept = np.asarray(classifier.intercept_, np.float64).reshape(-1)
    kernel = (coef * gain).T
    return kernel, intercept - shift @ kernel


def _scalers_then(steps: list):
    """``(scalers, last step)`` where every step before the last is a plain
    StandardScaler; None otherwise."""
    from sklearn.preprocessing import StandardScaler

    *scalers, last = steps
    if not all(type(s) is StandardScaler for s in scalers):
        return None
    return scalers, last


def fold_calibrated(steps: list, n_features: int) -> Calibrated | None:
    """The :class:`Calibrated` form of scalers + a sigmoid-calibrated linear
    classifier, or None (another head, or a fold that does not reproduce it)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline

    split = _scalers_then(steps)
    if split is None or not isinstance(split[1], CalibratedClassifierCV):
        return None
    scalers, head = split
    if head.method != "sigmoid":
        return None
    parts = []
    for member in head.calibrated_classifiers_:
        estimator = member.estimator
        same_classes = np.array_equal(estimator.classes_, head.classes_)
        sigmoids = all(hasattr(c, "a_") for c in member.calibrators)
        if not (_linear(estimator) and same_classes and sigmoids):
            return None
        kernel, bias = _affine(scalers, estimator, n_features)
        slopes = [float(c.a_) for c in member.calibrators]
        offsets = [float(c.b_) for c in member.calibrators]
        parts.append((kernel, bias, slopes, offsets))
    kernels, biases, slopes, offsets = (
        np.asarray(column, np.float32) for column in zip(*parts)
    )
    folded = Calibrated(kernels, biases, slopes, offsets, len(head.classes_))
    probe = np.random.default_rng(0).normal(size=(16, n_features)) * 3
    theirs = make_pipeline(*steps).predict_proba(probe)
    if not np.allclose(folded.probabilities(probe), theirs, atol=FOLD_TOLERANCE):
        return None
    return folded


def fold(steps: list, n_features: int):
    """``(kernel, bias, probabilistic)`` of scalers + a linear classifier, or None."""
    from sklearn.linear_model import LogisticRegression

    split = _scalers_then(steps)
    if split is None or not _linear(split[1]):
        return None
    scalers, classifier = split
    probabilistic = isinstance(classifier, LogisticRegression)
    if hasattr(classifier, "predict_proba") and not probabilistic:
        return None  # its probabilities are not a softmax of the scores
    kernel, bias = _affine(scalers, classifier, n_features)
    if kernel.shape[1] == 1:  # binary: the scores [0, z] give the same argmax
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([[0.0], bias])
    probe = np.random.default_rng(0).normal(size=(16, n_features)) * 3
    scores = probe @ kernel + bias
    from sklearn.pipeline import make_pipeline

    reference = make_pipeline(*steps)
    if probabilistic:
        mine = np.exp(scores - scores.max(1, keepdims=True))
        mine /= mine.sum(1, keepdims=True)
        theirs = reference.predict_proba(probe)
    else:
        mine, theirs = scores, reference.decision_function(probe)
        if theirs.ndim == 1:
            mine = mine[:, 1]
    if not np.allclose(mine, theirs, rtol=FOLD_TOLERANCE, atol=FOLD_TOLERANCE):
        return None
    return kernel.astype(np.float32), bias.astype(np.float32), probabilistic


def describe(steps: list) -> str:
    return " -> ".join(type(step).__name__ for step in steps)
