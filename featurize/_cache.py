"""A persistent embedding cache: each image goes through each configuration once.

Entries live in one SQLite database (WAL mode) keyed by a *namespace* (a fingerprint of
everything that changes an embedding: backbone, weights, layer, pooling, input size,
resize policy, preprocessing, our pixel pipeline's version) and the image's *content
digest* (of the file's bytes, or of an array's pixels, shape and dtype: never the
path). SQLite gives what we need without a file format of our own: every write is a
transaction, so a process killed at any instant leaves no partial entry; concurrent
writers from several processes are serialised by its locking. On top, a per-namespace
file lock lets only one process compute the missing embeddings of a namespace at a
time, so parallel workers never compute the same image twice.

SQLite was chosen over LMDB by measurement (``benchmarks/cache_lookup.py``, 10^6
entries, 2 cores): a batch of 32 keys takes 0.4 ms (LMDB 0.1 ms), 256 keys 2.1 ms
(LMDB 0.55 ms), both far below the cost of embedding one image. SQLite is in the
standard library, needs no preset map size, and its indexes serve ``info`` and
age-based ``clear``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from featurize.errors import CacheUnavailableError, InvalidParameterError

CACHE_DIR_ENV = "FEATURIZE_CACHE_DIR"
DATABASE = "embeddings.sqlite3"
DIGEST_SIZE = 20
# Each stored vector is followed by a BLAKE2b checksum of its bytes: SQLite checks its
# own structure, not the data, so a damaged data page would otherwise read as a valid
# but wrong embedding. Part of every namespace, so other layouts are never misread.
CHECKSUM_SIZE = 8
ENTRY_FORMAT = 2
# SQLite's words for a file that is not a sound database (anything else, such as
# "locked", "readonly" or "disk is full", is a condition of the machine, not the file).
_DAMAGED = ("malformed", "not a database", "disk i/o error", "file is encrypted")
DAMAGED_SUFFIX = ".damaged-"
_SQLITE_VARIABLES = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    n_features INTEGER NOT NULL,
    computed INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    namespace INTEGER NOT NULL,
    digest BLOB NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
"""


def default_cache_dir() -> Path:
    """``$FEATURIZE_CACHE_DIR``, else ``embeddings/`` in the user cache directory."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("featurize")) / "embeddings"


def content_digest(raw) -> bytes:
    """The cache key of one fetched input: its content, never its name.

    Encoded bytes are hashed as they are (so a renamed or copied file hits and an
    edited one misses); arrays and PIL images by their pixels, shape and dtype/mode.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    if isinstance(raw, bytes):
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
    else:  # pragma: no cover - fetch() only returns the three kinds above
        raise TypeError(f"cannot hash {type(raw).__name__}")
    return digest.digest()


def fingerprint(settings: dict) -> str:
    """A stable name for a namespace: SHA-256 of its settings as canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _guarded(method):
    """Any failure of the database or its folder becomes CacheUnavailableError."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except CacheUnavailableError:
            raise
        except (sqlite3.Error, OSError) as error:
            raise self._unusable(error) from error

    return guarded


