"""Image folders: one sub-folder per class, optionally inside split folders."""

from __future__ import annotations

import os

# Split folders (or a manifest's split column) by name: what is trained on, and what
# holds out.
TRAIN_SPLITS = ("train", "training")
EVAL_SPLITS = ("val", "valid", "validation", "test", "testing")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLIT_NAMES = TRAIN_SPLITS + EVAL_SPLITS


def _subfolders(path: str) -> list[str]:
    return sorted(
        entry.name
        for entry in os.scandir(path)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def list_splits(root) -> list[str]:
    """The split sub-folders (``train``, ``val``, ``test``, ...) of ``root``, if any."""
    root = os.fspath(root)
    return [name for name in _subfolders(root) if name.lower() in SPLIT_NAMES]


def load_image_folder(root, split: str | None = None) -> tuple[list[str], list[str]]:
    """List the images of a folder with one sub-folder per class.

    Parameters
    ----------
    root : path-like
        ``root/<class>/<image>``, or ``root/<split>/<class>/<image>`` with split
        folders such as ``train/`` and ``val/``.
    split : str, optional
        Which split folder to read, when ``root`` has them.

    Returns
    -------
    paths : list of str
        Image files (by extension, hidden files skipped), sorted by class then name.
    labels : list of str
        The class (sub-folder name) of each path.

    Examples
    --------
    >>> from pipelines import load_image_folder
    >>> paths, labels = load_image_folder("data/hymenoptera", split="train")
    >>> sorted(set(labels))
    ['ants', 'bees']
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"Image folder {root!r} does not exist or is not a folder."
        )
    splits = list_splits(root)
    if split is not None:
        if split not in splits:
            raise ValueError(
                f"{root!r} has no split folder {split!r}; its splits are {splits}."
            )
        root = os.path.join(root, split)
    elif splits:
        raise ValueError(
            f"{root!r} holds split folders {splits}: pass split=..., e.g. "
            f"load_image_folder({root!r}, split={splits[0]!r})."
        )
    paths, labels = [], []
    for label in _subfolders(root):
        folder = os.path.join(root, label)
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(folder, name)
            # A dangling link is listed, so that it is reported, not lost.
            if not os.path.isdir(path):
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(
            f"No images found under {root!r}: expected one sub-folder per class "
            f"holding {', '.join(IMAGE_EXTENSIONS)} files."
        )
    return paths, labels
