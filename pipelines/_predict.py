"""Predict with any saved model: the rows of a table in, the same rows out with
predictions beside them, never in place of the user's own columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from featurize import (
    AnomalyDetector,
    FeaturizeError,
    FineTunedClassifier,
    FineTunedTextClassifier,
    ImageFeaturizer,
    InvalidParameterError,
    ModelFileError,
    TextFeaturizer,
    load_model,
)
from pipelines._chunks import embed_chunk, free_names

PREDICTION_PREFIX = "predicted_"


@dataclass
class Predictions:
    """The input's rows, its columns intact, with ``label``, ``proba_<class>`` and
    ``error`` added (named ``predicted_<name>`` where the input has that column).

    Attributes
    ----------
    frame : pandas.DataFrame
    failed : int
        Rows that could not be classified (their ``error`` says why).
    added : list of str
        The columns added to the input's, as named in ``frame``.
    renamed : dict
        Added columns whose names were taken by the input: {name: name used}.
    truncated : int
        Texts longer than the featurizer's ``max_length``, truncated.
    """

    frame: object
    failed: int = 0
    added: list = field(default_factory=list)
    renamed: dict = field(default_factory=dict)
    truncated: int = 0


def model_modality(model, source="the model") -> str:
    """``"image"`` or ``"text"``: what a saved model classifies.

    Raises
    ------
    ModelFileError
        ``model`` is not a model featurize saves (naming what it is).
    """
    if isinstance(model, FineTunedClassifier):
        return "image"
    if isinstance(model, AnomalyDetector):
        return "anomaly"
    if isinstance(model, FineTunedTextClassifier):
        return "text"
    if isinstance(model, Pipeline) and model.steps:
        first = model.steps[0][1]
        if isinstance(first, ImageFeaturizer):
            return "image"
        if isinstance(first, TextFeaturizer):
            return "text"
    raise ModelFileError(
        f"{source!r} holds a {type(model).__name__}, not a model featurize saves: "
        f"expected a scikit-learn Pipeline starting with an ImageFeaturizer or a "
        f"TextFeaturizer (featurize train / search --out), a fine-tuned classifier or "
        f"an AnomalyDetector (featurize train --anomaly)."
    )


def read_model(path, *, trust: bool = False):
    """Load a saved model safely (:func:`featurize.load_model`) and check its kind.

    Returns the model and its modality (``"image"`` or ``"text"``).
    """
    model = load_model(path, trust=trust)
    return model, model_modality(model, path)


def featurizer_with(featurizer, options: dict):
    """The saved featurizer with ``options`` applied, where they leave what defines
    its embeddings alone (batch size, threads, cache: how inputs are read).

    An option that changes the embeddings (its fingerprint) is refused: the head
    was fitted on the saved ones. Options equal to the saved values in effect
    (``max_length=256`` where None means 256) are accepted.

    Raises
    ------
    InvalidParameterError
        Naming the options and the model's values.
    """
    rules = type(featurizer).parameter_rules
    saved = featurizer.get_params()
    differing = [
        name
        for name, value in options.items()
        if rules[name].check(name, value) != rules[name].check(name, saved[name])
    ]
    if differing:
        base = featurizer.fingerprint()
        changing = [
            name
            for name in differing
            if _fingerprint_or_none(_with(featurizer, name, options[name])) != base
        ]
        if changing:
            shown = ", ".join(
                f"{name}={options[name]!r} (the model's: {saved[name]!r})"
                for name in changing
            )
            raise InvalidParameterError(
                f"{shown} would change the embeddings the model was trained "
                f"on. Leave {'it' if len(changing) == 1 else 'them'} out, or train "
                f"a new model."
            )
    return clone(featurizer).set_params(**options)


def _with(featurizer, name: str, value):
    return clone(featurizer).set_params(**{name: value})


def _fingerprint_or_none(featurizer):
    try:
        return featurizer.fingerprint()
    except (FeaturizeError, OSError):
        return None  # cannot even be built: certainly not the same embeddings


def check_options(model, options: dict) -> None:
    """Refuse options that would change what ``model`` was trained on (see
    :func:`featurizer_with`), before any input is read."""
    if isinstance(model, FineTunedClassifier):
        featurizer_with(_reading_featurizer(model), options)
    elif isinstance(model, AnomalyDetector):
        foreign = sorted(set(options) - set(model.get_params()))
        if foreign:
            raise InvalidParameterError(
                f"{', '.join(foreign)} set a classifier's embedding, not an anomaly "
                f"detector's: leave {'it' if len(foreign) == 1 else 'them'} out."
            )
        featurizer_with(model.featurizer(), options)
    else:
        featurizer_with(_featurizer_and_head(model)[0], options)


def predict_rows(model, rows, column: str, options: dict | None = None) -> Predictions:
    """Classify the ``column`` of ``rows`` (paths, URLs or texts) with ``model``.

    Parameters
    ----------
    model : Pipeline, FineTunedClassifier or FineTunedTextClassifier
        As saved by ``featurize train`` or ``search`` (see :func:`read_model`).
    rows : pandas.DataFrame
        The input table; every one of its columns comes back unchanged.
    column : str
        The column holding the images' paths or the texts.
    options : dict, optional
        Featurizer parameters for reading the inputs (see :func:`featurizer_with`).

    Returns
    -------
    Predictions
    """
    import pandas as pd

    options = dict(options or {})
    out = rows.reset_index(drop=True).copy()
    items = out[column].tolist()
    if isinstance(model, FineTunedClassifier):
        check_options(model, options)
        shared = model.get_params()
        model.set_params(
            **{k: v for k, v in options.items() if k in shared and k != "layer"}
        )
        result = model.predict_frame(items)
        labels, errors = result["label"], result["error"]
        proba = result[[c for c in result.columns if c.startswith("proba_")]]
        truncated = 0
    else:
        featurizer, head = _featurizer_and_head(model)
        featurizer = featurizer_with(featurizer, options).fit()
        chunk = embed_chunk(featurizer, items)
        usable = [i for i in range(len(items)) if i not in chunk.failures]
        labels = pd.Series([None] * len(items), dtype=object)
        classes = list(getattr(head, "classes_", []))
        # The columns are the model's whatever the inputs: all failed or not.
        values = np.full((len(items), len(classes)), np.nan)
        if usable:
            features = chunk.embeddings[usable]
            labels[usable] = list(head.predict(features))
            if hasattr(head, "predict_proba"):
                values[usable] = head.predict_proba(features)
        proba = None
        if hasattr(head, "predict_proba"):
            proba = pd.DataFrame(values, columns=[f"proba_{c}" for c in classes])
        errors = [chunk.failures.get(i, ("", ""))[1] for i in range(len(items))]
        truncated = chunk.truncated
    added = ["label", *([] if proba is None else list(proba.columns)), "error"]
    names = free_names(added, out.columns, PREDICTION_PREFIX)
    out[names["label"]] = list(labels)
    if proba is not None:
        for name in proba.columns:
            out[names[name]] = proba[name].to_numpy()
    out[names["error"]] = list(errors)
    failed = sum(1 for error in errors if error)
    renamed = {name: used for name, used in names.items() if name != used}
    return Predictions(out, failed, list(names.values()), renamed, truncated)


def _featurizer_and_head(model):
    """A frozen pipeline's steps; a fine-tuned text classifier's tuned encoder
    and head, which classify as such a pipeline does."""
    if isinstance(model, FineTunedTextClassifier):
        return model.to_featurizer(), model.head_
    return model.steps[0][1], model[1:]


def _reading_featurizer(model: FineTunedClassifier) -> ImageFeaturizer:
    """A featurizer that reads inputs as the fine-tuned model does, for checking
    which options would change what the model sees."""
    params = model.get_params()
    shared = {
        name: params[name]
        for name in ImageFeaturizer().get_params()
        if name in params and name not in ("layer", "batch_size")
    }
    return ImageFeaturizer(**shared, layer=model.layer_)
