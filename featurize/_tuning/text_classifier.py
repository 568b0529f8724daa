"""FineTunedTextClassifier: a sentence encoder adapted to a few labelled texts."""

from __future__ import annotations

import math
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from featurize import errors
from featurize._shared.labels import check_labels
from featurize._shared.results import Failure, failure_records, failures_frame
from featurize._shared.rules import validate
from featurize._texts.encoders import get_text_encoder, load_encoder
from featurize._texts.featurizer import TextFeaturizer
from featurize._texts.values import as_text_list, check_text
from featurize._tuning.loop import (
    Phase,
    epoch_bar,
    fit_loop,
    fit_seed,
    sample_weights,
)
from featurize._tuning.outputs import ProbabilityOutputs
from featurize._tuning.params import (
    FINE_TUNED_TEXT_RULES,
    TEXT_NOT_SHARED_WITH_FINE_TUNING,
)

HISTORY_COLUMNS = [
    "epoch", "phase", "lr", "loss", "accuracy", "seconds", "pairs_per_second",
]  # fmt: skip
NOT_VALIDATED = {"val_loss": math.nan, "val_accuracy": math.nan}


class FineTunedTextClassifier(ProbabilityOutputs, ClassifierMixin, BaseEstimator):
    """Fine-tune a sentence encoder on pairs of a few labelled texts, then fit a
    logistic-regression head on its embeddings (SetFit's recipe, in Keras).

    The recipe, each step a parameter: (1) every ``iteration`` brings as many
    pairs of two texts of one class as there are texts, and as many of two classes
    (positives and negatives balanced; with few texts, every possible pair recurs
    as evenly as it can, in a seeded order); (2) the encoder learns to give the
    first pairs cosine similarity 1 and the second 0 (mean squared error, SetFit's
    ``CosineSimilarityLoss``), with the checkpoint's dropout as in pretraining,
    AdamW at a low rate, the gradient's norm clipped to 1, a linear warm-up then
    decay, on the same training loop as :class:`FineTunedClassifier`; (3) a
    logistic regression is fitted on the tuned encoder's normalised embeddings of
    the training texts. Texts never seen in a pair embed as any other text.

    Parameters
    ----------
    encoder, max_length, long_text, on_error, cache, verbose
        As for :class:`TextFeaturizer` (a Transformer encoder: word vectors have
        nothing to fine-tune). Training reads each text's first ``max_length``
        tokens; ``long_text`` applies when the tuned encoder embeds. A bad text
        under ``on_error="nan"`` is left out of training (``fit_failures_``) and
        gets a row of NaN from :meth:`predict_proba`. ``cache`` holds the tuned
        encoder's embeddings under its own namespace (its weights' checksum).
    iterations : int, default=20
        Pairs per text (SetFit's ``num_iterations``): ``2 * iterations * n_texts``
        pairs in all, one pass each. Each iteration is one row of
        ``history_`` and one step of the progress bar.
    learning_rate : float, default=1.6e-4
        Peak learning rate of the encoder. SetFit's ``body_learning_rate``, 2e-5,
        leaves MiniLM's pair loss far from converged after 20 iterations; this
        rate was chosen on emotion's validation split among 2e-5 to 3.2e-4
        (BENCHMARKS.md, "Text fine-tuning").
    warmup : float, default=0.1
        Fraction of the training steps over which the rate rises linearly to its
        peak.
    decay : {"linear", "cosine"}, default="linear"
        How the rate then falls to zero (SetFit's trainer: linear).
    weight_decay : float, default=0.01
        AdamW's decoupled weight decay, never applied to norms and biases.
    batch_size : int, default=16
        Pairs per training step.
    C : float, default=1.0
        Inverse regularisation of the logistic-regression head (scikit-learn's
        default, as SetFit's head; the tuned training texts are separated almost
        perfectly, so cross-validating C on them would choose by little).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the pair loss (a pair weighs as the mean of
        its two texts') and in the head.
    random_state : int or None, default=None
        Seeds the pairs, their order and dropout: the same seed gives the same
        predictions on a CPU.

    Attributes
    ----------
    classes_ : ndarray
    encoder_ : str
        Canonical name of the encoder.
    max_length_ : int
        Tokens read per text.
    head_ : sklearn.linear_model.LogisticRegression
        The head, on the tuned encoder's normalised embeddings.
    history_ : pandas.DataFrame
        One row per iteration (epoch 0 is the encoder before training): ``phase``,
        ``lr`` (the rate at the iteration's end), ``loss``, ``accuracy`` (the share
        of pairs whose similarity is on the right side of 0.5), ``seconds`` and
        ``pairs_per_second``.
    fit_failures_ : pandas.DataFrame
        Training texts that could not be used (``on_error="nan"``).

    Examples
    --------
    >>> from featurize import FineTunedTextClassifier
    >>> texts = ["win a free prize now", "call now to claim cash", "see you at six",
    ...          "lunch tomorrow?"]
    >>> clf = FineTunedTextClassifier(iterations=1, cache=None, random_state=0)
    >>> clf.fit(texts, ["spam", "spam", "ham", "ham"]).predict(["free cash"]).shape
    (1,)
    """

    def __init__(
        self,
        encoder="minilm_l6",
        *,
        iterations=20,
        learning_rate=1.6e-4,
        warmup=0.1,
        decay="linear",
        weight_decay=0.01,
        batch_size=16,
        C=1.0,
        class_weight=None,
        max_length=None,
        long_text="truncate",
        on_error="raise",
        cache=True,
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.warmup = warmup
        self.decay = decay
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.C = C
        self.class_weight = class_weight
        self.max_length = max_length
        self.long_text = long_text
        self.on_error = on_error
        self.cache = cache
        self.random_state = random_state
        self.verbose = verbose

    parameter_rules = FINE_TUNED_TEXT_RULES
    noun = "texts"

    # -- fitting

    def fit(self, X, y):
        """Fine-tune the encoder on pairs of the training texts, then fit the head.

        Parameters
        ----------
        X : collection of texts
            As for :meth:`TextFeaturizer.transform`.
        y : array-like of shape (n_texts,)
            Class labels (any type); at least two classes, and any number of texts
            per class (one pairs with itself).

        Returns
        -------
        self : FineTunedTextClassifier
        """
        from sklearn.preprocessing import LabelEncoder

        started = time.perf_counter()
        values, row_labels = as_text_list(X)
        params = validate(self, self.parameter_rules)
        y = check_labels(y, len(values), what="texts")
        check_classification_targets(y)
        row = get_text_encoder(params["encoder"])
        if row.kind != "transformer":
            raise errors.InvalidParameterError(
                f"FineTunedTextClassifier fine-tunes a Transformer encoder; "
                f"{row.name!r} is {row.kind.replace('_', ' ')}, which has no network "
                f"to train. Use encoder='minilm_l6', or TextFeaturizer({row.name!r}) "
                f"with a classifier."
            )
        _, _, length = self._frozen(params)._settings()
        texts, failures = [], []
        for index, value in enumerate(values):
            try:
                texts.append(
                    check_text(value, index, row_labels and row_labels[index])[0]
                )
            except errors.TextError as error:
                if params["on_error"] == "raise":
                    raise
                failures.append(Failure(index, repr(value)[:80], error))
        self.fit_failures_ = failures_frame(failures)
        usable = np.setdiff1d(np.arange(len(values)), [f.index for f in failures])
        encoder_labels = LabelEncoder().fit(y)
        self.classes_ = encoder_labels.classes_
        codes = encoder_labels.transform(y)[usable]
        if len(np.unique(codes)) < 2:
            raise errors.InvalidLabelsError(
                f"FineTunedTextClassifier needs texts of at least two classes to "
                f"contrast; received {len(usable)} usable texts, all labelled "
                f"{self.classes_[codes[0]]!r}."
                if len(usable)
                else "FineTunedTextClassifier: no usable training text; see "
                "fit_failures_."
            )
        seed = fit_seed(params["random_state"])
        rng = np.random.default_rng(seed)
        weights = sample_weights(codes, self.classes_, params["class_weight"])
        encoder = load_encoder(row)
        windows = [encoder.windows(ids, length)[0] for ids in encoder.token_ids(texts)]

        from featurize._tuning.contrastive import pair_trainer
        from featurize._tuning.pairs import PairBatches
        from featurize._tuning.schedule import rate

        model = encoder.trainable_copy(seed)
        batches = PairBatches(windows, codes, weights, params["batch_size"], rng)
        steps = len(batches) * params["iterations"]
        warmup_steps = int(round(params["warmup"] * steps))
        peak, decay = params["learning_rate"], params["decay"]
        trainer = pair_trainer(
            model, peak, params["weight_decay"], warmup_steps, steps, decay
        )

        def columns(epoch: int) -> dict:
            now = rate(peak, warmup_steps, steps, epoch * len(batches), decay)
            return {"phase": "contrastive", "lr": now}

        history, _ = fit_loop(
            trainer,
            batches,
            epochs=params["iterations"],
            phase=lambda epoch: Phase("contrastive", lambda epoch: None, columns),
            evaluate=lambda: NOT_VALIDATED,
            weights=(model.get_weights, model.set_weights),
            validated=False,
            patience=None,
            first={
                "epoch": 0,
                "phase": "pretrained",
                "lr": 0.0,
                "loss": math.nan,
                "accuracy": math.nan,
                "seconds": time.perf_counter() - started,
                **NOT_VALIDATED,
            },  # fmt: skip
            bar=epoch_bar(params["iterations"], params["verbose"], row.name),
            unit="pairs",
        )
        import pandas as pd

        from featurize._texts.tuned import save_tuned_encoder

        self.encoder_ = row.name
        self.max_length_ = length
        self.history_ = pd.DataFrame(history, columns=HISTORY_COLUMNS)
        self._weights_path, self._digest = save_tuned_encoder(model, row.name)
        self._tensors = None
        del trainer, model
        from sklearn.linear_model import LogisticRegression

        features = self.to_featurizer(on_error="raise").transform(texts)
        # Fitted on the labels themselves: head_ is then an ordinary scikit-learn
        # head whose classes_ are ours (what `featurize predict` reads).
        self.head_ = LogisticRegression(C=params["C"], max_iter=5000).fit(
            features, self.classes_[codes], sample_weight=weights
        )
        return self

    def _frozen(self, params: dict) -> TextFeaturizer:
        """A featurizer of the encoder as this classifier reads texts."""
        shared = {
            name: value
            for name, value in params.items()
            if name in TextFeaturizer.parameter_rules
            and name not in TEXT_NOT_SHARED_WITH_FINE_TUNING
        }
        return TextFeaturizer(**shared)

    # -- using the fitted model

    def to_featurizer(self, **params) -> TextFeaturizer:
        """A :class:`TextFeaturizer` of the fine-tuned encoder.

        Its weights are written once to ``featurize.weights_dir() / "fine-tuned"``,
        named by their checksum (again after loading elsewhere); the featurizer
        reads that file, so its embedding-cache namespace is its own.

        Parameters
        ----------
        **params
            Featurizer parameters to set (``batch_size``, ``runtime``, ...); the
            encoder and its weights are the fine-tuned ones.
        """
        check_is_fitted(self, "history_")
        from featurize._texts.tuned import ensure_tuned_encoder

        self._weights_path = ensure_tuned_encoder(
            self._weights_path, self._digest, self._tensors, self.encoder_
        )
        self._tensors = None
        settings = validate(self, self.parameter_rules)
        return self._frozen(settings).set_params(weights=self._weights_path, **params)

    def _proba(self, X, on_error=None):
        check_is_fitted(self, "history_")
        result = self.to_featurizer().embed(X, on_error=on_error)
        proba = np.full((len(result), len(self.classes_)), np.nan, np.float32)
        failures = failure_records(result)
        ok = np.setdiff1d(np.arange(len(result)), [f.index for f in failures])
        if len(ok):
            proba[ok] = self.head_.predict_proba(result.array[ok])
        return proba, failures

    # -- pickling: the tuned weights travel inside the file

    def __getstate__(self):
        state = dict(self.__dict__)
        if "_weights_path" in state and state.get("_tensors") is None:
            from safetensors.numpy import load_file

            state["_tensors"] = load_file(
                self.to_featurizer().weights  # rewritten first if it went missing
            )
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single column of texts
        tags.non_deterministic = self.random_state is None
        return tags
