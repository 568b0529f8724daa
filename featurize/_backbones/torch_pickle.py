"""Read a legacy (non-zip) PyTorch ``.pth`` state dict without importing torch.

The legacy format is five pickles in a row, then raw storage bytes: a magic number,
the protocol version, system info, the state dict itself (tensors refer to storages by
key through ``persistent_load``), and the list of storage keys in the order their
bytes follow. Each storage is an int64 element count and its little-endian data.

Unpickling runs whatever globals the file names, so :class:`_SafeUnpickler` admits only
the few a state dict needs and refuses anything else: loading can never run code.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass

import numpy as np

from featurize.errors import UnsafeWeightsFileError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _Storage:
    key: str
    dtype: type
    size: int


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise UnsafeWeightsFileError(
            "a tensor refers to something that is not a storage"
        )
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _StorageType:
    """Stands for ``torch.FloatStorage`` and friends: only names a dtype."""

    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, handle, source: str):
        super().__init__(handle)
        self.source = source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsFileError(
                f"{self.source!r} asks to load the Python global {module}.{name}, "
                f"which a PyTorch state dict never needs; refusing to load it (a "
                f"pickle can run arbitrary code). Only tensors in ordered dicts are "
                f"accepted."
            ) from None

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] == "storage"):
            raise UnsafeWeightsFileError(
                f"{self.source!r} has an unexpected persistent id {saved_id!r:.80}."
            )
        storage_type, key, _location, size = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeWeightsFileError(f"{self.source!r}: bad storage type.")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(
                str(key), storage_type.dtype, int(size)
            )
        return storage


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read a legacy PyTorch state dict as ``{name: numpy array}``.

    Parameters
    ----------
    path : str
        A ``.pth`` file written by ``torch.save(..., _use_new_zipfile_serialization=
        False)`` (the format of PyTorch < 1.6).

    Raises
    ------
    UnsafeWeightsFileError
        If the file names any global besides an ordered dict, tensor rebuilding and
        storage types, or is not in that format.
    """
    with open(path, "rb") as handle:
        header = handle.read(2)
        handle.seek(0)
        if header[:2] == b"PK":
            raise UnsafeWeightsFileError(
                f"{path!r} is a zip-format PyTorch file; only the legacy format is "
                f"read."
            )
        unpickler = _SafeUnpickler(handle, path)
        try:
            magic = _SafeUnpickler(handle, path).load()
            protocol = _SafeUnpickler(handle, path).load()
            if magic != MAGIC_NUMBER or protocol != PROTOCOL_VERSION:
                raise UnsafeWeightsFileError(
                    f"{path!r} is not a legacy PyTorch file (magic {magic!r:.40})."
                )
            _SafeUnpickler(handle, path).load()  # system info
            state = unpickler.load()
            keys = _SafeUnpickler(handle, path).load()
        except UnsafeWeightsFileError:
            raise
        except Exception as error:
            raise UnsafeWeightsFileError(
                f"{path!r} is not a legacy PyTorch state dict "
                f"({type(error).__name__}: {error})."
            ) from None
        data = {}
        for key in keys:
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q", handle.read(8))
            itemsize = np.dtype(storage.dtype).itemsize
            raw = handle.read(count * itemsize)
            if len(raw) != count * itemsize:
                raise UnsafeWeightsFileError(f"{path!r} is truncated.")
            data[key] = np.frombuffer(
                raw, dtype=np.dtype(storage.dtype).newbyteorder("<")
            )
    if not isinstance(state, dict):
        raise UnsafeWeightsFileError(f"{path!r} does not hold a state dict.")
    return {name: _materialize(ref, data) for name, ref in state.items()}


def _materialize(ref: _TensorRef, data: dict[str, np.ndarray]) -> np.ndarray:
    flat = data[ref.storage.key]
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)
