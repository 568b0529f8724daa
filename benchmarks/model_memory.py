"""Peak memory of compare_models over many backbones vs over one.

Run: .venv/bin/python benchmarks/model_memory.py

Each configuration runs ``compare_models`` in a fresh process (random weights, so no
download; 8 images of data/hymenoptera/val at 96 px, 2-fold CV, C=1) and reports its
peak RSS: over each backbone alone (the bound is the hungriest of them) and over all
8. For the behaviour before models were released, a third process embeds the same
images with each of the 8 backbones in turn with ``FEATURIZE_MAX_MODELS=100`` (every
model kept, as before; compare_models itself now always releases between backbones).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKBONES = [
    "vgg16", "xception", "resnet50", "inception_v3", "densenet121",
    "efficientnet_b0", "mobilenet_v2", "convnext_tiny",
]  # fmt: skip
RUN = """
import json, resource, sys, time
from featurize import ImageFeaturizer
from pipelines import compare_models, load_image_folder
backbones, keep = json.loads(sys.argv[1]), sys.argv[2] == "keep"
paths, labels = load_image_folder("data/hymenoptera", split="val")
paths = paths[:4] + paths[-4:]
labels = labels[:4] + labels[-4:]
started = time.perf_counter()
if keep:
    for backbone in backbones:
        ImageFeaturizer(backbone, weights=None, input_size=96, cache=None).transform(
            paths
        )
else:
    results, _ = compare_models(
        paths, labels, backbones=backbones, param_grid={"C": [1.0]}, cv=2,
        refit=False, weights=None, input_size=96, cache=None,
    )
print(json.dumps({
    "backbones": len(backbones), "kept": keep,
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "seconds": round(time.perf_counter() - started, 1),
}))
"""


def run(backbones: list[str], keep: bool) -> dict:
    env = dict(os.environ, FEATURIZE_MAX_MODELS="100" if keep else "2")
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(backbones), "keep" if keep else "free"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    alone = {}
    for backbone in BACKBONES:
        alone[backbone] = run([backbone], False)["peak_rss_mb"]
        print(json.dumps({"backbone": backbone, "peak_rss_mb": alone[backbone]}))
    hungriest = max(alone, key=alone.get)
    rows = [run(BACKBONES, False), run(BACKBONES, True)]
    for row in rows:
        print(json.dumps(row))
    one = alone[hungriest]
    print(
        f"over 8 / over 1 ({hungriest}, the hungriest alone): "
        f"{rows[0]['peak_rss_mb'] / one:.2f} "
        f"(models kept: {rows[1]['peak_rss_mb'] / one:.2f}); "
        f"{platform.machine()} x{len(os.sched_getaffinity(0))}, commit {commit}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


if __name__ == "__main__":
    main()
