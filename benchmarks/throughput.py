"""Throughput suite: the same as ``featurize bench``.

Run: .venv/bin/python benchmarks/throughput.py [--images 400] [--backbones a,b,c]
Prints images/s for (a) the Keras-tutorial baseline, (b) the model-only bound and
(c) ImageFeaturizer end to end, their ratios, peak RSS at 1x and 10x the images, and
Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import sys

from pipelines._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
