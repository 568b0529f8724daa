"""Anomaly detection on the command line: ``featurize train DIR --anomaly`` and
``featurize predict`` with a detector (scores, labels, maps, overlays), and the HTML
report of ranked test images.

``DIR`` has MVTec AD's layout (anomalib's Folder format): ``train/good/`` to learn
from, ``test/good/`` and ``test/<defect kind>/`` to evaluate, optional
``ground_truth/<kind>/<stem>.png`` or ``<stem>_mask.png`` masks. A folder of good
images alone trains without evaluation.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurize import (
    AnomalyDetector,
    InvalidInputError,
    anomaly_map_image,
    anomaly_overlay,
)
from pipelines._data import IMAGE_EXTENSIONS
from pipelines._files import check_distinct, check_output, dump_model
from pipelines._options import UsageError, metavar, option_type
from pipelines._pages import data_url, page_html, write_page

# The options of `train --anomaly` beyond those every command that embeds has.
DETECTOR_OPTIONS = ("method", "false_alarm_rate", "coreset_ratio", "max_bank_bytes")
# Featurizer options a detector takes as they are; `layer` and `pooling` are the
# classifier's.
SHARED_OPTIONS = (
    "backbone", "weights", "input_size", "resize", "batch_size", "decode_workers",
    "runtime", "max_pixels", "cache",
)  # fmt: skip
NORMAL, ANOMALY = "normal", "anomaly"
REPORT_IMAGES = 200
REPORT_SIDE = 240  # thumbnails shown at 120 px: sharp on high-density screens
MASK_SUFFIXES = (".png", "_mask.png")


def add_anomaly_options(train, predict) -> None:
    """``--anomaly`` and the detector's options on ``train``; ``--maps``,
    ``--overlay`` and ``--report`` on ``predict``."""
    rules = AnomalyDetector.parameter_rules
    defaults = AnomalyDetector().get_params()
    group = train.add_argument_group("anomaly detection (with --anomaly)")
    group.add_argument(
        "--anomaly", action="store_true",
        help="learn normal images only (DIR/train/good, or DIR itself) and evaluate "
        "on DIR/test/<kind> (image AUROC; pixel AUROC with DIR/ground_truth); "
        f"--input-size defaults to {defaults['input_size']} here",
    )  # fmt: skip
    for name in DETECTOR_OPTIONS:
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS,
            type=option_type(name, rules[name], False),
            metavar=metavar(name, rules[name]),
            help=f"{rules[name].help} (default: {defaults[name]})",
        )  # fmt: skip
    group.add_argument(
        "--report", default=None,
        help="with --anomaly: an HTML page of the test images ranked by score",
    )  # fmt: skip
    group = predict.add_argument_group("anomaly detectors")
    group.add_argument(
        "--maps", default=None, metavar="FOLDER",
        help="one greyscale PNG map per image, at its size and relative path "
        "(brighter = more anomalous; mid-grey is the threshold)",
    )  # fmt: skip
    group.add_argument(
        "--overlay", default=None, metavar="FOLDER",
        help="the same maps as heat-map overlays on the images, for people",
    )  # fmt: skip
    group.add_argument(
        "--report", default=None, help="an HTML page of the images ranked by score"
    )


@dataclass
class Layout:
    """An anomaly folder (:func:`read_anomaly_folder`): what to learn from, what to
    evaluate on, as paths."""

    train: list
    test: list
    kinds: list  # per test image: "good" or its defect kind
    masks: list  # per test image: a mask's path, or None


def _images(folder: Path) -> list:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )  # fmt: skip


def read_anomaly_folder(directory) -> Layout:
    """Read ``directory``'s MVTec / Folder layout (see the module's docstring)."""
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{str(directory)!r} is not a folder.")
    good = root / "train" / "good"
    if not good.is_dir():
        if (root / "train").is_dir() or (root / "test").is_dir():
            raise UsageError(
                f"{str(directory)!r} has train/ or test/ but no train/good/: "
                f"anomaly detection learns from DIR/train/good/ (MVTec layout), or "
                f"from a folder of good images alone."
            )
        return Layout(_images(root), [], [], [])
    test, kinds, masks = [], [], []
    if (root / "test").is_dir():
        for folder in sorted(p for p in (root / "test").iterdir() if p.is_dir()):
            for path in _images(folder):
                test.append(path)
                kinds.append(folder.name)
                masks.append(_mask(root, folder.name, path))
    return Layout(_images(good), test, kinds, masks)


def _mask(root: Path, kind: str, path: Path):
    if kind == "good":
        return None
    for suffix in MASK_SUFFIXES:
        candidate = root / "ground_truth" / kind / f"{path.stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def detector_params(args, featurizer_params: dict) -> dict:
    """The detector's parameters from ``train --anomaly``'s options."""
    refused = [f"--{n}" for n in ("layer", "pooling", "precision")
               if n in featurizer_params]  # fmt: skip
    if refused:
        raise UsageError(
            f"{', '.join(refused)} set a classifier's embedding; with --anomaly the "
            f"detector takes patch features (AnomalyDetector(layers=...) in Python)."
        )
    params = {k: v for k, v in featurizer_params.items() if k in SHARED_OPTIONS}
    params.update({n: getattr(args, n) for n in DETECTOR_OPTIONS if hasattr(args, n)})
    return params


def anomaly_train_command(args, featurizer_params: dict, say) -> int:
    """``featurize train DIR --anomaly``: fit, evaluate, save (``--out``)."""
    if args.text_column is not None or args.fine_tune:
        given = "--text-column" if args.text_column is not None else "--fine-tune"
        raise UsageError(f"{given} does not apply to --anomaly (images only).")
    out = args.out and check_output(args.out, inputs=[args.directory], what="model")
    detector = train_anomaly(args, featurizer_params, say)
    if out:
        size = dump_model(detector, out)
        say(f"saved the fitted detector to {out} ({size / 1024:.0f} KiB)")
    return 0


def train_anomaly(args, featurizer_params: dict, say) -> AnomalyDetector:
    """Fit a detector on the layout's good images; evaluate on its test images."""
    layout = read_anomaly_folder(args.directory)
    if len(layout.train) < 2:
        raise InvalidInputError(
            f"{args.directory!r}: anomaly detection needs at least 2 good images to "
            f"learn from; found {len(layout.train)}."
        )
    if args.report:
        check_distinct(args.out, args.report)
        check_output(args.report, inputs=[args.directory], what="report")
    params = detector_params(args, featurizer_params)
    detector = AnomalyDetector(
        random_state=args.seed, on_error="nan", verbose=0 if args.quiet else 1,
        **params,
    )  # fmt: skip
    started = time.perf_counter()
    detector.fit([str(p) for p in layout.train])
    say(
        f"learned normal from {detector.n_train_images_} images in "
        f"{time.perf_counter() - started:.1f} s: a bank of {len(detector.bank_):,} "
        f"{'patches' if detector.method == 'patch' else 'embeddings'} "
        f"({detector.bank_.nbytes / 1e6:.1f} MB); threshold at a false-alarm rate "
        f"of {detector.false_alarm_rate:g}"
    )
    if not layout.test:
        say("no DIR/test/ folder: nothing to evaluate")
        return detector
    result = detector.inspect(
        [str(p) for p in layout.test], maps=any(layout.masks) or bool(args.report),
        on_error="nan",
    )  # fmt: skip
    for line in evaluation(layout, result):
        say(line)
    if args.report:
        write_report(args.report, layout.test, result, detector, layout.kinds)
        say(f"wrote the report to {args.report}")
    return detector


