"""An exported featurize model, served with numpy, Pillow and one runtime:
onnxruntime, LiteRT (``ai-edge-litert``) or TensorFlow for a SavedModel (and
``tokenizers`` for a text model): nothing of featurize, Keras or scikit-learn.

An export folder carries this module as ``_featurize_serving.py`` beside the
graphs, their ``metadata.json``, copies of the modules featurize reads inputs with
(``_featurize_pixels.py``, ``_featurize_tokens.py``) and the command ``predict.py``
(:mod:`featurize._standalone.predict`), which re-exports :class:`Model`::

    import sys; sys.path.insert(0, "exported")
    from predict import Model
    model = Model("exported")
    model.predict(["a.jpg", "b.jpg"])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__:  # featurize._standalone.serving, inside featurize
    from featurize._standalone import anomaly, pixels, tokens
else:  # predict.py in an export folder, beside its copies
    # However it was loaded (a script, runpy, importlib), its copies are found.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _featurize_anomaly as anomaly
    import _featurize_pixels as pixels
    import _featurize_tokens as tokens

FORMAT = "featurize-export"
FORMAT_VERSIONS = (1,)
# Folders of the first release, ONNX only, are read as the ONNX runtime's.
LEGACY_FORMATS = {"featurize-onnx": (1,)}
METADATA = "metadata.json"
RUNTIMES = ("onnx", "litert", "saved_model")
# The graphs' input and output names, as every format writes them.
PIXELS, EMBEDDING, PROBABILITIES = "pixels", "embedding", "probabilities"
TOKEN_IDS, ATTENTION_MASK, POOLED = "token_ids", "attention_mask", "pooled"
FEATURES = "features"  # a text head's input: the averaged, normalised embedding
# Copies of featurize's input modules in an export folder, under names that cannot
# shadow a user's own modules of the same short name.
COPIES = {
    "anomaly": "_featurize_anomaly.py",
    "pixels": "_featurize_pixels.py",
    "tokens": "_featurize_tokens.py",
    "serving": "_featurize_serving.py",
}
# Images decoded ahead of the network, per batch it runs: decoding and inference
# then share the cores without holding more than a few batches of pixels.
_BATCHES_AHEAD = 4


class ExportFolderError(Exception):
    """The export folder cannot be served: a file missing or changed since export,
    or a format this file does not read."""


class InputError(ValueError):
    """An input that cannot be classified, named by its position and source."""

    def __init__(self, reason: str, index: int, source=None):
        where = f"input {index}" + (f" ({source})" if source is not None else "")
        super().__init__(f"{where}: {reason}")
        self.reason, self.index, self.source = reason, index, source


@dataclass
class Result:
    """One call's outputs, a row per input.

    Attributes
    ----------
    labels : list
        The predicted class (None where the input failed or the model gives
        embeddings).
    probabilities : ndarray or None
        ``(n_inputs, n_classes)``, NaN rows where the input failed; None where the
        model gives none.
    embeddings : ndarray or None
        ``(n_inputs, width)`` for a featurizer exported alone.
    errors : list of str
        Why each input failed ("" where it did not).
    truncated : int
        Texts longer than the model's ``max_length``, truncated.
    scores : ndarray or None
        An anomaly detector's scores (1.0 is its threshold; NaN where the input
        failed); its labels are "normal" or "anomaly".
    maps : list or None
        With ``run(inputs, maps=True)`` on an anomaly detector: a float32 map per
        input at its own size (None where it failed).
    """

    labels: list
    probabilities: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    errors: list = field(default_factory=list)
    truncated: int = 0
    scores: np.ndarray | None = None
    maps: list | None = None

    @property
    def failed(self) -> int:
        return sum(1 for error in self.errors if error)


class Model:
    """An exported featurize model.

    Parameters
    ----------
    folder : path
        What ``featurize export`` wrote.
    threads : int, optional
        Threads for decoding images and for the runtime (default: every core).
    batch_size : int, optional
        Inputs per network call (default: the model's own).
    verify : bool, default=True
        Check every file against its SHA-256 in ``metadata.json`` first.

    Attributes
    ----------
    kind : {"image", "text", "anomaly"}
    runtime : {"onnx", "litert", "saved_model"}
    classes : list
    metadata : dict
    """

    def __init__(self, folder, *, threads=None, batch_size=None, verify=True):
        self.folder = Path(folder)
        self.metadata = read_metadata(self.folder, verify=verify)
        self.kind = self.metadata["kind"]
        self.runtime = self.metadata["runtime"]
        self.classes = list(self.metadata["classes"])
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = batch_size or self.metadata["batch_size"]
        outputs = self.metadata["outputs"]
        self._outputs = [
            outputs[k] for k in ("label", "probabilities", "scores", "embedding")
        ]
        try:
            self._runners = {
                role: _RUNNERS[self.runtime](self.folder / path, self.threads)
                for role, path in self.metadata["graphs"].items()
            }
        except ImportError as error:
            raise ExportFolderError(
                f"This model is served by {self.runtime}, whose package is not "
                f"installed here ({error}): pip install -r "
                f"{self.folder / 'requirements.txt'}"
            ) from None
        if self.kind == "anomaly":
            spec = self.metadata["anomaly"]
            with np.load(self.folder / spec["bank"], allow_pickle=False) as arrays:
                self._bank = arrays["bank"]
                cells = (arrays["centroids"], arrays["starts"])
            self._cells = cells if len(cells[0]) else None
        if self.kind == "text":
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(
                str(self.folder / self.metadata["input"]["tokenizer"])
            )
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()

    def __repr__(self) -> str:
        described = self.metadata.get("backbone") or self.metadata.get("encoder")
        return (
            f"Model({str(self.folder)!r}, {self.kind}, {self.runtime}, {described}, "
            f"{self.classes})"
        )

    def run(self, inputs, *, maps: bool = False) -> Result:
        """Every output for ``inputs``, never raising for a bad one.

        Parameters
        ----------
        inputs : list
            Image paths, encoded bytes or PIL images; or texts (str).
        maps : bool, default=False
            An anomaly detector's maps too, each at its image's size.
        """
        inputs = list(inputs)
        if self.kind == "anomaly":
            return self._anomalies(inputs, maps)
        if self.kind == "text":
            features, errors, truncated = self._texts(inputs)
        else:
            features, errors = self._images(inputs)
            truncated = 0
        return self._result(features, errors, truncated)

    def predict(self, inputs) -> np.ndarray:
        """The predicted class of each input; :class:`InputError` for a bad one."""
        return np.asarray(self._strict(inputs).labels)

    def score(self, inputs) -> np.ndarray:
        """An anomaly detector's scores (higher = more anomalous, 1.0 the
        threshold)."""
        return self._strict(inputs).scores

    def _anomalies(self, inputs: list, maps: bool) -> Result:
        """Scores block by block: only a block's patch features are held."""
        spec = self.metadata["anomaly"]
        n = len(inputs)
        result = Result(labels=[None] * n, errors=[""] * n,
                        scores=np.full(n, np.nan, np.float32),
                        maps=[None] * n if maps else None)  # fmt: skip
        block = self.batch_size * _BATCHES_AHEAD
        for start in range(0, n, block):
            part = inputs[start : start + block]
            outputs, errors = self._images(part)
            result.errors[start : start + len(part)] = errors
            rows = [k for k, values in enumerate(outputs) if values is not None]
            if not rows:
                continue
            features = np.stack([outputs[k][0] for k in rows])
            grids = anomaly.score_grids(
                features, spec["grid"], self._bank, spec["threshold"], self._cells
            )
            for k, score, grid in zip(rows, anomaly.image_scores(grids), grids):
                result.scores[start + k] = score
                result.labels[start + k] = "anomaly" if score > 1 else "normal"
                if maps:
                    size = anomaly.image_size(part[k])
                    result.maps[start + k] = anomaly.full_size(grid, size)
        return result

    def predict_proba(self, inputs) -> np.ndarray:
        """Class probabilities, columns in ``classes`` order."""
        result = self._strict(inputs)
        if result.probabilities is None:
            raise ValueError("This model gives no probabilities (its head had none).")
        return result.probabilities

    def transform(self, inputs) -> np.ndarray:
        """Embeddings, for a featurizer exported alone."""
        result = self._strict(inputs)
        if result.embeddings is None:
            raise ValueError("This model gives classes, not embeddings.")
        return result.embeddings

    def _strict(self, inputs) -> Result:
        inputs = list(inputs)
        result = self.run(inputs)
        for index, error in enumerate(result.errors):
            if error:
                source = inputs[index] if isinstance(inputs[index], str) else None
                raise InputError(error, index, source)
        return result

    # -- images

    def _images(self, inputs: list):
        size = tuple(self.metadata["input"]["size"])
        resize = self.metadata["input"]["resize"]
        limit = self.metadata["input"]["max_pixels"]

        def load(item):
            try:
                return image_pixels(item, size, resize, limit), ""
            except (pixels.PixelError, InputError) as error:
                return None, getattr(error, "reason", str(error))

        network, head = self._runners["model"], self._runners.get("head")

        def forward(batch):
            if head is None:
                return network(self._wanted(network), {PIXELS: batch})
            # An int8 network's float head, a graph of its own (as a text model's).
            embedding = network([EMBEDDING], {PIXELS: batch})[0]
            return head(self._wanted(head), {FEATURES: embedding})

        errors, outputs = [""] * len(inputs), [None] * len(inputs)
        block = self.batch_size * _BATCHES_AHEAD
        with ThreadPoolExecutor(self.threads) as pool:
            for start in range(0, len(inputs), block):
                loaded = list(pool.map(load, inputs[start : start + block]))
                usable = [k for k, (array, _) in enumerate(loaded) if array is not None]
                for k, (_, error) in enumerate(loaded):
                    errors[start + k] = error
                for first in range(0, len(usable), self.batch_size):
                    rows = usable[first : first + self.batch_size]
                    batch = np.stack([loaded[k][0] for k in rows]).astype(np.float32)
                    values = forward(batch)
                    for k, row in enumerate(rows):
                        outputs[start + row] = [v[k] for v in values]
        return outputs, errors

    # -- texts

    def _texts(self, inputs: list):
        spec = self.metadata["input"]
        errors, texts = [""] * len(inputs), {}
        for index, value in enumerate(inputs):
            try:
                texts[index] = check_text(value)
            except InputError as error:
                errors[index] = error.reason
        order = list(texts)
        encodings = self._tokenizer.encode_batch(
            [texts[k] for k in order], add_special_tokens=False
        )
        ids = [encoding.ids for encoding in encodings]
        encoder = self._runners["encoder"]

        def run(batch, mask):
            return encoder([POOLED], {TOKEN_IDS: batch, ATTENTION_MASK: mask})[0]

        chunks = spec["long_text"] == "chunks"
        length = spec["max_length"]
        vectors = tokens.encode(
            ids, length, chunks, self.batch_size, spec["cls"], spec["sep"],
            spec["positions"], run,
        )  # fmt: skip
        if spec["normalize"]:
            vectors = tokens.normalized(vectors)
        truncated = 0 if chunks else sum(tokens.too_long(ids, length))
        outputs = [None] * len(inputs)
        head = self._runners.get("head")
        if len(order):
            values = (
                head(self._wanted(head), {FEATURES: vectors})
                if head is not None
                else [vectors]
            )
            for k, index in enumerate(order):
                outputs[index] = [v[k] for v in values]
        return outputs, errors, truncated

    # -- outputs

    def _wanted(self, runner) -> list:
        return [name for name in self._outputs if name and name in runner.outputs]

    def _result(self, outputs: list, errors: list, truncated: int) -> Result:
        label, probabilities, scores, embedding = self._outputs
        present = [name for name in self._outputs if name]
        n = len(outputs)

        def column(name, width):
            out = np.full((n, width), np.nan, np.float32)
            k = present.index(name)
            for row, values in enumerate(outputs):
                if values is not None:
                    out[row] = values[k]
            return out

        result = Result(labels=[None] * n, errors=errors, truncated=truncated)
        if embedding:
            width = next((len(v[0]) for v in outputs if v is not None), 0)
            result.embeddings = column(embedding, width)
            return result
        width = len(self.classes)
        if probabilities:
            result.probabilities = column(probabilities, width)
        ranked = column(scores, width) if scores else result.probabilities
        for row, values in enumerate(outputs):
            if values is None:
                continue
            if label:
                value = values[present.index(label)]
                result.labels[row] = _plain(value)
            else:
                result.labels[row] = self.classes[int(np.argmax(ranked[row]))]
        return result


