"""A fitted featurize model as ONNX graphs, served by onnxruntime.

Image models are one graph: pixels in [0, 255] (decoded and resized as featurize
does, by :mod:`featurize._standalone.pixels`) to embeddings, probabilities or scores.
Text models are two: the encoder (token ids and mask to mean-pooled states) and the
head (embeddings to probabilities), because between them a long text's windows are
averaged and the result normalised (:mod:`featurize._standalone.tokens`), as
featurize does.

A head of scalers and a linear classifier folds into one ``Gemm`` (and a
``Softmax``); every other head is converted by ``skl2onnx`` and joined to the
network with ``onnx.compose``. The graph's outputs say what it gives:
``probabilities`` or ``scores`` (one column per class; the label is the largest),
or ``label`` (the class itself) with ``probabilities`` where the head has them.
"""

from __future__ import annotations

from featurize._export.folder import Export
from featurize._export.heads import HeadOutputs, describe, fold
from featurize._export.parts import Parts, metadata
from featurize._onnx.convert import (
    OPSET,
    classifier_graph,
    encoder_graph,
    forward_graph,
)
from featurize._standalone.serving import EMBEDDING, FEATURES, PIXELS, PROBABILITIES
from featurize.errors import ExportError

ML_OPSET = 3


def onnx_export(parts: Parts, quantize, calibration) -> Export:
    """``parts`` as ONNX graphs (``model.onnx``; a text model's ``encoder.onnx``
    and ``head.onnx``) with their metadata."""
    outputs = HeadOutputs()
    if parts.kind == "encoder":
        graphs = {"encoder": encoder_graph(parts.network)}
        if quantize:
            from featurize._onnx.quantize import quantize_dynamic

            graphs["encoder"] = quantize_dynamic(graphs["encoder"])
        if parts.head:
            graphs["head"], outputs = append_head(
                _identity(parts.width), parts.head, parts.width
            )
    else:
        if parts.kind == "classifier":
            network = classifier_graph(parts.network)
            outputs = HeadOutputs(probabilities=PROBABILITIES)
        else:
            network = forward_graph(parts.network)
        if quantize:
            from featurize._onnx.quantize import quantize_static

            network = quantize_static(
                network, PIXELS, parts.calibration_batches(calibration)
            )
        graphs = {"model": network}
        if parts.kind == "features":
            graphs["model"], outputs = append_head(network, parts.head, parts.width)
    files = {f"{role}.onnx": g.SerializeToString() for role, g in graphs.items()}
    return Export(
        {**files, **parts.files},
        metadata(
            parts, outputs, "onnx",
            graphs={role: f"{role}.onnx" for role in graphs}, quantize=quantize,
        ),
    )  # fmt: skip


def append_head(network, steps: list, n_features: int):
    """``network`` (an ONNX model with output ``embedding``) followed by the head
    ``steps``.

    Returns
    -------
    (onnx.ModelProto, HeadOutputs)
    """
    if not steps:
        return network, HeadOutputs()
    folded = fold(steps, n_features)
    if folded is not None:
        return _append_affine(network, *folded)
    return _append_converted(network, steps, n_features)


def _identity(width: int):
    """A graph passing its input on as ``embedding``: the base a text head is
    appended to."""
    import onnx
    from onnx import helper

    def value(name):
        return helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, width]
        )

    graph = helper.make_graph(
        [helper.make_node("Identity", [FEATURES], [EMBEDDING])],
        "head",
        [value(FEATURES)],
        [value(EMBEDDING)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


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


def _append_converted(network, steps: list, n_features: int):
    import onnx
    from onnx import compose

    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        from featurize.errors import MissingDependencyError

        raise MissingDependencyError(
            f"exporting a {describe(steps)} head needs skl2onnx (linear heads "
            f"need nothing more): pip install skl2onnx."
        ) from None
    from sklearn.base import is_classifier
    from sklearn.pipeline import make_pipeline

    final = steps[-1]
    # Plain arrays, not a list of {class: probability} maps per row.
    options = {id(final): {"zipmap": False}} if is_classifier(final) else {}
    try:
        converted = convert_sklearn(
            make_pipeline(*steps) if len(steps) > 1 else final,
            initial_types=[("head_input", FloatTensorType([None, n_features]))],
            options=options,
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
    except Exception as error:
        raise ExportError(
            f"the classifier head {describe(steps)} cannot be exported to ONNX "
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
