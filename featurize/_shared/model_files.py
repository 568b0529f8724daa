"""Load saved models without letting the file run code.

A ``.joblib`` file is a pickle: loading it calls whatever callables the file names, so
a crafted file runs arbitrary code the moment it is loaded. :func:`load_model` reads
the same files through an unpickler that admits only what a featurize model is made
of: featurize's and scikit-learn's estimators, NumPy arrays and scalars, pandas'
frames, SciPy's sparse matrices, and the few builtins and reconstructors those pickle
through. Anything else is refused, naming the global, before anything runs.

Types are admitted by what they are (their base classes), not by the module the file
names, because a pickle may name a class through any module that re-exports it;
functions only by exact name. Modules are never imported for a name outside the
admitted packages (importing a module can itself run code).
"""

from __future__ import annotations

import importlib
import os

from featurize.errors import ModelFileError, UnsafeModelFileError

# Packages a name may come from at all: nothing outside them is ever imported.
_PACKAGES = frozenset(
    {"featurize", "sklearn", "numpy", "scipy", "pandas", "pyarrow", "joblib",
     "builtins", "collections", "copyreg", "datetime", "pathlib", "_codecs"}
)  # fmt: skip
# Callables that only rebuild data, by exact (module, name).
_FUNCTIONS = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.internals.blocks", "new_block"),
        ("pyarrow.lib", "_restore_array"),
        ("pyarrow.lib", "py_buffer"),
        ("pyarrow.lib", "type_for_alias"),
    }
)
_BUILTIN_TYPES = frozenset(
    {"object", "set", "frozenset", "bytearray", "slice", "complex", "range"}
)
_STDLIB_TYPES = {
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "pathlib": {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                "PureWindowsPath"},
}  # fmt: skip
_TRUST_HINT = (
    "If you trust the file, load it anyway with `featurize predict --trust` or "
    "featurize.load_model(path, trust=True)."
)


def _safe_bases() -> tuple:
    """Base classes whose instances are plain data, and whose constructors do no
    I/O: what pickled estimators and their attributes are made of."""
    import numpy as np
    import pandas as pd
    from pandas.api.extensions import ExtensionArray, ExtensionDtype
    from pandas.core.base import PandasObject
    from sklearn.base import BaseEstimator

    return (
        BaseEstimator,
        np.generic,
        np.dtype,
        PandasObject,
        ExtensionArray,
        ExtensionDtype,
        pd.Timestamp,
        pd.Timedelta,
        pd.Period,
        pd.Interval,
        type(pd.NaT),
    )


def _admitted(module: str, name: str, value) -> bool:
    if (module, name) in _FUNCTIONS:
        return True
    if not isinstance(value, type):
        return False
    import numpy as np

    home = getattr(value, "__module__", "") or ""
    if home == "builtins":
        return value.__name__ in _BUILTIN_TYPES
    if home in _STDLIB_TYPES:
        return value.__name__ in _STDLIB_TYPES[home]
    if value is np.ndarray:  # never a subclass: numpy.memmap opens files
        return True
    if home.split(".")[0] == "featurize":
        return True
    if home.startswith("scipy.sparse"):
        return True
    if home.startswith("joblib.numpy_pickle"):
        return value.__name__ in ("NumpyArrayWrapper", "NDArrayWrapper")
    if home.startswith(("sklearn.utils._testing", "sklearn.datasets")):
        return False
    if home.split(".")[0] == "sklearn":
        return True
    return issubclass(value, _safe_bases())


def _unpickler_class():
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedUnpickler(NumpyUnpickler):
        """joblib's unpickler (arrays stored beside the pickle), restricted.

        joblib routes the nested pickles of object arrays through this same
        ``find_class``.
        """

        def find_class(self, module, name):
            refused = UnsafeModelFileError(
                f"{self.filename!r} asks to load the Python global {module}.{name}, "
                f"which is not among the types a featurize model is made of "
                f"(featurize and scikit-learn estimators, NumPy, SciPy and pandas "
                f"data); refusing to load it, as unpickling it could run code. "
                f"{_TRUST_HINT}"
            )
            if "." in name or module.split(".")[0] not in _PACKAGES:
                raise refused
            try:
                value = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                raise ModelFileError(
                    f"{self.filename!r} needs {module}.{name}, which this "
                    f"installation does not have: it was saved with other versions "
                    f"of featurize or its dependencies."
                ) from None
            if not _admitted(module, name, value):
                raise refused
            return value

    return RestrictedUnpickler


def load_model(path, *, trust: bool = False):
    """Load a model saved with ``joblib.dump`` (``featurize train --out``), safely.

    The file may hold only what a featurize model is made of: featurize and
    scikit-learn estimators, NumPy arrays, pandas frames, SciPy sparse matrices.
    Anything else is refused before it runs, so a crafted file cannot run code
    while it loads. ``joblib.load`` remains available for files you trust.

    Parameters
    ----------
    path : path-like
        The ``.joblib`` file.
    trust : bool, default=False
        Load the file with plain ``joblib.load``, whatever it holds: only for files
        from a source you trust.

    Returns
    -------
    object
        The unpickled model.

    Raises
    ------
    UnsafeModelFileError
        The file names a global outside the admitted types (naming it).
    ModelFileError
        The file is missing, damaged, or not a joblib pickle (naming the file).

    Examples
    --------
    >>> import joblib, tempfile, os
    >>> from featurize import ImageFeaturizer, load_model
    >>> path = os.path.join(tempfile.mkdtemp(), "featurizer.joblib")
    >>> _ = joblib.dump(ImageFeaturizer("resnet50"), path)
    >>> load_model(path).backbone
    'resnet50'
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} not found")
    if os.path.isdir(path):
        raise ModelFileError(f"model file {path!r} is a directory, not a file")
    try:
        if trust:
            import joblib

            return joblib.load(path)
        return _restricted_load(path)
    except (UnsafeModelFileError, ModelFileError):
        raise
    except MemoryError:
        raise
    except Exception as error:  # a damaged pickle raises anything
        raise ModelFileError(
            f"{path!r} is not a readable model file ({type(error).__name__}: "
            f"{str(error)[:120] or 'no detail'}): it is damaged or was not written "
            f"by joblib.dump (featurize train --out)."
        ) from None


def _restricted_load(path: str):
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with (
        open(path, "rb") as handle,
        _validate_fileobject_and_memmap(handle, path, None) as (stream, _),
    ):
        if isinstance(stream, str):  # joblib < 0.10's format: arrays in files
            raise ModelFileError(
                f"{path!r} was written by joblib < 0.10, whose format cannot be "
                f"read safely. {_TRUST_HINT}"
            )
        return _unpickler_class()(path, stream, True).load()
