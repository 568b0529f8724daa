"""scikit-learn's own estimator checks on every public estimator, each expected
failure with its reason.

Most checks pass numeric feature columns as ``X``; featurize's estimators take
images or texts, so those fail with a message saying what was expected instead.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from featurize import (
    AnomalyDetector,
    FineTunedClassifier,
    FineTunedTextClassifier,
    ImageFeaturizer,
    TextFeaturizer,
)

# Checks that fit or transform on a numeric (n_samples, n_features) array.
_NUMERIC = (
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
)
_TRANSFORMER = (
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformers_unfitted_stateless",
)
_CLASSIFIER = (
    "check_class_weight_classifiers",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifiers_regression_target",
    "check_classifiers_train",
    "check_estimators_nan_inf",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_requires_y_none",
    "check_supervised_y_2d",
)
IMAGES = "the check passes numeric feature columns as X, which are not images"
TEXTS = "the check passes numbers as X, which are not texts"
IMAGE_WORDING = (
    "the check wants scikit-learn's own wording; ours says what an image batch is"
)
TEXT_WORDING = "the check wants scikit-learn's own wording; ours says what texts are"
FIT_ONLY_CHECKS_THE_CONTAINER = (
    "fit checks the container only: each value is checked, by row, when it is "
    "embedded (and may be missing under on_error='nan')"
)

IMAGE_FEATURIZER = {name: IMAGES for name in (*_NUMERIC, *_TRANSFORMER)} | {
    "check_complex_data": IMAGE_WORDING,
    "check_estimators_empty_data_messages": IMAGE_WORDING,
    "check_estimators_nan_inf": IMAGES,
    "check_fit2d_1sample": IMAGES,
    "check_fit2d_1feature": IMAGES,
}
TEXT_FEATURIZER = {name: TEXTS for name in (*_NUMERIC, *_TRANSFORMER)} | {
    "check_complex_data": FIT_ONLY_CHECKS_THE_CONTAINER,
    "check_estimators_empty_data_messages": TEXT_WORDING,
    "check_estimators_nan_inf": FIT_ONLY_CHECKS_THE_CONTAINER,
    "check_fit1d": FIT_ONLY_CHECKS_THE_CONTAINER,
    "check_fit2d_1sample": TEXT_WORDING,
}
FINE_TUNED = {name: IMAGES for name in (*_NUMERIC, *_CLASSIFIER)} | {
    "check_complex_data": IMAGE_WORDING,
    "check_estimators_empty_data_messages": IMAGE_WORDING,
}
FINE_TUNED_TEXT = {name: TEXTS for name in (*_NUMERIC, *_CLASSIFIER)} | {
    "check_estimators_empty_data_messages": TEXT_WORDING,
}
_OUTLIER = (
    "check_classifier_data_not_an_array",
    "check_estimators_nan_inf",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_outlier_contamination",
    "check_outlier_corruption",
    "check_outliers_fit_predict",
    "check_outliers_train",
)
ANOMALY = {name: IMAGES for name in (*_NUMERIC, *_OUTLIER)} | {
    "check_complex_data": IMAGE_WORDING,
    "check_estimators_empty_data_messages": IMAGE_WORDING,
}
EXPECTED = {
    "AnomalyDetector": ANOMALY,
    "FineTunedTextClassifier": FINE_TUNED_TEXT,
    "ImageFeaturizer": IMAGE_FEATURIZER,
    "TextFeaturizer": TEXT_FEATURIZER,
    "FineTunedClassifier": FINE_TUNED,
}


@parametrize_with_checks(
    [
        ImageFeaturizer("mobilenet_v3_small", weights=None, input_size=32),
        TextFeaturizer("glove_50d", cache=None),
        FineTunedClassifier(
            "mobilenet_v3_small",
            weights=None,
            input_size=32,
            epochs=1,
            batch_size=8,
            random_state=0,
        ),  # fmt: skip
        FineTunedTextClassifier(
            iterations=1, max_length=16, cache=None, random_state=0
        ),
        AnomalyDetector(
            "mobilenet_v3_small",
            weights=None,
            input_size=32,
            cache=None,
            random_state=0,
        ),  # fmt: skip
    ],
    expected_failed_checks=lambda estimator: EXPECTED[type(estimator).__name__],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
