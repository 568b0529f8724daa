"""Search by example: the items of an embedded collection most like a query image
or text, embedded the way the collection was (its Parquet says how), through the
neighbour search the audit and selection share."""

from __future__ import annotations

import html
import json
import os

import numpy as np

from featurize import ImageFeaturizer, InvalidInputError, TextFeaturizer
from pipelines._files import atomic_output, check_distinct, check_output, write_table
from pipelines._manifests import read_manifest
from pipelines._neighbours import hnsw_index, normalised, search
from pipelines._options import UsageError, featurizer_params
from pipelines._pages import Thumbnails, page_html, write_page
from pipelines._tables import TABLE_SUFFIXES


def read_collection(path) -> tuple:
    """An embedding Parquet written by ``featurize embed``: its rows (without
    the embeddings), the embeddings as a matrix, and the ``featurize`` metadata.

    Raises
    ------
    InvalidInputError
        The file has no embeddings, or no metadata saying how they were made.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    about = json.loads(metadata.get(b"featurize", b"null"))
    column = next((c for c in ("embedding", "featurize_embedding")
                   if c in table.column_names), None)  # fmt: skip
    if about is None or column is None:
        raise InvalidInputError(
            f"{os.fspath(path)!r} is not an embedding Parquet written by `featurize "
            f"embed` (no {'embedding column' if column is None else 'metadata'}): "
            f"embed the collection first, or pass its folder."
        )
    if "params" not in about:
        raise InvalidInputError(
            f"{os.fspath(path)!r} was written by featurize {about.get('version')}, "
            f"which did not record how to embed a query: run the same `featurize "
            f"embed` again (the cache serves every embedding, so it costs seconds)."
        )
    # Flattened in Arrow, not through Python lists (a million rows of 384 floats).
    values = table.column(column).combine_chunks()
    if len(values) == 0:
        raise InvalidInputError(f"{os.fspath(path)!r} holds no embeddings.")
    embeddings = np.asarray(values.flatten(), dtype=np.float32).reshape(len(values), -1)
    rows = table.drop([column]).to_pandas()
    return rows, embeddings, about


def find_similar(queries, collection, *, top: int = 10, backend: str = "auto",
                 **featurizer_params):  # fmt: skip
    """The ``top`` items of ``collection`` most similar to each query.

    Parameters
    ----------
    queries : list
        Image paths (or anything :class:`featurize.ImageFeaturizer` takes), or
        strings for a collection of texts.
    collection : path
        An embedding Parquet written by ``featurize embed`` (queries are embedded
        with the parameters in its metadata, and the fingerprint checked), or a
        folder of images (embedded through the cache with ``featurizer_params``).
    top : int
        Results per query.
    backend : {"auto", "exact", "hnsw"}
        Exact search up to 50,000 items, a faiss HNSW index past them (kept
        beside an embedding Parquet as ``<collection>.hnsw`` and reused while the
        Parquet is unchanged).

    Returns
    -------
    pandas.DataFrame
        ``query``, ``rank`` (1 = most similar), ``path`` (for texts ``row``, the
        item's row in the Parquet, and ``text``), ``similarity`` (cosine), then
        the collection's other columns.

    Examples
    --------
    >>> from pipelines import find_similar
    >>> query = "data/hymenoptera/val/bees/10870992_eebeeb3a12.jpg"
    >>> hits = find_similar([query], "data/hymenoptera/val", top=2, input_size=96)
    >>> hits.loc[0, "path"] == query, float(hits.loc[0, "similarity"]) > 0.999
    (True, True)
    """
    import pandas as pd

    queries = list(queries)
    if not queries:
        raise InvalidInputError("Pass at least one query (an image or a text).")
    if os.path.isdir(os.fspath(collection)):
        rows = read_manifest(collection)
        featurizer = ImageFeaturizer(**featurizer_params).fit()
        # An unreadable file in the folder is left out, not a failed search.
        result = featurizer.embed(rows["path"].tolist(), on_error="nan")
        rows = rows[result.ok].reset_index(drop=True)
        embeddings = result.array[result.ok]
        modality, column = "image", "path"
    else:
        rows, embeddings, about = read_collection(collection)
        modality, column = about["modality"], about["column"]
        make = ImageFeaturizer if modality == "image" else TextFeaturizer
        foreign = sorted(set(featurizer_params) - set(make().get_params()))
        if foreign:
            raise InvalidInputError(
                f"{', '.join(foreign)} do not apply to {collection!r}, a collection "
                f"of {modality}s: leave them out (its metadata says how it was "
                f"embedded)."
            )
        featurizer = make(**{**about["params"], **featurizer_params}).fit()
        if featurizer.fingerprint() != about["settings"]:
            raise InvalidInputError(
                f"The queries would be embedded differently from {collection!r} "
                f"(its featurizer can no longer be built the same way here): "
                f"re-embed the collection with this installation."
            )
    if modality == "text" and not all(isinstance(q, str) for q in queries):
        raise InvalidInputError("A collection of texts is searched with strings.")
    vectors = featurizer.transform(queries)
    index = None
    if not os.path.isdir(os.fspath(collection)):
        fingerprint = about["fingerprint"]

        def index(rows):
            return kept_index(collection, rows, fingerprint)

    indices, similarities = search(
        normalised(embeddings), normalised(vectors), top, backend=backend, index=index
    )
    out = []
    for q, query in enumerate(queries):
        for rank, (index, similarity) in enumerate(zip(indices[q], similarities[q])):
            item = rows.iloc[int(index)].to_dict()
            found = {"query": query, "rank": rank + 1}
            if modality == "text":
                found.update(row=int(index), text=item.pop(column))
            else:
                found["path"] = item.pop(column)
            found["similarity"] = round(float(similarity), 6)
            item.pop("digest", None)
            out.append({**found, **item})
    return pd.DataFrame(out)


def kept_index(collection, rows, fingerprint: str):
    """The HNSW index of an embedding Parquet's rows, kept beside it
    (``<collection>.hnsw``) and reused while the Parquet is unchanged: built once
    (77 s at a million rows on 2 cores), then read in a second."""
    import faiss

    path = f"{os.fspath(collection)}.hnsw"
    stat = os.stat(collection)
    stamp = {"fingerprint": fingerprint, "rows": len(rows), "size": stat.st_size,
             "mtime_ns": stat.st_mtime_ns}  # fmt: skip
    try:
        with open(f"{path}.json", encoding="utf-8") as handle:
            if json.load(handle) == stamp:
                return faiss.read_index(path)
    except (OSError, ValueError, RuntimeError):
        pass  # missing, stale or damaged: built again below
    index = hnsw_index(rows)
    try:
        with atomic_output(path) as temporary:
            faiss.write_index(index, temporary)
        with (
            atomic_output(f"{path}.json") as temporary,
            open(temporary, "w", encoding="utf-8") as handle,
        ):
            json.dump(stamp, handle)
    except OSError:
        pass  # a read-only folder: searched without keeping the index
    return index


def write_results_page(results, path) -> None:
    """Each query and its results as thumbnails (or texts), in one page."""
    thumbnails = Thumbnails()
    texts = "text" in results.columns
    style = (
        ".hits{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:1.5em}"
        ".hit{width:170px;overflow-wrap:anywhere}"
        ".hit img{width:160px;height:160px;object-fit:contain;background:#eee}"
        ".query{border:2px solid #36c;padding:4px}"
    )

    def cell(value, caption, css="hit") -> str:
        shown = (
            f"<div class='text'>{html.escape(str(value))}</div>"
            if texts
            else f"<img alt='{html.escape(str(value))}' src='{thumbnails(value)}'>"
        )
        return f"<div class='{css}'>{shown}<br><small>{caption}</small></div>"

    parts = ["<h1>Similar items</h1>"]
    for query, hits in results.groupby("query", sort=False):
        parts.append(f"<h2>{html.escape(str(query))}</h2><div class='hits'>")
        parts.append(cell(query, "query", "hit query"))
        for hit in hits.itertuples(index=False):
            item = hit.text if texts else hit.path
            name = f"row {hit.row}" if texts else html.escape(str(hit.path))
            parts.append(
                cell(item, f"#{hit.rank} {name}<br>similarity {hit.similarity:.3f}")
            )
        parts.append("</div>")
    write_page(path, page_html("featurize similar", "\n".join(parts), style))


def similar_command(args) -> int:
    """``featurize similar``: search, write the table (and page), say where."""
    if args.top < 1:
        raise UsageError(f"--top must be at least 1; received {args.top}.")
    inputs = [args.collection, *args.queries]
    out = args.out and check_output(
        args.out, inputs=inputs, what="results table", suffixes=TABLE_SUFFIXES
    )
    check_distinct(out, args.report)
    report = args.report and check_output(
        args.report, inputs=inputs, what="page", suffixes=(".html",)
    )
    results = find_similar(
        args.queries, args.collection, top=args.top, **featurizer_params(args)
    )
    write_table(results, out or None)
    if report:
        write_results_page(results, report)
        print(f"wrote the page to {report}")
    return 0


def add_similar_command(command, parents) -> None:
    """Declare ``featurize similar`` (``command`` adds a sub-command)."""
    similar = command(
        "similar",
        similar_command,
        parents,
        help="find the items of an embedded collection most like a query",
        description="Rank the items of COLLECTION (an embedding Parquet written "
        "by `featurize embed`, whose metadata says how to embed a query; or a "
        "folder of images, embedded through the cache) by cosine similarity to "
        "each QUERY (an image file, or a string for a collection of texts). "
        "Writes query, rank, path (row and text for texts), similarity and the "
        "collection's columns. Exact search up to 50,000 items, a faiss index "
        "past them.",
    )
    similar.add_argument("queries", metavar="QUERY", nargs="+")
    similar.add_argument(
        "--in", dest="collection", required=True, metavar="COLLECTION",
        help="embedding Parquet (featurize embed) or image folder",
    )  # fmt: skip
    similar.add_argument("--top", type=int, default=10, help="results per query")
    similar.add_argument(
        "--out", default=None, help="CSV, TSV or Parquet to write (default: stdout)"
    )
    similar.add_argument(
        "--report", default=None, metavar="HTML",
        help="also write a page of each query and its results as thumbnails",
    )  # fmt: skip
