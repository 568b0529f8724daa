"""End-to-end throughput: the tutorial baseline, the model-only bound, featurize.

Run: .venv/bin/python benchmarks/throughput.py FOLDER [--images 400]
     [--backbones a,b,c] [--batch-size 8] [--repeats 3] [--no-rss]

For each backbone, images per second for
(a) the tutorial way: ``keras.utils.load_img`` + ``img_to_array`` + the family's
    ``preprocess_input`` + ``model.predict``, batch 32, in steady state (warmed up on
    every batch shape it sees: the last partial batch makes ``predict`` retrace);
(b) the model-only bound: preprocessing, backbone and average pooling compiled once
    (``tf.function`` on TensorFlow, ``jax.jit`` on JAX) on pixels already decoded;
(c) ``ImageFeaturizer.transform`` from the files, cache off;
and, to show where the time goes, (d) featurize's input pipeline alone: the same
``transform`` with a backbone that does (almost) nothing, so that reading, hashing,
decoding and resizing are all that is left.
Weights do not change the amount of compute, so backbones run with ``weights=None``.
Each rate is the best of ``repeats`` interleaved rounds: on a shared machine, the
fastest round is the one least disturbed by other work. Uses featurize's public API
only. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

DEFAULT_BACKBONES = ("mobilenet_v3_small", "efficientnet_lite0", "resnet50")
TUTORIAL_BATCH = 32
# featurize's CPU default (batch_size=None); pass 64 on a GPU, its default there.
DEFAULT_BATCH = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_RSS_SCRIPT = """
import json, resource, sys
from featurize import ImageFeaturizer
paths = json.load(open(sys.argv[1]))
ImageFeaturizer(sys.argv[2], weights=None, cache=None).fit_transform(paths)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def image_paths(folder, count: int) -> list[str]:
    """``count`` image paths from ``folder``, repeating its files as needed."""
    files = sorted(
        str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(f"No images under {folder!r}.")
    return list(itertools.islice(itertools.cycle(files), count))


def _rate(count: int, run) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def tutorial_rate(name: str, paths: list[str], batch_size: int = TUTORIAL_BATCH):
    """(a): what the Keras tutorials do, one image at a time in the main thread."""
    import keras

    from featurize import get_backbone

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

    # Steady state: trace every batch shape the timed run will see, first.
    for shape in {min(batch_size, len(paths)), len(paths) % batch_size} - {0}:
        run(paths[:shape])
    return _rate(len(paths), lambda: run(paths))


def compiled_forward(name: str, input_size: tuple[int, int]):
    """Preprocessing + backbone + average pooling, compiled as featurize does."""
    import keras

    from featurize import ImageFeaturizer, get_backbone

    featurizer = ImageFeaturizer(name, weights=None, input_size=input_size, cache=None)
    model = featurizer.keras_model()
    preprocess = get_backbone(name).preprocess_function()

    def graph(x, call):
        return keras.ops.mean(call(preprocess(x)), axis=(1, 2))

    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def run(x):
            return graph(x, lambda t: model.stateless_call(trainable, frozen, t)[0])

        return lambda x: np.asarray(run(x))
    import tensorflow as tf

    run = tf.function(lambda x: graph(x, lambda t: model(t, training=False)))
    return lambda x: run(tf.constant(x)).numpy()


def model_only_rate(name: str, paths: list[str], batch_size: int) -> float:
    """(b): the compiled forward pass alone, on pixels decoded beforehand."""
    import keras

    from featurize import get_backbone

    size = get_backbone(name).input_size
    forward = compiled_forward(name, size)
    unique = list(dict.fromkeys(paths))
    pixels = np.stack(
        [
            keras.utils.img_to_array(keras.utils.load_img(p, target_size=size))
            for p in unique[:batch_size]
        ]
    ).astype(np.float32)
    forward(pixels)  # compilation
    n_batches = -(-len(paths) // batch_size)
    return _rate(n_batches * len(pixels), lambda: [forward(pixels) for _ in
                                                   range(n_batches)])  # fmt: skip


def featurize_rate(name: str, paths: list[str], batch_size: int) -> float:
    """(c): ImageFeaturizer.transform from the files, cache off."""
    from featurize import ImageFeaturizer

    featurizer = ImageFeaturizer(name, weights=None, cache=None, batch_size=batch_size)
    featurizer.fit_transform(paths[:batch_size])  # build and compile
    tail = len(paths) % batch_size
    if tail:
        featurizer.transform(paths[:tail])
    return _rate(len(paths), lambda: featurizer.transform(paths))


def decode_rate(name: str, paths: list[str], batch_size: int) -> float:
    """(d): featurize's input pipeline, with a backbone that only averages pixels."""
    import keras

    from featurize import ImageFeaturizer, get_backbone, register_backbone

    height, width = get_backbone(name).input_size
    inputs = keras.Input((height, width, 3))
    nothing = keras.layers.AveragePooling2D((height, width))(inputs)
    register_backbone(
        "decode_only", keras.Model(inputs, nothing), input_size=(height, width),
        overwrite=True,
    )  # fmt: skip
    featurizer = ImageFeaturizer("decode_only", cache=None, batch_size=batch_size)
    featurizer.fit_transform(paths[:batch_size])
    return _rate(len(paths), lambda: featurizer.transform(paths))


def peak_rss_mb(name: str, paths: list[str]) -> float:
    """Peak resident memory of a fresh process embedding ``paths`` (MiB)."""
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
    batch_size: int = DEFAULT_BATCH, repeats: int = 3, rss: bool = True, out=print,
) -> list[dict]:  # fmt: skip
    """Measure and print (a), (b), (c), (d), the ratios and (optionally) peak RSS."""
    paths = image_paths(folder, count)
    out(
        f"throughput: {count} images from {folder}; batch {TUTORIAL_BATCH} for (a), "
        f"{batch_size} for (b), (c) and (d); best of {repeats} rounds; {date.today()}"
    )
    out(environment())
    out(
        f"{'backbone':<20}{'(a) tutorial':>14}{'(b) model':>11}{'(c) featurize':>15}"
        f"{'(d) decode':>12}{'c/a':>7}{'c/b':>7}"
    )
    rows = []
    for name in backbones:
        rounds = {"a": [], "b": [], "c": [], "d": []}
        for _ in range(repeats):
            rounds["a"].append(tutorial_rate(name, paths))
            rounds["b"].append(model_only_rate(name, paths, batch_size))
            rounds["c"].append(featurize_rate(name, paths, batch_size))
            rounds["d"].append(decode_rate(name, paths, batch_size))
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
        "images/s; (a) load_img + preprocess_input + model.predict, steady state; "
        "(b) compiled forward on decoded pixels; (c) ImageFeaturizer.transform from "
        "files; (d) featurize's input pipeline alone"
    )
    if rss:
        small = peak_rss_mb(backbones[0], paths)
        large = peak_rss_mb(backbones[0], image_paths(folder, count * 10))
        out(
            f"peak RSS embedding {count} vs {count * 10} images with {backbones[0]}: "
            f"{small:.1f} MiB vs {large:.1f} MiB ({(large / small - 1) * 100:+.1f}%)"
        )
        rows.append({"rss_small": small, "rss_large": large})
    out("")
    out("Markdown rows:")
    for row in rows:
        if "backbone" in row:
            out(f"| {row['backbone']} | {row['a']:.1f} | {row['b']:.1f} | "
                f"{row['c']:.1f} | {row['d']:.1f} | {row['c'] / row['a']:.2f} | "
                f"{row['c'] / row['b']:.2f} |")  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of JPEG/PNG images (recursive)")
    parser.add_argument("--images", type=int, default=400, help="repeat files to N")
    parser.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES))
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH,
        help="for (b), (c), (d); featurize's default is 8 on CPU, 64 on GPU",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-rss", action="store_true", help="skip the memory check")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_benchmark(
        args.folder,
        count=args.images,
        backbones=[b.strip() for b in args.backbones.split(",") if b.strip()],
        batch_size=args.batch_size,
        repeats=args.repeats,
        rss=not args.no_rss,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
