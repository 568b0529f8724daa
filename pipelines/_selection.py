"""Model selection across backbones, layers, poolings and classifiers.

Each featurizer configuration embeds every image once (through the embedding cache,
so a re-run embeds nothing); the classifiers are then searched on those embeddings with
the same cross-validation splits for every configuration.
"""

from __future__ import annotations

import itertools
import numbers
import time

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featurize import (
    FineTunedClassifier,
    ImageFeaturizer,
    InvalidLabelsError,
    release_models,
)
from pipelines._audit.findings import NEAR_THRESHOLDS
from pipelines._audit.groups import duplicate_groups, joined
from pipelines._classifiers import (
    make_classifier,
    make_image_classifier,
    parameter,
)

DEFAULT_GRIDS = {
    "logreg": {"C": [0.1, 1.0, 10.0]},
    "linear_svm": {"C": [0.01, 0.1, 1.0]},
    "svm": {"C": [1.0, 10.0]},
}


def _grid_for(classifier: str, param_grid) -> dict:
    if param_grid is None:
        return DEFAULT_GRIDS.get(classifier, {})
    if param_grid and all(key in DEFAULT_GRIDS for key in param_grid):
        return param_grid.get(classifier, {})
    return param_grid


def _metric_names(scoring) -> list[str]:
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return ["score"]
    return list(scoring)


