"""One table of parameter rules: what each estimator parameter accepts.

The estimators validate their parameters from these rules (in ``fit``, never in
``__init__``), and the command line builds its options from the same rules: their
allowed values, their help, and the conversion of command-line text (``none`` means
None wherever None is allowed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from featurize._backbones import get_backbone
from featurize._text_encoders import get_text_encoder
from featurize.errors import InvalidParameterError


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What every rule knows besides its values: its help, and the facts the
    command line and the estimators read off it.

    Attributes
    ----------
    help : str
        One line for ``--help``.
    cli : bool
        Offered as a command-line option (where the command embeds).
    comparable : bool
        ``featurize search`` takes several comma-separated values to compare.
    shown : str or None
        How ``--help`` shows the default, where its value says little (None:
        the value itself).
    """

    help: str = ""
    cli: bool = True
    comparable: bool = False
    shown: str | None = None

    choices = None

    def from_text(self, text: str):
        """Command-line text to a value (checked by :meth:`check`)."""
        return text


@dataclass(frozen=True)
class Options(Rule):
    """One of a fixed set of values (None among them where it is allowed)."""

    values: tuple

    def check(self, name: str, value):
        if isinstance(value, bool) or value not in self.values:
            raise InvalidParameterError(
                f"`{name}` must be one of {list(self.values)}; received {value!r}."
            )
        return value

    def from_text(self, text: str):
        return None if text.lower() == "none" and None in self.values else text

    @property
    def choices(self) -> list[str]:
        """The values as typed on a command line."""
        return ["none" if v is None else str(v) for v in self.values]


@dataclass(frozen=True)
class Integer(Rule):
    """An integer of at least ``minimum``, or None where ``allow_none``."""

    minimum: int
    allow_none: bool = False

    def check(self, name: str, value):
        if value is None and self.allow_none:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, Integral)
            or value < self.minimum
        ):
            what = f"an integer >= {self.minimum}"
            if self.minimum == 1:
                what = "a positive integer"
            raise InvalidParameterError(
                f"`{name}` must be {what}{' or None' if self.allow_none else ''}; "
                f"received {value!r}."
            )
        return int(value)

    def from_text(self, text: str):
        if text.lower() == "none" and self.allow_none:
            return None
        return int(text)


@dataclass(frozen=True)
class InputSize(Rule):
    """None (the backbone's native size), an int, or ``(height, width)``."""

    def check(self, name: str, value):
        if value is None:
            return None
        if isinstance(value, Integral) and not isinstance(value, bool):
            value = (value, value)
        try:
            height, width = value
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"`{name}` must be None, an int or (height, width); received {value!r}."
            ) from None
        for side in (height, width):
            if isinstance(side, bool) or not isinstance(side, Integral) or side < 1:
                raise InvalidParameterError(
                    f"`{name}` must hold positive integers; received {value!r}."
                )
        return int(height), int(width)

    def from_text(self, text: str):
        if text.lower() == "none":
            return None
        height, _, width = text.lower().partition("x")
        return (int(height), int(width)) if width else int(height)


