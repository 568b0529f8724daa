"""The Keras side of text fine-tuning: the encoder trained on pairs of texts.

Imported on first fit only (it imports Keras). The trainer runs both texts of each
pair through one encoder call (a ``(pairs, 2, length)`` batch flattened to ``2 *
pairs`` sequences) and outputs their cosine similarity, which SetFit's loss pulls
to 1 for texts of one class and to 0 for texts of two.
"""

from __future__ import annotations

import keras
from keras import ops

from featurize._tuning.schedule import WarmupDecay


class PairSimilarity(keras.Model):
    """``(ids, mask)`` of shape ``(pairs, 2, length)`` -> cosine similarity of each
    pair's two mean-pooled embeddings, shape ``(pairs, 1)``."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, inputs, training=False):
        ids, mask = inputs
        length = ops.shape(ids)[-1]
        pooled = self.encoder(
            [ops.reshape(ids, (-1, length)), ops.reshape(mask, (-1, length))],
            training=training,
        )
        pairs = ops.reshape(pooled, (-1, 2, ops.shape(pooled)[-1]))
        unit = pairs / ops.maximum(ops.norm(pairs, axis=-1, keepdims=True), 1e-12)
        return ops.sum(unit[:, 0] * unit[:, 1], axis=-1, keepdims=True)


# The gradient's global norm is clipped to 1, as SetFit's trainer (Hugging Face's
# ``max_grad_norm``) does: the first steps on a fresh pair loss can be large.
CLIP_NORM = 1.0


def pair_trainer(
    encoder,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    steps: int,
    decay: str,
):
    """The compiled trainer: AdamW (no decay on norms and biases, the gradient
    clipped) on the warm-up and ``decay`` schedule, mean squared error of the
    similarity (SetFit's ``CosineSimilarityLoss``), and the share of pairs on the
    right side of 0.5 as its ``accuracy``."""
    trainer = PairSimilarity(encoder, name="pair_similarity")
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupDecay(learning_rate, warmup_steps, steps, 0, decay),
        weight_decay=weight_decay,
        global_clipnorm=CLIP_NORM,
    )
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in encoder.trainable_variables if len(v.shape) <= 1]
    )
    trainer.compile(
        optimizer=optimizer,
        loss="mean_squared_error",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5)],
    )
    return trainer
