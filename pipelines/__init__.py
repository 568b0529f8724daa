"""Ready-made scikit-learn pipelines, data loading and the ``featurize`` command."""

from pipelines._classifiers import make_image_classifier, make_text_classifier
from pipelines._data import list_splits, load_image_folder
from pipelines._embed import embed_dataset, read_manifest
from pipelines._selection import compare_models, plot_comparison

__all__ = [
    "compare_models",
    "embed_dataset",
    "list_splits",
    "load_image_folder",
    "make_image_classifier",
    "make_text_classifier",
    "plot_comparison",
    "read_manifest",
]