@dataclass(frozen=True)
class Layer(Rule):
    """None (the final feature map), a layer name, or a negative stage index.

    With ``auto``, also "auto": the estimator picks among its candidate layers.
    """

    auto: bool = False

    def check(self, name: str, value):
        if value == "auto" and not self.auto:
            raise InvalidParameterError(
                f"`{name}='auto'` is for FineTunedClassifier, which chooses the layer "
                f"by cross-validation; a featurizer needs None, a layer name or a "
                f"negative int."
            )
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, Integral) and not isinstance(value, bool) and value < 0:
            return int(value)
        raise InvalidParameterError(
            f"`{name}` must be None, a layer name or a negative int (-1 the last "
            f"stage, -2 the one before); received {value!r} of type "
            f"{type(value).__name__}."
        )

    def from_text(self, text: str):
        if text.lower() == "none":
            return None
        try:
            return int(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class Weights(Rule):
    """``"imagenet"``, None (random), or the path of a weights file."""

    def check(self, name: str, value):
        if value is None or isinstance(value, (str, os.PathLike)):
            return value
        raise InvalidParameterError(
            f"`{name}` must be 'imagenet', None or a path to a weights file; "
            f"received {value!r} of type {type(value).__name__}."
        )

    def from_text(self, text: str):
        return None if text.lower() == "none" else text


@dataclass(frozen=True)
class BackboneName(Rule):
    """A name in the backbone registry (case and separators ignored)."""

    def check(self, name: str, value):
        return get_backbone(value).name


@dataclass(frozen=True)
class EncoderName(Rule):
    """A name in the text-encoder registry (case and separators ignored)."""

    def check(self, name: str, value):
        return get_text_encoder(value).name


@dataclass(frozen=True)
class Boolean(Rule):
    """True or False (numpy booleans included)."""

    def check(self, name: str, value):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(
                f"`{name}` must be True or False; received {value!r}."
            )
        return bool(value)

    def from_text(self, text: str):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise InvalidParameterError(f"expected true or false; received {text!r}.")
        return text.lower() in ("true", "yes", "1")


@dataclass(frozen=True)
class Anything(Rule):
    """A value its own resolver checks (``cache``: True, None, a folder, a cache)."""

    def check(self, name: str, value):
        return value

    def from_text(self, text: str):
        return None if text.lower() == "none" else text


@dataclass(frozen=True)
class Number(Rule):
    """A number in ``[minimum, maximum]`` (``maximum`` excluded unless
    ``include_maximum``), or None where ``allow_none``."""

    minimum: float
    maximum: float = float("inf")
    include_maximum: bool = False
    allow_none: bool = False

    def check(self, name: str, value):
        if value is None and self.allow_none:
            return None
        ok = isinstance(value, Real) and not isinstance(value, bool)
        if ok:
            above = (
                value > self.maximum
                if self.include_maximum
                else (value >= self.maximum)
            )
            ok = value >= self.minimum and not above
        if not ok:
            close = "]" if self.include_maximum else ")"
            upper = "inf" if self.maximum == float("inf") else self.maximum
            raise InvalidParameterError(
                f"`{name}` must be a number in [{self.minimum}, {upper}{close}"
                f"{' or None' if self.allow_none else ''}; received {value!r}."
            )
        return float(value)

    def from_text(self, text: str):
        if text.lower() == "none" and self.allow_none:
            return None
        return float(text)


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

    def from_text(self, text: str):
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

    def from_text(self, text: str):
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

    def from_text(self, text: str):
        return None if text.lower() == "none" else text

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

    def from_text(self, text: str):
        return None if text.lower() == "none" else text


POOLINGS = ("avg", "max", "gem", None)
RESIZE_POLICIES = ("stretch", "center_crop")
# precision parameter -> Keras dtype policy
PRECISION_POLICIES = {"float32": "float32", "mixed": "mixed_bfloat16"}
ON_ERROR = ("raise", "nan")

# In the order the command line lists them.
IMAGE_FEATURIZER_RULES = {
    "backbone": BackboneName(help="a name from `featurize backbones`", comparable=True),
    "weights": Weights(help="'imagenet', 'none' (random) or a weights file"),
    "layer": Layer(
        help="'none' (final feature map), a layer name, or -k: the k-th stage "
        "output from the end",
        comparable=True,
    ),
    "pooling": Options(
        POOLINGS, help="spatial pooling ('none' flattens)", comparable=True
    ),
    "input_size": InputSize(help="N or HxW pixels", shown="the backbone's native size"),
    "resize": Options(RESIZE_POLICIES, help="how images are fitted to the input"),
    "precision": Options(
        tuple(PRECISION_POLICIES), help="'mixed': bfloat16 compute (GPUs)"
    ),
    "batch_size": Integer(1, allow_none=True, help="images per forward pass"),
    "decode_workers": Integer(0, allow_none=True, help="image decoding threads"),
    "max_pixels": Integer(1, allow_none=True, help="refuse larger images"),
    "cache": Anything(
        help="embedding cache folder, or 'none' (off)", shown="the default folder"
    ),
    # The commands decide these themselves (a bad image is reported, never fatal).
    "on_error": Options(
        ON_ERROR, help="a bad image raises, or gives a NaN row", cli=False
    ),
    "verbose": Anything(help="a progress bar when true", cli=False),
}


AUGMENTATIONS = ("light", "light_flip", "strong")
BATCHNORM_MODES = ("adapt", "frozen")
HEAD_INITS = ("linear_probe", "random")

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
        BATCHNORM_MODES, help="BatchNorm statistics adapt to the data, or stay"
    ),
    "augment": Augmentation(AUGMENTATIONS, help="on-device augmentation recipe"),
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


def validate(estimator, rules: dict) -> dict:
    """Check every parameter of ``estimator`` that has a rule; return them checked.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, what it received and what it accepts.
    """
    params = estimator.get_params(deep=False)
    try:
        return {name: rule.check(name, params[name]) for name, rule in rules.items()}
    except InvalidParameterError as error:
        raise type(error)(f"{type(estimator).__name__}: {error}") from None


LONG_TEXT_POLICIES = ("truncate", "chunks")

TEXT_FEATURIZER_RULES = {
    "encoder": EncoderName(help="a name from `featurize encoders`"),
    "batch_size": Integer(1, help="texts (token windows) per forward pass"),
    "max_length": Integer(
        3,
        allow_none=True,
        help="tokens read per text ('none': the encoder's limit)",
        shown="the encoder's limit",
    ),
    "long_text": Options(
        LONG_TEXT_POLICIES,
        help="longer texts are truncated, or embedded by windows and averaged",
    ),
    "normalize": Boolean(help="L2-normalise the embeddings", cli=False),
    "on_error": Options(
        ON_ERROR,
        help="a missing or non-text value raises, or gives a NaN row",
        cli=False,
    ),
    "cache": Anything(
        help="embedding cache folder, or 'none' (off)", shown="the default folder"
    ),
    "verbose": Anything(help="a progress bar when true", cli=False),
}
