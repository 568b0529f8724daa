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

The cache is bounded: ``max_bytes`` (default 10 GiB, or ``$FEATURIZE_CACHE_MAX_BYTES``)
caps the stored embeddings, and the least recently used entries are evicted past it.
Each entry records when it was last read (to the minute, so that reads rarely write).

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

from featurize._shared.database import (
    CHECKSUM_SIZE,
    INDEXES,
    SCHEMA,
    SQLITE_VARIABLES,
    add_missing_columns,
    checksum,
    entry_bytes,
    transaction,
)
from featurize._shared.versions import installed_versions, stale_fields
from featurize.errors import CacheUnavailableError, InvalidParameterError

CACHE_DIR_ENV = "FEATURIZE_CACHE_DIR"
MAX_BYTES_ENV = "FEATURIZE_CACHE_MAX_BYTES"
# 10 GiB: about 2 million 1280-d embeddings (EfficientNet-Lite0), 1.3 million
# 2048-d ones (ResNet50): a large collection per backbone, a small part of a disk.
DEFAULT_MAX_BYTES = 10 * 2**30
# A read updates an entry's last use only when it is older than this, and reads are
# recorded in batches (at most this many pending, or this old): least recently used to
# the minute, without a write transaction per cache hit.
USED_RESOLUTION = 60.0
READS_PER_WRITE = 256
DATABASE = "embeddings.sqlite3"
# SQLite's words for a file that is not a sound database (anything else, such as
# "locked", "readonly" or "disk is full", is a condition of the machine, not the file).
_DAMAGED = ("malformed", "not a database", "disk i/o error", "file is encrypted")
DAMAGED_SUFFIX = ".damaged-"


