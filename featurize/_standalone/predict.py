"""``predict.py`` of an export folder: the rows ``featurize predict`` writes, from a
model exported by ``featurize export``, with numpy, Pillow and its runtime alone::

    python predict.py photos/ --out predictions.csv
    python predict.py reviews.csv --text-column text

The rows are the input's columns, then ``label``, ``proba_<class>`` (where the model
gives probabilities) and ``error``, each named ``predicted_<name>`` where the input
has a column of that name. The model itself is :class:`Model`
(:mod:`featurize._standalone.serving`, ``_featurize_serving.py`` in the folder).
"""

from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import sys
from pathlib import Path

if __package__:  # featurize._standalone.predict, inside featurize
    from featurize._standalone import anomaly
    from featurize._standalone.serving import ExportFolderError, Model, Result
else:  # predict.py in an export folder, beside its copies
    # However it was loaded (a script, runpy, importlib), its copies are found.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _featurize_anomaly as anomaly
    from _featurize_serving import ExportFolderError, Model, Result

__all__ = ["Model", "main"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
PREFIX = "predicted_"
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_MAGIC += (b"II*\x00", b"MM\x00*")


def main(argv=None) -> int:
    """Run the command line; return the exit code (1 if any input failed)."""
    args = _parser().parse_args(argv)
    try:
        if args.out:
            _check_output(args.out, [*args.inputs, args.model])
        model = Model(args.model, threads=args.threads, batch_size=args.batch_size,
                      verify=not args.no_verify)  # fmt: skip
        if (model.kind == "text") != (args.text_column is not None):
            raise UsageError(
                "This model classifies texts: pass a CSV/Parquet table and its "
                "--text-column."
                if model.kind == "text"
                else "This model classifies images: --text-column does not apply."
            )
        columns, rows, key = _input_rows(args)
        if not rows:
            raise ValueError(
                f"{', '.join(args.inputs)}: no inputs found (no image files in a "
                f"folder, no matches for a glob, no rows in a table)."
            )
        if args.maps and model.kind != "anomaly":
            raise UsageError("--maps is for an anomaly detector's export.")
        result = model.run([row.get(key) for row in rows], maps=bool(args.maps))
        if args.maps:
            _write_maps(args.maps, [row.get(key) for row in rows], result.maps,
                        args.inputs)  # fmt: skip
    except (UsageError, ExportFolderError, OSError, ValueError, ImportError) as error:
        print(f"predict.py: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
    if result.truncated:
        print(
            f"predict.py: {result.truncated} texts were longer than max_length and "
            f"were truncated",
            file=sys.stderr,
        )
    try:
        _write(args.out, columns, rows, model, result)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    return 1 if result.failed else 0


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict with a model exported by `featurize export`: image "
        "files, folders, globs, a text file of paths or a CSV/Parquet manifest; or "
        "with --text-column, the texts of one CSV/Parquet table.",
    )
    here = Path(__file__).resolve().parent
    parser.add_argument("inputs", metavar="INPUT", nargs="+")
    parser.add_argument("--model", default=str(here), help="the export folder")
    parser.add_argument("--out", default=None, help="CSV, TSV or Parquet to write")
    parser.add_argument("--text-column", default=None)
    parser.add_argument("--path-column", default=None)
    parser.add_argument("--sep", default=None, help="a CSV's separator (or 'tab')")
    parser.add_argument("--encoding", default=None, help="a CSV's encoding")
    parser.add_argument("--threads", type=_positive, default=None)
    parser.add_argument("--batch-size", type=_positive, default=None)
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the files' SHA-256 check"
    )
    parser.add_argument(
        "--maps", default=None,
        help="an anomaly detector's maps: one greyscale PNG per image in this "
        "folder, at the image's path relative to the input folder",
    )  # fmt: skip
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1; received {text!r}"
        )
    return value


def _check_output(out: str, inputs: list) -> None:
    if not out.lower().endswith(TABLE_SUFFIXES):
        raise UsageError(f"--out {out!r}: expected a .csv, .tsv or .parquet name.")
    if out.lower().endswith((".parquet", ".pq")):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(
                f"--out {out!r}: writing Parquet needs pyarrow (pip install "
                f"pyarrow), or name a .csv file."
            ) from None
    target = os.path.realpath(out)
    for item in inputs:
        if any(char in item for char in "*?[") and not os.path.exists(item):
            matched = glob.glob(item, recursive=True)
        else:
            matched = [item]
        for path in matched:
            if os.path.realpath(path) == target:
                raise UsageError(
                    f"--out {out!r} would overwrite an input ({path!r}): name "
                    f"another file."
                )


