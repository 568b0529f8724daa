"""Audit benchmark: seeded faults in dtd10, hymenoptera and chest_xray, and how many
are found.

Each data set is copied with faults planted (seeded): 5% of all labels flipped, 20
held-out (val or test) images each placed in train four times (re-encoded at JPEG
quality 70, cropped 10% from every side, shrunk to 80%, and all three at once: the
"harsh" copy), 4 held-out images copied byte for byte into train (2 under another
label) and one blank image. dtd10 has no splits: a seeded half of each class is
train. Then ``pipelines.audit_dataset`` runs twice, and the second (warm cache) run
is timed; ``compare_models(group_duplicates=True)`` gives the folds' sizes.

Near duplicates: recall over the planted pairs (each original with its three
copies, and the copies among themselves), and the share of copies that share a
group with their original (found directly or through another copy); precision over
the reported pairs that involve a planted copy, counted right only when both
members come from the same photo (a strict bound: dtd10 holds near-duplicate photos
of its own, and a copy paired with its original's twin counts as wrong). Pairs of
two original files are counted apart ("pre-existing"). Label issues: the share of
flipped labels among the top 2x as many label-issue rows, and the precision of all
rows; beside it, the share among the 2x items of lowest ``label_quality`` (every
item ranked, not only those confident learning flags). Beside them: the harsh copy
paired with a member of its family and grouped with its original, the share of
held-out originals reported against a training copy, the largest group, the share
of items flagged as label issues and the out-of-fold model's accuracy.

    python benchmarks/audit.py [--seeds 0 1] [--neighbours]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import shutil
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

from pipelines import (
    audit_dataset,
    compare_models,
    load_image_folder,
    nearest_neighbours,
)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
SETS = ("dtd10", "hymenoptera", "chest_xray")
COPIES = ("q70", "crop", "small", "harsh")
HELD_OUT = ("val", "test")


def plant(source: str, target: str, seed: int) -> dict:
    """A faulted copy of ``source`` in ``target``; what was planted."""
    rng = random.Random(seed)
    items = []
    splits = [s for s in sorted(os.listdir(source)) if s in ("train", *HELD_OUT)]
    for split in splits or [None]:
        root = os.path.join(source, split) if split else source
        for label in sorted(os.listdir(root)):
            names = sorted(os.listdir(os.path.join(root, label)))
            if split is None:
                rng.shuffle(names)
            for k, name in enumerate(names):
                part = split or ("train" if k < len(names) // 2 else "val")
                items.append((part, label, os.path.join(root, label, name)))
    held_out = next((s for s in splits if s in HELD_OUT), "val")
    classes = sorted({label for _, label, _ in items})
    flipped = set(rng.sample(range(len(items)), round(0.05 * len(items))))
    placed, truth = {}, {"flipped": set(), "families": [], "exact": [], "source": {}}
    for k, (split, label, path) in enumerate(items):
        given = (
            rng.choice([c for c in classes if c != label]) if k in flipped else label
        )
        out = os.path.join(target, split, given, os.path.basename(path))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(path, out)
        placed[k] = out
        truth["source"][out] = out
        if k in flipped:
            truth["flipped"].add(out)
    val = [
        k for k, item in enumerate(items) if item[0] == held_out and k not in flipped
    ]
    chosen = rng.sample(val, 24)
    for k in chosen[:20]:
        _, label, path = items[k]
        image = Image.open(path).convert("RGB")
        w, h = image.size
        stem = os.path.splitext(os.path.basename(path))[0]
        family = [placed[k]]
        cropped = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        views = {
            "q70": (image, 70),
            "crop": (cropped, 90),
            "small": (image.resize((int(w * 0.8), int(h * 0.8))), 90),
            # All three at once: the harshest copy a person would still call one.
            "harsh": (cropped.resize((int(w * 0.64), int(h * 0.64))), 70),
        }
        for name, (view, quality) in views.items():
            out = os.path.join(target, "train", label, f"{stem}_{name}.jpg")
            view.save(out, quality=quality)
            family.append(out)
            truth["source"][out] = placed[k]
        truth["families"].append(family)
    for n, k in enumerate(chosen[20:]):
        _, label, path = items[k]
        given = label if n < 2 else rng.choice([c for c in classes if c != label])
        out = os.path.join(target, "train", given, f"copy_{os.path.basename(path)}")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(path, out)
        truth["exact"].append({placed[k], out})
        truth["source"][out] = placed[k]
    truth["blank"] = os.path.join(target, "train", classes[0], "blank.png")
    Image.new("RGB", (256, 256), "white").save(truth["blank"])
    truth["source"][truth["blank"]] = truth["blank"]
    return truth


def score(audit, truth) -> dict:
    findings = audit.findings
    kind = findings["kind"]
    source = truth["source"]
    planted = {
        frozenset(pair)
        for family in truth["families"]
        for pair in itertools.combinations(family, 2)
    }
    near = findings[kind == "near_duplicate"]
    pairs = [frozenset((a, b)) for a, b in zip(near["path"], near["other_path"])]
    involving = [p for p in pairs if any(source[m] != m for m in p)]
    right = [p for p in involving if len({source[m] for m in p}) == 1]
    exact = findings[kind == "exact_duplicate"]
    exact_pairs = [{a, b} for a, b in zip(exact["path"], exact["other_path"])]
    issues = findings[kind == "label_issue"]["path"].tolist()
    flipped = truth["flipped"]
    top = set(issues[: 2 * len(flipped)])
    outliers = findings[kind == "outlier"]["path"].tolist()
    by_quality = audit.items.sort_values("label_quality")["path"]
    lowest = set(by_quality.head(2 * len(flipped)))
    group = dict(zip(audit.items["path"], audit.items["group"]))
    copies = [(m, family[0]) for family in truth["families"] for m in family[1:]]
    harsh = [(m, family) for family in truth["families"] for m in family
             if m.endswith("_harsh.jpg")]  # fmt: skip
    found = {frozenset(p) for p in pairs}
    # Each held-out original with a planted copy in train: a finding pairs it with
    # a training item.
    originals = [family[0] for family in truth["families"]] + [
        next(m for m in pair if "copy_" not in os.path.basename(m))
        for pair in truth["exact"]
    ]
    duplicates = findings[kind.isin(["exact_duplicate", "near_duplicate"])]
    against_train, paired = set(), set()
    for a, b, split, other in zip(
        duplicates["path"],
        duplicates["other_path"],
        duplicates["split"],
        duplicates["other_split"],
    ):
        if other == "train":
            against_train.add(a)
        if "train" in (split, other) and split != other:
            paired |= {a, b}  # a training and a held-out member, either way round
    sizes = audit.items["group"].value_counts()
    return {
        "near_recall": len(planted & set(pairs)) / len(planted),
        "copies_grouped": sum(group[c] == group[o] for c, o in copies) / len(copies),
        "near_precision": len(right) / max(1, len(involving)),
        "near_reported": len(pairs),
        "pre_existing": len(pairs) - len(involving),
        "exact_recall": sum(p in exact_pairs for p in truth["exact"]) / 4,
        "exact_precision": sum(p in truth["exact"] for p in exact_pairs)
        / max(1, len(exact_pairs)),
        "conflicts": int(exact["conflict"].sum()),
        "label_recall_top2x": len(flipped & top) / len(flipped),
        "label_lowest_2x": len(flipped & lowest) / len(flipped),
        "label_precision": len(flipped & set(issues)) / max(1, len(issues)),
        "label_rows": len(issues),
        "blank_found": truth["blank"] in outliers,
        "outliers": len(outliers),
        "harsh_paired": sum(
            any(frozenset((m, o)) in found for o in family if o != m)
            for m, family in harsh
        )
        / len(harsh),
        "harsh_grouped": sum(group[m] == group[family[0]] for m, family in harsh)
        / len(harsh),
        "leaks_vs_train": sum(o in against_train for o in originals) / len(originals),
        "leaks_any_order": sum(o in paired for o in originals) / len(originals),
        "largest_group": int(sizes.max()),
        "label_issue_share": len(issues) / len(audit.items),
        "label_model_acc": getattr(audit, "label_model", {}).get("accuracy", np.nan),
    }


def fold_sizes(target: str) -> list:
    """Test sizes of the 5 grouped folds model selection makes on the training
    split (``compare_models(group_duplicates=True)``)."""
    paths, labels = load_image_folder(target, "train")
    results, _ = compare_models(
        paths, labels, param_grid={"C": [1.0]}, cv=5, refit=False,
        group_duplicates=True,
    )  # fmt: skip
    if "fold_sizes" in results:
        return list(results["fold_sizes"].iloc[0])
    return []  # before issue 36: not reported


def neighbours_timing(sizes=(1_200, 20_000)) -> None:
    rng = np.random.default_rng(0)
    print("\nnearest neighbours, k=10, 1,280-wide rows (random, clustered)")
    header = ("rows", "exact s", "hnsw s", "hnsw/exact", "top-1 agree")
    print(" ".join(f"{h:>11}" for h in header))
    for n in sizes:
        centres = rng.normal(size=(max(10, n // 20), 1280))
        rows = centres[rng.integers(len(centres), size=n)] + rng.normal(size=(n, 1280))
        rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
        timings, found = {}, {}
        for backend in ("exact", "hnsw"):
            started = time.perf_counter()
            found[backend], _ = nearest_neighbours(rows, 10, backend=backend)
            timings[backend] = time.perf_counter() - started
        agree = (found["exact"][:, 0] == found["hnsw"][:, 0]).mean()
        ratio = timings["hnsw"] / timings["exact"]
        print(f"{n:>11} {timings['exact']:>11.2f} {timings['hnsw']:>11.2f} "
              f"{ratio:>11.2f} {agree:>11.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--neighbours", action="store_true")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"audit benchmark: {platform.node()}, {os.cpu_count()} cores, commit "
        f"{commit}, {time.strftime('%Y-%m-%d')}; efficientnet_lite0 (imagenet, "
        f"224 px, avg pooling)"
    )
    for name in args.sets:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as folder:
                target = os.path.join(folder, name)
                truth = plant(os.path.join(SHARED, name), target, seed)
                audit_dataset(target)  # fills the cache
                audit = audit_dataset(target)
                result = score(audit, truth)
                result["fold_sizes"] = fold_sizes(target)
            print(f"\n{name} seed {seed}: {len(audit.items)} images, warm audit "
                  f"{audit.seconds:.1f} s")  # fmt: skip
            for key, value in result.items():
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"  {key:20s} {shown}")
    if args.neighbours:
        neighbours_timing()


if __name__ == "__main__":
    main()