def evaluation(layout: Layout, result) -> list[str]:
    """Lines: image AUROC (all and per kind), the threshold's false alarms and
    recall, pixel AUROC where masks exist."""
    from sklearn.metrics import roc_auc_score

    kinds = np.array(layout.kinds)
    scored = ~np.isnan(result.scores)
    bad = kinds != "good"
    lines = []
    if len(result.failures):
        lines.append(f"{len(result.failures)} test images could not be read: "
                     f"{', '.join(result.failures['input'].head(3))}")  # fmt: skip
    good = scored & ~bad
    if good.any():
        lines.append(
            f"false alarms on test/good: {np.mean(result.scores[good] > 1):.1%} of "
            f"{good.sum()}"
        )
    if not (bad & scored).any():
        return lines
    lines.append(f"defects found: {np.mean(result.scores[bad & scored] > 1):.1%} of "
                 f"{(bad & scored).sum()}")  # fmt: skip
    if not good.any():
        return lines
    auroc = roc_auc_score(bad[scored], result.scores[scored])
    per_kind = ", ".join(
        f"{kind} {roc_auc_score(bad[keep], result.scores[keep]):.3f}"
        for kind in sorted(set(kinds[bad]))
        for keep in [scored & ((kinds == kind) | ~bad)]
    )
    lines.append(f"image AUROC {auroc:.3f} ({per_kind})")
    if result.maps is not None and any(layout.masks):
        lines.append(f"pixel AUROC {pixel_auroc(layout, result.maps):.3f}")
    return lines


def pixel_auroc(layout: Layout, maps: list) -> float:
    """Over the test images with a mask and the good ones (all normal), each
    subsampled evenly to about 4,096 pixels."""
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    scores, truth = [], []
    for kind, mask_path, values in zip(layout.kinds, layout.masks, maps):
        if values is None or (kind != "good" and mask_path is None):
            continue
        if mask_path is None:
            mask = np.zeros(values.shape, bool)
        else:
            with Image.open(mask_path) as image:
                mask = np.asarray(image.convert("L").resize(values.shape[::-1])) > 127
        step = max(1, int(np.sqrt(values.size / 4096)))
        scores.append(values[::step, ::step].ravel())
        truth.append(mask[::step, ::step].ravel())
    return float(roc_auc_score(np.concatenate(truth), np.concatenate(scores)))


