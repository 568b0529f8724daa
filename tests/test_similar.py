"""Search by example: an item's exact copy comes first, images and texts, from an
embedding Parquet (its metadata says how to embed a query) or a folder; the page
renders."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from pipelines import embed_dataset, find_similar
from pipelines._cli import main

from .conftest import DATA, ROOT, needs_chromium, rendered

SMALL = {"input_size": 64}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection") / "val.parquet"
    embed_dataset(DATA / "val", str(out), progress=False, **SMALL)
    return out


def test_an_exact_copy_comes_first_with_the_collections_own_settings(
    collection, tmp_path
):
    original = sorted((DATA / "val" / "ants").iterdir())[3]
    query = tmp_path / "renamed copy.jpg"
    shutil.copyfile(original, query)
    hits = find_similar([str(query)], collection, top=3)
    assert list(hits.columns[:4]) == ["query", "rank", "path", "similarity"]
    assert hits["rank"].tolist() == [1, 2, 3]
    assert hits.loc[0, "path"] == str(original)
    assert hits.loc[0, "similarity"] > 0.999
    assert hits["similarity"].is_monotonic_decreasing
    # A folder is embedded through the cache with the options given; a file in
    # it that is not an image is left out.
    folder = tmp_path / "folder"
    shutil.copytree(DATA / "val", folder)
    (folder / "ants" / "broken.jpg").write_bytes(b"not an image")
    again = find_similar([str(query)], folder, top=1, **SMALL)
    assert again.loc[0, "path"] == str(folder / "ants" / original.name)
    with pytest.raises(ValueError, match="would be embedded differently"):
        find_similar([str(query)], collection, input_size=96)


def test_the_index_is_kept_beside_the_collection_and_reused(
    collection, tmp_path, monkeypatch
):
    import pipelines._similar as similar

    copy = tmp_path / "collection.parquet"
    shutil.copyfile(collection, copy)
    query = str(sorted((DATA / "val" / "bees").iterdir())[2])
    first = find_similar([query], copy, top=3, backend="hnsw")
    assert (tmp_path / "collection.parquet.hnsw").exists()
    assert first.loc[0, "path"] == query

    def no_build(rows):
        raise AssertionError("the kept index was built again")

    monkeypatch.setattr(similar, "hnsw_index", no_build)
    again = find_similar([query], copy, top=3, backend="hnsw")
    assert again["path"].tolist() == first["path"].tolist()
    # A changed collection is never searched through a stale index.
    shutil.copyfile(collection, copy)
    copy.touch()
    with pytest.raises(AssertionError, match="built again"):
        find_similar([query], copy, top=3, backend="hnsw")


def test_texts_are_searched_with_strings(tmp_path):
    table = ROOT / "data" / "sms_spam_sample.csv"
    out = tmp_path / "texts.parquet"
    embed_dataset(table, str(out), text_column="text", encoder="glove_50d",
                  cache=None, progress=False)  # fmt: skip
    texts = pd.read_csv(table)["text"]
    hits = find_similar([texts[10]], out, top=2)
    assert list(hits.columns[:5]) == ["query", "rank", "row", "text", "similarity"]
    assert hits.loc[0, "text"] == texts[10]
    assert hits.loc[0, "similarity"] > 0.999
    assert "label" in hits.columns  # the collection's own columns come along
    with pytest.raises(ValueError, match="input_size do not apply"):
        find_similar(["hello"], out, input_size=32)


def test_command_writes_the_table_and_refuses_what_does_not_go(
    collection, tmp_path, capsys
):
    query = str(sorted((DATA / "val" / "bees").iterdir())[0])
    out, page = tmp_path / "sim.csv", tmp_path / "sim.html"
    args = ["similar", query, "--in", str(collection), "--top", "4"]
    assert main([*args, "--out", str(out), "--report", str(page)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 4
    assert table.loc[0, "path"] == query
    with pytest.raises(SystemExit):
        main([*args, "--top", "0"])
    assert main(["similar", query, "--in", str(tmp_path / "none.parquet")]) == 1
    assert "none.parquet" in capsys.readouterr().err


@needs_chromium
def test_results_page_renders_in_a_browser(collection, tmp_path):
    query = str(sorted((DATA / "val" / "bees").iterdir())[0])
    page = tmp_path / "similar.html"
    table = str(tmp_path / "s.csv")
    assert main(["similar", query, "--in", str(collection), "--top", "3",
                 "--report", str(page), "--out", table]) == 0  # fmt: skip
    dom = rendered(page)
    assert "<title>loaded 4 of 4</title>" in dom  # the query and three results
    assert "similarity 1.000" in dom


def test_exact_search_in_blocks_ranks_as_one_sort():
    import numpy as np

    from pipelines import search_neighbours

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(21_000, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows, queries = rows[:20_000], np.r_[rows[:3], rows[20_000:]]
    # 1,003 queries against 20,000 rows take two blocks of the bounded search.
    for k in (1, 5):
        indices, similarities = search_neighbours(rows, queries, k, backend="exact")
        whole = queries @ rows.T
        expected = np.argsort(-whole, axis=1, kind="stable")[:, :k]
        assert (indices == expected).all()
        assert np.allclose(similarities, np.take_along_axis(whole, expected, 1))
        assert indices[:3, 0].tolist() == [0, 1, 2]