def compare_models(
    paths,
    labels,
    *,
    backbones=("efficientnet_lite0",),
    classifiers=("logreg",),
    param_grid=None,
    layers=(None,),
    poolings=("avg",),
    cv=5,
    scoring=None,
    n_jobs=None,
    refit=True,
    groups=None,
    group_duplicates: bool = False,
    class_weight=None,
    fine_tune=False,
    **featurizer_params,
):
    """Cross-validate every backbone x layer x pooling x classifier x parameters,
    and, if asked, fine-tuned candidates on the same folds.

    Parameters
    ----------
    paths, labels : sequences
        Images (anything :class:`featurize.ImageFeaturizer` accepts) and classes.
    backbones, layers, poolings : sequences
        Featurizer configurations to compare (their product).
    classifiers : sequence of {"logreg", "linear_svm", "svm"}
        Classifiers, each preceded by a ``StandardScaler``.
    param_grid : dict, optional
        Classifier parameters to search: either one grid for all classifiers
        (``{"C": [0.1, 1]}``) or one per classifier name
        (``{"logreg": {"C": [...]}, "svm": {...}}``). Defaults to a small grid of
        ``C`` per classifier.
    cv : int or cross-validation splitter, default=5
        The same splits are used for every configuration.
    scoring : str, callable, list or dict, optional
        As in ``GridSearchCV``; the first metric ranks the candidates.
    n_jobs : int, optional
        Parallel workers for the classifier searches.
    refit : bool, default=True
        Fit the best candidate's whole pipeline on all the data and return it.
    groups : array-like, optional
        A group per image (a patient, a source photo): no group sits on both sides
        of a fold (``StratifiedGroupKFold`` when ``cv`` is an int; a splitter
        passed as ``cv`` receives the groups and must be one that honours them).
    group_duplicates : bool, default=False
        Also group exact copies (equal content) and near duplicates of the first
        configuration's embeddings (the data-relative rule of
        ``NEAR_THRESHOLDS["image"]``, every member of a group near every other),
        as ``featurize audit`` finds and groups them.
    class_weight : None, "balanced" or dict
        The classifiers' (see :func:`make_image_classifier`); the SVMs are
        calibrated, so every built-in classifier reports ``log_loss``.
    fine_tune : bool or list of dict, default=False
        Also cross-validate a :class:`featurize.FineTunedClassifier` per backbone:
        ``True`` for its defaults, or a list of candidates, each a dict of its
        parameters (``[{"epochs": 2}, {"epochs": 8, "augment": "strong"}]``).
        They share ``featurizer_params`` where the two take the same option, get
        ``random_state=0`` unless a candidate sets it, and their linear probe reads
        the embeddings the frozen candidates cached. Their rows have classifier
        ``"fine_tuned"``, the candidate as ``params`` and ``fit_time`` per fold.
    **featurizer_params
        Passed to every featurizer (``weights``, ``input_size``, ``cache``, ...).

    Returns
    -------
    results : pandas.DataFrame
        One row per candidate, best first: ``backbone``, ``layer``, ``pooling``,
        ``classifier``, ``params``, ``mean_<metric>`` and ``std_<metric>`` per metric
        (``score`` when ``scoring`` is one metric), ``fit_time`` (mean seconds per
        fold), ``embedding_time`` (seconds to embed all images for that
        configuration), ``cache_hits`` and ``computed`` (images served from the
        cache, and sent through the backbone), ``grouped`` (images that share a
        group), ``fold_sizes`` (each fold's test size: a group that would make
        a fold more than twice its even share is split, with a warning naming
        it), and ``error``: empty
        for a scored candidate, else the cause of its failure in one line (its
        scores are then NaN and it sorts last).
    best : sklearn.pipeline.Pipeline or None
        The best candidate refitted on all the data (None if ``refit=False`` or no
        candidate scored).

    Raises
    ------
    InvalidLabelsError
        Before any work, where the folds cannot be filled (see
        :func:`fold_problem`): a class with fewer items than ``cv`` folds, or
        fewer ``groups`` than folds.

    Examples
    --------
    >>> from pipelines import compare_models, load_image_folder
    >>> paths, labels = load_image_folder("data/hymenoptera", split="train")
    >>> results, best = compare_models(paths, labels, classifiers=["logreg"],
    ...                                param_grid={"C": [1.0]}, cv=3, input_size=64)
    >>> list(results.columns[:5])
    ['backbone', 'layer', 'pooling', 'classifier', 'params']
    """
    import pandas as pd

    labels = np.asarray(labels)
    problem = fold_problem(labels, cv, groups)
    if problem:
        raise InvalidLabelsError(problem)
    splits = None
    metrics = _metric_names(scoring)
    tuned = _fine_tuned_candidates(
        fine_tune, backbones, class_weight, featurizer_params
    )
    rows = []
    configurations = list(itertools.product(backbones, layers, poolings))
    for configuration, (backbone, layer, pooling) in enumerate(configurations):
        if configuration and backbone != configurations[configuration - 1][0]:
            release_models()  # one backbone in memory at a time, however many
        featurizer = ImageFeaturizer(
            backbone, layer=layer, pooling=pooling, **featurizer_params
        )
        started = time.perf_counter()
        result = featurizer.fit().embed(paths)
        embedding_time = time.perf_counter() - started
        embeddings, stats = result.array, result.stats
        if splits is None:
            splits, grouped = _splits(
                cv, labels, groups, group_duplicates, result, paths
            )
            fold_sizes = [len(test) for _, test in splits]
        for classifier in classifiers:
            estimator = make_classifier(classifier, class_weight=class_weight)
            head = Pipeline([("scaler", StandardScaler()), ("classifier", estimator)])
            grid = {
                f"classifier__{parameter(estimator, name)}": values
                for name, values in _grid_for(classifier, param_grid).items()
            }
            probabilistic = hasattr(head, "predict_proba")
            scorers = _scorers(scoring, metrics, probabilistic)
            search, error = _attempt(
                GridSearchCV(
                    head, grid, cv=splits, scoring=scorers, refit=False,
                    n_jobs=n_jobs, error_score="raise",
                ).fit, embeddings, labels,
            )  # fmt: skip
            results = (
                search.cv_results_
                if search is not None
                else {"params": list(ParameterGrid(grid))}
            )
            for i, params in enumerate(results["params"]):
                row = {
                    "backbone": featurizer.backbone_,
                    "layer": featurizer.layer_,
                    "configuration": configuration,
                    "candidate": -1,
                    "pooling": pooling,
                    "classifier": classifier,
                    "params": {k.split("__")[-1]: v for k, v in params.items()},
                }
                for metric in metrics:
                    row[f"mean_{metric}"] = _cell(results, f"mean_test_{metric}", i)
                    row[f"std_{metric}"] = _cell(results, f"std_test_{metric}", i)
                row["log_loss"] = (
                    -_cell(results, "mean_test_log_loss", i)
                    if probabilistic
                    else np.nan
                )
                row["fit_time"] = _cell(results, "mean_fit_time", i)
                row["embedding_time"] = embedding_time
                row["cache_hits"] = stats["cache_hits"]
                row["computed"] = stats["computed"]
                row["grouped"] = grouped
                row["fold_sizes"] = fold_sizes
                row["error"] = error
                rows.append(row)
    if tuned:
        release_models()
    for candidate, estimator in enumerate(tuned):
        rows.append(_cross_validate_tuned(estimator, paths, labels, splits, scoring,
                                          metrics, grouped, candidate))  # fmt: skip
    table = pd.DataFrame(rows).sort_values(
        f"mean_{metrics[0]}", ascending=False, kind="stable", ignore_index=True,
        na_position="last",
    )  # fmt: skip
    scored = len(table) and table.iloc[0].error == ""
    best = None
    if refit and scored and table.iloc[0].classifier == "fine_tuned":
        best = clone(tuned[int(table.iloc[0].candidate)]).fit(paths, labels)
    elif refit and scored:
        top = table.iloc[0]
        backbone, layer, pooling = configurations[int(top.configuration)]
        best = make_image_classifier(
            backbone, top.classifier, layer=layer, pooling=pooling,
            class_weight=class_weight, **featurizer_params,
        )  # fmt: skip
        head = best["classifier"]
        best.set_params(
            **{f"classifier__{parameter(head, k)}": v for k, v in top.params.items()}
        )
        best.fit(paths, labels)
    return table.drop(columns=["configuration", "candidate"], errors="ignore"), best


