"""Append a fitted scikit-learn head to a network graph whose output is ``embedding``.

Scalers followed by a linear classifier fold into one ``Gemm`` (and a ``Softmax``
where the classifier gives probabilities): the graph then costs one small matrix
product more than the network. Every other head is converted by ``skl2onnx`` and
joined to the network with ``onnx.compose``. Either way the graph's outputs say what
it gives: ``probabilities`` or ``scores`` (one column per class; the label is the
largest), or ``label`` (the class itself) with ``probabilities`` where the head has
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurize._onnx.convert import EMBEDDING, OPSET
from featurize.errors import ExportError

ML_OPSET = 3
# A folded head must give the head's own numbers on random embeddings to this
# tolerance, or the general converter is used instead.
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


def append_head(network, head, n_features: int):
    """``network`` (an ONNX model with output ``embedding``) followed by ``head``.

    Returns
    -------
    (onnx.ModelProto, HeadOutputs)
    """
    steps = head_steps(head)
    if not steps:
        return network, HeadOutputs()
    folded = _fold(steps, n_features)
    if folded is not None:
        return _append_affine(network, *folded)
    return _append_converted(network, head, steps, n_features)


def _fold(steps: list, n_features: int):
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


def _append_affine(network, kernel, bias, probabilistic: bool):
    import onnx
    from onnx import helper, numpy_helper

    graph = network.graph
    name = "probabilities" if probabilistic else "scores"
    graph.initializer.extend(
        [
            numpy_helper.from_array(kernel, "head_kernel"),
            numpy_helper.from_array(bias, "head_bias"),
        ]
    )
    scores = "head_scores" if probabilistic else name
    graph.node.append(
        helper.make_node(
            "Gemm", [EMBEDDING, "head_kernel", "head_bias"], [scores], name="head"
        )
    )
    if probabilistic:
        graph.node.append(
            helper.make_node("Softmax", [scores], [name], axis=-1, name="softmax")
        )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, kernel.shape[1]]
        )
    )
    onnx.checker.check_model(network)
    outputs = (
        HeadOutputs(probabilities=name) if probabilistic else HeadOutputs(scores=name)
    )
    return network, outputs


def _append_converted(network, head, steps: list, n_features: int):
    import onnx
    from onnx import compose

    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        from featurize.errors import MissingDependencyError

        raise MissingDependencyError(
            f"exporting a {_describe(steps)} head needs skl2onnx (linear heads "
            f"need nothing more): pip install skl2onnx."
        ) from None
    from sklearn.base import is_classifier

    final = steps[-1]
    # Plain arrays, not a list of {class: probability} maps per row.
    options = {id(final): {"zipmap": False}} if is_classifier(final) else {}
    try:
        converted = convert_sklearn(
            head,
            initial_types=[("head_input", FloatTensorType([None, n_features]))],
            options=options,
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
    except Exception as error:
        raise ExportError(
            f"the classifier head {_describe(steps)} cannot be exported to ONNX "
            f"(skl2onnx: {type(error).__name__}: {error}). Train with a head "
            f"skl2onnx converts (logistic regression, linear or RBF SVM, trees)."
        ) from None
    names = [o.name for o in converted.graph.output]
    label = next((n for n in names if "label" in n), None)
    # skl2onnx names a classifier's second output "probabilities" even where it
    # holds decision scores (an SVC without probability=True).
    second = next((n for n in names if "prob" in n), None)
    probabilistic = hasattr(final, "predict_proba")
    network.ir_version = converted.ir_version = max(
        network.ir_version, converted.ir_version
    )
    _add_opsets(network, converted)
    merged = compose.merge_models(
        network, converted, io_map=[(EMBEDDING, "head_input")], prefix2="head_"
    )
    onnx.checker.check_model(merged)
    second = second and "head_" + second
    return merged, HeadOutputs(
        label=label and "head_" + label,
        probabilities=second if probabilistic else None,
        scores=None if probabilistic else second,
    )


def _add_opsets(first, second) -> None:
    """Give both models every opset domain either uses (merge_models needs it)."""
    from onnx import helper

    versions = {}
    for model in (first, second):
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    for model in (first, second):
        del model.opset_import[:]
        model.opset_import.extend(
            helper.make_opsetid(domain, version) for domain, version in versions.items()
        )


def _describe(steps: list) -> str:
    return " -> ".join(type(step).__name__ for step in steps)
