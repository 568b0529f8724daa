"""The versions that are part of every embedding's cache namespace.

A namespace recorded with values other than this installation's can never be hit
again (the cache calls it stale). Bump a pipeline's version when a change to it
changes what it produces.
"""

from __future__ import annotations

# The name on package indexes: "featurize" there is an unrelated project. The import
# name and the command stay `featurize`.
DISTRIBUTION = "keras-featurize"
# featurize/_standalone/pixels.py: a change there that changes pixels.
PIXEL_PIPELINE_VERSION = 2
# featurize/_texts/values.py and the encoders: a change that changes text embeddings.
TEXT_PIPELINE_VERSION = 1
# featurize/_shared/cache.py: the layout of a stored entry (vector + checksum).
CACHE_ENTRY_FORMAT = 2


def featurize_version() -> str:
    """This installation's version of featurize."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def installed_versions(kind: str = "image") -> dict:
    """The version fields of an image (or ``"text"``) namespace that this
    installation produces."""
    from importlib.metadata import version

    if kind == "image":
        pipeline = {"pixel_pipeline": PIXEL_PIPELINE_VERSION}
    else:
        pipeline = {"text_pipeline": TEXT_PIPELINE_VERSION}
    return {
        **pipeline,
        "cache_entry": CACHE_ENTRY_FORMAT,
        "keras": ".".join(version("keras").split(".")[:2]),
    }


def stale_fields(settings: dict, installed: dict) -> str:
    """How a namespace's recorded versions differ from the installed ones, or ""."""
    return "; ".join(
        f"{name} {settings[name]} (installed {value})"
        for name, value in installed.items()
        if name in settings and str(settings[name]) != str(value)
    )
