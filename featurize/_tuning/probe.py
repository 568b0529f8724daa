"""The linear probe: the tuned frozen baseline that fine-tuning starts from.

Standardised frozen embeddings (through the embedding cache, shared with frozen
models of the same backbone) and a logistic regression whose C and, for
``layer="auto"``, cut layer are chosen by cross-validation on the training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from featurize._backbones.models import feature_model
from featurize._backbones.weights import weights_identity
from featurize._images.featurizer import ImageFeaturizer
from featurize._shared.results import failure_records, merge_failures
from featurize._tuning.params import NOT_SHARED_WITH_FINE_TUNING

# The linear probe is tuned as the frozen baseline a careful user would fit:
# StandardScaler + LogisticRegression, C from this grid and the cut layer from
# LAYER_CANDIDATES (for layer="auto") by cross-validated accuracy.
PROBE_C_GRID = (0.01, 0.1, 1.0, 10.0)
PROBE_FOLDS = 5
# The choice is made on a stratified sample of at most this many training images:
# enough to rank four values of C, and seconds of logistic regression at any size.
PROBE_CV_ROWS = 2000
LAYER_CANDIDATES = (None, -2)
# learning_rate="auto": the peak rate by where the model is cut. Cut at the final
# layer (the probe found ImageNet's top features fit the data), they move gently; cut
# below it (the top stage's features did not fit), the top stage must move more.
PROBE_COLUMNS = ["layer", "statistics", "C", "cv_accuracy", "chosen"]


def probe_embeddings(items, params: dict, backbone, size):
    """``({layer name: frozen embeddings}, failures)`` through the cache.

    One entry per candidate cut layer (final and penultimate stage for
    ``layer="auto"``); None when the weights are not cacheable.
    """
    if weights_identity(backbone, params["weights"]) is None:
        return None
    layers = [params["layer"]]
    if params["layer"] == "auto":
        stages = feature_model(
            backbone, params["weights"], size, None, params["precision"]
        ).stages
        layers = [k for k in LAYER_CANDIDATES if k is None or -k <= len(stages)]
    found, failures = {}, []
    for layer in layers:
        featurizer = ImageFeaturizer(
            **{
                n: v
                for n, v in params.items()
                if n in ImageFeaturizer.parameter_rules
                and n not in NOT_SHARED_WITH_FINE_TUNING
            }
            | {"layer": layer}
        )
        result = featurizer.embed(items, on_error="nan")
        found[featurizer.fit().layer_] = result.array
        failures = merge_failures(failures, failure_records(result))
    return found, failures


@dataclass
class ProbeChoice:
    layer: object
    mean: np.ndarray
    variance: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray
    table: object
    C: float = 1.0


def choose_probe(candidates: dict, codes, sample_weight, n_classes, seed):
    """The tuned frozen baseline: best layer and C by CV, refitted on all rows."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, folds = _cv_rows(codes, seed)
    table, best = [], None
    for layer, features in candidates.items():
        if folds < 2:  # too few images per class to cross-validate: the middle C
            table.append([layer, 1.0, math.nan])
        else:
            search = GridSearchCV(
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                {"logisticregression__C": PROBE_C_GRID},
                cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            ).fit(
                features[rows],
                codes[rows],
                logisticregression__sample_weight=sample_weight[rows],
            )
            table.append(
                [
                    layer,
                    search.best_params_["logisticregression__C"],
                    search.best_score_,
                ]
            )
        if best is None or table[-1][2] > best[2]:
            best = table[-1]
    layer, C = best[0], best[1]
    features = candidates[layer]
    scaler = StandardScaler().fit(features)
    probe = LogisticRegression(C=C, max_iter=2000)
    probe.fit(scaler.transform(features), codes, sample_weight=sample_weight)
    coef, intercept = probe.coef_, probe.intercept_
    if n_classes == 2:  # softmax over (-z/2, z/2) is the sigmoid of z
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    frame = pd.DataFrame(
        [[row[0], "pretrained", *row[1:], row is best] for row in table],
        columns=PROBE_COLUMNS,
    )
    return ProbeChoice(
        layer, scaler.mean_, scaler.scale_**2, coef.T, intercept, frame, C
    )


def _cv_rows(codes, seed) -> tuple[np.ndarray, int]:
    """The rows the probe is cross-validated on (a stratified sample of at most
    ``PROBE_CV_ROWS``) and the number of folds they allow (< 2: none)."""
    rows = np.arange(len(codes))
    if len(rows) > PROBE_CV_ROWS:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(codes)
        stratify = codes if counts[counts > 0].min() >= 2 else None
        rows = train_test_split(
            rows, train_size=PROBE_CV_ROWS, stratify=stratify, random_state=seed
        )[0]
    counts = np.bincount(codes[rows])
    return rows, min(PROBE_FOLDS, int(counts[counts > 0].min()))


def choose_tta(features, mirrored, codes, sample_weight, C: float, seed: int):
    """Whether predicting the mean of each image and its mirror image helps, judged
    on the training images: ``(tta, table)``.

    The probe (C as chosen) is cross-validated on ``features`` and scored on the
    held-out images alone and averaged with their mirror images' ``mirrored``
    features. Mirroring is kept where it lowers the log loss without lowering the
    accuracy: textures and most photos are mirror-symmetric as classes, digits,
    letters and oriented parts are not.
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, folds = _cv_rows(codes, seed)
    scores = np.full((2, 2), math.nan)  # (plain, flip) x (accuracy, log loss)
    if folds >= 2:
        scores[:] = 0.0
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for fit, held in splitter.split(rows, codes[rows]):
            fit, held = rows[fit], rows[held]
            probe = make_pipeline(
                StandardScaler(), LogisticRegression(C=C, max_iter=2000)
            )
            probe.fit(
                features[fit],
                codes[fit],
                logisticregression__sample_weight=sample_weight[fit],
            )
            plain = probe.predict_proba(features[held])
            both = (plain + probe.predict_proba(mirrored[held])) / 2
            truth = np.searchsorted(probe.classes_, codes[held])
            for k, proba in enumerate((plain, both)):
                picked = np.clip(proba[np.arange(len(held)), truth], 1e-7, 1.0)
                scores[k, 0] += (proba.argmax(axis=1) == truth).sum() / len(rows)
                scores[k, 1] += -np.log(picked).sum() / len(rows)
    flip = bool(scores[1, 0] >= scores[0, 0] and scores[1, 1] < scores[0, 1])
    table = pd.DataFrame(
        {
            "tta": [None, "flip"],
            "cv_accuracy": scores[:, 0],
            "cv_log_loss": scores[:, 1],
            "chosen": [not flip, flip],
        }
    )
    return ("flip" if flip else None), table


def adapted_probe_table(before, after):
    """The probe's table once AdaBN has re-estimated BatchNorm: the choice of
    layer on pretrained statistics, then the probe refitted and chosen."""
    import pandas as pd

    after = after.assign(statistics="re-estimated")
    return pd.concat([before.assign(chosen=False), after], ignore_index=True)


def glorot(rng, shape):
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, tuple(shape)), np.zeros(shape[1])


def probe_row(evaluation: dict, seconds: float) -> dict:
    """The history's epoch 0: the linear probe, before any training."""
    return {
        "epoch": 0,
        "phase": "linear probe",
        "unfrozen_stages": 0,
        "lr_head": 0.0,
        "lr_lowest": 0.0,
        "loss": math.nan,
        "accuracy": math.nan,
        **evaluation,
        "seconds": seconds,
    }