def _input_rows(args) -> tuple[list, list, str]:
    """The input's column names, its rows (dicts) and the column to predict."""
    if args.text_column is not None:
        if len(args.inputs) != 1 or not _is_table(args.inputs[0]):
            raise UsageError("With --text-column, pass one CSV/Parquet table.")
        columns, rows = read_table(args.inputs[0], args.encoding, args.sep)
        if args.text_column not in columns:
            raise UsageError(
                f"{args.inputs[0]!r} has no column {args.text_column!r}; its "
                f"columns are {columns[:20]}."
            )
        return columns, rows, args.text_column
    if len(args.inputs) == 1 and _is_table(args.inputs[0]):
        columns, rows = read_table(args.inputs[0], args.encoding, args.sep)
        key = args.path_column or "path"
        if key not in columns:
            raise UsageError(
                f"{args.inputs[0]!r} has no column {key!r}; its columns are "
                f"{columns[:20]}. Name the paths' column with --path-column."
            )
        # As featurize predict writes it: the paths first, as `path`.
        rest = [c for c in columns if c not in (key, "path")]
        rows = [{"path": row[key], **{c: row[c] for c in rest}} for row in rows]
        return ["path", *rest], rows, "path"
    if args.path_column is not None:
        raise UsageError("--path-column names a manifest's column: not with images.")
    paths = [path for item in args.inputs for path in _expand(item)]
    return ["path"], [{"path": path} for path in paths], "path"


def _is_table(name: str) -> bool:
    return name.lower().endswith(TABLE_SUFFIXES)


def _expand(item: str) -> list:
    """A folder's images (recursively), a glob's matches, a .txt list's lines, or
    the path itself (reported if it is not an image)."""
    if os.path.isdir(item):
        found = sorted(
            os.path.join(root, name)
            for root, _, files in os.walk(item)
            for name in files
            if not name.startswith(".")
        )
        return [p for p in found if p.lower().endswith(IMAGE_EXTENSIONS) or _sniff(p)]
    if any(char in item for char in "*?[") and not os.path.exists(item):
        return sorted(glob.glob(item, recursive=True))
    if item.lower().endswith(".txt"):
        with open(item, encoding="utf-8-sig") as handle:
            return [line.strip() for line in handle if line.strip()]
    return [item]


def _sniff(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_table(path: str, encoding=None, sep=None) -> tuple[list, list]:
    """A CSV (cells as written: an empty one is missing) or Parquet table's column
    names and rows."""
    if path.lower().endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as parquet
        except ImportError:
            raise ImportError(
                "Reading Parquet needs pyarrow (pip install pyarrow), or pass a CSV."
            ) from None
        table = parquet.read_table(path)
        return table.column_names, table.to_pylist()
    encoding = encoding or "utf-8-sig"
    if sep in ("tab", "\\t"):
        sep = "\t"
    with open(path, encoding=encoding, newline="") as handle:
        sample = handle.read(1 << 16)
        handle.seek(0)
        if sep is None:
            sep = "\t" if path.lower().endswith(".tsv") else _separator(sample)
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path!r} holds no header row.")
        rows = [
            {name: (cell if cell != "" else None) for name, cell in zip(header, line)}
            for line in reader
            if line
        ]
    return header, rows


def _separator(sample: str) -> str:
    header = sample.splitlines()[0] if sample else ""
    if "," in header:
        return ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _write_maps(folder: str, paths: list, maps: list, inputs: list) -> None:
    """Each map as a PNG at its image's path relative to the one input folder
    (its name alone otherwise)."""
    root = inputs[0] if len(inputs) == 1 and os.path.isdir(inputs[0]) else None
    for path, values in zip(paths, maps):
        if values is None:
            continue
        relative = os.path.basename(path)
        if root is not None:
            inside = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
            relative = relative if inside.startswith("..") else inside
        target = os.path.join(folder, os.path.splitext(relative)[0] + ".png")
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        anomaly.map_image(values).save(target)


def _write(out, columns: list, rows: list, model: Model, result: Result) -> None:
    proba = [] if result.probabilities is None else list(model.classes)
    scored = result.scores is not None
    added = [*(["score"] if scored else []), "label",
             *(f"proba_{c}" for c in proba), "error"]  # fmt: skip
    taken, names = set(columns), []
    for name in added:
        while name in taken:
            name = PREFIX + name
        taken.add(name)
        names.append(name)
    for original, used in zip(added, names):
        if original != used:
            print(
                f"predict.py: the input has a column {original!r}: the prediction's "
                f"is {used!r} (input columns are never overwritten)",
                file=sys.stderr,
            )
    digits = 6 if out else 4
    table = []
    for k, row in enumerate(rows):
        values = [row.get(c) for c in columns]
        if scored:
            values.append(_rounded(result.scores[k], digits))
        values.append(result.labels[k])
        if result.probabilities is not None:
            values += [_rounded(p, digits) for p in result.probabilities[k]]
        table.append(values + [result.errors[k]])
    header = [*columns, *names]
    if out and out.lower().endswith((".parquet", ".pq")):
        import pyarrow as arrow
        import pyarrow.parquet as parquet

        data = {name: [line[i] for line in table] for i, name in enumerate(header)}
        _atomic(out, lambda path: parquet.write_table(arrow.table(data), path))
        return

    def write_csv(handle):
        writer = csv.writer(
            handle, delimiter="\t" if str(out).endswith(".tsv") else ","
        )
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in line] for line in table)

    if not out:
        write_csv(sys.stdout)
        return

    def to_file(path):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            write_csv(handle)

    _atomic(out, to_file)


def _rounded(value, digits: int):
    return None if math.isnan(value) else round(float(value), digits)


def _atomic(out: str, write) -> None:
    """Write through a temporary file, so an interrupted run leaves no half file."""
    temporary = f"{out}.{os.getpid()}.tmp"
    try:
        write(temporary)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


if __name__ == "__main__":
    sys.exit(main())
