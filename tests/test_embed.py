"""The batch job: Parquet output, failures, manifests, resuming after SIGKILL, Ray."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from featurize import EmbeddingCache, ImageFeaturizer
from pipelines import embed_dataset, read_manifest
from pipelines._cli import main

from .conftest import DATA, kill_once_writing

SMALL = {"input_size": 32, "progress": False}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """data/hymenoptera/val plus a broken JPEG, an empty file and a text file."""
    root = tmp_path_factory.mktemp("collection")
    shutil.copytree(DATA / "val", root / "val")
    (root / "val" / "ants" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "val" / "bees" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    image.save(root / "no_extension", format="PNG")  # found by content sniffing
    return root


def read(path):
    table = pq.read_table(path)
    frame = table.to_pandas()
    return frame, table.schema.metadata


def test_folder_to_parquet_with_failures(collection, tmp_path):
    out = str(tmp_path / "embeddings.parquet")
    summary = embed_dataset(collection, out, cache=str(tmp_path / "cache"), **SMALL)
    frame, metadata = read(out)
    assert summary.rows == 24 + 3
    assert summary.failed == 2
    assert summary.embedded == len(frame) == 25
    assert list(frame.columns) == ["path", "digest", "embedding"]
    assert frame.path.str.endswith("no_extension").sum() == 1
    assert not frame.path.str.endswith("notes.txt").any()
    assert len(frame.embedding.iloc[0]) == 1280
    assert frame.digest.str.len().eq(40).all()
    written = json.loads(metadata[b"featurize"])
    assert written["settings"]["backbone"] == "efficientnet_lite0"
    assert written["settings"]["layer"] == "top_activation"
    assert written["n_features"] == 1280
    assert len(written["fingerprint"]) == 64
    failures = pd.read_parquet(summary.failures)
    assert list(failures.columns) == ["path", "error", "message"]
    assert sorted(os.path.basename(p) for p in failures.path) == [
        "broken.jpg",
        "empty.png",
    ]
    assert "empty file" in " ".join(failures.message)
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert leftovers == []


def test_manifests_carry_their_columns(collection, tmp_path):
    paths = sorted(str(p) for p in (collection / "val" / "bees").glob("*.jpg"))[:4]
    labels = [None, None, "bee", "bee"]  # a first chunk with no label at all
    manifest = pd.DataFrame({"image": paths, "label": labels, "id": range(4)})
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    out = str(tmp_path / "from_csv.parquet")
    embed_dataset(
        tmp_path / "manifest.csv", out, path_column="image", chunk_rows=2, **SMALL
    )
    frame, _ = read(out)
    assert list(frame.columns) == ["path", "label", "id", "digest", "embedding"]
    assert frame.id.tolist() == ["0", "1", "2", "3"]  # the CSV's cells, as written
    assert frame.label.tolist()[2:] == ["bee", "bee"]
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    assert read_manifest(tmp_path / "list.txt").path.tolist() == paths
    pattern = str(collection / "val" / "bees" / "*.jpg")
    assert len(read_manifest(pattern)) == 12
    with pytest.raises(ValueError, match="no column 'path'"):
        read_manifest(tmp_path / "manifest.csv")


def test_cli_exit_codes(collection, tmp_path, capsys):
    out = str(tmp_path / "cli.parquet")
    args = ["embed", str(collection), "--out", out, "--input-size", "32", "--quiet"]
    assert main(args) == 0
    assert "2 failed" in capsys.readouterr().out
    assert main([*args, "--strict"]) == 1


JOB = """
import sys
from pipelines._cli import main
sys.exit(main(["embed", sys.argv[1], "--out", sys.argv[2], "--input-size", "64",
               "--batch-size", "4", "--quiet"]))