def default_cache_dir() -> Path:
    """``$FEATURIZE_CACHE_DIR``, else ``embeddings/`` in the user cache directory."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("featurize")) / "embeddings"


def parse_bytes(text) -> int | None:
    """``"2GB"``, ``"500MiB"``, ``"1e9"`` or an int to bytes; "none" to None."""
    if text is None or isinstance(text, int):
        return text
    value = str(text).strip().lower().replace(" ", "")
    if value in ("none", ""):
        return None
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3,
             "mb": 10**6, "gb": 10**9, "tb": 10**12, "k": 2**10, "m": 2**20,
             "g": 2**30, "t": 2**40, "b": 1}  # fmt: skip
    for unit, factor in units.items():
        if value.endswith(unit):
            number, scale = value[: -len(unit)], factor
            break
    else:
        number, scale = value, 1
    try:
        return int(float(number) * scale)
    except ValueError:
        raise InvalidParameterError(
            f"Cannot read {text!r} as a size: use bytes (1000000), or a number with "
            f"a unit (500MB, 2GiB), or 'none' for no limit."
        ) from None


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
    max_bytes : int, str or None, optional
        Cap on the stored embeddings (their bytes and keys; SQLite's own pages add
        a few percent to the file): past it, the least recently used entries are
        evicted. Default ``$FEATURIZE_CACHE_MAX_BYTES`` ("20GB", "none"), else
        10 GiB. None: no cap.

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

    def __init__(self, directory=None, max_bytes="default"):
        self.directory = Path(directory) if directory is not None else None
        if max_bytes == "default":
            max_bytes = os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)
        self.max_bytes = parse_bytes(max_bytes)
        if self.max_bytes is not None and self.max_bytes < 0:
            raise InvalidParameterError(
                f"max_bytes must be at least 0, or None for no cap; received "
                f"{max_bytes!r}."
            )
        self._local = threading.local()
        self._generation = 0  # bumped when a damaged file is moved aside
        self._reads_lock = threading.Lock()
        self._reads: dict[int, list] = {}  # namespace -> digests read, not yet noted
        self._reads_noted = 0.0

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
        # Before the first table: evicted pages then go back to the disk.
        connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=120000")
        connection.executescript(SCHEMA)
        add_missing_columns(connection)
        connection.executescript(INDEXES)
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
        return {"directory": self.directory, "max_bytes": self.max_bytes}

    def __setstate__(self, state):
        self.directory = state["directory"]
        self.max_bytes = state.get("max_bytes", DEFAULT_MAX_BYTES)
        self._local = threading.local()
        self._generation = 0
        self._reads_lock = threading.Lock()
        self._reads = {}
        self._reads_noted = 0.0

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
        now, touch = time.time(), []
        for start in range(0, len(unique), SQLITE_VARIABLES):
            chunk = unique[start : start + SQLITE_VARIABLES]
            rows = connection.execute(
                f"SELECT digest, vector, COALESCE(used, created) FROM embeddings "
                f"WHERE namespace = ? AND digest IN ({','.join('?' * len(chunk))})",
                (namespace, *chunk),
            ).fetchall()
            for digest, stored, used in rows:
                if used < now - USED_RESOLUTION:
                    touch.append(digest)
                if len(stored) != 4 * n_features + CHECKSUM_SIZE:
                    continue  # not ours: a miss
                data, check = stored[:-CHECKSUM_SIZE], stored[-CHECKSUM_SIZE:]
                if checksum(data) != check:
                    raise sqlite3.DatabaseError(
                        "database disk image is malformed: a stored embedding does "
                        "not match its checksum"
                    )
                found[bytes(digest)] = np.frombuffer(data, dtype="<f4")
        if touch:
            with self._reads_lock:
                self._reads.setdefault(namespace, []).extend(touch)
                pending = sum(len(d) for d in self._reads.values())
                due = now - self._reads_noted >= USED_RESOLUTION
            if due or pending >= READS_PER_WRITE:
                self._note_reads(connection, now)
        return found

    def _note_reads(self, connection, now: float) -> None:
        """Record pending reads as uses; best effort (a read-only or busy cache still
        serves hits)."""
        with self._reads_lock:
            reads, self._reads, self._reads_noted = self._reads, {}, now
        try:
            with transaction(connection):
                for namespace, digests in reads.items():
                    for start in range(0, len(digests), SQLITE_VARIABLES):
                        chunk = digests[start : start + SQLITE_VARIABLES]
                        connection.execute(
                            f"UPDATE embeddings SET used = ? WHERE namespace = ? AND "
                            f"digest IN ({','.join('?' * len(chunk))})",
                            (now, namespace, *chunk),
                        )
                    connection.execute(
                        "UPDATE namespaces SET used = ? WHERE id = ?", (now, namespace)
                    )
        except (sqlite3.OperationalError, OSError) as error:
            if any(word in str(error).lower() for word in _DAMAGED):
                raise

    @_guarded
    def put_many(
        self, namespace: int, entries: Iterable[tuple[bytes, np.ndarray]]
    ) -> None:
        """Store computed embeddings (one transaction) and count them as computed."""
        now = time.time()
        rows = []
        for digest, vector in entries:
            data = np.asarray(vector, dtype="<f4").tobytes()
            rows.append((namespace, digest, data + checksum(data), now, now))
        if not rows:
            return
        connection = self._connection()
        with transaction(connection):
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO embeddings (namespace, digest, vector, created, "
                "used) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            added = connection.total_changes - before
            size = entry_bytes(len(rows[0][2]), len(rows[0][1]))
            connection.execute(
                "UPDATE namespaces SET computed = computed + ?, bytes = bytes + ?, "
                "used = ? WHERE id = ?",
                (len(rows), added * size, now, namespace),
            )
            evicted = self._evict(connection, self.max_bytes)
        if evicted:
            connection.execute("PRAGMA incremental_vacuum")

    def _evict(self, connection, max_bytes: int | None) -> int:
        """Delete least recently used entries until at most ``max_bytes`` remain."""
        if max_bytes is None:
            return 0
        (total,) = connection.execute(
            "SELECT COALESCE(SUM(bytes), 0) FROM namespaces"
        ).fetchone()
        excess, evicted = total - max_bytes, 0
        while excess > 0:
            oldest = connection.execute(
                "SELECT namespace, digest, LENGTH(vector) FROM embeddings "
                "ORDER BY used LIMIT ?",
                (SQLITE_VARIABLES,),
            ).fetchall()
            if not oldest:
                break
            chosen, freed = [], {}
            for namespace, digest, length in oldest:
                size = entry_bytes(length, len(digest))
                chosen.append((namespace, digest))
                freed[namespace] = freed.get(namespace, 0) + size
                excess -= size
                if excess <= 0:
                    break
            connection.executemany(
                "DELETE FROM embeddings WHERE namespace = ? AND digest = ?", chosen
            )
            connection.executemany(
                "UPDATE namespaces SET bytes = MAX(bytes - ?, 0) WHERE id = ?",
                [(size, namespace) for namespace, size in freed.items()],
            )
            evicted += len(chosen)
        return evicted

    @_guarded
    def shrink(self, max_bytes="cap") -> int:
        """Evict least recently used entries down to ``max_bytes``.

        ``max_bytes`` defaults to the cache's own cap. Returns how many entries were
        evicted.
        """
        limit = self.max_bytes if max_bytes == "cap" else parse_bytes(max_bytes)
        connection = self._connection()
        self._note_reads(connection, time.time())
        with transaction(connection):
            evicted = self._evict(connection, limit)
        connection.execute("PRAGMA incremental_vacuum")
        return evicted

    # -- management

    @_guarded
    def info(self):
        """One row per namespace: what it is, entries, size, last use, staleness.

        Returns
        -------
        pandas.DataFrame
            Columns ``namespace``, ``backbone`` (or text encoder), ``layer``,
            ``pooling``, ``input_size``, ``entries``, ``computed`` (forward passes
            stored, ever), ``megabytes`` (embeddings and keys), ``created``,
            ``last_used`` and ``stale``: why this installation can never hit the
            namespace again (e.g. ``"keras 3.14 (installed 3.15)"``), empty when it
            can.
        """
        import pandas as pd

        rows = (
            self._connection()
            .execute(
                "SELECT n.id, n.description, n.computed, n.created, "
                "COALESCE(n.used, n.created), n.bytes, COUNT(e.digest) "
                "FROM namespaces n LEFT JOIN embeddings e ON e.namespace = n.id "
                "GROUP BY n.id ORDER BY n.id"
            )
            .fetchall()
        )
        installed = installed_versions("image") | installed_versions("text")
        records = []
        for namespace, description, computed, created, used, size, entries in rows:
            settings = json.loads(description)
            records.append(
                {
                    "namespace": namespace,
                    "backbone": settings.get("backbone", settings.get("encoder")),
                    "layer": settings.get("layer"),
                    "pooling": settings.get("pooling"),
                    "input_size": settings.get("input_size"),
                    "entries": entries,
                    "computed": computed,
                    "megabytes": round(size / 2**20, 3),
                    "created": pd.Timestamp(created, unit="s"),
                    "last_used": pd.Timestamp(used, unit="s"),
                    "stale": stale_fields(settings, installed),
                }
            )
        columns = ["namespace", "backbone", "layer", "pooling", "input_size",
                   "entries", "computed", "megabytes", "created", "last_used",
                   "stale"]  # fmt: skip
        return pd.DataFrame(records, columns=columns)

    @_guarded
    def clear_stale(self) -> int:
        """Delete the namespaces this installation can never hit again (see
        :meth:`info`'s ``stale``). Returns the number of entries deleted."""
        stale = self.info()
        ids = [int(n) for n in stale.namespace[stale.stale != ""]]
        connection = self._connection()
        deleted = 0
        with transaction(connection):
            for namespace in ids:
                deleted += connection.execute(
                    "DELETE FROM embeddings WHERE namespace = ?", (namespace,)
                ).rowcount
                connection.execute("DELETE FROM namespaces WHERE id = ?", (namespace,))
        connection.execute("PRAGMA incremental_vacuum")
        return deleted

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
        with transaction(connection):
            if older_than is None:
                deleted = connection.execute("DELETE FROM embeddings").rowcount
                connection.execute("DELETE FROM namespaces")
            else:
                deleted = connection.execute(
                    "DELETE FROM embeddings WHERE created < ?",
                    (time.time() - older_than,),
                ).rowcount
                connection.execute(
                    "UPDATE namespaces SET bytes = (SELECT COALESCE(SUM(LENGTH(vector) "
                    "+ LENGTH(digest)), 0) FROM embeddings WHERE namespace = "
                    "namespaces.id)"
                )
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if older_than is None:
            connection.execute("VACUUM")
        return deleted


_NOT_FOLDERS = ("none", "null", "false", "true", "off", "no", "")


def resolve_cache(cache) -> EmbeddingCache | None:
    """Turn the ``cache`` parameter into a cache (or None when caching is off)."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return _default_cache()
    if isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, str) and cache.strip().lower() in _NOT_FOLDERS:
        raise InvalidParameterError(
            f"`cache={cache!r}` would be a folder of that name; pass cache=None to "
            f"turn the cache off, cache=True for the default folder, or a path such "
            f"as './{cache}' for a folder really named so."
        )
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
