"""Ready-made scikit-learn pipelines, data loading and the ``featurize`` command."""

from pipelines._classifiers import make_image_classifier
from pipelines._data import list_splits, load_image_folder

__all__ = ["list_splits", "load_image_folder", "make_image_classifier"]
