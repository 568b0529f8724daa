"""FineTunedClassifier: when frozen features are not enough, adapt the backbone."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from featurize import errors
from featurize._backbones.registry import get_backbone
from featurize._images.decode import DEFAULT_MAX_PIXELS, as_image_list
from featurize._images.featurizer import native_or
from featurize._images.pixels import Batches, pixel_source
from featurize._shared.cache import resolve_cache
from featurize._shared.labels import check_labels
from featurize._shared.results import failures_frame, first_error, merge_failures
from featurize._shared.rules import validate
from featurize._tuning.image_model import FineTunedImageModel
from featurize._tuning.loop import (
    Phase,
    averaged_from,
    epoch_bar,
    evaluate,
    fit_loop,
    fit_seed,
    mixed_weights,
    pooled_features,
    sample_weights,
    shuffled_batches,
    validation_split,
)
from featurize._tuning.mixup import MixedBatches
from featurize._tuning.outputs import ProbabilityOutputs
from featurize._tuning.params import FINE_TUNED_RULES
from featurize._tuning.probe import (
    adapted_probe_table,
    choose_probe,
    choose_tta,
    glorot,
    probe_embeddings,
    probe_row,
)

AUTO_LEARNING_RATES = {"final": 3e-4, "below": 1e-3}
HISTORY_COLUMNS = [
    "epoch", "phase", "unfrozen_stages", "lr_head", "lr_lowest", "loss",
    "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second",
]  # fmt: skip


class FineTunedClassifier(
    FineTunedImageModel, ProbabilityOutputs, ClassifierMixin, BaseEstimator
):
    """Fine-tune a pretrained backbone into an image classifier.

    The recipe, each step a parameter: (1) a linear probe initialises the head: the
    tuned frozen baseline (standardised, cached embeddings and logistic regression, its
    C and, for ``layer="auto"``, the cut layer chosen by cross-validation); (2) the
    backbone's stages are unfrozen from the top, one more every ``unfreeze_every``
    epochs, down to ``unfreeze``; (3) each stage learns at the rate of the one above it
    times ``lr_decay``; (4) AdamW, without weight decay on norms and biases, with a
    linear warm-up then cosine decay; (5) BatchNorm statistics adapt or stay frozen; (6)
    augmentation runs per batch inside the model; (7) a held-out fraction picks the best
    epoch (the linear probe itself included) and stops early; (8) the weights kept are
    halfway between the fine-tuned ones and the probe's start (WiSE-FT).

    Images are decoded and resized once, by the featurizer's decode threads, and
    kept as uint8 while they fit in ``preload_bytes``; above that they are decoded
    again for each batch.

    Parameters
    ----------
    backbone, weights, input_size, resize, on_error, max_pixels, cache, \