def _plain(value):
    value = value.item() if isinstance(value, np.generic) else value
    return value.decode() if isinstance(value, bytes) else value


class _OnnxRunner:
    """A graph run by onnxruntime: ``runner(output names, feeds) -> arrays``."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Decoding threads share the cores with onnxruntime's: its workers sleep
        # between calls instead of spinning on them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.outputs = [o.name for o in self._session.get_outputs()]

    def __call__(self, names: list, feeds: dict) -> list:
        return self._session.run(names, feeds)


class _LiteRTRunner:
    """A ``.tflite`` model's serving signature, run by LiteRT's interpreter (it
    resizes its inputs to each batch's shape itself)."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._run = self._interpreter.get_signature_runner()
        signature = next(iter(self._interpreter.get_signature_list().values()))
        self.outputs = list(signature["outputs"])

    def __call__(self, names: list, feeds: dict) -> list:
        values = self._run(**feeds)
        return [values[name] for name in names]


class _SavedModelRunner:
    """A SavedModel's serving signature, run by TensorFlow."""

    def __init__(self, path: Path, threads: int):
        import tensorflow as tf

        # Refused once TensorFlow has started in this process: its own setting holds.
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))  # its variables live here
        self._run = self._loaded.signatures["serving_default"]
        self.outputs = list(self._run.structured_outputs)

    def __call__(self, names: list, feeds: dict) -> list:
        values = self._run(**{k: self._tf.constant(v) for k, v in feeds.items()})
        return [values[name].numpy() for name in names]


