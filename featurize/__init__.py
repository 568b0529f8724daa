"""featurize: frozen pretrained Keras backbones as scikit-learn transformers.

Importing this package does not import Keras or any deep-learning framework: they load
on first use.
"""

from featurize._anomaly.detector import Anomalies, AnomalyDetector
from featurize._backbones.applications import (
    EfficientNetLite0,
    EfficientNetLite1,
    EfficientNetLite2,
)
from featurize._backbones.converted import weights_dir
from featurize._backbones.registry import (
    Backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)
from featurize._export.agreement import INT8_AGREEMENT
from featurize._export.export import FORMATS as EXPORT_FORMATS
from featurize._export.export import export, export_onnx
from featurize._export.folder import Export
from featurize._images.featurizer import ImageFeaturizer
from featurize._memory import release_models
from featurize._shared.cache import EmbeddingCache
from featurize._shared.labels import check_labels, missing_labels
from featurize._shared.model_files import load_model
from featurize._shared.results import Embeddings
from featurize._shared.versions import DISTRIBUTION as DISTRIBUTION  # the index name
from featurize._shared.versions import featurize_version
from featurize._standalone.anomaly import map_image as anomaly_map_image
from featurize._standalone.anomaly import overlay as anomaly_overlay
from featurize._standalone.serving import ExportFolderError
from featurize._standalone.serving import Model as ExportedModel
from featurize._texts.encoders import TextEncoder, get_text_encoder, list_text_encoders
from featurize._texts.featurizer import TextFeaturizer
from featurize._tuning.classifier import FineTunedClassifier
from featurize._tuning.text_classifier import FineTunedTextClassifier
from featurize.errors import (
    CacheUnavailableError,
    CacheWarning,
    ExportError,
    FeaturizeError,
    ImageDecodeError,
    ImageError,
    ImageReadError,
    ImageTooLargeError,
    InvalidInputError,
    InvalidLabelsError,
    InvalidParameterError,
    InvalidParameterTypeError,
    MissingDependencyError,
    ModelFileError,
    OutputPathError,
    QuantizationWarning,
    TableReadError,
    TextError,
    UnknownBackboneError,
    UnknownEncoderError,
    UnsafeModelFileError,
    UnsafeWeightsFileError,
    WeightsMismatchError,
    WeightsUnavailableError,
)

__version__ = featurize_version()

__all__ = [
    "Anomalies",
    "AnomalyDetector",
    "Backbone",
    "CacheUnavailableError",
    "CacheWarning",
    "EXPORT_FORMATS",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "EmbeddingCache",
    "Embeddings",
    "Export",
    "ExportError",
    "ExportFolderError",
    "ExportedModel",
    "FeaturizeError",
    "FineTunedClassifier",
    "FineTunedTextClassifier",
    "INT8_AGREEMENT",
    "ImageDecodeError",
    "ImageError",
    "ImageFeaturizer",
    "ImageReadError",
    "ImageTooLargeError",
    "InvalidInputError",
    "InvalidLabelsError",
    "InvalidParameterError",
    "InvalidParameterTypeError",
    "MissingDependencyError",
    "ModelFileError",
    "OutputPathError",
    "QuantizationWarning",
    "TableReadError",
    "TextEncoder",
    "TextError",
    "TextFeaturizer",
    "UnknownBackboneError",
    "UnknownEncoderError",
    "UnsafeModelFileError",
    "UnsafeWeightsFileError",
    "WeightsMismatchError",
    "WeightsUnavailableError",
    "__version__",
    "anomaly_map_image",
    "anomaly_overlay",
    "check_labels",
    "export",
    "export_onnx",
    "get_backbone",
    "get_text_encoder",
    "list_backbones",
    "list_text_encoders",
    "load_model",
    "missing_labels",
    "register_backbone",
    "release_models",
    "weights_dir",
]
