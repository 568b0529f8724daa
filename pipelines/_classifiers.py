"""Ready-made pipelines: featurizer, optional scaler, linear classifier."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from featurize import ImageFeaturizer, TextFeaturizer

CLASSIFIERS = {
    "logreg": lambda: LogisticRegression(max_iter=5000),
    "linear_svm": lambda: LinearSVC(max_iter=20000),
    "svm": lambda: SVC(kernel="rbf"),
}


def make_classifier(classifier):
    """A fresh estimator for a classifier name, or the estimator itself."""
    if not isinstance(classifier, str):
        return classifier
    try:
        return CLASSIFIERS[classifier]()
    except KeyError:
        raise ValueError(
            f"Unknown classifier {classifier!r}. Known classifiers: "
            f"{sorted(CLASSIFIERS)}, or pass a scikit-learn estimator."
        ) from None


def make_image_classifier(
    backbone: str = "efficientnet_lite0",
    classifier="logreg",
    *,
    scale: bool = True,
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
    return _pipeline(ImageFeaturizer(backbone, **featurizer_params), classifier, scale)


def make_text_classifier(
    encoder: str = "minilm_l6", classifier="logreg", *, scale=True, **featurizer_params
) -> Pipeline:
    """The same pipeline as :func:`make_image_classifier`, for texts: a
    :class:`featurize.TextFeaturizer` of ``encoder`` (a name from
    :func:`featurize.list_text_encoders`; ``featurizer_params`` such as
    ``max_length``, ``long_text`` or ``cache`` go to it), then ``scaler`` and
    ``classifier``.

    Examples
    --------
    >>> from pipelines import make_text_classifier
    >>> clf = make_text_classifier("glove_50d", cache=None)
    >>> clf.fit(["win a prize now", "see you at 6"], ["spam", "ham"]).predict(
    ...     ["claim your prize"]).tolist()
    ['spam']
    """
    return _pipeline(TextFeaturizer(encoder, **featurizer_params), classifier, scale)


def _pipeline(featurizer, classifier, scale: bool) -> Pipeline:
    steps = [("featurizer", featurizer)]
    if scale:
        steps.append(("scaler", StandardScaler()))
    steps.append(("classifier", make_classifier(classifier)))
    return Pipeline(steps)
