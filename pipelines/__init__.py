"""Ready-made scikit-learn pipelines, data loading and the ``featurize`` command."""

from pipelines._anomaly import Layout as AnomalyFolder
from pipelines._anomaly import pixel_auroc, read_anomaly_folder
from pipelines._audit.audit import Audit, audit_dataset
from pipelines._audit.findings import NEAR_THRESHOLDS
from pipelines._classifiers import make_image_classifier, make_text_classifier
from pipelines._data import list_splits, load_image_folder
from pipelines._embed import embed_dataset
from pipelines._labelling.select import next_to_label
from pipelines._labelling.spreading import Spread, spread_labels
from pipelines._manifests import read_manifest, read_text_table
from pipelines._neighbours import hnsw_index as neighbour_index
from pipelines._neighbours import nearest as nearest_neighbours
from pipelines._neighbours import search as search_neighbours
from pipelines._predict import Predictions, predict_rows, read_model
from pipelines._selection import compare_models, plot_comparison
from pipelines._similar import find_similar
from pipelines._tables import read_table
from pipelines._train import Trained, train_and_evaluate

__all__ = [
    "AnomalyFolder",
    "Audit",
    "NEAR_THRESHOLDS",
    "Predictions",
    "Spread",
    "Trained",
    "audit_dataset",
    "compare_models",
    "embed_dataset",
    "find_similar",
    "list_splits",
    "load_image_folder",
    "make_image_classifier",
    "make_text_classifier",
    "nearest_neighbours",
    "neighbour_index",
    "next_to_label",
    "pixel_auroc",
    "plot_comparison",
    "predict_rows",
    "read_manifest",
    "read_anomaly_folder",
    "read_model",
    "read_table",
    "read_text_table",
    "search_neighbours",
    "spread_labels",
    "train_and_evaluate",
]