"""
N_RESUME = 2500


def test_killed_job_resumes_without_recomputing(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_RESUME):
        pixels = rng.integers(0, 256, (24, 24, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    env = {**os.environ, "FEATURIZE_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "resumed.parquet"
    kills = 0
    rng = np.random.default_rng(1)
    for _ in range(3):
        job = subprocess.Popen(
            [sys.executable, "-c", JOB, str(folder), str(out)],
            env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        if kill_once_writing(job, tmp_path / "cache", rng):
            kills += 1
            assert not out.exists()  # never a half-written output
    assert kills >= 1
    cache = EmbeddingCache(tmp_path / "cache")
    stored = int(cache.info()["entries"].sum())
    assert 0 < stored < N_RESUME
    summary = embed_dataset(
        folder, str(out), cache=str(tmp_path / "cache"), batch_size=4,
        input_size=64, progress=False,
    )  # fmt: skip
    assert summary.embedded == N_RESUME - stored  # only what was not stored yet
    assert summary.from_cache == stored
    fresh = embed_dataset(
        folder, str(tmp_path / "fresh.parquet"), cache=None, batch_size=4,
        input_size=64, progress=False,
    )  # fmt: skip
    assert fresh.embedded == N_RESUME
    resumed, _ = read(out)
    uninterrupted, _ = read(tmp_path / "fresh.parquet")
    assert resumed.path.tolist() == uninterrupted.path.tolist()
    assert resumed.digest.tolist() == uninterrupted.digest.tolist()
    a, b = np.stack(resumed.embedding), np.stack(uninterrupted.embedding)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_ray_engine_matches_the_local_engine(tmp_path):
    ray = pytest.importorskip("ray", reason="pip install '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = embed_dataset(
            DATA, str(tmp_path / "ray.parquet"), engine="ray",
            cache=str(tmp_path / "ray-cache"), **SMALL,
        )  # fmt: skip
    finally:
        ray.shutdown()
    local = embed_dataset(
        DATA, str(tmp_path / "local.parquet"), cache=str(tmp_path / "local-cache"),
        **SMALL,
    )  # fmt: skip
    assert on_ray.embedded == local.embedded == 72
    from_ray, metadata_ray = read(tmp_path / "ray.parquet")
    from_local, metadata_local = read(tmp_path / "local.parquet")
    assert metadata_ray == metadata_local
    assert from_ray.path.tolist() == from_local.path.tolist()
    assert from_ray.digest.tolist() == from_local.digest.tolist()
    np.testing.assert_allclose(
        np.stack(from_ray.embedding), np.stack(from_local.embedding), atol=1e-6
    )


def test_missing_files_and_fsspec_urls(collection, tmp_path):
    import fsspec

    good = sorted((collection / "val" / "ants").glob("*.jpg"))[0]
    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/remote.jpg", good.read_bytes())
    listing = tmp_path / "paths.txt"
    listing.write_text(f"{good}\nmemory://bucket/remote.jpg\n{tmp_path / 'gone.jpg'}\n")
    summary = embed_dataset(listing, str(tmp_path / "mixed.parquet"), **SMALL)
    frame, _ = read(tmp_path / "mixed.parquet")
    assert frame.path.tolist() == [str(good), "memory://bucket/remote.jpg"]
    assert frame.digest.iloc[0] == frame.digest.iloc[1]  # same content, same key
    np.testing.assert_array_equal(frame.embedding.iloc[0], frame.embedding.iloc[1])
    failures = pd.read_parquet(summary.failures)
    assert failures.path.tolist() == [str(tmp_path / "gone.jpg")]
    assert failures.error.tolist() == ["ImageReadError"]
    assert failures.message.tolist() == ["file not found"]
    # The manifest itself at a URL: a table, or a list of paths.
    memory.pipe("/bucket/paths.txt", listing.read_bytes())
    pd.DataFrame({"image": [str(good)], "id": [3]}).to_parquet(
        "memory://bucket/manifest.parquet"
    )
    assert read_manifest("memory://bucket/paths.txt").path.tolist()[:2] == [
        str(good),
        "memory://bucket/remote.jpg",
    ]
    table = read_manifest("memory://bucket/manifest.parquet", path_column="image")
    assert table.to_dict("list") == {"path": [str(good)], "id": [3]}
    with pytest.raises(ValueError, match="folders and globs are read from local"):
        read_manifest("memory://bucket/")


def test_a_manifest_at_a_url_with_url_items_read_by_the_decode_threads(
    collection, tmp_path, monkeypatch
):
    import threading

    import fsspec

    files = sorted((collection / "val" / "bees").glob("*.jpg"))[:4]
    memory = fsspec.filesystem("memory")
    for k, path in enumerate(files):
        memory.pipe(f"/images/{k}.jpg", path.read_bytes())
    urls = [f"memory://images/{k}.jpg" for k in range(4)] + ["memory://images/no.jpg"]
    pd.DataFrame({"image": urls, "id": range(5)}).to_parquet(
        "memory://images/manifest.parquet"
    )
    readers = set()
    real_open = fsspec.open

    def recording_open(url, *args, **kwargs):
        if str(url).endswith(".jpg"):  # not the manifest, which pandas reads
            readers.add(threading.current_thread().name)
        return real_open(url, *args, **kwargs)

    monkeypatch.setattr(fsspec, "open", recording_open)
    summary = embed_dataset(
        "memory://images/manifest.parquet",
        str(tmp_path / "remote.parquet"),
        path_column="image",
        decode_workers=2,
        cache=None,
        **SMALL,
    )
    frame, _ = read(tmp_path / "remote.parquet")
    assert frame.path.tolist() == urls[:4]
    assert frame.id.tolist() == [0, 1, 2, 3]  # a Parquet table keeps its types
    local = ImageFeaturizer(input_size=32, cache=None).fit_transform(files)
    np.testing.assert_allclose(np.stack(frame.embedding), local, atol=1e-5)
    failures = pd.read_parquet(summary.failures)
    assert failures.path.tolist() == ["memory://images/no.jpg"]
    assert failures.message.tolist() == ["file not found"]
    assert readers  # the images were read through fsspec ...
    assert threading.main_thread().name not in readers  # ... by the decode threads


@pytest.mark.slow  # two Ray nodes start in minutes; the local Ray test runs by default
def test_ray_on_two_nodes_shares_the_cache_and_matches_the_local_engine(tmp_path):
    pytest.importorskip("ray", reason="pip install '.[ray]'")
    import ray
    from ray.cluster_utils import Cluster

    from pipelines._ray import run_on_ray

    paths = read_manifest(DATA).path.tolist()
    manifest = pd.DataFrame({"path": paths + paths})  # every image twice
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    report = {}
    try:
        chunks = list(
            run_on_ray(
                manifest,
                "efficientnet_lite0",
                {"input_size": 32, "cache": str(tmp_path / "shared")},
                None,
                12,
                "shared",
                report,
            )  # fmt: skip
        )
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(set(report["nodes"])) == 2  # one actor on each node
    assert set(report["decode_workers"]) == {2}  # the CPUs Ray gave each actor
    order = np.concatenate([frame.index.to_numpy() for frame, _ in chunks])
    assert order.tolist() == list(range(len(manifest)))
    assert sum(chunk.computed for _, chunk in chunks) == len(paths)  # none twice
    assert sum(chunk.cache_hits for _, chunk in chunks) == len(paths)
    embeddings = np.concatenate([chunk.embeddings for _, chunk in chunks])
    local = ImageFeaturizer(input_size=32, cache=None).fit_transform(paths)
    np.testing.assert_allclose(embeddings, np.concatenate([local, local]), atol=1e-5)


def test_where_ray_actors_cache(tmp_path, monkeypatch):
    from pipelines._ray import actor_params

    monkeypatch.setenv("FEATURIZE_CACHE_DIR", str(tmp_path / "driver"))
    assert actor_params({}, "shared")["cache"] == str(tmp_path / "driver")
    assert actor_params({"cache": "/nfs/c"}, "shared")["cache"] == "/nfs/c"
    assert "cache" not in actor_params({}, "node")  # each node's default folder
    assert actor_params({"cache": "/nfs/c"}, "none")["cache"] is None
    with pytest.raises(ValueError, match=r"`ray_cache` must be one of \['shared'"):
        actor_params({}, "everywhere")
