"""``runtime="onnx"``: the featurizers' networks run by onnxruntime.

A network is traced to ONNX once per configuration and stored beside the embedding
cache (``<cache folder>/onnx/<digest of the fingerprint>.onnx``), so later processes
load it in a second; networks that cannot be stored (random weights, no cache) are
traced once per process. A traced graph is checked against Keras on a probe batch
before it is used: its embeddings share the cache namespace of the Keras ones, which
holds only because they agree (cosine >= 0.9999).

``"auto"`` picks onnxruntime for image backbones, where it was measured faster on
CPU (1.4x to 2.8x Keras-TF's images/s for every measured backbone: BENCHMARKS.md), and
where the conversion pays: the graph is stored already, or the call has at least
:data:`AUTO_MIN_INPUTS` inputs (tracing costs a few seconds, once). Text encoders
stay on Keras under "auto" (MiniLM: 1.04x, for a minute of tracing).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from featurize._onnx.convert import OPSET, can_convert, require
from featurize._shared.devices import on_accelerator
from featurize.errors import ExportError, InvalidParameterError

RUNTIMES = ("auto", "keras", "onnx")
AUTO_MIN_INPUTS = 256
MIN_COSINE = 0.9999
GRAPHS_FOLDER = "onnx"

_LOCK = threading.Lock()
_SESSIONS: dict[str, object] = {}  # stored graph's path -> session
_HELD = "_onnx_session"


def choose(
    runtime: str,
    n_inputs: int,
    ready: bool,
    *,
    accelerator: bool | None = None,
    precision: str = "float32",
) -> str:
    """``"keras"`` or ``"onnx"`` for a call of ``n_inputs`` inputs (``ready``: the
    graph is stored or held already, see :func:`ready`; ``accelerator``: whether
    Keras has a GPU, found out where None)."""
    if runtime == "keras":
        return "keras"
    if precision != "float32":
        if runtime == "onnx":
            raise InvalidParameterError(
                f"runtime='onnx' runs float32 graphs; received precision="
                f"{precision!r}. Use runtime='keras' for mixed precision (GPUs)."
            )
        return "keras"
    if runtime == "onnx":
        return "onnx"
    if not can_convert():
        return "keras"
    if on_accelerator() if accelerator is None else accelerator:
        return "keras"
    return "onnx" if ready or n_inputs >= AUTO_MIN_INPUTS else "keras"


def ready(holder, path: Path | None) -> bool:
    """Whether a graph for ``holder`` is held in-process or stored at ``path``."""
    if path is not None:
        return str(path) in _SESSIONS or path.is_file()
    return getattr(holder, _HELD, None) is not None


def graph_path(directory: Path | None, fingerprint: dict) -> Path | None:
    """Where the graph of this configuration is stored (None: not storable)."""
    if directory is None:
        return None
    key = {**fingerprint, "onnx_opset": OPSET, "converter": _converter_version()}
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return Path(directory) / GRAPHS_FOLDER / f"{digest}.onnx"


def _converter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tf2onnx")
    except PackageNotFoundError:
        return "none"


def session(holder, path: Path | None, trace, probe, reference):
    """The onnxruntime session of a graph: in-process, stored, or traced now.

    Parameters
    ----------
    holder : object
        The Keras-side object the graph computes the same as (a forward pass, an
        encoder): a graph that cannot be stored lives and dies with it.
    path : Path or None
        Where the graph is stored (None: traced once per holder).
    trace : callable
        ``trace() -> onnx.ModelProto``.
    probe : tuple of ndarray
        Inputs a traced graph is checked on against ``reference(*probe)``.
    """
    require("onnxruntime")
    with _LOCK:
        found = _SESSIONS.get(str(path)) if path else getattr(holder, _HELD, None)
        if found is not None:
            return found
        import onnxruntime

        made = None
        if path is not None and path.is_file():
            try:
                made = _open(onnxruntime, path.read_bytes())
            except Exception:
                made = None  # damaged or foreign: traced again below
        if made is None:
            proto = trace()
            data = proto.SerializeToString()
            made = _open(onnxruntime, data)
            _check(made, probe, reference)
            if path is not None:
                _store(path, data)
        if path is not None:
            _SESSIONS[str(path)] = made
        else:
            setattr(holder, _HELD, made)
        return made


def _open(onnxruntime, data: bytes):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        data, options, providers=["CPUExecutionProvider"]
    )


def _check(made, probe, reference) -> None:
    names = [i.name for i in made.get_inputs()]
    mine = made.run(None, dict(zip(names, probe)))[0]
    theirs = np.asarray(reference(*probe))
    norms = np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1)
    cosine = np.sum(mine * theirs, axis=1) / np.maximum(norms, 1e-12)
    # Embeddings that are zero on both sides (dead units of random weights) agree.
    both_zero = np.maximum(np.abs(mine).max(axis=1), np.abs(theirs).max(axis=1)) < 1e-6
    cosine = np.where(both_zero, 1.0, cosine)
    if cosine.min() < MIN_COSINE:
        raise ExportError(
            f"the ONNX graph's embeddings differ from Keras's (cosine "
            f"{cosine.min():.6f} < {MIN_COSINE}): use runtime='keras' for this "
            f"model."
        )


def _store(path: Path, data: bytes) -> None:
    """Write atomically; a folder that cannot be written only costs the storing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError:
        pass


def run(made, *arrays) -> np.ndarray:
    """Run a session on positional inputs, returning its first output."""
    names = [i.name for i in made.get_inputs()]
    return made.run(None, dict(zip(names, arrays)))[0]


def forget_sessions() -> None:
    """Drop every onnxruntime session held in-process."""
    with _LOCK:
        _SESSIONS.clear()