def anomaly_frame(rows, result):
    """The input rows with ``score``, ``label`` and ``error`` (renamed
    ``predicted_<name>`` where the input has that column)."""
    from pipelines._chunks import free_names

    out = rows.reset_index(drop=True).copy()
    errors = [""] * len(out)
    for row in result.failures.itertuples():
        errors[row.index] = row.reason
    labels = [
        None if np.isnan(s) else (ANOMALY if s > 1 else NORMAL) for s in result.scores
    ]
    names = free_names(["score", "label", "error"], out.columns, "predicted_")
    out[names["score"]] = np.round(result.scores.astype(float), 6)
    out[names["label"]] = labels
    out[names["error"]] = errors
    renamed = {n: u for n, u in names.items() if n != u}
    return out, renamed


def write_maps(folder, paths: list, maps: list, root, overlay: bool) -> int:
    """Each map as a PNG under ``folder`` at its image's path relative to ``root``
    (the name alone where it lies elsewhere); returns how many were written."""
    from PIL import Image

    written = 0
    for path, values in zip(paths, maps):
        if values is None:
            continue
        path = Path(path)
        try:
            relative = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            relative = Path(path.name)
        target = Path(folder) / relative.with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if overlay:
            with Image.open(path) as image:
                picture = anomaly_overlay(image, values)
        else:
            picture = anomaly_map_image(values)
        picture.save(target)
        written += 1
    return written


def write_report(path, images: list, result, detector, kinds=None) -> None:
    """The images ranked by score (highest first), each with its overlay, the
    threshold, and AUROC where ``kinds`` says which are good."""
    from PIL import Image

    order = [i for i in np.argsort(-np.nan_to_num(result.scores, nan=-1))]
    shown = order[:REPORT_IMAGES]
    style = (
        ".grid{display:flex;flex-wrap:wrap;gap:8px}.cell{width:250px}"
        ".cell img{width:120px;height:120px;object-fit:contain;background:#eee}"
        ".anomaly{border-top:4px solid #c33}.normal{border-top:4px solid #3a3}"
    )
    parts = [
        "<h1>Anomaly scores</h1>",
        f"<p>{len(images)} images, highest score first (the first "
        f"{min(len(images), REPORT_IMAGES)} shown). Threshold: 1.0, set for a "
        f"false-alarm rate of {detector.false_alarm_rate:g} on normal images; "
        f"{int(np.sum(result.scores > 1))} scored above it.</p>",
    ]
    if kinds is not None and len(set(kinds)) > 1 and "good" in kinds:
        from sklearn.metrics import roc_auc_score

        ok = ~np.isnan(result.scores)
        bad = np.array(kinds) != "good"
        parts.append(
            f"<p>Image AUROC {roc_auc_score(bad[ok], result.scores[ok]):.3f}.</p>"
        )
    parts.append("<div class='grid'>")
    for i in shown:
        score = result.scores[i]
        name = html.escape(str(images[i]))
        kind = f" [{html.escape(kinds[i])}]" if kinds else ""
        if np.isnan(score):
            parts.append(f"<div class='cell'><small>{name}: could not be read"
                         f"</small></div>")  # fmt: skip
            continue
        pictures = []
        try:
            with Image.open(images[i]) as image:
                image = image.convert("RGB")
                pictures.append(data_url(image, REPORT_SIDE))
                if result.maps is not None and result.maps[i] is not None:
                    heat = anomaly_overlay(image, result.maps[i])
                    pictures.append(data_url(heat, REPORT_SIDE))
        except OSError:
            pass
        label = ANOMALY if score > 1 else NORMAL
        images_html = "".join(f"<img alt='{name}' src='{src}'>" for src in pictures)
        parts.append(
            f"<div class='cell {label}'>{images_html}<br><small>{score:.3f} "
            f"{label}{kind}<br>{name}</small></div>"
        )
    parts.append("</div>")
    write_page(path, page_html("featurize anomalies", "\n".join(parts), style))


def predict_anomaly(args, detector: AnomalyDetector, rows, options: dict) -> tuple:
    """Score ``rows["path"]`` with ``options`` (checked by
    :func:`pipelines._predict.check_options`: how images are read, never what
    they score); write maps, overlays and the report asked for.

    Returns the frame to write and how many rows failed.
    """
    for name, folder in (("--maps", args.maps), ("--overlay", args.overlay)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise UsageError(f"{name} {folder!r} exists and is not a folder.")
    if args.report:
        check_output(args.report, inputs=args.inputs, what="report")
    detector.set_params(**options)
    paths = rows["path"].tolist()
    want_maps = bool(args.maps or args.overlay or args.report)
    result = detector.inspect(paths, maps=want_maps, on_error="nan")
    single = len(args.inputs) == 1 and Path(args.inputs[0]).is_dir()
    root = args.inputs[0] if single else "."
    for folder, overlay in ((args.maps, False), (args.overlay, True)):
        if folder:
            write_maps(folder, paths, result.maps, root, overlay)
    if args.report:
        write_report(args.report, paths, result, detector)
    frame, renamed = anomaly_frame(rows, result)
    for name, used in renamed.items():
        print(
            f"featurize: the input has a column {name!r}: the prediction's is "
            f"{used!r} (input columns are never overwritten)",
            file=sys.stderr,
        )
    return frame, len(result.failures)
