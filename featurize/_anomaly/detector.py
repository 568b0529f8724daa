"""AnomalyDetector: defects and odd images, learned from normal images only."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from featurize._anomaly.bank import (
    bank_rows,
    greedy_coreset,
    inverted_file,
    projection,
)
from featurize._anomaly.params import (
    ANOMALY_DETECTOR_RULES,
    DEFAULT_BANK_BYTES,
    DEFAULT_CORESET,
    DEFAULT_INPUT_SIZE,
)
from featurize._anomaly.patches import PatchFeaturizer
from featurize._images.decode import (
    DEFAULT_MAX_PIXELS,
    as_image_list,
    fetch,
    is_url,
)
from featurize._images.featurizer import ImageFeaturizer
from featurize._shared.reporting import warn_failures
from featurize._shared.results import Failure, failure_records, failures_frame
from featurize._shared.rules import validate
from featurize._standalone import anomaly
from featurize.errors import InvalidInputError, InvalidParameterError

# Patches embedded and reduced at a time while fitting: 200,000 x 152 float32 is
# 120 MB, whatever the number of training images.
CHUNK_PATCHES = 200_000


@dataclass(frozen=True)
class Anomalies:
    """What :meth:`AnomalyDetector.inspect` returns: one call's scores, labels, maps
    and failures.

    Attributes
    ----------
    scores : ndarray of shape (n_inputs,)
        Anomaly score, higher = more anomalous; 1.0 is the threshold. NaN where an
        input failed.
    labels : ndarray of shape (n_inputs,)
        +1 normal, -1 anomaly (scikit-learn's convention), 0 where an input failed.
    maps : list of ndarray or None
        With ``maps=True``: per input, a float32 ``(height, width)`` map at the
        image's own size on the same scale as ``scores`` (None where it failed).
    failures : pandas.DataFrame
        The inputs that could not be scored (``on_error="nan"``), as
        :attr:`featurize.Embeddings.failures`.
    """

    scores: np.ndarray
    labels: np.ndarray
    maps: list | None
    failures: object
    errors: tuple = field(default=(), repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.scores)


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Find defective or odd images, having seen normal ones only.

    ``method="patch"`` is PatchCore (Roth et al., 2022) on a frozen backbone: every
    location of an image is described by mid-level features of its neighbourhood,
    the training patches are thinned to a memory bank by greedy coreset selection,
    and a location scores by its distance to the nearest normal patch. An image
    scores by its most anomalous (smoothed) location; maps show where.
    ``method="global"`` compares pooled embeddings instead: cheaper, blind to
    small defects.

    The threshold is set without defect images: ``holdout`` of the training images
    are left out of the bank and scored like new ones, and the threshold is the
    conformal quantile of their scores, so that a new normal image from the same
    source is called an anomaly with probability at most ``false_alarm_rate``.
    Scores are divided by the threshold: 1.0 is the threshold for every model, and
    a map's location above 1.0 would alone make the image an anomaly.

    The Python surface follows scikit-learn's outlier detectors: ``score_samples``
    is higher for normal images, ``decision_function`` is negative for anomalies,
    ``predict`` gives +1 (normal) or -1 (anomaly). Forward passes go through the
    image featurizers' embedding cache: a second fit or scoring of the same images
    costs none.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        As for :class:`featurize.ImageFeaturizer`.
    weights : {"imagenet", None} or path-like, default="imagenet"
    method : {"patch", "global"}, default="patch"
    layers : None or list of (str or negative int), default=None
        Where patch features come from (``method="patch"``): None is the
        backbone's ``patch_layers`` (strides 8 and 16); maps of different sizes
        are brought to the finest grid and joined.
    input_size : int or (int, int), default=320
        Images are resized to this before the backbone; larger finds smaller
        defects, at the square of the cost.
    resize : {"stretch", "center_crop"}, default="stretch"
    coreset_ratio : float, default=0.05
        Share of the training patches the bank keeps (``method="patch"``).
    max_bank_bytes : int or None, default=16_000_000
        Cap on the bank (float32 bytes), whatever the number of training images:
        it decides the scoring speed and the model file's size.
    false_alarm_rate : float, default=0.05
        The share of normal images the threshold may call anomalies.
    holdout : float, default=0.2
        Share of the training images that set the threshold (the rest make the
        bank). The smallest rate it can guarantee is ``1 / (n_holdout + 1)``.
    random_state : int or None, default=None
        Seed of the hold-out split and the coreset.
    runtime, batch_size, decode_workers, max_pixels, cache, on_error, verbose
        As for :class:`featurize.ImageFeaturizer`. With ``on_error="nan"`` a
        training image that cannot be read is left out with a warning.

    Attributes
    ----------
    bank_ : ndarray of shape (n_bank, n_features)
        The memory bank (normal patches, or normal embeddings), sorted by cell.
    cells_ : (ndarray, ndarray) or None
        The bank's inverted file: k-means centroids of about sqrt(n_bank) cells
        and where each cell's rows start. A patch is compared with the rows of
        its 8 nearest cells (None: with every row, for small banks).
    grid_shape_ : (int, int, int)
        ``(height, width, channels)`` of an image's patch grid (``(1, 1, width)``
        for ``method="global"``).
    threshold_ : float
        The raw distance that scores 1.0.
    offset_ : float
        -1.0: ``decision_function = score_samples - offset_``.
    holdout_scores_ : ndarray
        The held-out normal images' scores (the threshold's sample).
    n_train_images_ : int
    backbone_ : str
    input_size_ : (int, int)

    Examples
    --------
    >>> import numpy as np
    >>> from featurize import AnomalyDetector
    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(128, 8, (24, 64, 64, 3)).clip(0, 255).astype(np.uint8)
    >>> detector = AnomalyDetector("mobilenet_v3_small", weights=None, input_size=64,
    ...                            holdout=0.5, false_alarm_rate=0.1, cache=None,
    ...                            random_state=0).fit(normal)
    >>> odd = normal[:1].copy(); odd[0, 20:40, 20:40] = 255
    >>> detector.predict(odd)
    array([-1])
    """

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="imagenet",
        method="patch",
        layers=None,
        input_size=DEFAULT_INPUT_SIZE,
        resize="stretch",
        coreset_ratio=DEFAULT_CORESET,
        max_bank_bytes=DEFAULT_BANK_BYTES,
        false_alarm_rate=0.05,
        holdout=0.2,
        random_state=None,
        runtime="auto",
        batch_size=None,
        decode_workers=None,
        max_pixels=DEFAULT_MAX_PIXELS,
        cache=True,
        on_error="raise",
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.method = method
        self.layers = layers
        self.input_size = input_size
        self.resize = resize
        self.coreset_ratio = coreset_ratio
        self.max_bank_bytes = max_bank_bytes
        self.false_alarm_rate = false_alarm_rate
        self.holdout = holdout
        self.random_state = random_state
        self.runtime = runtime
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.max_pixels = max_pixels
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    parameter_rules = ANOMALY_DETECTOR_RULES

    def _params(self) -> dict:
        params = validate(self, self.parameter_rules)
        for name in ("false_alarm_rate", "holdout", "coreset_ratio"):
            if params[name] <= 0:
                raise InvalidParameterError(
                    f"AnomalyDetector: `{name}` must be above 0; received "
                    f"{params[name]!r}."
                )
        if params["method"] == "global" and params["layers"] is not None:
            raise InvalidParameterError(
                "AnomalyDetector: `layers` is for method='patch'; method='global' "
                "uses the backbone's pooled embedding. Leave layers=None."
            )
        return params

    def featurizer(self):
        """The image featurizer whose rows this detector scores: a grid of patch
        features per image (``method="patch"``) or the pooled embedding."""
        params = self._params()
        shared = {
            name: params[name]
            for name in (
                "backbone", "weights", "input_size", "resize", "batch_size",
                "on_error", "max_pixels", "cache", "runtime", "decode_workers",
                "verbose",
            )
        }  # fmt: skip
        if params["method"] == "global":
            return ImageFeaturizer(**shared)
        return PatchFeaturizer(layers=params["layers"], **shared)

    # -- fitting

    def fit(self, X, y=None):
        """Learn what normal looks like from ``X`` (normal images only).

        Parameters
        ----------
        X : collection of images
            Anything :class:`featurize.ImageFeaturizer` takes; at least 2.
        y : ignored

        Returns
        -------
        self : AnomalyDetector
        """
        params = self._params()
        items = as_image_list(X)
        featurizer = self.featurizer()
        grid = _grid_shape(featurizer)
        rng = np.random.default_rng(params["random_state"])
        n = len(items)
        if n < 2:
            raise InvalidInputError(
                f"AnomalyDetector needs at least 2 normal images (one for the "
                f"bank, one for the threshold); received {n}."
            )
        n_held = min(max(int(round(params["holdout"] * n)), 1), n - 1)
        order = rng.permutation(n)
        held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])
        skipped: list[Failure] = []
        bank = self._bank(items, kept, featurizer, grid, params, rng, skipped)
        self.bank_, self.cells_ = inverted_file(bank, params["random_state"])
        self.grid_shape_ = grid
        self.threshold_ = 1.0  # the held-out images' raw distances, to set it from
        raw, failures = self._score(items, held, featurizer, on_error=None)
        skipped += failures
        raw = raw[~np.isnan(raw)]
        if not len(raw):
            raise InvalidInputError(
                "None of the held-out training images could be scored, so no "
                "threshold can be set: check the images (on_error='raise' names "
                "the first that fails)."
            )
        self.threshold_ = _conformal_threshold(raw, params["false_alarm_rate"])
        self.holdout_scores_ = (raw / self.threshold_).astype(np.float32)
        self.offset_ = -1.0
        self.n_train_images_ = n - len(skipped)
        self.backbone_ = featurizer.backbone_
        self.input_size_ = featurizer.input_size_
        if skipped:
            ordered = sorted(skipped, key=lambda f: f.index)
            warn_failures(failures_frame(ordered), n, None, "training images",
                          "were left out", stacklevel=2)  # fmt: skip
        return self

    def _bank(self, items, rows, featurizer, grid, params, rng, skipped) -> np.ndarray:
        """The coreset of the bank images' patches, one chunk of images at a time."""
        height, width, channels = grid
        cells = height * width
        ratio = 1.0 if params["method"] == "global" else params["coreset_ratio"]
        target = bank_rows(len(rows) * cells, ratio, params["max_bank_bytes"], channels)
        project = projection(channels, params["random_state"])
        per_chunk = max(1, CHUNK_PATCHES // cells)
        picked = []
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            result = featurizer.embed([items[i] for i in chunk])
            skipped += [f.at(chunk[f.index]) for f in failure_records(result)]
            patches = result.array[result.ok].reshape(-1, channels)
            share = int(round(target * len(chunk) / len(rows)))
            if len(patches) and share:
                keep = greedy_coreset(patches, share, project, rng)
                picked.append(patches[keep])
        if not picked:
            raise InvalidInputError(
                "None of the training images could be embedded: check the images "
                "(on_error='raise' names the first that fails)."
            )
        return np.ascontiguousarray(np.concatenate(picked), dtype=np.float32)

    # -- scoring

    def _score(self, items, rows, featurizer, on_error, maps=None):
        """Raw image scores of ``items[rows]`` (NaN where one failed), and failures;
        fills ``maps`` (a dict row -> grid) where given."""
        height, width, channels = self.grid_shape_
        per_chunk = max(1, CHUNK_PATCHES // (height * width))
        scores = np.full(len(rows), np.nan, np.float32)
        failures = []
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            result = featurizer.embed([items[i] for i in chunk], on_error=on_error)
            failures += [f.at(chunk[f.index]) for f in failure_records(result)]
            ok = np.flatnonzero(result.ok)
            if not len(ok):
                continue
            grids = anomaly.score_grids(
                result.array[ok],
                self.grid_shape_,
                self.bank_,
                self.threshold_,
                self.cells_,
            )
            scores[start + ok] = anomaly.image_scores(grids)
            if maps is not None:
                for k, grid in zip(ok, grids):
                    maps[int(chunk[k])] = grid
        return scores, failures

    def inspect(self, X, *, maps=False, on_error=None) -> Anomalies:
        """Score ``X`` and report on the call: scores, labels, maps, failures.

        Parameters
        ----------
        X : collection of images
        maps : bool, default=False
            Also return a map per image, at the image's own size.
        on_error : {"raise", "nan"}, optional
            Overrides the ``on_error`` parameter for this call only.

        Returns
        -------
        Anomalies
        """
        check_is_fitted(self, "bank_")
        if on_error is not None:
            self.parameter_rules["on_error"].check("on_error", on_error)
        items = as_image_list(X)
        featurizer = self.featurizer()
        grids = {} if maps else None
        scores, failures = self._score(
            items, np.arange(len(items)), featurizer, on_error, grids
        )
        # decision_function = 1 - score: an image exactly at the threshold is normal.
        labels = np.where(scores > 1.0, -1, 1)
        labels[np.isnan(scores)] = 0
        full = None
        if maps:
            full = [None] * len(items)
            for row, grid in grids.items():
                item = items[row]
                # A local file's size is in its header; a URL is fetched again.
                size = anomaly.image_size(fetch(item) if is_url(item) else item)
                full[row] = anomaly.full_size(grid, size)
        ordered = sorted(failures, key=lambda f: f.index)
        return Anomalies(
            scores=scores,
            labels=labels,
            maps=full,
            failures=failures_frame(ordered),
            errors=tuple(f.error for f in ordered),
        )

    def _checked(self, X) -> Anomalies:
        result = self.inspect(X)
        if len(result.failures):
            warn_failures(result.failures, len(result), "detector.inspect(X).failures")
        return result

    def score_samples(self, X) -> np.ndarray:
        """Normality of each image: minus its anomaly score (higher = more normal;
        the threshold is at -1.0)."""
        return -self._checked(X).scores

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for a normal image, -1 for an anomaly (0 for an image that failed
        under ``on_error="nan"``: neither was decided)."""
        return self._checked(X).labels

    def anomaly_maps(self, X) -> list:
        """One float32 map per image at its own size: higher = more anomalous, 1.0
        the threshold (constant over the image for ``method="global"``)."""
        return self.inspect(X, maps=True).maps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single column of paths
        tags.non_deterministic = self.random_state is None
        return tags


def _grid_shape(featurizer) -> tuple:
    featurizer.fit()
    if isinstance(featurizer, PatchFeaturizer):
        return featurizer.grid_shape_
    return (1, 1, featurizer.n_features_out_)


def _conformal_threshold(scores: np.ndarray, rate: float) -> float:
    """The ``ceil((n + 1)(1 - rate))``-th smallest score: a new exchangeable normal
    score exceeds it with probability at most ``rate`` (split conformal). With too
    few scores for ``rate``, the largest one, with a warning."""
    ordered = np.sort(scores)
    n = len(ordered)
    rank = math.ceil((n + 1) * (1 - rate))
    if rank > n:
        warnings.warn(
            f"{n} held-out normal images cannot guarantee a false-alarm rate of "
            f"{rate:g} (the smallest is 1/(n+1) = {1 / (n + 1):.3g}): the threshold "
            f"is their highest score. Train on more images or raise holdout.",
            UserWarning,
            stacklevel=3,
        )
        rank = n
    threshold = float(ordered[rank - 1])
    return threshold if threshold > 0 else float(np.finfo(np.float32).tiny)
