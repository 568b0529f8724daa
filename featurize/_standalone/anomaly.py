"""Anomaly scores and maps from patch features and a memory bank.

numpy and Pillow only: featurize's :class:`featurize.AnomalyDetector` and an exported
folder's ``predict.py`` (which carries this file as ``_featurize_anomaly.py``) compute
the same numbers with the same code.

A score is a distance in the patch-feature space divided by the detector's
threshold, so ``1.0`` is the threshold for every model: an image scoring above 1 is an
anomaly, and a map's pixel above 1 is a region that alone would make it one.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Gaussian smoothing of the patch grid, in grid cells. One cell lets a defect that
# spans a few patches outweigh one noisy patch (PatchCore blurs its maps likewise).
SMOOTHING = 1.0
# Rows of the query and of the bank per distance block: 2,048 x 8,192 float32 is
# 64 MB, whatever the bank's size.
QUERY_BLOCK = 2048
BANK_BLOCK = 8192
# Clusters of the bank searched per patch (an inverted file, IVF): the nearest
# normal patch is looked for among the bank rows of the PROBES cells whose
# centroids are nearest, a small share of the bank for a large one.
PROBES = 8
# A map's grey level is 127.5 x its score: the threshold is mid-grey, twice the
# threshold and more is white.
GREY_PER_SCORE = 127.5


def nearest_distances(queries: np.ndarray, bank: np.ndarray, cells=None) -> np.ndarray:
    """The Euclidean distance from each row of ``queries`` to its nearest bank row.

    In blocks, so memory stays bounded for any bank and any batch. With ``cells``
    (``(centroids, starts)``: the bank's rows sorted by cell, cell ``c`` holding
    rows ``starts[c]:starts[c + 1]``), each query is compared with the rows of its
    :data:`PROBES` nearest cells only; without, with every row.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    bank_norms = np.einsum("ij,ij->i", bank, bank)
    out = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), QUERY_BLOCK):
        block = queries[start : start + QUERY_BLOCK]
        if cells is None or len(cells[0]) <= PROBES:
            best = _exact(block, bank, bank_norms)
        else:
            best = _probed(block, bank, bank_norms, *cells)
        best += np.einsum("ij,ij->i", block, block)
        out[start : start + len(block)] = np.sqrt(np.maximum(best, 0.0))
    return out


def _exact(block, bank, bank_norms) -> np.ndarray:
    """Per query, the smallest ``|b|^2 - 2 q.b`` over the whole bank."""
    best = np.full(len(block), np.inf, np.float32)
    for first in range(0, len(bank), BANK_BLOCK):
        rows = slice(first, first + BANK_BLOCK)
        squared = bank_norms[rows][None, :] - 2.0 * (block @ bank[rows].T)
        np.minimum(best, squared.min(axis=1), out=best)
    return best


