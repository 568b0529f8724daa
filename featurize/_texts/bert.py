"""A BERT encoder in Keras 3, loaded from a sentence-transformers checkpoint.

Our own ~100 lines instead of keras-hub (checked with keras-hub 0.32): it requires
tensorflow-text (a 60 MB wheel that requires the full ``tensorflow<2.22,>=2.21``
package, so a JAX-only or tensorflow-cpu install would gain a second, full TensorFlow),
kagglehub, kagglesdk and sentencepiece, to run a stack of six standard Transformer
blocks. What we add instead: ``tokenizers`` (3.4 MB) and ``safetensors`` (0.5 MB).
The tokenizer is the checkpoint's own ``tokenizer.json`` run by Hugging Face
``tokenizers`` (Rust, no torch), so token ids match the reference exactly.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from featurize._shared.compiled import compile_inference
from featurize._standalone import tokens
from featurize.errors import WeightsMismatchError


def _layers():
    import keras
    from keras import ops

    class Embeddings(keras.layers.Layer):
        """Word + position + segment-0 embeddings, then LayerNorm."""

        def __init__(self, config, dropout=None, **kwargs):
            super().__init__(**kwargs)
            width = config["hidden_size"]
            self.dropout = dropout
            self.words = keras.layers.Embedding(
                config["vocab_size"], width, name="words"
            )
            self.positions = keras.layers.Embedding(
                config["max_position_embeddings"], width, name="positions"
            )
            self.segments = keras.layers.Embedding(
                config["type_vocab_size"], width, name="segments"
            )
            self.norm = keras.layers.LayerNormalization(
                epsilon=config["layer_norm_eps"], name="norm"
            )

        def call(self, ids):
            positions = ops.arange(ops.shape(ids)[1])
            # expand_dims, not [None]: LiteRT's builtin slicing cannot add axes.
            x = self.words(ids) + ops.expand_dims(self.positions(positions), 0)
            x = self.norm(x + self.segments(ops.zeros_like(ids)))
            return x if self.dropout is None else self.dropout(x)

    class Block(keras.layers.Layer):
        """One post-norm Transformer encoder block, as in BERT."""

        def __init__(self, config, dropout=None, attention_dropout=None, **kwargs):
            super().__init__(**kwargs)
            width = config["hidden_size"]
            self.heads = config["num_attention_heads"]
            self.dropout = dropout or (lambda x: x)
            self.attention_dropout = attention_dropout
            self.head_size = width // self.heads
            eps = config["layer_norm_eps"]
            dense = keras.layers.Dense
            self.query = dense(width, name="query")
            self.key = dense(width, name="key")
            self.value = dense(width, name="value")
            self.attention_output = dense(width, name="attention_output")
            self.attention_norm = keras.layers.LayerNormalization(
                epsilon=eps, name="attention_norm"
            )
            self.intermediate = dense(config["intermediate_size"], name="intermediate")
            self.output_dense = dense(width, name="output")
            self.output_norm = keras.layers.LayerNormalization(
                epsilon=eps, name="output_norm"
            )

        def _split(self, x):
            batch, length = ops.shape(x)[0], ops.shape(x)[1]
            return ops.reshape(x, (batch, length, self.heads, self.head_size))

        def _attend(self, query, key, value, mask):
            """Attention with dropout on its probabilities, as BERT trained:
            ``ops.dot_product_attention`` has no dropout."""
            scores = ops.einsum("bqhd,bkhd->bhqk", query, key) / self.head_size**0.5
            scores = ops.where(mask, scores, ops.cast(-1e9, scores.dtype))
            weights = self.attention_dropout(ops.softmax(scores, axis=-1))
            return ops.einsum("bhqk,bkhd->bqhd", weights, value)

        def call(self, x, mask):
            batch, length = ops.shape(x)[0], ops.shape(x)[1]
            keys = ops.reshape(ops.cast(mask, "bool"), (batch, 1, 1, length))
            attend = (
                ops.dot_product_attention
                if self.attention_dropout is None
                else self._attend
            )
            attended = attend(
                self._split(self.query(x)),
                self._split(self.key(x)),
                self._split(self.value(x)),
                mask=keys,
            )
            attended = ops.reshape(
                attended, (batch, length, self.heads * self.head_size)
            )
            attended = self.dropout(self.attention_output(attended))
            x = self.attention_norm(x + attended)
            # The checkpoint's "gelu" is the exact (erf) form, not the tanh one.
            hidden = keras.activations.gelu(self.intermediate(x), approximate=False)
            return self.output_norm(x + self.dropout(self.output_dense(hidden)))

    class MeanPool(keras.layers.Layer):
        """Mean of the token states over the non-padding positions."""

        def call(self, x, mask):
            weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            total = ops.sum(x * weights, axis=1)
            return total / ops.maximum(ops.sum(weights, axis=1), 1e-9)

    return Embeddings, Block, MeanPool


def build_encoder(config: dict, dropout_seed: int | None = None):
    """The Keras model: (token ids, attention mask) -> mean-pooled token states.

    With ``dropout_seed``, the copy to fine-tune: the checkpoint's hidden dropout
    after the embeddings and in every block, and its dropout of the attention
    probabilities (all seeded), as BERT was trained. Without it there are no
    dropout layers at all, so what inference and export trace is unchanged.
    """
    import keras

    Embeddings, Block, MeanPool = _layers()

    def dropout(k: int, kind: str = "hidden"):
        if dropout_seed is None:
            return None
        rate = config.get(f"{kind}_dropout_prob", 0.1)
        return keras.layers.Dropout(rate, seed=dropout_seed + k)

    blocks = config["num_hidden_layers"]

    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="attention_mask")
    x = Embeddings(config, dropout(0), name="embeddings")(ids)
    for index in range(blocks):
        x = Block(
            config,
            dropout(index + 1),
            dropout(blocks + index + 1, "attention_probs"),
            name=f"block_{index}",
        )(x, mask)
    pooled = MeanPool(name="mean_pool")(x, mask)
    return keras.Model([ids, mask], pooled, name="bert_mean_pool")


def _checkpoint_pairs(model) -> list[tuple]:
    """``(variable, checkpoint tensor name, transposed?)`` for every weight: the
    one map between the Keras model and a Hugging Face ``BertModel`` state."""
    embeddings = model.get_layer("embeddings")
    # (variable, tensor name, transposed?)
    pairs = [
        (embeddings.words.embeddings, "embeddings.word_embeddings.weight", False),
        (
            embeddings.positions.embeddings,
            "embeddings.position_embeddings.weight",
            False,
        ),
        (
            embeddings.segments.embeddings,
            "embeddings.token_type_embeddings.weight",
            False,
        ),
        (embeddings.norm.gamma, "embeddings.LayerNorm.weight", False),
        (embeddings.norm.beta, "embeddings.LayerNorm.bias", False),
    ]
    blocks = [x for x in model.layers if x.name.startswith("block_")]
    for index, block in enumerate(blocks):
        prefix = f"encoder.layer.{index}."
        for layer, name in [
            (block.query, "attention.self.query"),
            (block.key, "attention.self.key"),
            (block.value, "attention.self.value"),
            (block.attention_output, "attention.output.dense"),
            (block.intermediate, "intermediate.dense"),
            (block.output_dense, "output.dense"),
        ]:
            # torch.nn.Linear stores (out, in); a Keras Dense kernel is (in, out).
            pairs.append((layer.kernel, prefix + name + ".weight", True))
            pairs.append((layer.bias, prefix + name + ".bias", False))
        for norm, name in [
            (block.attention_norm, "attention.output.LayerNorm"),
            (block.output_norm, "output.LayerNorm"),
        ]:
            pairs.append((norm.gamma, prefix + name + ".weight", False))
            pairs.append((norm.beta, prefix + name + ".bias", False))
    return pairs


def load_checkpoint(model, tensors: dict) -> None:
    """Copy a Hugging Face ``BertModel`` state (numpy arrays) into ``model``."""
    for variable, name, transpose in _checkpoint_pairs(model):
        if name not in tensors:
            raise WeightsMismatchError(
                f"the checkpoint has no tensor {name}: it is not a BERT state of "
                f"this encoder's shape"
            )
        value = tensors[name].T if transpose else tensors[name]
        if tuple(variable.shape) != value.shape:
            raise WeightsMismatchError(
                f"checkpoint tensor {name} has shape {value.shape}; the model "
                f"expects {tuple(variable.shape)}"
            )
        variable.assign(value)


def checkpoint_tensors(model) -> dict[str, np.ndarray]:
    """``model``'s weights as a Hugging Face ``BertModel`` state (numpy arrays):
    what :func:`load_checkpoint` reads back, and what a ``model.safetensors`` of
    fine-tuned weights holds."""
    from keras import ops

    tensors = {}
    for variable, name, transpose in _checkpoint_pairs(model):
        value = ops.convert_to_numpy(variable).astype(np.float32)
        tensors[name] = np.ascontiguousarray(value.T if transpose else value)
    return tensors


class BertEncoder:
    """A sentence-transformers BERT checkpoint: tokenizer, model, mean pooling.

    Thread-safe: one forward pass at a time.
    """

    @classmethod
    def from_files(cls, folder: Path, row, weights=None) -> BertEncoder:
        """The encoder of a registry row whose files are in ``folder``; ``weights``,
        a ``.safetensors`` file of the same shape (fine-tuned), replaces its own."""
        return cls(folder, row.vocabulary, weights)

    def __init__(self, folder: Path, vocabulary: str = "tokenizer.json", weights=None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / vocabulary))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls = self.tokenizer.token_to_id("[CLS]")
        self.sep = self.tokenizer.token_to_id("[SEP]")
        self.positions = config["max_position_embeddings"]
        self.config = config
        self.model = build_encoder(config)
        load_checkpoint(
            self.model, load_file(str(weights or folder / "model.safetensors"))
        )
        self._run = compile_inference(self.model, [((None,), "int32")] * 2)
        self._lock = threading.Lock()

    def trainable_copy(self, seed: int):
        """A fresh Keras model with these weights and dropout (seeded), to fine-tune
        without touching the shared encoder."""
        copy = build_encoder(self.config, dropout_seed=seed)
        copy.set_weights(self.model.get_weights())
        return copy

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's word-piece ids, without the special tokens."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def too_long(self, ids: list[list[int]], max_length: int) -> list[bool]:
        """Whether each text's tokens, with [CLS] and [SEP], exceed ``max_length``."""
        return tokens.too_long(ids, max_length)

    @property
    def network(self):
        """The Keras model: (token ids, attention mask) -> mean-pooled states."""
        return self.model

    def encode(
        self,
        texts: list[str],
        max_length: int,
        chunks: bool,
        batch_size: int,
        run=None,
    ) -> tuple[np.ndarray, list[bool]]:
        """Mean-pooled embeddings of ``texts`` (not normalised), and which were too
        long: truncated, or with ``chunks`` the token-weighted mean of windows.
        ``run(ids, mask)`` replaces the Keras model (an onnxruntime session)."""
        ids = self.token_ids(texts)
        vectors = tokens.encode(
            ids,
            max_length,
            chunks,
            batch_size,
            self.cls,
            self.sep,
            self.positions,
            run or self.run,
        )
        return vectors, self.too_long(ids, max_length)

    def windows(self, ids: list[int], max_length: int) -> list[list[int]]:
        """Consecutive pieces of at most ``max_length`` tokens, [CLS] and [SEP]
        included (one empty window for an empty text)."""
        return tokens.windows(ids, max_length, self.cls, self.sep)

    def forward(self, windows: list[list[int]], batch_size: int) -> np.ndarray:
        """Mean-pooled states of token windows, batched by length."""
        return tokens.forward(windows, batch_size, self.positions, self.run)

    def run(self, ids, mask) -> np.ndarray:
        """The Keras model on one padded batch."""
        with self._lock:
            return self._run(ids, mask)
