"""SetFit, the reference for text fine-tuning, on one few-label draw.

Runs in a separate environment holding torch and setfit (dev-time only, never a
featurize dependency), on the same MiniLM files featurize reads:

    python -m venv /tmp/setfit && /tmp/setfit/bin/pip install torch setfit
    /tmp/setfit/bin/python benchmarks/setfit_reference.py DRAW.json OUT.json

DRAW.json holds ``train_texts``, ``train_labels``, ``test_texts``,
``test_labels``, ``model`` (the sentence-transformers folder) and ``seed``;
OUT.json gets the test predictions, the fit time and the peak RSS. The recipe is
the one the issue measured: 20 pair iterations, one epoch, batch 16, the rest
SetFit 1.2's defaults (cosine-similarity loss, body rate 2e-5, logistic-regression
head).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def main(draw_path: str, out_path: str) -> None:
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    with open(draw_path) as handle:
        draw = json.load(handle)
    torch.manual_seed(draw["seed"])
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(draw["model"])
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            batch_size=16,
            num_epochs=1,
            num_iterations=20,
            seed=draw["seed"],
            show_progress_bar=False,
            # Its checkpoints would otherwise land in the working directory.
            output_dir=tempfile.mkdtemp(prefix="setfit-"),
        ),
        train_dataset=Dataset.from_dict(
            {"text": draw["train_texts"], "label": draw["train_labels"]}
        ),
    )
    trainer.train()
    fit_seconds = time.perf_counter() - started
    predicted = [str(p) for p in model.predict(draw["test_texts"])]
    with open(out_path, "w") as handle:
        json.dump(
            {
                "predicted": predicted,
                "fit_seconds": fit_seconds,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                / 1024,
                "torch_threads": torch.get_num_threads(),
            },
            handle,
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
