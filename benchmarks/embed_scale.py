"""Scale check of the batch job: flat memory, and throughput close to transform.

Run: .venv/bin/python benchmarks/embed_scale.py [ROWS]
Makes a manifest of ROWS (default 20,000) rows: the hymenoptera files hard-linked under
distinct names. Runs ``featurize embed`` (local engine, cache off, so every row is
computed) on a tenth of the rows and on all of them, each in a fresh process, and
``ImageFeaturizer.transform`` on the same files; prints images/s and peak RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RUN_JOB = """
import resource, sys, time
from pipelines import embed_dataset
summary = embed_dataset(sys.argv[1], sys.argv[2], cache=None, progress=False)
print(summary.rows, summary.seconds,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
RUN_TRANSFORM = """
import resource, sys, time
import pandas as pd
from featurize import ImageFeaturizer
paths = pd.read_csv(sys.argv[1]).path.tolist()
started = time.perf_counter()
featurizer = ImageFeaturizer(cache=None).fit()
featurizer.transform(paths)
print(len(paths), time.perf_counter() - started,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def manifest(rows: int, folder: Path) -> Path:
    from pipelines import read_manifest

    source = ROOT.parent / "shared" / "datasets" / "hymenoptera"
    if not source.is_dir():
        source = ROOT / "data" / "hymenoptera"
    files = [Path(p) for p in read_manifest(source).path]
    links = folder / "images"
    links.mkdir()
    paths = []
    for i in range(rows):
        original = files[i % len(files)]
        link = links / f"{i:06d}{original.suffix}"
        os.link(original, link)
        paths.append(str(link))
    path = folder / f"manifest_{rows}.csv"
    pd.DataFrame({"path": paths, "row": range(rows)}).to_csv(path, index=False)
    return path


def run(script: str, *args: str) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    return int(out[-3]), float(out[-2]), int(out[-1]) / 1024


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    folder = Path(tempfile.mkdtemp(prefix="featurize-scale-"))
    full = manifest(rows, folder)
    small = folder / "manifest_small.csv"
    pd.read_csv(full).head(rows // 10).to_csv(small, index=False)
    print(f"featurize embed (local, cache off) vs ImageFeaturizer.transform; "
          f"efficientnet_lite0; {os.cpu_count()} CPU cores")  # fmt: skip
    print(f"{'run':<28}{'rows':>8}{'seconds':>10}{'images/s':>10}{'peak RSS MiB':>14}")
    results = {}
    for label, script, source in (
        ("embed, 1/10 of the rows", RUN_JOB, small),
        ("embed, all rows", RUN_JOB, full),
        ("transform, all rows", RUN_TRANSFORM, full),
    ):
        extra = [str(folder / "out.parquet")] if script is RUN_JOB else []
        n, seconds, rss = run(script, str(source), *extra)
        results[label] = (n, seconds, rss)
        print(f"{label:<28}{n:>8}{seconds:>10.1f}{n / seconds:>10.1f}{rss:>14.1f}")
    job = results["embed, all rows"]
    ten = results["embed, 1/10 of the rows"]
    transform = results["transform, all rows"]
    print(f"peak RSS, all rows vs 1/10: {(job[2] / ten[2] - 1) * 100:+.1f}%")
    ratio = (job[0] / job[1]) / (transform[0] / transform[1])
    print(f"job images/s vs transform: {ratio:.3f}")


if __name__ == "__main__":
    main()
