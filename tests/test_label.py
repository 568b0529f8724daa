"""The labelling loop from the command line: queues that never repeat a labelled
item, label files refused by file and row (and never written), a model from the
labels, texts by row, and the queue's page in a browser."""

from __future__ import annotations

import pandas as pd
import pytest

from featurize import load_model
from pipelines._cli import main

from .conftest import DATA, ROOT, needs_chromium, rendered

SMALL = ["--input-size", "64"]
FOLDER = str(DATA / "train")


def label(*argv) -> int:
    return main(["label", *map(str, argv)])


def oracle(queue, done):
    """Label a queue as a person would: the class is the image's folder."""
    table = pd.read_csv(queue)
    table["label"] = table["path"].str.split("/").str[-2]
    table.to_csv(done, index=False)
    return table


def test_the_loop_round_trips_with_nothing_repeated_or_lost(tmp_path, capsys):
    done, seen = [], []
    for round_ in range(3):
        queue = tmp_path / f"queue{round_}.csv"
        assert label(FOLDER, "--budget", 6, "--out", queue, *SMALL,
                     *(["--labels", *done] if done else [])) == 0  # fmt: skip
        table = oracle(queue, tmp_path / f"done{round_}.csv")
        assert len(table) == 6
        assert list(pd.read_csv(queue).columns) == ["path", "label"]
        assert not set(table["path"]) & set(seen)  # never proposed again
        seen += table["path"].tolist()
        done.append(tmp_path / f"done{round_}.csv")
    before = [path.read_bytes() for path in done]
    model = tmp_path / "model.joblib"
    assert label(FOLDER, "--budget", 4, "--out", tmp_path / "last.csv", *SMALL,
                 "--labels", *done, "--model", model) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "18 labelled of 48 usable items (2 classes)" in printed
    assert "cross-validated accuracy by labels so far: " in printed
    assert "hint: " in printed
    assert "semi-supervised: " in printed
    assert [path.read_bytes() for path in done] == before  # only ever read
    pipeline = load_model(model)
    assert set(pipeline.predict(seen[:4])) <= {"ants", "bees"}
    # The pool's unlabelled items join the training only when asked (or when
    # auto finds it pays); the labelled ones always train, never rewritten.
    for when, taught in (("never", "18 items"), ("always", "48 items")):
        assert label(FOLDER, "--budget", 4, "--out", tmp_path / "last.csv", *SMALL,
                     "--labels", *done, "--model", model,
                     "--semi-supervised", when) == 0  # fmt: skip
        printed = capsys.readouterr().out
        assert f"saved the pipeline trained on {taught}" in printed
    assert "30 unlabelled items join the training with spread labels" in printed
    assert [path.read_bytes() for path in done] == before


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"path": "nowhere.jpg", "label": "ants"}, "names 'nowhere.jpg', which is not"),
        ({"label": ""}, "has an empty label"),
        ({"label": "Ants "}, "one class spelled two ways"),
        ({"label": "bees", "same": True}, "labels it 'ants': keep one"),
    ],
)
def test_bad_label_files_are_refused_by_file_and_row(tmp_path, capsys, row, message):
    paths = sorted(str(p) for p in (DATA / "train" / "ants").iterdir())[:3]
    good = tmp_path / "good.csv"
    pd.DataFrame({"path": paths[:2], "label": ["ants", "ants"]}).to_csv(
        good, index=False
    )
    bad = tmp_path / "bad.csv"
    fields = {k: v for k, v in row.items() if k != "same"}
    row = {"path": paths[0] if row.get("same") else paths[2], **fields}
    pd.DataFrame([row]).to_csv(bad, index=False)
    assert label(FOLDER, "--budget", 2, "--out", tmp_path / "q.csv", *SMALL,
                 "--labels", good, bad) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"{str(bad)!r} row 1" in err
    assert message in err
    assert not (tmp_path / "q.csv").exists()


def test_texts_are_queued_by_row(tmp_path, capsys):
    table = ROOT / "data" / "sms_spam_sample.csv"
    queue = tmp_path / "queue.csv"
    text = ["--text-column", "text", "--encoder", "glove_50d", "--cache", "none"]
    assert label(table, "--budget", 5, "--out", queue, *text) == 0
    first = pd.read_csv(queue)
    assert list(first.columns) == ["row", "text", "label"]
    source = pd.read_csv(table)
    assert first["text"].tolist() == source["text"][first["row"]].tolist()
    first["label"] = source["label"][first["row"]].to_numpy()
    first.to_csv(tmp_path / "done.csv", index=False)
    again = tmp_path / "again.csv"
    assert label(table, "--budget", 5, "--out", again, *text, "--labels",
                 tmp_path / "done.csv") == 0  # fmt: skip
    assert not set(pd.read_csv(again)["row"]) & set(first["row"])


@needs_chromium
def test_queue_page_renders_in_a_browser(tmp_path):
    page = tmp_path / "queue.html"
    assert label(FOLDER, "--budget", 5, "--out", tmp_path / "q.csv", *SMALL,
                 "--report", page) == 0  # fmt: skip
    dom = rendered(page)
    assert "<title>loaded 5 of 5</title>" in dom
    assert "Label these 5 next" in dom