def _probed(block, bank, bank_norms, centroids, starts) -> np.ndarray:
    """As :func:`_exact`, over the rows of each query's nearest cells."""
    centroids = np.asarray(centroids, np.float32)
    near = np.einsum("ij,ij->i", centroids, centroids)[None, :] - 2.0 * (
        block @ centroids.T
    )
    probes = np.argpartition(near, PROBES - 1, axis=1)[:, :PROBES]
    # (query, cell) pairs grouped by cell: one matrix product per cell.
    pairs = probes.ravel()
    order = np.argsort(pairs, kind="stable")
    bounds = np.searchsorted(pairs[order], np.arange(len(centroids) + 1))
    best = np.full(len(block), np.inf, np.float32)
    for cell in range(len(centroids)):
        asking = order[bounds[cell] : bounds[cell + 1]] // PROBES
        rows = slice(int(starts[cell]), int(starts[cell + 1]))
        if not len(asking) or rows.start == rows.stop:
            continue
        squared = bank_norms[rows][None, :] - 2.0 * (block[asking] @ bank[rows].T)
        # A query asks each cell once: plain indexing is safe.
        best[asking] = np.minimum(best[asking], squared.min(axis=1))
    return best


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(round(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def smooth(grids: np.ndarray, sigma: float = SMOOTHING) -> np.ndarray:
    """Gaussian-smooth ``(n, height, width)`` grids (edges reflected)."""
    if sigma <= 0 or grids.shape[1] * grids.shape[2] == 1:
        return grids.astype(np.float32, copy=True)
    kernel = _kernel(sigma)
    radius = len(kernel) // 2
    out = grids.astype(np.float32)
    for axis in (1, 2):
        if out.shape[axis] == 1:
            continue
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(
            out, pad, mode="symmetric" if out.shape[axis] <= radius else "reflect"
        )
        length = out.shape[axis]
        out = sum(
            weight * np.take(padded, range(k, k + length), axis=axis)
            for k, weight in enumerate(kernel)
        ).astype(np.float32)
    return out


def score_grids(
    features: np.ndarray, grid: tuple, bank: np.ndarray, threshold: float, cells=None
) -> np.ndarray:
    """Each image's smoothed grid of patch scores (1.0 = the threshold).

    Parameters
    ----------
    features : ndarray of shape (n, height * width * channels)
        Patch features, flattened as the network gives them.
    grid : (height, width, channels)
    bank : ndarray of shape (m, channels)
    threshold : float
        The raw distance that scores 1.0.
    cells : (centroids, starts) or None
        The bank's inverted file (see :func:`nearest_distances`).
    """
    height, width, channels = grid
    patches = np.asarray(features, np.float32).reshape(-1, channels)
    distances = nearest_distances(patches, bank, cells) / np.float32(threshold)
    return smooth(distances.reshape(-1, height, width))


def image_scores(grids: np.ndarray) -> np.ndarray:
    """An image's score: its grid's highest (smoothed) patch score."""
    return grids.reshape(len(grids), -1).max(axis=1)


def full_size(grid: np.ndarray, size: tuple) -> np.ndarray:
    """One grid resized to the image's ``(width, height)``: float32, bilinear."""
    image = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32), mode="F")
    return np.asarray(image.resize(tuple(size), Image.Resampling.BILINEAR))


def map_image(values: np.ndarray) -> Image.Image:
    """A map as an 8-bit greyscale image, brighter = more anomalous."""
    grey = np.clip(np.nan_to_num(values) * GREY_PER_SCORE, 0, 255)
    return Image.fromarray(np.round(grey).astype(np.uint8), mode="L")


def overlay(image: Image.Image, values: np.ndarray) -> Image.Image:
    """A heat map of ``values`` over ``image`` (same size), for people: the image
    shows through where the score is below half the threshold, tinted blue to
    yellow as it nears the threshold, red from the threshold up."""
    values = np.nan_to_num(np.asarray(values, np.float32))
    level = np.clip((values - 0.5) / 0.5, 0, 1)[..., None]
    cold = np.array([40, 80, 255], np.float32)
    warm = np.array([255, 220, 0], np.float32)
    hot = np.array([230, 0, 0], np.float32)
    colours = np.where(values[..., None] >= 1.0, hot, cold + (warm - cold) * level)
    alpha = np.where(values[..., None] >= 1.0, 0.6, 0.5 * level)
    base = np.asarray(image.convert("RGB"), np.float32)
    mixed = base * (1 - alpha) + colours * alpha
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8), mode="RGB")


def image_size(item) -> tuple:
    """``(width, height)`` of an image input as the pixel pipeline reads it: a path,
    bytes, a PIL image or an array (EXIF orientation applied, as decoding does)."""
    if hasattr(item, "size") and hasattr(item, "mode"):
        return item.size
    if isinstance(item, np.ndarray):
        return int(item.shape[1]), int(item.shape[0])
    if isinstance(item, (bytes, bytearray, memoryview)):
        opened = Image.open(io.BytesIO(bytes(item)))
    else:
        opened = Image.open(item)
    with opened as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