_RUNNERS = {
    "onnx": _OnnxRunner,
    "litert": _LiteRTRunner,
    "saved_model": _SavedModelRunner,
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(folder: Path, *, verify: bool = True) -> dict:
    """The folder's ``metadata.json``, its format checked and (with ``verify``) every
    file it lists matching its SHA-256."""
    path = Path(folder) / METADATA
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportFolderError(
            f"{str(folder)!r} has no {METADATA}: pass the folder `featurize export` "
            f"wrote."
        ) from None
    except (OSError, ValueError) as error:
        raise ExportFolderError(f"{str(path)!r} cannot be read: {error}") from None
    readable = {FORMAT: FORMAT_VERSIONS, **LEGACY_FORMATS}
    if metadata.get("format_version") not in readable.get(metadata.get("format"), ()):
        raise ExportFolderError(
            f"{str(path)!r} describes format {metadata.get('format')!r} version "
            f"{metadata.get('format_version')!r}; this predict.py reads {FORMAT!r} "
            f"versions {list(FORMAT_VERSIONS)}. Serve it with the predict.py "
            f"exported beside it."
        )
    if metadata["format"] in LEGACY_FORMATS:
        graphs = {role: f"{role}.onnx" for role in metadata["graphs"]}
        metadata = {**metadata, "runtime": "onnx", "graphs": graphs}
    if metadata.get("runtime") not in RUNTIMES:
        raise ExportFolderError(
            f"{str(path)!r} names runtime {metadata.get('runtime')!r}; this "
            f"predict.py serves {list(RUNTIMES)}."
        )
    if verify:
        for name, expected in metadata.get("files", {}).items():
            file = Path(folder) / name
            if not file.is_file():
                raise ExportFolderError(
                    f"{str(file)!r} is missing: the export folder is incomplete; "
                    f"export the model again."
                )
            found = sha256(file)
            if found != expected:
                raise ExportFolderError(
                    f"{str(file)!r} has changed since export (SHA-256 {found[:16]}..., "
                    f"metadata.json says {expected[:16]}...): refusing to serve it. "
                    f"Export the model again, or pass verify=False (--no-verify) if "
                    f"the change is yours."
                )
    return metadata


def image_pixels(item, size, resize: str, max_pixels) -> np.ndarray:
    """One image (a path, bytes or a PIL image) as the model's input pixels."""
    if isinstance(item, (str, os.PathLike)):
        data = read_file(item)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if not data:
            raise InputError("empty bytes object (0 bytes)", -1)
    elif hasattr(item, "mode") and hasattr(item, "size"):  # a PIL image
        pixels.check_size(item, max_pixels)
        return pixels.finish(item, size, resize, owned=False)
    elif item is None or (isinstance(item, float) and math.isnan(item)):
        raise InputError("missing value: expected a path, bytes or a PIL image", -1)
    else:
        raise InputError(
            f"unsupported input type {type(item).__name__}: expected a path, bytes "
            f"or a PIL image",
            -1,
        )
    return pixels.image_pixels(data, size, resize, max_pixels)


def read_file(path) -> bytes:
    """A file's bytes, with featurize's reasons for the ways that fails."""
    try:
        with open(os.fspath(path), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError("file not found", -1) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an image file", -1) from None
    except PermissionError:
        raise InputError("permission denied", -1) from None
    except OSError as error:
        raise InputError(f"could not be read: {error.strerror or error}", -1) from None
    if not data:
        raise InputError("empty file (0 bytes)", -1)
    return data


def check_text(value) -> str:
    """``value`` as a text that encodes to UTF-8 (lone surrogates replaced), or an
    :class:`InputError` (missing values are errors, never an empty text)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InputError(f"a missing value ({value!r}), not a text", -1)
    kind = "bytes" if isinstance(value, bytes) else f"a {type(value).__name__}"
    raise InputError(f"{kind}, not a text", -1)
