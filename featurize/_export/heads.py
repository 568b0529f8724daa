"""A fitted scikit-learn head, as every export format reads it.

Scalers followed by a linear classifier fold into one affine map (kernel and bias,
then a softmax where the classifier gives probabilities): the exported graph then
costs one small matrix product more than the network, in any runtime. Other heads
are converted per format (skl2onnx for ONNX) or refused with a clear error.
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


def fold(steps: list, n_features: int):
    """``(kernel, bias, probabilistic)`` of scalers + a linear classifier, or None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.linear_model._base import LinearClassifierMixin
    from sklearn.preprocessing import StandardScaler

    *scalers, classifier = steps
    if not isinstance(classifier, LinearClassifierMixin) or not all(
        type(s) is StandardScaler for s in scalers
    ):
        return None
    probabilistic = isinstance(classifier, LogisticRegression)
    if hasattr(classifier, "predict_proba") and not probabilistic:
        return None  # its probabilities are not a softmax of the scores
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
    bias = intercept - shift @ kernel
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
