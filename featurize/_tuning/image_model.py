"""What a fitted FineTunedClassifier does with its Keras model: predict, serve it as
Keras, bind a featurizer to its backbone, and pickle (the weights travel, the Keras
model is rebuilt)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from featurize import errors
from featurize._backbones.registry import get_backbone
from featurize._images.decode import as_image_list
from featurize._images.featurizer import ImageFeaturizer
from featurize._images.pixels import pixel_source
from featurize._shared.results import first_error
from featurize._shared.rules import validate
from featurize._tuning.loop import plot_history
from featurize._tuning.params import NOT_SHARED_WITH_FINE_TUNING


class FineTunedImageModel:
    """The fitted side of :class:`FineTunedClassifier` (its ``_tuned`` model, or
    the ``_saved_weights`` of an unpickled one, and its fitted attributes)."""

    def _model(self):
        check_is_fitted(self, "history_")
        tuned = getattr(self, "_tuned", None)
        if tuned is None:
            from featurize._tuning import model as tm

            params = validate(self, self.parameter_rules)
            backbone_weights, head_weights = self._saved_weights
            tuned = tm.build(
                get_backbone(self.backbone_),
                None,
                self.input_size_,
                self.layer_,
                params["precision"],
                len(self.classes_),
            )
            tuned.backbone.set_weights(backbone_weights)
            tuned.set_head_weights(head_weights)
            self._tuned, self._saved_weights = tuned, None
        return tuned

    def _proba(self, X, on_error=None):
        model = self._model()
        items = as_image_list(X)
        params = validate(self, self.parameter_rules)
        on_error = on_error or params["on_error"]
        source = pixel_source(params, self.input_size_)
        out = np.full((len(items), len(self.classes_)), np.nan, np.float32)
        failures = []
        from featurize._tuning.model import predictor

        predict = predictor(model, params, len(items), self._tta(params))
        for rows, pixels, bad in source.chunks(items):
            if bad and on_error == "raise":
                raise first_error(bad, "prediction")
            failures.extend(bad)
            out[rows.start : rows.stop] = predict(pixels.astype(np.float32))
        if failures:
            out[[f.index for f in failures]] = np.nan
        return out, failures

    def keras_model(self):
        """The fine-tuned Keras classifier: pixels in [0, 255] to probabilities.

        Preprocessing is inside (a frozen Dense layer over the channels), so
        ``clf.keras_model().save("model.keras")`` is a complete model for serving,
        loadable with plain ``keras.saving.load_model``; with ``tta="flip"`` it
        averages each image and its mirror image, as :meth:`predict_proba` does.
        """
        model = self._model()
        return model.serving(self._tta(validate(self, self.parameter_rules)))

    def _tta(self, params: dict):
        """The test-time augmentation predictions use: as set, or as fitted."""
        return self.tta_ if params["tta"] == "auto" else params["tta"]

    def to_featurizer(self, **params) -> ImageFeaturizer:
        """An :class:`ImageFeaturizer` bound to the fine-tuned backbone.

        The backbone's weights are written once to
        ``featurize.weights_dir() / "fine-tuned"``, named by their checksum; the
        featurizer loads that file, so its embedding-cache namespace is its own.

        Parameters
        ----------
        **params
            Featurizer parameters to set (``pooling``, ``batch_size``, ...); the
            backbone, weights, layer, input size and resize policy are the
            fine-tuned model's.
        """
        model = self._model()
        backbone = get_backbone(self.backbone_)
        if backbone.pretrained is not None and backbone.pretrained.fixed:
            raise errors.InvalidParameterError(
                f"Backbone {backbone.name!r} is a registered Keras model, which "
                f"always uses its own weights: use keras_model() instead."
            )
        from featurize._tuning import model as tm

        path = tm.save_backbone_weights(model, backbone.name)
        # What reads the inputs carries over; what defines the model is the tuned one.
        defined_here = ("backbone", "weights", "layer", "input_size", "resize")
        shared = {
            name: value
            for name, value in self.get_params().items()
            if name in ImageFeaturizer.parameter_rules
            and name not in defined_here
            and name not in NOT_SHARED_WITH_FINE_TUNING
        }
        return ImageFeaturizer(
            backbone.name,
            weights=str(path),
            layer=self.layer_,
            input_size=self.input_size_,
            resize=self.resize,
            **(shared | params),
        )

    def plot_history(self, ax=None):
        """Plot loss and validation accuracy per epoch, with the phases marked.

        Returns
        -------
        matplotlib.axes.Axes
        """
        check_is_fitted(self, "history_")
        return plot_history(
            self.history_, self.best_epoch_, f"Fine-tuning {self.backbone_}", ax
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        tuned = state.pop("_tuned", None)
        if tuned is not None:
            state["_saved_weights"] = (
                tuned.backbone.get_weights(),
                tuned.head_weights(),
            )
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._tuned = None
