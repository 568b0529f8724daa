"""Anomaly detector at scale: fit time, peak memory and bank bytes against the number
of training images (100 to 5,000), each size fitted in a fresh process.

The images are seeded synthetic textures (stripes at random phase and angle, with
noise), 256 x 256 JPEGs: as many distinct normal images as wanted. Fits are cold
(no embedding cache): the time includes every forward pass, which is then shown
apart, measured as the backbone's embedding time for the same images in the same
process.

    python benchmarks/anomaly_scale.py [--sizes 100 500 1000 2000 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from featurize import AnomalyDetector, ImageFeaturizer


def make_images(folder: Path, n: int) -> list:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256]
    paths = []
    for k in range(n):
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) / 4.0 + phase)
        pixels = 128 + 50 * wave + rng.normal(0, 8, wave.shape)
        path = folder / f"{k:05d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def one(folder: Path, n: int) -> dict:
    """Fit on the first ``n`` images of ``folder`` (in this process)."""
    paths = sorted(str(p) for p in folder.iterdir())[:n]
    ImageFeaturizer(input_size=320, cache=None, runtime="onnx").transform(paths[:8])
    started = time.perf_counter()
    detector = AnomalyDetector(cache=None, runtime="onnx", random_state=0).fit(paths)
    fit = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The same forward passes alone, a chunk at a time as fit runs them.
    featurizer = detector.featurizer().set_params(runtime="onnx")
    started = time.perf_counter()
    for first in range(0, n, 100):
        featurizer.embed(paths[first : first + 100])
    forward = time.perf_counter() - started
    return {
        "images": n,
        "fit_s": fit,
        "forward_s": forward,
        "peak_rss_mb": peak,
        "bank_mb": detector.bank_.nbytes / 1e6,
        "bank_rows": len(detector.bank_),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int,
                        default=[100, 500, 1000, 2000, 5000])  # fmt: skip
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(Path(args.folder), args.one)))
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"# {platform.node()} {platform.machine()}, commit {commit}, "
          f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    print("images | fit s | forward passes alone s | the rest s | peak RSS MB (fit) | "
          "bank MB (rows)")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        make_images(folder, max(args.sizes))
        for n in args.sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--folder", str(folder)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            row = json.loads(out.strip().splitlines()[-1])
            print(
                f"{row['images']} | {row['fit_s']:.1f} | {row['forward_s']:.1f} | "
                f"{row['fit_s'] - row['forward_s']:.1f} | {row['peak_rss_mb']:.0f} | "
                f"{row['bank_mb']:.1f} ({row['bank_rows']:,})",
                flush=True,
            )


if __name__ == "__main__":
    main()
