"""featurize: frozen pretrained Keras backbones as scikit-learn transformers.

Importing this package does not import Keras or any deep-learning framework: they load
on first use.
"""

from importlib.metadata import PackageNotFoundError, version

from featurize._backbones import list_backbones, register_backbone
from featurize._cache import EmbeddingCache
from featurize._converted_weights import weights_dir
from featurize._efficientnet_lite import EfficientNetLite0
from featurize._featurizer import ImageFeaturizer
from featurize.errors import (
    FeaturizeError,
    ImageDecodeError,
    ImageError,
    ImageReadError,
    ImageTooLargeError,
    UnknownBackboneError,
    UnsafeWeightsFileError,
    WeightsUnavailableError,
)

try:
    __version__ = version("featurize")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "EfficientNetLite0",
    "EmbeddingCache",
    "FeaturizeError",
    "ImageDecodeError",
    "ImageError",
    "ImageFeaturizer",
    "ImageReadError",
    "ImageTooLargeError",
    "UnknownBackboneError",
    "UnsafeWeightsFileError",
    "WeightsUnavailableError",
    "__version__",
    "list_backbones",
    "register_backbone",
    "weights_dir",
]
