"""Decoded pixels for training and prediction: uint8 at the input size.

Training visits every image once per epoch, so images are decoded and resized once, by
the same decode threads and pixel pipeline as the featurizer, and kept as ``uint8``
(``height * width * 3`` bytes each: 150 KB at 224 px) while the whole set fits under a
byte budget; above it they are decoded again for every batch. Augmentation and
preprocessing happen later, per batch, inside the Keras model.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from featurize._images.decode import describe, load_image
from featurize._images.forward import default_decode_workers
from featurize._shared.results import Failure, merge_failures
from featurize.errors import ImageError

CHUNK = 256  # images decoded at a time when they are not all kept


@dataclass(frozen=True)
class PixelSource:
    """How to turn inputs into ``(n, height, width, 3)`` uint8 batches."""

    size: tuple[int, int]
    resize: str
    max_pixels: int | None
    workers: int

    def image_bytes(self) -> int:
        return self.size[0] * self.size[1] * 3

    def decode(self, items, indices) -> tuple[np.ndarray, list]:
        """Decode ``items[i]`` for ``i`` in ``indices``.

        Returns the batch (black where an image failed) and the
        :class:`Failure` records, ``index`` being the position in ``items``.
        """
        indices = list(indices)
        batch = np.zeros((len(indices), *self.size, 3), np.uint8)
        failures = []

        def one(position: int) -> None:
            index = indices[position]
            try:
                pixels = load_image(
                    items[index],
                    size=self.size,
                    resize=self.resize,
                    max_pixels=self.max_pixels,
                    index=index,
                )
            except ImageError as error:
                failures.append(Failure(index, describe(items[index]), error))
                return
            if pixels.dtype != np.uint8:
                pixels = np.clip(np.rint(pixels), 0, 255)
            batch[position] = pixels

        if self.workers and len(indices) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(one, range(len(indices))))
        else:
            for position in range(len(indices)):
                one(position)
        failures.sort(key=lambda failure: failure.index)
        return batch, failures

    def training_images(self, items, budget: int, known_failures=None):
        """Every image decoded once (``(pixels, failures)``) when they fit in
        ``budget`` bytes; else ``(None, failures)``, the bad images found up
        front (not during training) unless ``known_failures`` already lists them.
        """
        failures = list(known_failures or [])
        if len(items) * self.image_bytes() <= budget:
            pixels, found = self.decode(items, range(len(items)))
            return pixels, merge_failures(failures, found)
        if known_failures is None:
            for _, _, bad in self.chunks(items):
                failures = merge_failures(failures, bad)
        return None, failures

    def chunks(self, items, size: int = CHUNK):
        """``(rows, batch, failures)`` for consecutive chunks of ``items``: memory
        stays bounded by the chunk, whatever the number of inputs."""
        for start in range(0, len(items), size):
            rows = range(start, min(start + size, len(items)))
            yield (rows, *self.decode(items, rows))


class Batches:
    """Shuffled training batches ``(pixels, labels, sample weights)``, per epoch.

    ``pixels`` is either the decoded uint8 array or, when the set did not fit in
    memory, the inputs themselves, decoded batch by batch (an image that fails then
    gets weight 0 rather than stopping the run).
    """

    def __init__(self, pixels, labels, weights, batch_size, rng, source=None):
        self.pixels = pixels
        self.labels = np.asarray(labels)
        self.weights = np.asarray(weights, np.float32)
        self.batch_size = batch_size
        self.rng = rng
        self.source = source
        self.late_failures: list = []
        self.order = np.arange(len(self.labels))

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def shuffle(self) -> None:
        order = self.rng.permutation(len(self.labels))
        # The last batch is topped up from the start of the permutation: every
        # step then has the same shape, and the training step is traced once.
        short = -len(order) % self.batch_size
        self.order = np.concatenate([order, order[:short]])

    def __getitem__(self, k: int):
        rows = np.sort(self.order[k * self.batch_size : (k + 1) * self.batch_size])
        weights = self.weights[rows]
        if self.source is None:
            pixels = self.pixels[rows]
        else:
            pixels, failures = self.source.decode(self.pixels, rows)
            if failures:
                self.late_failures.extend(failures)
                failed = {failure.index for failure in failures}
                weights = np.where(np.isin(rows, list(failed)), 0.0, weights)
        return pixels.astype(np.float32), self.labels[rows], weights


def pixel_source(params: dict, size) -> PixelSource:
    """The pixel source of an estimator's checked parameters."""
    workers = params["decode_workers"]
    return PixelSource(
        tuple(size),
        params["resize"],
        params["max_pixels"],
        default_decode_workers() if workers is None else workers,
    )
