"""Warm versus cold ImageFeaturizer.transform: how much the embedding cache saves.

Run: .venv/bin/python benchmarks/cache_warm_cold.py [FOLDER]
(default: ../shared/datasets/hymenoptera, else data/hymenoptera). The model is built
before timing; "cold" embeds every image into an empty cache, "warm" repeats the same
call, which reads the files, hashes them and serves every embedding from the cache.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from featurize import EmbeddingCache, ImageFeaturizer  # noqa: E402
from pipelines import read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    default = ROOT.parent / "shared" / "datasets" / "hymenoptera"
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    if not folder.is_dir():
        folder = ROOT / "data" / "hymenoptera"
    paths = read_manifest(folder).path.tolist()
    cache = EmbeddingCache(tempfile.mkdtemp(prefix="featurize-bench-"))
    featurizer = ImageFeaturizer("efficientnet_lite0", cache=cache).fit()
    featurizer.transform(paths[:2])  # build and trace the model outside the timing
    cache.clear()
    timings = {}
    for label in ("cold", "warm"):
        started = time.perf_counter()
        result = featurizer.embed(paths)
        timings[label] = time.perf_counter() - started
        assert result.stats["computed" if label == "cold" else
                            "cache_hits"] == len(paths)  # fmt: skip
    import keras

    machine = platform.processor() or platform.machine()
    print(
        f"{len(paths)} images from {folder}; efficientnet_lite0, batch 32; Keras "
        f"{keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPU "
        f"cores, {machine}"
    )
    print(f"{'run':<6} {'seconds':>8} {'images/s':>10}")
    for label, seconds in timings.items():
        print(f"{label:<6} {seconds:>8.3f} {len(paths) / seconds:>10.1f}")
    print(f"warm/cold speed-up: {timings['cold'] / timings['warm']:.0f}x")


if __name__ == "__main__":
    main()