class EmbeddingCache:
    """Embeddings on local disk, keyed by configuration and image content.

    Parameters
    ----------
    directory : path-like, optional
        Where the database lives; by default ``$FEATURIZE_CACHE_DIR`` or
        ``embeddings/`` in the platform's user cache directory. Created on first use.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from featurize import EmbeddingCache, ImageFeaturizer
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> featurizer = ImageFeaturizer(input_size=32, cache=cache)
    >>> images = np.zeros((2, 32, 32, 3), np.uint8)
    >>> _ = featurizer.fit_transform(images)
    >>> result = featurizer.embed(images)
    >>> result.array.shape, result.stats["cache_hits"]
    ((2, 1280), 2)
    """

    def __init__(self, directory=None):
        self.directory = Path(directory) if directory is not None else None
        self._local = threading.local()
        self._generation = 0  # bumped when a damaged file is moved aside

    # -- connection

    @property
    def path(self) -> Path:
        """The database file."""
        return (self.directory or default_cache_dir()) / DATABASE

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        key = (os.getpid(), self._generation)
        if connection is not None and self._local.key == key:
            return connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=120000")
        connection.executescript(_SCHEMA)
        self._local.connection = connection
        self._local.key = key
        return connection

    def _unusable(self, error: BaseException) -> CacheUnavailableError:
        """The error to raise for ``error``; a damaged database is moved aside."""
        self._local.connection = None
        cause = f"{type(error).__name__}: {error}"
        path = str(self.path)
        fix = (
            "Embeddings are computed without the cache until this is fixed: free disk "
            "space or fix the folder's permissions, run `featurize cache clear`, or "
            "pass cache=None or another folder (FEATURIZE_CACHE_DIR)."
        )
        damaged = isinstance(error, sqlite3.DatabaseError) and any(
            word in str(error).lower() for word in _DAMAGED
        )
        if not damaged:
            return CacheUnavailableError(
                f"The embedding cache {path!r} cannot be used ({cause}). {fix}"
            )
        return CacheUnavailableError(
            f"The embedding cache {path!r} is damaged ({cause}); it was "
            f"{self._move_aside()}. `featurize cache clear` deletes the damaged copy."
        )

    def _move_aside(self) -> str:
        """Rename the database (and its WAL files) out of the way; never delete it.

        Returns what happened, for the error message.
        """
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{DATABASE}{DAMAGED_SUFFIX}{stamp}-{os.getpid()}")
        moved = False
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{target}{suffix}")
            except FileNotFoundError:
                continue  # another thread or process moved it first
            except OSError as error:
                return f"left in place, as moving it failed ({error})"
            moved = True
        self._generation += 1
        if not moved:
            return "already moved aside by another thread or process"
        return f"moved to {str(target)!r}, and a new one starts on the next call"

    def __getstate__(self):
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.directory = state["directory"]
        self._local = threading.local()
        self._generation = 0

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory or default_cache_dir())!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, EmbeddingCache) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- namespaces

    @staticmethod
    def fingerprint(settings: dict) -> str:
        """The name of the namespace of ``settings`` (a featurizer's
        ``fingerprint()``): SHA-256 of their canonical JSON."""
        return fingerprint(settings)

    @_guarded
    def namespace(self, settings: dict, n_features: int) -> int:
        """The id of the namespace for ``settings``, creating it if needed."""
        key = fingerprint(settings)
        connection = self._connection()
        connection.execute(
            "INSERT OR IGNORE INTO namespaces (fingerprint, description, n_features, "
            "created) VALUES (?, ?, ?, ?)",
            (key, json.dumps(settings, sort_keys=True, default=str), n_features,
             time.time()),
        )  # fmt: skip
        (namespace,) = connection.execute(
            "SELECT id FROM namespaces WHERE fingerprint = ?", (key,)
        ).fetchone()
        return namespace

    @contextlib.contextmanager
    def lock(self, namespace: int):
        """A cross-process lock for computing the namespace's missing embeddings."""
        from filelock import FileLock

        try:
            folder = self.path.parent / "locks"
            folder.mkdir(parents=True, exist_ok=True)
            held = FileLock(str(folder / f"{namespace}.lock"))
            held.acquire()
        except OSError as error:
            raise self._unusable(error) from error
        try:
            yield
        finally:
            held.release()

    # -- entries

    @_guarded
    def get_many(
        self, namespace: int, digests: Sequence[bytes], n_features: int
    ) -> dict[bytes, np.ndarray]:
        """The cached embeddings among ``digests`` (missing ones are absent)."""
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        connection = self._connection()
        for start in range(0, len(unique), _SQLITE_VARIABLES):
            chunk = unique[start : start + _SQLITE_VARIABLES]
            rows = connection.execute(
                f"SELECT digest, vector FROM embeddings WHERE namespace = ? AND digest "
                f"IN ({','.join('?' * len(chunk))})",
                (namespace, *chunk),
            ).fetchall()
            for digest, stored in rows:
                if len(stored) != 4 * n_features + CHECKSUM_SIZE:
                    continue  # not ours: a miss
                data, check = stored[:-CHECKSUM_SIZE], stored[-CHECKSUM_SIZE:]
                if _checksum(data) != check:
                    raise sqlite3.DatabaseError(
                        "database disk image is malformed: a stored embedding does "
                        "not match its checksum"
                    )
                found[bytes(digest)] = np.frombuffer(data, dtype="<f4")
        return found

    @_guarded
    def put_many(
        self, namespace: int, entries: Iterable[tuple[bytes, np.ndarray]]
    ) -> None:
        """Store computed embeddings (one transaction) and count them as computed."""
        now = time.time()
        rows = []
        for digest, vector in entries:
            data = np.asarray(vector, dtype="<f4").tobytes()
            rows.append((namespace, digest, data + _checksum(data), now))
        if not rows:
            return
        connection = self._connection()
        with _transaction(connection):
            connection.executemany(
                "INSERT OR IGNORE INTO embeddings (namespace, digest, vector, created) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            connection.execute(
                "UPDATE namespaces SET computed = computed + ? WHERE id = ?",
                (len(rows), namespace),
            )

    # -- management

    @_guarded
    def info(self):
        """One row per namespace: what it is, entries, computed count, bytes.

        Returns
        -------
        pandas.DataFrame
            Columns ``namespace``, ``backbone``, ``layer``, ``pooling``,
            ``input_size``, ``entries``, ``computed`` (forward passes stored, ever),
            ``megabytes`` and ``created``.
        """
        import pandas as pd

        rows = (
            self._connection()
            .execute(
                "SELECT n.id, n.description, n.computed, n.created, COUNT(e.digest), "
                "COALESCE(SUM(LENGTH(e.vector)), 0) FROM namespaces n "
                "LEFT JOIN embeddings e ON e.namespace = n.id "
                "GROUP BY n.id ORDER BY n.id"
            )
            .fetchall()
        )
        records = []
        for namespace, description, computed, created, entries, size in rows:
            settings = json.loads(description)
            records.append(
                {
                    "namespace": namespace,
                    "backbone": settings.get("backbone"),
                    "layer": settings.get("layer"),
                    "pooling": settings.get("pooling"),
                    "input_size": settings.get("input_size"),
                    "entries": entries,
                    "computed": computed,
                    "megabytes": round(size / 2**20, 3),
                    "created": pd.Timestamp(created, unit="s"),
                }
            )
        columns = ["namespace", "backbone", "layer", "pooling", "input_size",
                   "entries", "computed", "megabytes", "created"]  # fmt: skip
        return pd.DataFrame(records, columns=columns)

    def clear(self, older_than: float | None = None) -> int:
        """Delete entries (all, or those stored more than ``older_than`` seconds ago).

        Clearing everything also deletes damaged databases that were moved aside,
        and works when the database itself is damaged.

        Returns
        -------
        int
            The number of entries deleted.
        """
        try:
            deleted = self._clear(older_than)
        except CacheUnavailableError:
            if older_than is not None or self.path.exists():
                raise
            deleted = 0  # it was damaged, and has just been moved aside
        if older_than is None:
            for copy in self.path.parent.glob(f"{DATABASE}{DAMAGED_SUFFIX}*"):
                copy.unlink()
        return deleted

    @_guarded
    def _clear(self, older_than: float | None) -> int:
        connection = self._connection()
        with _transaction(connection):
            if older_than is None:
                deleted = connection.execute("DELETE FROM embeddings").rowcount
                connection.execute("DELETE FROM namespaces")
            else:
                deleted = connection.execute(
                    "DELETE FROM embeddings WHERE created < ?",
                    (time.time() - older_than,),
                ).rowcount
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if older_than is None:
            connection.execute("VACUUM")
        return deleted


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_SIZE).digest()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, traceback):
        self.connection.execute("ROLLBACK" if kind else "COMMIT")
        return False


def resolve_cache(cache) -> EmbeddingCache | None:
    """Turn the ``cache`` parameter into a cache (or None when caching is off)."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return _default_cache()
    if isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return _cache_at(os.path.abspath(os.fspath(cache)))
    raise InvalidParameterError(
        f"`cache` must be True (the default location), None (off), a folder path or "
        f"an EmbeddingCache; received {cache!r} of type {type(cache).__name__}."
    )


_CACHES: dict[str, EmbeddingCache] = {}
_CACHES_LOCK = threading.Lock()


def _cache_at(directory: str) -> EmbeddingCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(directory)
        if cache is None:
            cache = _CACHES[directory] = EmbeddingCache(directory)
        return cache


def _default_cache() -> EmbeddingCache:
    return _cache_at(str(default_cache_dir().resolve()))
