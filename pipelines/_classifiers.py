"""Ready-made pipelines: featurizer, optional scaler, linear classifier."""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from featurize import ImageFeaturizer, TextFeaturizer

CLASSIFIERS = {
    "logreg": lambda weights: LogisticRegression(max_iter=5000, class_weight=weights),
    "linear_svm": lambda weights: LinearSVC(max_iter=20000, class_weight=weights),
    "svm": lambda weights: SVC(kernel="rbf", class_weight=weights),
}
CLASS_WEIGHTS = (None, "balanced")
# Folds of the sigmoid calibration: 3 keeps it usable from 3 images per class.
CALIBRATION_FOLDS = 3


def make_classifier(classifier, *, calibrate: bool = True, class_weight=None):
    """A fresh estimator for a classifier name (calibrated by
    ``CalibratedClassifierCV`` where it has no ``predict_proba`` and ``calibrate``),
    or the estimator itself."""
    if not isinstance(classifier, str):
        return classifier
    if class_weight not in CLASS_WEIGHTS and not isinstance(class_weight, dict):
        raise ValueError(
            f"class_weight must be None, 'balanced' or a dict of class -> weight; "
            f"received {class_weight!r}."
        )
    try:
        estimator = CLASSIFIERS[classifier](class_weight)
    except KeyError:
        raise ValueError(
            f"Unknown classifier {classifier!r}. Known classifiers: "
            f"{sorted(CLASSIFIERS)}, or pass a scikit-learn estimator."
        ) from None
    if calibrate and not hasattr(estimator, "predict_proba"):
        estimator = CalibratedClassifierCV(estimator, cv=CALIBRATION_FOLDS)
    return estimator


def parameter(classifier, name: str) -> str:
    """The name of a classifier parameter as ``set_params`` reaches it (through
    the calibration wrapper where there is one)."""
    return (
        f"estimator__{name}" if isinstance(classifier, CalibratedClassifierCV) else name
    )


def make_image_classifier(
    backbone: str = "efficientnet_lite0",
    classifier="logreg",
    *,
    scale: bool = True,
    calibrate: bool = True,
    class_weight=None,
    **featurizer_params,
) -> Pipeline:
    """Build ``Pipeline([featurizer, (scaler,) classifier])`` for image paths.

    Parameters
    ----------
    backbone : str
        A name from :func:`featurize.list_backbones`.
    classifier : {"logreg", "linear_svm", "svm"} or estimator, default="logreg"
        Logistic regression, a linear SVM, an RBF SVM, or any scikit-learn
        classifier.
    scale : bool, default=True
        Standardise the embeddings before the classifier.
    calibrate : bool, default=True
        Give the SVMs probabilities (``predict_proba``, and so ``proba_`` columns
        in predictions) by a sigmoid ``CalibratedClassifierCV``; their parameters
        are then ``classifier__estimator__C``.
    class_weight : None, "balanced" or dict
        Passed to the classifier: "balanced" weighs classes by inverse frequency,
        for imbalanced data.
    **featurizer_params
        Passed to :class:`featurize.ImageFeaturizer` (``layer``, ``pooling``,
        ``weights``, ``input_size``, ...).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``featurizer``, ``scaler`` (if ``scale``) and ``classifier``; tune
        them in ``GridSearchCV`` as ``classifier__C``, ``featurizer__layer``, ...

    Examples
    --------
    >>> from pipelines import make_image_classifier
    >>> clf = make_image_classifier("mobilenet_v3_small", "linear_svm", weights=None)
    >>> [name for name, _ in clf.steps]
    ['featurizer', 'scaler', 'classifier']
    """
    head = make_classifier(classifier, calibrate=calibrate, class_weight=class_weight)
    return _pipeline(ImageFeaturizer(backbone, **featurizer_params), head, scale)


def make_text_classifier(
    encoder: str = "minilm_l6",
    classifier="logreg",
    *,
    scale=True,
    calibrate: bool = True,
    class_weight=None,
    **featurizer_params,
) -> Pipeline:
    """The same pipeline as :func:`make_image_classifier`, for texts: a
    :class:`featurize.TextFeaturizer` of ``encoder`` (a name from
    :func:`featurize.list_text_encoders`; ``featurizer_params`` such as
    ``max_length``, ``long_text`` or ``cache`` go to it), then ``scaler`` and
    ``classifier`` (``calibrate`` and ``class_weight`` as there).

    Examples
    --------
    >>> from pipelines import make_text_classifier
    >>> clf = make_text_classifier("glove_50d", cache=None)
    >>> clf.fit(["win a prize now", "see you at 6"], ["spam", "ham"]).predict(
    ...     ["claim your prize"]).tolist()
    ['spam']
    """
    head = make_classifier(classifier, calibrate=calibrate, class_weight=class_weight)
    return _pipeline(TextFeaturizer(encoder, **featurizer_params), head, scale)


def _pipeline(featurizer, classifier, scale: bool) -> Pipeline:
    steps = [("featurizer", featurizer)]
    if scale:
        steps.append(("scaler", StandardScaler()))
    steps.append(("classifier", classifier))
    return Pipeline(steps)


def describe_featurizer(featurizer) -> str:
    """A fitted featurizer in words, for reports."""
    width = featurizer.n_features_out_
    if hasattr(featurizer, "encoder_"):
        return f"{featurizer.encoder_} text embeddings ({width} per text)"
    return (
        f"{featurizer.backbone_} features ({width} per image, layer "
        f"{featurizer.layer_!r})"
    )