def _fine_tuned_candidates(fine_tune, backbones, class_weight, featurizer_params):
    """One unfitted FineTunedClassifier per backbone and candidate."""
    if fine_tune is False or fine_tune is None:
        return []
    candidates = [{}] if fine_tune is True else list(fine_tune)
    if not all(isinstance(c, dict) for c in candidates):
        raise ValueError(
            f"fine_tune must be True, False or a list of dicts of FineTunedClassifier "
            f"parameters; received {fine_tune!r}."
        )
    rules = FineTunedClassifier.parameter_rules
    # The featurizer's batch is an inference batch, not a training one.
    shared = {k: v for k, v in featurizer_params.items()
              if k in rules and k != "batch_size"}  # fmt: skip
    if class_weight is not None:
        shared["class_weight"] = class_weight
    return [
        FineTunedClassifier(backbone, **{"random_state": 0, **shared, **candidate})
        for backbone in dict.fromkeys(backbones)
        for candidate in candidates
    ]


def _cross_validate_tuned(estimator, paths, labels, splits, scoring, metrics,
                          grouped: int, candidate: int) -> dict:  # fmt: skip
    """A results row for one fine-tuned candidate, on the shared folds."""
    from sklearn.model_selection import cross_validate

    params = estimator.get_params()
    defaults = FineTunedClassifier().get_params()
    scores, error = _attempt(
        cross_validate, estimator, paths, labels, cv=splits,
        scoring=_scorers(scoring, metrics, True), error_score="raise",
    )  # fmt: skip
    scores = scores or {}
    row = {
        "backbone": params["backbone"],
        "layer": params["layer"],
        "configuration": -1,
        "candidate": candidate,
        "pooling": "avg",
        "classifier": "fine_tuned",
        "params": {k: v for k, v in params.items()
                   if k != "backbone" and v != defaults[k] and k != "verbose"},
    }  # fmt: skip
    for metric in metrics:
        row[f"mean_{metric}"] = _mean(scores, f"test_{metric}")
        row[f"std_{metric}"] = _mean(scores, f"test_{metric}", np.std)
    row["log_loss"] = -_mean(scores, "test_log_loss")
    row["fit_time"] = _mean(scores, "fit_time")
    row["embedding_time"] = np.nan
    row["cache_hits"] = row["computed"] = np.nan
    row["grouped"] = grouped
    row["fold_sizes"] = [len(test) for _, test in splits]
    row["error"] = error
    return row


def _attempt(fit, *args, **kwargs):
    """``(fit(*args, **kwargs), "")``, or ``(None, the cause in one line)`` where
    it raised: a candidate that cannot be scored is reported as a failure, never
    as a score."""
    try:
        return fit(*args, **kwargs), ""
    except (ValueError, ArithmeticError, RuntimeError, MemoryError) as error:
        lines = str(error).strip().splitlines()
        return None, f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


def _cell(results: dict, key: str, i: int) -> float:
    return float(results[key][i]) if key in results else np.nan


def _mean(scores: dict, key: str, reduce=np.mean) -> float:
    return float(reduce(scores[key])) if key in scores else np.nan


def fold_problem(labels, cv, groups=None) -> str | None:
    """Why ``cv``-fold cross-validation of ``labels`` (kept apart by ``groups``)
    cannot score any candidate, in one line; None where it can.

    Every class must be in every training fold: with ``cv`` an integer, each
    class needs at least ``cv`` members, and a grouped split at least ``cv``
    groups.
    """
    if not isinstance(cv, numbers.Integral):
        return None  # a splitter of the caller's own: its folds are its word
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(classes) < 2:
        return (
            f"Cross-validation needs at least 2 classes; the labels hold only "
            f"{classes.tolist()}."
        )
    rare = int(counts.argmin())
    if counts[rare] < cv:
        fix = (
            f"use --cv {counts[rare]} (cv={counts[rare]}) or label more"
            if counts[rare] >= 2
            else "label more of it, or leave it out"
        )
        return (
            f"Class {classes[rare].item()!r} has {counts[rare]} item"
            f"{'s' if counts[rare] != 1 else ''}, fewer than the {cv} folds: every "
            f"fold must train on every class. {fix[0].upper()}{fix[1:]}."
        )
    if groups is not None:
        found = len(np.unique(np.asarray(groups)))
        if found < cv:
            return (
                f"The images fall into {found} group{'s' if found != 1 else ''}, "
                f"fewer than the {cv} folds: no group may sit on both sides of a "
                f"fold. Use --cv {found} or fewer, or a pattern that tells more "
                f"groups apart."
                if found >= 2
                else f"The images fall into {found} group: a grouped split needs "
                f"at least 2 (and one per fold)."
            )
    return None


