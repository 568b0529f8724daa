"""End-to-end throughput: the tutorial baseline, the model-only bound, featurize.

For each backbone, images per second for
(a) the tutorial way: ``keras.utils.load_img`` + ``img_to_array`` + the family's
    ``preprocess_input`` + ``model.predict``, batch 32;
(b) the model-only bound: featurize's compiled forward pass on images already decoded
    in memory;
(c) ``ImageFeaturizer.transform`` from the files, cache off;
and, to show where the time goes, (d) the input pipeline alone: featurize's decode
threads reading, decoding and resizing the files, with no model.
Weights do not change the amount of compute, so backbones run with ``weights=None``.
Each rate is the best of ``repeats`` interleaved rounds: on a shared machine, the
fastest round is the one least disturbed by other work.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

DEFAULT_BACKBONES = ("mobilenet_v3_small", "efficientnet_lite0", "resnet50")
_RSS_SCRIPT = """
import json, resource, sys
from featurize import ImageFeaturizer
paths = json.load(open(sys.argv[1]))
ImageFeaturizer(sys.argv[2], weights=None, cache=None).fit_transform(paths)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def image_paths(folder, count: int) -> list[str]:
    """``count`` image paths from ``folder``, repeating its files as needed."""
    from pipelines._data import IMAGE_EXTENSIONS

    files = sorted(
        str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise FileNotFoundError(f"No images under {folder!r}.")
    return list(itertools.islice(itertools.cycle(files), count))


def _rate(count: int, run) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def tutorial_rate(name: str, paths: list[str], batch_size: int = 32) -> float:
    """(a): what the Keras tutorials do, one image at a time in the main thread."""
    import keras

    from featurize._backbones import get_backbone

    backbone = get_backbone(name)
    size = backbone.input_size
    model = backbone.build((*size, 3), None)
    model = keras.Model(
        model.input, keras.layers.GlobalAveragePooling2D()(model.output)
    )
    preprocess = backbone.preprocess_function()

    def run(subset):
        for start in range(0, len(subset), batch_size):
            batch = np.stack(
                [
                    keras.utils.img_to_array(keras.utils.load_img(p, target_size=size))
                    for p in subset[start : start + batch_size]
                ]
            )
            model.predict(preprocess(batch), verbose=0)

    run(paths[:batch_size])  # warm-up
    return _rate(len(paths), lambda: run(paths))


def model_only_rate(name: str, paths: list[str], batch_size: int) -> float:
    """(b): the compiled forward pass alone, on pixels decoded beforehand."""
    from featurize import ImageFeaturizer
    from featurize._images import load_image

    featurizer = ImageFeaturizer(name, weights=None, cache=None).fit()
    size = featurizer.input_size_
    forward = featurizer._forward(featurizer._settings())
    # Decode each distinct file once, into ready-made batches that are reused in turn.
    unique = list(dict.fromkeys(paths))
    pixels = np.stack([load_image(p, size=size) for p in unique]).astype(np.float32)
    batches = [pixels[s : s + batch_size] for s in range(0, len(pixels), batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or batches
    forward(batches[0])  # warm-up (compilation)
    n_batches = -(-len(paths) // batch_size)

    def run():
        for k in range(n_batches):
            forward(batches[k % len(batches)])

    return _rate(n_batches * len(batches[0]), run)


def featurize_rate(name: str, paths: list[str], batch_size: int) -> float:
    """(c): ImageFeaturizer.transform from the files, cache off."""
    from featurize import ImageFeaturizer

    featurizer = ImageFeaturizer(name, weights=None, cache=None, batch_size=batch_size)
    featurizer.fit_transform(paths[:batch_size])  # warm-up (build, compile)
    return _rate(len(paths), lambda: featurizer.transform(paths))


def decode_rate(paths: list[str], size: tuple[int, int]) -> float:
    """(d): reading, decoding and resizing alone, on featurize's decode threads."""
    from concurrent.futures import ThreadPoolExecutor

    from featurize._images import load_image
    from featurize._inference import default_decode_workers

    def run():
        with ThreadPoolExecutor(default_decode_workers()) as pool:
            for _ in pool.map(lambda path: load_image(path, size=size), paths):
                pass

    return _rate(len(paths), run)


def peak_rss_mb(name: str, paths: list[str]) -> float:
    """Peak resident memory of a fresh process embedding ``paths`` (MiB)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(paths, handle)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, handle.name, name],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def environment() -> str:
    import keras

    backend = keras.backend.backend()
    device = "CPU"
    if backend == "jax":
        import jax

        device = str(jax.devices()[0].device_kind)
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = gpus[0].name if gpus else "CPU"
    return (
        f"Keras {keras.__version__}, backend {backend}, device {device}, "
        f"{os.cpu_count()} CPU cores ({platform.machine()})"
    )


def run_benchmark(
    folder, *, count: int = 400, backbones=DEFAULT_BACKBONES,
    batch_size: int | None = None, repeats: int = 3, rss: bool = True, out=print,
) -> list[dict]:  # fmt: skip
    """Measure and print (a), (b), (c), (d), the ratios and (optionally) peak RSS.

    (a) always uses batches of 32, as the tutorials do; (b) and (c) use
    ``batch_size``, by default featurize's choice for the device. Each rate is the
    best of ``repeats`` rounds, and the rounds interleave (a), (b), (c) and (d).
    """
    from featurize._backbones import get_backbone
    from featurize._inference import default_batch_size

    paths = image_paths(folder, count)
    batch_size = batch_size or default_batch_size()
    out(
        f"featurize bench: {count} images from {folder}; batch 32 for (a), "
        f"{batch_size} for (b) and (c); best of {repeats} rounds"
    )
    out(environment())
    rows = []
    out(
        f"{'backbone':<20}{'(a) tutorial':>14}{'(b) model':>11}{'(c) featurize':>15}"
        f"{'(d) decode':>12}{'c/a':>7}{'c/b':>7}"
    )
    for name in backbones:
        size = get_backbone(name).input_size
        rounds = {"a": [], "b": [], "c": [], "d": []}
        for _ in range(repeats):
            rounds["a"].append(tutorial_rate(name, paths))
            rounds["b"].append(model_only_rate(name, paths, batch_size))
            rounds["c"].append(featurize_rate(name, paths, batch_size))
            rounds["d"].append(decode_rate(paths, size))
        best = {key: max(values) for key, values in rounds.items()}
        rows.append({"backbone": name, **best, "rounds": rounds})
        a, b, c, d = best["a"], best["b"], best["c"], best["d"]
        out(f"{name:<20}{a:>14.1f}{b:>11.1f}{c:>15.1f}{d:>12.1f}"
            f"{c / a:>7.2f}{c / b:>7.2f}")  # fmt: skip
        if repeats > 1:
            spread = ", ".join(
                f"{key} " + "/".join(f"{v:.0f}" for v in values)
                for key, values in rounds.items()
            )
            out(f"{'':<20}rounds: {spread}")
    out(
        "images/s; (a) load_img + preprocess_input + model.predict; (b) compiled "
        "forward on decoded pixels; (c) ImageFeaturizer.transform from files; "
        "(d) decoding and resizing alone"
    )
    if rss:
        small = peak_rss_mb(backbones[0], paths)
        large = peak_rss_mb(backbones[0], image_paths(folder, count * 10))
        growth = (large / small - 1) * 100
        out(
            f"peak RSS embedding {count} vs {count * 10} images with {backbones[0]}: "
            f"{small:.1f} MiB vs {large:.1f} MiB ({growth:+.1f}%)"
        )
        rows.append({"rss_small": small, "rss_large": large})
    out("")
    out(f"Markdown rows ({date.today()}):")
    for row in rows:
        if "backbone" in row:
            out(f"| {row['backbone']} | {row['a']:.1f} | {row['b']:.1f} | "
                f"{row['c']:.1f} | {row['d']:.1f} | {row['c'] / row['a']:.2f} | "
                f"{row['c'] / row['b']:.2f} |")  # fmt: skip
    return rows
