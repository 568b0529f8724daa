"""An exported model as the folder that serves it, in any format: its files, and
``save`` that writes them whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from featurize._standalone.serving import FORMAT, LEGACY_FORMATS, METADATA
from featurize.errors import ExportError, OutputPathError

# What an export folder needs to serve, as its requirements.txt, by runtime. Opset
# 17 runs on onnxruntime 1.16 and newer; the SavedModel's graph on TensorFlow 2.16
# and newer (the first with Keras 3).
RUNTIME_REQUIREMENTS = {
    "onnx": ("onnxruntime>=1.16",),
    "litert": ("ai-edge-litert>=1.2",),
    "saved_model": ("tensorflow>=2.16",),
}
SERVING_REQUIREMENTS = ("numpy>=1.24", "pillow>=10.0")
TEXT_REQUIREMENTS = ("tokenizers>=0.15",)


@dataclass
class Export:
    """A fitted model ready to write as an export folder (see
    :func:`featurize.export`).

    Attributes
    ----------
    files : dict
        ``{path inside the folder: bytes}``: the graphs (a SavedModel is a folder
        of files) and what a server reads beside them (the tokenizer).
    metadata : dict
        Plain data: format, runtime, kind, classes, input, outputs, preprocessing,
        fingerprint, and ``graphs`` (``{role: path}``).
    """

    files: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"image"`` or ``"text"``."""
        return self.metadata["kind"]

    @property
    def runtime(self) -> str:
        """What serves it: ``"onnx"``, ``"litert"`` or ``"saved_model"``."""
        return self.metadata["runtime"]

    @staticmethod
    def check_folder(folder) -> None:
        """Raise :class:`ExportError` where :meth:`save` would refuse ``folder``:
        it exists and is not an earlier export, or holds files that export did
        not write (a predictions table, another model), which it names.
        Callers check before the work of exporting."""
        _check_replaceable(folder)

    def save(self, folder) -> dict:
        """Write the export folder: graphs, files, ``predict.py`` with the modules
        it reads inputs with, ``requirements.txt`` and ``metadata.json`` (listing
        every other file's SHA-256, which ``predict.py`` checks).

        The folder appears whole or not at all (written beside it, then renamed);
        an existing one is replaced only where it is an earlier export holding
        nothing but its own files.

        Returns
        -------
        dict
            ``{file path: size in bytes}``.

        Raises
        ------
        ExportError
            ``folder`` exists and is not an export folder, or holds files the
            earlier export did not write (nothing is written; they are named).
        """
        folder = Path(folder)
        self.check_folder(folder)
        contents = {**self.files, **_serving_files(self.kind, self.runtime)}
        metadata = {
            **self.metadata,
            "files": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(contents.items())
            },
        }
        contents[METADATA] = (json.dumps(metadata, indent=2) + "\n").encode()
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        except OSError as error:
            # The error names the staging folder, a name the user never gave.
            raise OutputPathError.unwritable(
                "export folder", folder, folder.parent, error
            ) from None
        try:
            for name, data in contents.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            retired = folder.with_name(f".{folder.name}.{os.getpid()}.old")
            if folder.exists():
                os.replace(folder, retired)
            os.replace(staging, folder)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {name: len(data) for name, data in contents.items()}


def folder_files(folder: Path, prefix: str) -> dict:
    """Every file under ``folder`` as ``{prefix/relative path: bytes}``."""
    return {
        f"{prefix}/{path.relative_to(folder).as_posix()}": path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _check_replaceable(folder) -> None:
    """Refuse ``folder`` unless it is new, empty, or an earlier export holding
    nothing but its own files.

    Anything else there is the user's (a predictions table, another model): the
    export is refused naming it, rather than carried over, because the folder is
    replaced whole by a rename and a file moved into it could be lost if that
    failed halfway.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(
            f"{str(folder)!r} is a file; an export is a folder: name a new one."
        )
    if not any(folder.iterdir()):
        return
    try:
        earlier = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or earlier.get("format") not in (
        FORMAT,
        *LEGACY_FORMATS,
    ):
        raise ExportError(
            f"{str(folder)!r} exists and is not an export folder (no featurize "
            f"{METADATA}): name a new or empty folder; an earlier export is "
            f"replaced, anything else is left alone."
        )
    foreign = _foreign_files(folder, earlier)
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise ExportError(
            f"{str(folder)!r} holds an earlier export and files that are not part "
            f"of it ({shown}{more}): replacing the folder would delete them. Move "
            f"them out, or name another folder."
        )


def _foreign_files(folder: Path, earlier: dict) -> list:
    """Files under ``folder`` that the earlier export (``earlier``, its metadata)
    did not write: neither listed in it nor Python's bytecode of its modules."""
    owned = {METADATA, *earlier.get("files", {})}
    # A first-release folder lists no files: its graphs are its own.
    owned |= {f"{role}.onnx" for role in earlier.get("graphs", ())}
    foreign = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir():
            continue
        if "__pycache__" in path.parts[len(folder.parts) :] and name.endswith(".pyc"):
            continue
        if name not in owned:
            foreign.append(name)
    return foreign


def _serving_files(kind: str, runtime: str) -> dict:
    """``predict.py`` and the standalone modules it imports, as an export folder
    holds them."""
    from featurize._standalone import serving

    here = Path(serving.__file__).parent
    files = {"predict.py": (here / "predict.py").read_bytes()}
    for module, name in serving.COPIES.items():
        files[name] = (here / f"{module}.py").read_bytes()
    needs = (
        SERVING_REQUIREMENTS
        + RUNTIME_REQUIREMENTS[runtime]
        + (TEXT_REQUIREMENTS if kind == "text" else ())
    )
    files["requirements.txt"] = ("\n".join(needs) + "\n").encode()
    return files
