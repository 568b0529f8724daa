"""The fine-tuned classifiers' parameter rules (and the fine-tuning-only rule
types)."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

from featurize._images.params import IMAGE_FEATURIZER_RULES, Layer
from featurize._shared.rules import Integer, Number, Options, Rule
from featurize._texts.params import TEXT_FEATURIZER_RULES
from featurize.errors import InvalidParameterError

# How a fine-tuning's learning rate falls to zero after its warm-up.
DECAYS = ("linear", "cosine")


@dataclass(frozen=True)
class LearningRate(Rule):
    """``"auto"`` or a positive number."""

    def check(self, name: str, value):
        if isinstance(value, str) and value == "auto":
            return value
        if isinstance(value, Real) and not isinstance(value, bool) and value > 0:
            return float(value)
        raise InvalidParameterError(
            f"`{name}` must be 'auto' or a positive number; received {value!r}."
        )

    def parse(self, text: str):
        return text if text == "auto" else float(text)


@dataclass(frozen=True)
class StagesToUnfreeze(Rule):
    """``"all"`` or how many stages, counted from the top, to train."""

    def check(self, name: str, value):
        if isinstance(value, str) and value == "all":
            return value
        if isinstance(value, Integral) and not isinstance(value, bool) and value >= 0:
            return int(value)
        raise InvalidParameterError(
            f"`{name}` must be 'all' or a number of stages >= 0 (0 trains the head "
            f"only); received {value!r}."
        )

    def parse(self, text: str):
        return text if text == "all" else int(text)


@dataclass(frozen=True)
class Augmentation(Rule):
    """A named recipe, None, or a list of Keras preprocessing layers."""

    values: tuple

    def check(self, name: str, value):
        if value is None or (isinstance(value, str) and value in self.values):
            return value
        if isinstance(value, (list, tuple)) and all(
            callable(layer) and hasattr(layer, "get_config") for layer in value
        ):
            return list(value)
        raise InvalidParameterError(
            f"`{name}` must be one of {list(self.values) + [None]} or a list of Keras "
            f"layers (e.g. [keras.layers.RandomFlip()]); received {value!r}."
        )

    accepts_none = True

    @property
    def choices(self) -> list[str]:
        return [*self.values, "none"]


@dataclass(frozen=True)
class ClassWeight(Rule):
    """None, ``"balanced"``, or a dict from class label to weight."""

    def check(self, name: str, value):
        if value is None or value == "balanced" or isinstance(value, dict):
            return value
        raise InvalidParameterError(
            f"`{name}` must be None, 'balanced' or a dict {{label: weight}}; "
            f"received {value!r}."
        )

    accepts_none = True


AUGMENTATIONS = ("light", "light_flip", "strong")
BATCHNORM_MODES = ("adabn", "adapt", "frozen")
HEAD_INITS = ("linear_probe", "random")
TEST_TIME_AUGMENTATIONS = (None, "flip", "auto")

# A fine-tuned classifier shares the featurizer's rules but these: its head sits on
# average-pooled features, and training sets its own batch size.
NOT_SHARED_WITH_FINE_TUNING = ("pooling", "batch_size")

FINE_TUNED_RULES = {
    **{
        name: rule
        for name, rule in IMAGE_FEATURIZER_RULES.items()
        if name not in NOT_SHARED_WITH_FINE_TUNING
    },
    "layer": Layer(
        auto=True,
        help="'auto' (final or penultimate stage, by the linear probe's "
        "cross-validated accuracy), 'none', a layer name, or -k",
    ),
    "unfreeze": StagesToUnfreeze(
        help="'all' or how many stages from the top to fine-tune"
    ),
    "unfreeze_every": Integer(
        0, help="epochs before one more stage is unfrozen (0: all at once)"
    ),
    "learning_rate": LearningRate(
        help="peak learning rate of the head ('auto': by the cut layer)"
    ),
    "lr_decay": Number(
        0.0,
        1.0,
        include_maximum=True,
        help="each stage's rate is the one above it times this",
    ),
    "warmup": Number(0.0, 1.0, help="fraction of the steps that warm the rate up"),
    "weight_decay": Number(0.0, help="AdamW weight decay (never on norms or biases)"),
    "batchnorm": Options(
        BATCHNORM_MODES,
        help="BatchNorm statistics stay ImageNet's, are re-estimated on the data "
        "before the probe (adabn), or that and then trained (adapt)",
    ),
    "augment": Augmentation(AUGMENTATIONS, help="on-device augmentation recipe"),
    "label_smoothing": Number(
        0.0, 1.0, help="share of each target spread over all classes"
    ),
    "tta": Options(
        TEST_TIME_AUGMENTATIONS,
        help="test-time augmentation: average each image and its mirror (flip), "
        "where the probe's cross-validation says it helps (auto), or none",
    ),
    "average_last": Number(
        0.0,
        1.0,
        include_maximum=True,
        help="fraction of the epochs, the last, whose weights are averaged (SWA)",
    ),
    "mixup": Number(0.0, help="MixUp's Beta concentration (0: off)"),
    "interpolation": Number(
        0.0,
        1.0,
        include_maximum=True,
        help="share of the fine-tuned weights kept, the rest the probe's start "
        "(WiSE-FT)",
    ),
    "head_init": Options(HEAD_INITS, help="start from a linear probe, or random"),
    "epochs": Integer(0, help="training epochs after the linear probe"),
    "batch_size": Integer(1, help="images per training step"),
    "validation_fraction": Number(
        0.0, 1.0, allow_none=True, help="held out for early stopping ('none': off)"
    ),
    "patience": Integer(1, allow_none=True, help="epochs without improvement"),
    "class_weight": ClassWeight(help="'balanced' or none"),
    "preload_bytes": Integer(0, help="decoded training images kept in memory"),
    "random_state": Integer(0, allow_none=True, help="seed for reproducible fits"),
}


# A fine-tuned text classifier reads texts as the featurizer does; the featurizer's
# batch size is its inference batch, and it never runs on onnxruntime while training.
TEXT_NOT_SHARED_WITH_FINE_TUNING = ("batch_size", "weights", "normalize", "runtime")

FINE_TUNED_TEXT_RULES = {
    **{
        name: rule
        for name, rule in TEXT_FEATURIZER_RULES.items()
        if name not in TEXT_NOT_SHARED_WITH_FINE_TUNING
    },
    "iterations": Integer(
        1,
        help="pair draws per text: each brings as many pairs of one class, and "
        "of two, as there are texts",
    ),
    "learning_rate": Number(1e-9, help="peak learning rate of the encoder"),
    "warmup": Number(0.0, 1.0, help="fraction of the steps that warm the rate up"),
    "decay": Options(DECAYS, help="how the rate falls to zero after the warm-up"),
    "weight_decay": Number(0.0, help="AdamW weight decay (never on norms or biases)"),
    "batch_size": Integer(1, help="pairs per training step"),
    "C": Number(1e-9, help="inverse regularisation of the logistic-regression head"),
    "class_weight": ClassWeight(help="'balanced' or none"),
    "random_state": Integer(0, allow_none=True, help="seed for reproducible fits"),
}
