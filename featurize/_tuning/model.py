"""The Keras side of fine-tuning: model, stages, per-stage optimizers, schedule.

Imported on first fit only (it imports Keras). The classifier is ``pixels ->
preprocessing -> backbone cut at the layer -> average pooling -> standardisation (fixed)
-> dense softmax head``; during training, augmentation layers run in front of it. The
model's layers are split into the backbone's stages (the stage outputs the registry
knows, cut included), so that training can unfreeze them from the top and give each its
own learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers, ops

from featurize._backbones.models import build_backbone, resolve_layer
from featurize._backbones.registry import Backbone
from featurize._backbones.stages import find_stages
from featurize._tuning.schedule import WarmupDecay

HEAD = "head"
STANDARDIZE = "standardize"
PREPROCESS = "preprocess"
AFFINE_TOLERANCE = 1e-4


@dataclass
class TuningModel:
    """The fine-tunable classifier and what training needs to know about it.

    Attributes
    ----------
    backbone : keras.Model
        The whole backbone (beyond the cut too), as the featurizer builds it.
    classifier : keras.Model
        Pixels in [0, 255] to class probabilities.
    stages : list of str
        Stage outputs up to the cut layer, shallowest first.
    stage_layers : list of list
        The backbone layers of each stage.
    at_final_layer : bool
        Whether the cut is the backbone's final feature map.
    """

    backbone: object
    classifier: object
    layer: str
    stages: list
    stage_layers: list
    at_final_layer: bool = True
    served: dict = field(default_factory=dict, repr=False)

    @property
    def head(self):
        return self.classifier.get_layer(HEAD)

    def head_weights(self) -> list:
        """The standardisation's mean, variance and count, then the head's."""
        standardize = self.classifier.get_layer(STANDARDIZE)
        return standardize.get_weights() + self.head.get_weights()

    def set_head_weights(self, arrays: list) -> None:
        standardize = self.classifier.get_layer(STANDARDIZE)
        standardize.set_weights(arrays[:3])
        # Normalization reads its statistics from the variables only after this.
        standardize.finalize_state()
        self.head.set_weights(arrays[3:])

    def set_trainable(self, n_unfrozen: int, batchnorm: str) -> None:
        """Train the head and the top ``n_unfrozen`` stages; freeze the rest.

        Frozen layers, and BatchNorm layers unless ``batchnorm="adapt"``, run in
        inference mode: their statistics stay as they are.
        """
        first = len(self.stages) - n_unfrozen
        for depth, stage_layers in enumerate(self.stage_layers):
            for layer in stage_layers:
                trainable = depth >= first
                if isinstance(layer, layers.BatchNormalization):
                    trainable = trainable and batchnorm == "adapt"
                layer.trainable = trainable

    def batchnorm_layers(self) -> list:
        """The BatchNorm layers up to the cut."""
        return [
            layer
            for stage_layers in self.stage_layers
            for layer in stage_layers
            if isinstance(layer, layers.BatchNormalization)
        ]

    def reestimate_batchnorm(self, pixel_batches) -> bool:
        """AdaBN (Li et al., 2016): every BatchNorm layer up to the cut takes the
        statistics of these images (the mean over the batches of each batch's own,
        as torch's ``update_bn``), in place of pretraining's; False where there
        is none.

        ``pixel_batches`` yields float32 pixel batches in [0, 255].
        """
        norms = self.batchnorm_layers()
        if not norms:
            return False
        # Compiled, not eager: eager training-mode calls left 2.5 GB allocated
        # (Lite0, 400 images). With momentum 0 a call leaves each batch's own
        # statistics in the moving ones, which are averaged here.
        forward = _TrainingForward(pooled_model(self))
        saved = [(layer.trainable, layer.momentum) for layer in norms]
        sums = [[0.0, 0.0] for _ in norms]
        n_batches = 0
        for layer in norms:
            layer.trainable = True  # a frozen BatchNorm never updates its statistics
            layer.momentum = 0.0
        try:
            for batch in pixel_batches:
                forward.predict_on_batch(batch)
                for total, layer in zip(sums, norms):
                    total[0] += ops.convert_to_numpy(layer.moving_mean)
                    total[1] += ops.convert_to_numpy(layer.moving_variance)
                n_batches += 1
        finally:
            for layer, (trainable, momentum) in zip(norms, saved):
                layer.trainable, layer.momentum = trainable, momentum
        for (mean, variance), layer in zip(sums, norms):
            layer.moving_mean.assign(mean / n_batches)
            layer.moving_variance.assign(variance / n_batches)
        return True

    def serving(self, tta):
        """The classifier as predictions use it: for ``tta="flip"``, the mean of
        its probabilities for each image and its mirror image."""
        if tta is None:
            return self.classifier
        if tta not in self.served:
            inputs = keras.Input(self.classifier.inputs[0].shape[1:], name="pixels")
            mirrored = self.classifier(_mirror_layer(inputs.shape[2])(inputs))
            outputs = layers.Average(name="tta")([self.classifier(inputs), mirrored])
            self.served[tta] = keras.Model(inputs, outputs, name=self.classifier.name)
        return self.served[tta]

    def variable_depths(self) -> dict[int, int]:
        """``id(variable)`` -> 0 for the head, k for the k-th stage from the top."""
        depths = {id(v): 0 for v in self.head.weights}
        n_stages = len(self.stages)
        for index, stage_layers in enumerate(self.stage_layers):
            for layer in stage_layers:
                for variable in layer.weights:
                    depths[id(variable)] = n_stages - index
        return depths


def build(
    backbone: Backbone,
    weights,
    input_size: tuple[int, int],
    layer,
    precision: str,
    n_classes: int,
) -> TuningModel:
    """Build a fresh (never shared) backbone and the classifier around it."""
    full = build_backbone(backbone, weights, input_size, precision)
    if full is backbone.constructor:  # a registered model: train a copy, not it
        copy = keras.models.clone_model(full)
        copy.set_weights(full.get_weights())
        full = copy
    stages = find_stages(full)
    names = [x.name for x in full.layers]
    cut = resolve_layer(layer, tuple(stages), names, backbone.name)
    position = {name: i for i, name in enumerate(names)}
    stages = [s for s in stages if position[s] < position[cut]] + [cut]
    bounds = [position[s] for s in stages]
    stage_layers = [[] for _ in stages]
    for i, x in enumerate(full.layers[1 : position[cut] + 1], start=1):
        stage_layers[next(k for k, end in enumerate(bounds) if i <= end)].append(x)
    features = keras.Model(full.inputs, full.get_layer(cut).output, name="features")

    inputs = keras.Input((*input_size, 3), name="pixels")
    x = _preprocess_layer(backbone)(inputs)
    x = features(x)
    x = layers.GlobalAveragePooling2D(name="pool", dtype="float32")(x)
    x = ops.cast(x, "float32")
    # The probe's StandardScaler, kept as a fixed layer rather than folded into the
    # head: Adam's steps then have the same scale for every feature.
    x = layers.Normalization(axis=-1, name=STANDARDIZE, dtype="float32")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name=HEAD, dtype="float32")(
        x
    )
    classifier = keras.Model(inputs, outputs, name=f"{backbone.name}_fine_tuned")
    final = resolve_layer(None, tuple(find_stages(full)), names, backbone.name)
    return TuningModel(full, classifier, cut, stages, stage_layers, cut == final)


def _preprocess_layer(backbone: Backbone):
    """The backbone's ``preprocess_input`` as a frozen Dense layer over channels.

    Every registry preprocessing (caffe, tf, torch, (x-127)/128, none) is an
    affine map of the three channels, so a serialisable Dense layer computes it
    exactly and a saved ``.keras`` file needs no custom code. A preprocessing that
    is not affine (a registered custom function) stays a Lambda layer.
    """
    function = backbone.preprocess_function()
    basis = np.array([[[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]]], np.float32)
    probe = np.random.default_rng(0).uniform(0, 255, (1, 2, 8, 3)).astype(np.float32)
    try:
        mapped = np.asarray(function(basis.copy()), np.float64)[0, 0]
        bias, kernel = mapped[0], mapped[1:] - mapped[0]
        expected = probe.astype(np.float64) @ kernel + bias
        affine = np.allclose(
            np.asarray(function(probe.copy()), np.float64),
            expected,
            rtol=AFFINE_TOLERANCE,
            atol=AFFINE_TOLERANCE * max(1.0, float(np.abs(expected).max())),
        )
    except Exception:
        affine = False
    if not affine:
        return layers.Lambda(function, name=PREPROCESS)
    dense = layers.Dense(3, name=PREPROCESS, trainable=False, dtype="float32")
    dense.build((None, 3))
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return dense


class _TrainingForward(keras.Model):
    """``model`` called in training mode by ``predict_on_batch`` (compiled)."""

    def __init__(self, model):
        super().__init__(name="training_forward")
        self.inner = model

    def call(self, inputs):
        return self.inner(inputs, training=True)


def _mirror_layer(width: int):
    """A horizontal flip as built-in layers (a fixed permutation matrix over the
    width axis): a saved ``.keras`` file then needs no custom code, and ONNX and
    LiteRT convert it. Multiplying by 1 and adding zeros is exact in float32."""
    dense = layers.Dense(width, use_bias=False, trainable=False, dtype="float32")
    dense.build((None, width))
    dense.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    return keras.Sequential(
        [layers.Permute((1, 3, 2)), dense, layers.Permute((1, 3, 2))], name="mirror"
    )


def classification_loss(n_classes: int, label_smoothing: float, soft: bool = False):
    """Cross-entropy of integer labels (or of ``soft`` targets, one row per input),
    smoothed by ``label_smoothing`` (Keras smooths only one-hot labels)."""
    if not label_smoothing and not soft:
        return "sparse_categorical_crossentropy"
    cross_entropy = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing
    )

    def loss(labels, probabilities):
        if not soft:
            codes = ops.cast(ops.reshape(labels, (-1,)), "int32")
            labels = ops.one_hot(codes, n_classes)
        return cross_entropy(labels, probabilities)

    return loss


class StageOptimizers:
    """One AdamW per depth (head, top stage, ...), kept for the whole fit.

    A depth's optimizer is created when its stage is first unfrozen; each phase wraps
    the ones created so far in a ``MultiOptimizer``. Keeping them matters: a fresh
    Adam's first steps move every weight by about its full rate (bias correction),
    and at 1e-3 that undid the head at every phase change (digits: training loss
    0.06 to 0.55 when the second stage was unfrozen).

    ``rates[d]`` is the peak rate at depth ``d``. Weight decay never applies to
    norms and biases (the 1-D variables).
    """

    def __init__(
        self,
        model: TuningModel,
        rates: list[float],
        weight_decay: float,
        warmup_steps: int,
        total_steps: int,
    ):
        self.model = model
        self.rates = list(rates)
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.depths = model.variable_depths()
        self.optimizers: list = []

    def for_phase(self, n_unfrozen: int, step: int):
        """The optimizer for training the head and the top ``n_unfrozen`` stages,
        from global step ``step`` on."""
        no_decay = [
            v
            for v in self.model.classifier.weights
            if id(v) in self.depths and len(v.shape) <= 1
        ]
        while len(self.optimizers) <= n_unfrozen:
            rate = self.rates[len(self.optimizers)]
            optimizer = keras.optimizers.AdamW(
                learning_rate=WarmupDecay(
                    rate, self.warmup_steps, self.total_steps, step
                ),
                weight_decay=self.weight_decay,
            )
            optimizer.exclude_from_weight_decay(var_list=no_decay)
            self.optimizers.append(optimizer)
        optimizers, depths = self.optimizers, self.depths
        return keras.optimizers.MultiOptimizer(lambda v: optimizers[depths[id(v)]])


def initialise_head(
    model: TuningModel, mean, variance, kernel: np.ndarray, bias: np.ndarray
) -> None:
    """Set the standardisation (fixed) and the head (trained) before training."""
    arrays = [mean, variance, np.array(1.0), kernel, bias]
    model.set_head_weights([np.asarray(a, np.float32) for a in arrays])


def pooled_model(model: TuningModel):
    """Pixels to pooled backbone features (for a probe without a cache)."""
    return keras.Model(
        model.classifier.inputs, model.classifier.get_layer("pool").output
    )


def augmentation_layers(augment, seed: int) -> list:
    """The layers of an ``augment`` recipe (fresh layers, seeded)."""
    if augment is None:
        return []
    light = [
        layers.RandomRotation(0.05, seed=seed + 1),
        layers.RandomZoom(0.1, seed=seed + 2),
        layers.RandomTranslation(0.05, 0.05, seed=seed + 3),
    ]
    if augment == "light":
        return light
    if augment == "light_flip":
        return [layers.RandomFlip("horizontal", seed=seed), *light]
    if augment == "strong":
        return [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandAugment(value_range=(0, 255), seed=seed + 1),
        ]
    return [layer.__class__.from_config(layer.get_config()) for layer in augment]


def training_model(model: TuningModel, augment, seed: int):
    """Augmentation in front of the classifier (active only while training)."""
    inputs = keras.Input(model.classifier.inputs[0].shape[1:], name="pixels")
    x = inputs
    for layer in augmentation_layers(augment, seed):
        x = layer(x)
    return keras.Model(inputs, model.classifier(x), name="training")


def save_backbone_weights(model: TuningModel, name: str):
    """Write the tuned backbone's weights once, named by their checksum, to
    ``weights_dir() / "fine-tuned"``; return the file's path."""
    import hashlib
    import os

    from featurize._backbones.converted import weights_dir

    digest = hashlib.sha256()
    for array in model.backbone.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    folder = weights_dir() / "fine-tuned"
    path = folder / f"{name}-{digest.hexdigest()[:20]}.weights.h5"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{path.name}.{os.getpid()}.weights.h5"
        model.backbone.save_weights(partial)
        os.replace(partial, path)
    return path


def predictor(model: TuningModel, params: dict, n_images: int, tta):
    """Pixels -> probabilities by Keras, or by onnxruntime (``runtime``); ``tta`` as
    for :meth:`TuningModel.serving`."""
    from featurize._onnx.convert import classifier_graph
    from featurize._onnx.runtime import choose, ready, run, session

    network = model.serving(tta)

    def keras_predict(pixels):
        return network.predict(pixels, batch_size=params["batch_size"], verbose=0)

    chosen = choose(
        params["runtime"],
        n_images,
        ready(network, None),
        precision=params["precision"],
    )
    if chosen == "keras":
        return keras_predict
    height, width = network.input_shape[1:3]
    probe = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3))
    made = session(
        network,
        None,
        lambda: classifier_graph(network),
        (probe.astype(np.float32),),
        keras_predict,
    )
    size = params["batch_size"]

    def onnx_predict(pixels):
        # Batch by batch: onnxruntime's arena keeps the largest activations it
        # has held (a 256-image chunk of Lite0 at 224 px kept 3.7 GB).
        return np.concatenate(
            [run(made, pixels[k : k + size]) for k in range(0, len(pixels), size)]
        )

    return onnx_predict
