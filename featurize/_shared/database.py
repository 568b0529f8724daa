"""The cache's SQLite layer: schema, migrations, transactions and checksums."""

from __future__ import annotations

import hashlib
import sqlite3

# Each stored vector is followed by a BLAKE2b checksum of its bytes: SQLite checks its
# own structure, not the data, so a damaged data page would otherwise read as a valid
# but wrong embedding. Part of every namespace, so other layouts are never misread.
CHECKSUM_SIZE = 8

SQLITE_VARIABLES = 500
SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    n_features INTEGER NOT NULL,
    computed INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    used REAL,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS embeddings (
    namespace INTEGER NOT NULL,
    digest BLOB NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    used REAL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS embeddings_by_use ON embeddings (used);
"""
# Columns added since the first release, for databases created before them.
ADDED_COLUMNS = {
    "namespaces": {"used": "REAL", "bytes": "INTEGER NOT NULL DEFAULT 0"},
    "embeddings": {"used": "REAL"},
}


def entry_bytes(vector_bytes: int, digest_bytes: int) -> int:
    return vector_bytes + digest_bytes


def add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a database made by an earlier release up to the current columns."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        missing = {name: kind for name, kind in columns.items() if name not in present}
        if not missing:
            continue
        with transaction(connection):
            for name, kind in missing.items():
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            if table == "embeddings":
                connection.execute("UPDATE embeddings SET used = created")
            if "bytes" in missing:
                connection.execute(
                    "UPDATE namespaces SET bytes = (SELECT COALESCE(SUM(LENGTH(vector) "
                    "+ LENGTH(digest)), 0) FROM embeddings WHERE namespace = "
                    "namespaces.id)"
                )


def checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_SIZE).digest()


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, traceback):
        self.connection.execute("ROLLBACK" if kind else "COMMIT")
        return False


# Strings that mean a setting, not a folder: `cache="none"` once made ./none.
