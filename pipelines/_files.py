"""Output files that cannot lose the user's data.

Every output path is checked before any work (so a long run never ends by failing
on it): never one of the inputs, a format its name says, a folder that exists (made
if need be) and can be written. Outputs are written to a temporary file beside the
target and renamed onto it once complete, with the permissions the umask gives a new
file; temporaries left by a killed process are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from featurize import FeaturizeError, OutputPathError

_TEMPORARY = ".tmp"


class OverwritesInputError(FeaturizeError, ValueError):
    """An output path that is one of the inputs (or another output of the same
    command)."""


def same_file(a, b) -> bool:
    """Whether two paths name the same file (links and relative paths resolved)."""
    a, b = os.fspath(a), os.fspath(b)
    if "://" in a or "://" in b:
        return a == b
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path, *, inputs=(), what: str = "output", suffixes=None) -> str:
    """Check an output path before any work; return it.

    Parameters
    ----------
    path : path-like
    inputs : sequence of path-like
        Files the command reads: the output may be none of them.
    what : str
        What is written there, for messages ("model", "table").
    suffixes : sequence of str, optional
        The names the output's format allows (".csv", ".parquet", ...).

    Raises
    ------
    OverwritesInputError
        The path is one of ``inputs``.
    OutputPathError
        Its name says another format, it is a folder, or its folder cannot be
        made or written.
    """
    text = os.fspath(path)
    for source in inputs:
        if source is not None and same_file(text, source):
            raise OverwritesInputError(
                f"The {what} {text!r} is also an input ({os.fspath(source)!r}): "
                f"writing it would destroy the input. Choose another name."
            )
    if suffixes is not None and not text.lower().endswith(tuple(suffixes)):
        raise OutputPathError(
            f"The {what} {text!r} has no name of its format: end it with "
            f"{' or '.join(suffixes)}."
        )
    if os.path.isdir(text):
        raise OutputPathError(f"The {what} {text!r} is a folder; name a file in it.")
    folder = os.path.dirname(os.path.abspath(text))
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".featurize-write-check-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as error:
        raise OutputPathError.unwritable(what, text, folder, error) from None
    return text


def check_distinct(out, report) -> None:
    """A table and a page given the same path: each needs a file of its own."""
    if out and report and same_file(out, report):
        raise OverwritesInputError(
            f"--out and --report name the same file ({os.fspath(report)!r}): the "
            f"table and the page need a file each."
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path) -> None:
    """Delete the temporaries of ``path`` left by processes that no longer run."""
    target = Path(os.fspath(path))
    for leftover in target.parent.glob(f".{target.name}.*{_TEMPORARY}"):
        parts = leftover.name[len(target.name) + 2 :].split(".")
        if not parts or not parts[0].isdigit() or _alive(int(parts[0])):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporary_path(path) -> str:
    """A new temporary name beside ``path``, carrying this process's id."""
    target = Path(os.fspath(path))
    token = secrets.token_hex(4)
    return str(target.parent / f".{target.name}.{os.getpid()}.{token}{_TEMPORARY}")


def publish(temporary: str, path) -> None:
    """Give ``temporary`` the umask's permissions and rename it onto ``path``."""
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, os.fspath(path))


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path to write; it replaces ``path`` when the block ends
    without an error, and is removed otherwise."""
    remove_stale_temporaries(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        publish(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_table(frame, path: str | None) -> None:
    """Write ``frame`` as CSV (stdout when ``path`` is None) or Parquet, by name."""
    import sys

    if path is None:
        frame.to_csv(sys.stdout, index=False)
        return
    with atomic_output(path) as temporary:
        if path.lower().endswith((".parquet", ".pq")):
            frame.to_parquet(temporary, index=False)
        else:
            frame.to_csv(
                temporary,
                index=False,
                sep="\t" if path.lower().endswith(".tsv") else ",",
            )


def dump_model(model, path: str) -> int:
    """Save ``model`` with joblib, atomically; return the file's size."""
    import joblib

    with atomic_output(path) as temporary:
        joblib.dump(model, temporary)
    return os.path.getsize(path)