precision, runtime, decode_workers, verbose
        As for :class:`ImageFeaturizer` (``cache`` holds the linear probe's
        embeddings, shared with frozen models of the same backbone; ``runtime``
        runs the probe and :meth:`predict_proba`, not training). A bad image under
        ``on_error="nan"`` is left out of training (``fit_failures_``) and gets a
        row of NaN from :meth:`predict_proba`.
    layer : "auto", None, str or negative int, default="auto"
        The cut point, as for :class:`ImageFeaturizer`: the model is the backbone up
        to this layer, average-pooled, then the head. ``"auto"`` takes the final or
        the penultimate stage, whichever gives the linear probe the better
        cross-validated accuracy. With random weights, ``"auto"`` is the final
        layer.
    unfreeze : int or "all", default="all"
        How many stages, from the top, are fine-tuned (0: the head only).
    unfreeze_every : int, default=1
        Epochs before one more stage is unfrozen; 0 unfreezes them all at once.
    learning_rate : float or "auto", default="auto"
        Peak learning rate of the head. ``"auto"``: 3e-4 when the model is cut at
        the backbone's final layer, 1e-3 when it is cut below (with
        ``layer="auto"``: when the probe found the penultimate stage better, the
        final stage's ImageNet features not fitting the data); measured in
        BENCHMARKS.md, "Fine-tuning".
    lr_decay : float, default=0.5
        Each stage's rate is the rate of the stage above it times this (the top
        stage's is ``learning_rate * lr_decay``).
    warmup : float, default=0.1
        Fraction of the training steps over which the rate rises linearly to its
        peak, before a cosine decay to zero.
    weight_decay : float, default=0.01
        AdamW's decoupled weight decay, never applied to norms and biases.
    batchnorm : {"frozen", "adabn", "adapt"}, default="frozen"
        ``"frozen"``: BatchNorm layers stay in inference mode with ImageNet's
        statistics (the keras.io guide's advice); ``"adabn"``: every BatchNorm
        layer up to the cut takes the statistics of the training images once,
        before the linear probe is fitted on the features they give (AdaBN, Li
        et al. 2016), and keeps them; ``"adapt"``: as ``"adabn"``, then the
        BatchNorm layers of unfrozen stages train and update their statistics.
        Re-estimating first keeps the probe's head fitted to the features
        training starts from.
    augment : {"light", "light_flip", "strong"}, None or list of Keras layers, \
default="light"
        ``"light"``: rotation up to 18 degrees, zoom and shift up to 10% and 5%, no
        flips (a mirrored digit, letter or oriented part is another class);
        ``"light_flip"``: the same and horizontal flips (photos, textures);
        ``"strong"``: horizontal flip and RandAugment; None: no augmentation; or your
        own layers (copied for each fit).
    label_smoothing : float, default=0.0
        Targets of ``1 - label_smoothing`` for the true class and the rest spread
        evenly over all classes (Szegedy et al. 2016).
    tta : {None, "flip", "auto"}, default=None
        Test-time augmentation: ``"flip"`` predicts the mean of the
        probabilities of each image and its mirror image (twice the prediction
        cost; :meth:`keras_model` and exports include it); ``"auto"`` does so
        where the linear probe, cross-validated on the training images, predicts
        better that way (mirror-symmetric classes: textures, most photos; not
        digits or letters), see ``tta_cv_``. Read at prediction time, so it
        can be changed after fitting.
    average_last : float, default=0.0
        Keep the mean of the weights at the ends of this fraction of the epochs,
        the last ones (stochastic weight averaging, Izmailov et al. 2018), rather
        than the last epoch's; without a validation split only.
    mixup : float, default=0.0
        MixUp (Zhang et al. 2018): each training batch is mixed with a shuffled
        copy of itself, images and one-hot labels alike, by a weight drawn from
        Beta(mixup, mixup); 0 turns it off (0.2 is the paper's ImageNet value).
    interpolation : float, default=0.5
        Keep ``interpolation`` times the fine-tuned weights plus ``1 -
        interpolation`` times the ones training started from (the linear probe
        on the pretrained backbone): WiSE-FT (Wortsman et al. 2022), a weight-space
        ensemble of the frozen and the fine-tuned model at no cost at prediction.
        1 keeps the fine-tuned weights. 0.5 beat 1 on every draw it was chosen on
        (BENCHMARKS.md, "Fine-tuning under domain shift").
    head_init : {"linear_probe", "random"}, default="linear_probe"
        Start from a logistic regression fitted on the frozen embeddings (LP-FT,
        Kumar et al. 2022), or from a random head.
    epochs : int, default=10
        Training epochs after the linear probe (0 keeps the probe).
    batch_size : int, default=32
    validation_fraction : float or None, default=None
        Fraction of the training images (stratified) held out to choose the best
        epoch (the probe included) and stop early; None trains on every image for
        ``epochs`` and keeps the last (the default: on a few hundred images a
        held-out tenth is too small to choose by, and costs a tenth of the data).
    patience : int or None, default=3
        Stop after this many epochs without a better validation accuracy (ties
        broken by loss), counted once every stage is unfrozen; None never stops
        early.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss (and in the linear probe).
    preload_bytes : int, default=2**31
        Decoded training images are kept in memory up to this many bytes.
    random_state : int or None, default=None
        Seeds the validation split, shuffling, augmentation and a random head: the
        same seed gives the same predictions on a CPU.

    Attributes
    ----------
    classes_ : ndarray
    backbone_ : str
    layer_ : str
        The cut layer: the last one fine-tuned.
    input_size_ : (int, int)
    stages_ : list of str
        The backbone's stages up to ``layer_``, shallowest first.
    probe_cv_ : pandas.DataFrame
        The linear probe's choice: per candidate ``layer``, the best ``C`` and its
        ``cv_accuracy`` (5-fold, on at most 2,000 training images; NaN where a
        class has fewer than 2), which ``statistics`` the BatchNorm layers had
        (``"pretrained"``, or ``"re-estimated"`` for the probe refitted after
        AdaBN) and which was ``chosen``.
    tta_ : None or "flip"
        The test-time augmentation ``tta="auto"`` chose (else ``tta``).
    tta_cv_ : pandas.DataFrame or None
        For ``tta="auto"``: the probe's ``cv_accuracy`` and ``cv_log_loss`` on
        the held-out training images alone (``tta`` None) and averaged with their
        mirror images (``"flip"``), and which was ``chosen``.
    learning_rate_ : float
        The head's peak learning rate (``learning_rate``, or what ``"auto"``
        chose).
    stage_learning_rates_ : dict
        Peak learning rate of the head and of each fine-tuned stage.
    history_ : pandas.DataFrame
        One row per epoch (epoch 0 is the linear probe): ``phase``,
        ``unfrozen_stages``, ``lr_head`` and ``lr_lowest`` (the deepest unfrozen
        stage's rate) at the epoch's end, ``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy``, ``seconds`` and ``images_per_second`` (training).
    best_epoch_ : int
        The epoch whose weights were kept.
    fit_failures_ : pandas.DataFrame
        Training images that could not be used (``on_error="nan"``).

    Examples
    --------
    >>> import numpy as np
    >>> from featurize import FineTunedClassifier
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (8, 32, 32, 3), np.uint8)
    >>> clf = FineTunedClassifier("mobilenet_v3_small", weights=None, input_size=32,
    ...                           epochs=1, validation_fraction=None, random_state=0)
    >>> clf.fit(images, ["a", "b"] * 4).predict(images[:2]).shape
    (2,)
    """

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="imagenet",
        layer="auto",
        input_size=None,
        resize="stretch",
        unfreeze="all",
        unfreeze_every=1,
        learning_rate="auto",
        lr_decay=0.5,
        warmup=0.1,
        weight_decay=0.01,
        batchnorm="frozen",
        augment="light",
        label_smoothing=0.0,
        tta=None,
        average_last=0.0,
        mixup=0.0,
        interpolation=0.5,
        head_init="linear_probe",
        epochs=10,
        batch_size=32,
        validation_fraction=None,
        patience=3,
        class_weight=None,
        on_error="raise",
        max_pixels=DEFAULT_MAX_PIXELS,
        cache=True,
        precision="float32",
        runtime="auto",
        decode_workers=None,
        preload_bytes=2**31,
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.input_size = input_size
        self.resize = resize
        self.unfreeze = unfreeze
        self.unfreeze_every = unfreeze_every
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.batchnorm = batchnorm
        self.augment = augment
        self.label_smoothing = label_smoothing
        self.tta = tta
        self.average_last = average_last
        self.mixup = mixup
        self.interpolation = interpolation
        self.head_init = head_init
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.cache = cache
        self.precision = precision
        self.runtime = runtime
        self.decode_workers = decode_workers
        self.preload_bytes = preload_bytes
        self.random_state = random_state
        self.verbose = verbose

    parameter_rules = FINE_TUNED_RULES
    noun = "images"

    # -- fitting

    def fit(self, X, y):
        """Fit the linear probe, then fine-tune the backbone from the top.

        Parameters
        ----------
        X : collection of images
            As for :meth:`ImageFeaturizer.transform`.
        y : array-like of shape (n_images,)
            Class labels (any type).

        Returns
        -------
        self : FineTunedClassifier
        """
        from sklearn.preprocessing import LabelEncoder

        items = as_image_list(X)
        params = validate(self, self.parameter_rules)
        y = check_labels(y, len(items), what="images")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        codes = encoder.transform(y)
        backbone = get_backbone(params["backbone"])
        resolve_cache(params["cache"])  # validates
        size = native_or(params["input_size"], backbone)
        seed = fit_seed(params["random_state"])
        rng = np.random.default_rng(seed)
        source = pixel_source(params, size)

        from featurize._tuning import model as tm
        from featurize._tuning.schedule import rate

        started = time.perf_counter()
        probe = probe_embeddings(items, params, backbone, size)
        pixels, failures = source.training_images(
            items, params["preload_bytes"], probe[1] if probe else None
        )
        if failures and params["on_error"] == "raise":
            raise first_error(failures, "training")
        self.fit_failures_ = failures_frame(failures)
        usable = np.setdiff1d(np.arange(len(items)), [f.index for f in failures])
        if len(np.unique(codes[usable])) < 2:
            raise errors.InvalidInputError(
                "Fewer than 2 classes are left after skipping the images that "
                "could not be used; see fit_failures_."
            )
        train, val = validation_split(
            usable, codes, params["validation_fraction"], seed
        )
        sample_weight = sample_weights(codes, self.classes_, params["class_weight"])

        def data(rows):
            if pixels is not None:
                return pixels[rows], None
            return [items[i] for i in rows], source

        def build(layer):
            return tm.build(
                backbone,
                params["weights"],
                size,
                layer,
                params["precision"],
                len(self.classes_),
            )

        # -- 1. the cut layer and the head: a tuned linear probe on frozen features
        if probe is None:  # random weights: the probe must see this model's features
            layer = None if params["layer"] == "auto" else params["layer"]
            model = build(layer)
            features = pooled_features(model, data(train), params["batch_size"])
            candidates = {model.layer: features}
        else:
            candidates = {layer: found[train] for layer, found in probe[0].items()}
        choice = choose_probe(
            candidates, codes[train], sample_weight[train], len(self.classes_), seed
        )
        self.probe_cv_ = choice.table
        features = candidates[choice.layer]
        if probe is not None:
            model = build(choice.layer)
        if params["batchnorm"] != "frozen" and model.reestimate_batchnorm(
            shuffled_batches(data, train, params["batch_size"], seed)
        ):
            # AdaBN: the probe is fitted again on the re-estimated features, so that
            # the head starts where the adapted backbone's features are (a head
            # fitted on ImageNet's statistics no longer fits them).
            features = pooled_features(model, data(train), params["batch_size"])
            choice = choose_probe(
                {model.layer: features},
                codes[train],
                sample_weight[train],
                len(self.classes_),
                seed,
            )
            self.probe_cv_ = adapted_probe_table(self.probe_cv_, choice.table)
        self.tta_, self.tta_cv_ = params["tta"], None
        if params["tta"] == "auto":
            mirrored = pooled_features(
                model, data(train), params["batch_size"], mirror=True
            )
            self.tta_, self.tta_cv_ = choose_tta(
                features, mirrored, codes[train], sample_weight[train], choice.C, seed
            )
        if params["head_init"] == "linear_probe":
            kernel, bias = choice.kernel, choice.bias
        else:
            kernel, bias = glorot(rng, model.head.weights[0].shape)
        tm.initialise_head(model, choice.mean, choice.variance, kernel, bias)

        # -- 2. fine-tuning, phase by phase
        self.backbone_ = backbone.name
        self.layer_ = model.layer
        self.input_size_ = tuple(size)
        self.stages_ = list(model.stages)
        n_stages = len(model.stages)
        target = n_stages if params["unfreeze"] == "all" else params["unfreeze"]
        target = min(target, n_stages)
        self.learning_rate_ = params["learning_rate"]
        if self.learning_rate_ == "auto":
            cut = "final" if model.at_final_layer else "below"
            self.learning_rate_ = AUTO_LEARNING_RATES[cut]
        rates = [
            self.learning_rate_ * params["lr_decay"] ** depth
            for depth in range(n_stages + 1)
        ]
        self.stage_learning_rates_ = {"head": rates[0]} | {
            stage: rates[n_stages - k] for k, stage in enumerate(model.stages)
        }
        every = params["unfreeze_every"]
        train_pixels, train_source = data(train)
        batches = Batches(
            train_pixels,
            codes[train],
            sample_weight[train],
            params["batch_size"],
            rng,
            source=train_source,
        )
        if params["mixup"]:
            batches = MixedBatches(batches, params["mixup"], len(self.classes_), rng)
        steps = len(batches) * params["epochs"]
        warmup_steps = int(round(params["warmup"] * steps))
        val_data = data(val) if len(val) else None
        trainer = tm.training_model(model, params["augment"], seed)
        optimizers = tm.StageOptimizers(
            model, rates, params["weight_decay"], warmup_steps, steps
        )
        steps_per_epoch = len(batches)

        def phase(epoch: int) -> Phase:
            unfrozen = target if every == 0 else min(target, (epoch - 1) // every + 1)

            def start(epoch: int) -> None:
                model.set_trainable(unfrozen, params["batchnorm"])
                trainer.compile(
                    optimizer=optimizers.for_phase(
                        unfrozen, step=(epoch - 1) * steps_per_epoch
                    ),
                    loss=tm.classification_loss(
                        len(self.classes_),
                        params["label_smoothing"],
                        soft=bool(params["mixup"]),
                    ),
                    metrics=["accuracy"],
                )

            def columns(epoch: int) -> dict:
                step = epoch * steps_per_epoch
                return {
                    "phase": f"{unfrozen} stages",
                    "unfrozen_stages": unfrozen,
                    "lr_head": rate(rates[0], warmup_steps, steps, step),
                    "lr_lowest": rate(rates[unfrozen], warmup_steps, steps, step),
                }

            # Patience counts once every stage is unfrozen: epochs with only the
            # top stages training say nothing about what more would do.
            return Phase(unfrozen, start, columns, patient=unfrozen == target)

        alpha = params["interpolation"]
        probe_weights = model.classifier.get_weights() if alpha < 1 else None
        history, self.best_epoch_ = fit_loop(
            trainer,
            batches,
            epochs=params["epochs"],
            phase=phase,
            evaluate=lambda: evaluate(
                model, val_data, codes[val], params["batch_size"]
            ),
            weights=(model.classifier.get_weights, model.classifier.set_weights),
            validated=val_data is not None,
            patience=params["patience"],
            first=probe_row(
                evaluate(model, val_data, codes[val], params["batch_size"]),
                time.perf_counter() - started,
            ),
            bar=epoch_bar(params["epochs"], params["verbose"], backbone.name),
            average_from=averaged_from(params["epochs"], params["average_last"]),
        )
        if probe_weights is not None:  # WiSE-FT
            model.classifier.set_weights(
                mixed_weights(probe_weights, model.classifier.get_weights(), alpha)
            )
        if batches.late_failures:
            self.fit_failures_ = failures_frame(
                merge_failures(
                    failures, [f.at(train[f.index]) for f in batches.late_failures]
                )
            )
        import pandas as pd

        self.history_ = pd.DataFrame(history, columns=HISTORY_COLUMNS)
        self._tuned = model
        self._saved_weights = None
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single column of paths
        tags.non_deterministic = self.random_state is None
        return tags
