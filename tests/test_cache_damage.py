"""A cache that cannot be used never fails a transform: the embeddings are computed
and returned, a warning says what is wrong and how to fix it, and a damaged database
is moved aside, not deleted."""

from __future__ import annotations

import errno
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from featurize import CacheWarning, EmbeddingCache, ImageFeaturizer
from featurize._shared import cache as cache_module

IMAGES = np.random.default_rng(7).integers(0, 256, (5, 32, 32, 3), np.uint8)
SETTINGS = {"input_size": 32, "batch_size": 2}


@pytest.fixture(scope="module")
def reference():
    return ImageFeaturizer(cache=None, **SETTINGS).fit_transform(IMAGES)


@pytest.fixture
def filled(tmp_path):
    """A cache folder holding the embeddings of the first three images."""
    folder = tmp_path / "cache"
    ImageFeaturizer(cache=EmbeddingCache(folder), **SETTINGS).fit_transform(IMAGES[:3])
    connection = sqlite3.connect(folder / cache_module.DATABASE)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file
    connection.close()
    return folder


def embed_with(folder):
    """Embed with a fresh cache object (no connection opened before the damage)."""
    return ImageFeaturizer(cache=EmbeddingCache(folder), **SETTINGS).fit().embed(IMAGES)


def damaged_copies(folder):
    return sorted(p.name for p in folder.glob(f"*{cache_module.DAMAGED_SUFFIX}*"))


def overwrite_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 2048 : middle + 2048] = np.random.default_rng(0).bytes(4096)
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:1500])


def replace_with_text(path):
    path.write_text("these are not the embeddings you are looking for\n" * 50)


@pytest.mark.parametrize(
    "damage",
    [overwrite_middle, truncate, replace_with_text],
    ids=["random bytes", "truncated", "not a database"],
)
def test_a_damaged_database_is_moved_aside_and_embedding_goes_on(
    filled, reference, damage
):
    database = filled / cache_module.DATABASE
    damage(database)
    damaged = database.read_bytes()
    with pytest.warns(CacheWarning, match="is damaged") as caught:
        result = embed_with(filled)
    np.testing.assert_allclose(result.array, reference, rtol=1e-5, atol=2e-5)
    assert "featurize cache clear" in str(caught[0].message)
    copies = damaged_copies(filled)
    main = [name for name in copies if not name.endswith(("-wal", "-shm"))]
    assert len(main) == 1
    assert (filled / main[0]).read_bytes() == damaged  # moved, not deleted
    # The next call starts a new database and caches again.
    assert embed_with(filled).stats["computed"] == 5
    assert embed_with(filled).stats["cache_hits"] == 5
    # `featurize cache clear` deletes the damaged copy.
    EmbeddingCache(filled).clear()
    assert damaged_copies(filled) == []


def test_clear_works_on_a_damaged_database(filled):
    replace_with_text(filled / cache_module.DATABASE)
    assert EmbeddingCache(filled).clear() == 0
    assert damaged_copies(filled) == []
    assert EmbeddingCache(filled).info().empty


def test_a_cache_folder_that_is_a_file_is_left_alone(tmp_path, reference):
    occupied = tmp_path / "cache"
    occupied.write_text("someone else's file")
    with pytest.warns(CacheWarning, match="cannot be used") as caught:
        result = embed_with(occupied)
    np.testing.assert_allclose(result.array, reference, rtol=1e-5, atol=2e-5)
    assert "FEATURIZE_CACHE_DIR" in str(caught[0].message)
    assert occupied.read_text() == "someone else's file"


def test_a_read_only_database_still_serves_hits(filled, reference, monkeypatch):
    # Tests run as root, which ignores file modes: open the file read-only instead.
    opened = sqlite3.connect

    def read_only(path, *args, **kwargs):
        return opened(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(cache_module.sqlite3, "connect", read_only)
    with pytest.warns(CacheWarning, match="readonly|read-only"):
        result = embed_with(filled)
    np.testing.assert_allclose(result.array, reference, rtol=1e-5, atol=2e-5)


def test_a_full_disk_loses_nothing(filled, reference, monkeypatch):
    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.transaction, "__enter__", full)
    with pytest.warns(CacheWarning, match="No space left on device") as caught:
        result = embed_with(filled)
    np.testing.assert_allclose(result.array, reference, rtol=1e-5, atol=2e-5)
    assert result.stats["cache_hits"] == 3  # reads still worked before the write
    assert "free disk space" in str(caught[0].message)
    assert damaged_copies(filled) == []  # a full disk is not a damaged file


HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
connection.execute("DELETE FROM embeddings")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_held_by_a_dead_process_does_not_block(filled, reference):
    database = filled / cache_module.DATABASE
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        result = embed_with(filled)
    np.testing.assert_allclose(result.array, reference, rtol=1e-5, atol=2e-5)
    assert result.stats["cache_hits"] == 3  # the dead process's delete never landed
