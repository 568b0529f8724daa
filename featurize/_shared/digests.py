"""Content digests: what the embedding cache keys an input by (never its name)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
from PIL import Image

DIGEST_SIZE = 20


def content_digest(raw) -> bytes:
    """The cache key of one fetched input: its content, never its name.

    Encoded bytes are hashed as they are (so a renamed or copied file hits and an
    edited one misses); arrays and PIL images by their pixels, shape and dtype/mode;
    texts by their UTF-8 encoding.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    if isinstance(raw, str):
        digest.update(b"text:")
        digest.update(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, bytes):
        digest.update(b"bytes:")
        digest.update(raw)
    elif isinstance(raw, np.ndarray):
        array = np.ascontiguousarray(raw)
        digest.update(f"array:{array.dtype.str}:{array.shape}:".encode())
        digest.update(array.data)
    elif isinstance(raw, Image.Image):
        exif = raw.getexif().get(0x0112, 1) if hasattr(raw, "getexif") else 1
        digest.update(f"pil:{raw.mode}:{raw.size}:{exif}:".encode())
        digest.update(raw.tobytes())
    else:  # pragma: no cover - fetch() and check_text() return only these kinds
        raise TypeError(f"cannot hash {type(raw).__name__}")
    return digest.digest()


def sha256(path: os.PathLike | str) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_FILE_HASHES: dict[tuple, str] = {}


def file_sha256(path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = sha256(path)
    return _FILE_HASHES[key]