def _splits(cv, labels, groups, group_duplicates: bool, result, names=None):
    """The folds every configuration shares, and how many images were grouped
    (``names``: the images, for warnings)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if group_duplicates:
        copies = duplicate_groups(result, NEAR_THRESHOLDS["image"])
        groups = copies if groups is None else joined(groups, copies)
    if groups is None:
        return list(check_cv(cv, labels, classifier=True).split(labels, labels)), 0
    groups = np.asarray(groups)
    if isinstance(cv, numbers.Integral):
        groups = _without_giants(groups, int(cv), names)
    problem = fold_problem(labels, cv, groups)
    if problem:
        raise InvalidLabelsError(problem)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    grouped = int((counts[inverse] > 1).sum())
    if isinstance(cv, numbers.Integral):
        cv = StratifiedGroupKFold(int(cv))
    return list(cv.split(labels, labels, groups)), grouped


def _without_giants(groups, n_folds: int, names=None) -> np.ndarray:
    """``groups`` with every group that would make a fold more than twice its
    even share split into its members, each split group named in a warning: a
    fold of most of the data scores nothing honestly."""
    import warnings

    share = len(groups) / n_folds
    values, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    giants = np.flatnonzero(counts > 2 * share)
    if not len(giants):
        return groups
    ids = inverse.astype(np.int64)
    for giant in giants:
        members = np.flatnonzero(inverse == giant)
        first = int(members[0])
        example = names[first] if names is not None else None
        if not isinstance(example, str):
            example = f"item {first}"
        warnings.warn(
            f"Group {values[giant].item()!r} holds {len(members)} of {len(groups)} "
            f"images "
            f"(such as {example!r}), more than twice a fold's even share "
            f"({share:.0f}): kept together it would make one fold most of the data. "
            f"Its images are split across folds.",
            UserWarning,
            stacklevel=4,
        )
        ids[members] = len(values) + members
    return ids


def _scorers(scoring, metrics, probabilistic: bool):
    """The caller's metrics, and log loss beside them where probabilities exist."""
    if not probabilistic:
        return scoring
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        scoring = {metrics[0]: scoring or "accuracy"}
    elif not isinstance(scoring, dict):
        scoring = {name: name for name in scoring}
    return {**scoring, "log_loss": "neg_log_loss"}


def plot_comparison(results, *, metric: str | None = None, ax=None):
    """Bar chart of each configuration's best score, by classifier, with CV std bars.

    Parameters
    ----------
    results : pandas.DataFrame
        As returned by :func:`compare_models`.
    metric : str, optional
        Which ``mean_<metric>`` to plot; the first one by default.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if metric is None:
        metric = next(c for c in results.columns if c.startswith("mean_"))[5:]
    mean, std = f"mean_{metric}", f"std_{metric}"
    table = results.assign(
        configuration=results.backbone
        + " / "
        + results.layer.astype(str)
        + " / "
        + results.pooling.astype(str)
    )
    best = table.loc[table.groupby(["configuration", "classifier"])[mean].idxmax()]
    configurations = list(dict.fromkeys(table.configuration))
    classifiers = list(dict.fromkeys(table.classifier))
    if ax is None:
        _, ax = plt.subplots(figsize=(2 + 1.6 * len(configurations), 4))
    width = 0.8 / len(classifiers)
    positions = np.arange(len(configurations))
    for k, classifier in enumerate(classifiers):
        rows = best[best.classifier == classifier].set_index("configuration")
        rows = rows.reindex(configurations)
        ax.bar(
            positions + (k - (len(classifiers) - 1) / 2) * width,
            rows[mean],
            width,
            yerr=rows[std],
            capsize=3,
            label=classifier,
        )
    ax.set_xticks(positions, configurations, rotation=15, ha="right")
    ax.set_ylabel(f"{metric} (cross-validated)")
    low = float(np.nanmin(best[mean] - best[std]))
    ax.set_ylim(max(0.0, low - 0.05), 1.0 if best[mean].max() <= 1 else None)
    ax.set_title("Backbone x classifier")
    ax.legend(title="classifier")
    return ax
