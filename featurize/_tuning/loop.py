"""The training loop, in layers (skorch's): ``fit_loop`` runs the epochs, phase by
phase, keeps the best epoch on a validation split and stops early;
``run_epoch`` is one shuffled pass; ``train_step`` one compiled Keras step.

Nothing here knows images: a trainer (a compiled Keras model), batches (``len``,
``shuffle()``, ``[k] -> (inputs, labels, weights)``) and a few callables are all
it takes, so text fine-tuning runs on it too.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from featurize import errors


@dataclass
class Phase:
    """What trains from some epoch on.

    Attributes
    ----------
    key : object
        Equal keys are the same phase (the trainer is compiled once per phase).
    start : callable
        ``start(epoch)``: compile the trainer for this phase.
    columns : callable
        ``columns(epoch)``: the phase's history columns after that epoch.
    patient : bool
        Whether epochs without improvement count towards ``patience`` (only once
        everything that will train is training).
    """

    key: object
    start: Callable[[int], None]
    columns: Callable[[int], dict]
    patient: bool = True


def fit_loop(
    trainer,
    batches,
    *,
    epochs: int,
    phase: Callable[[int], Phase],
    evaluate: Callable[[], dict],
    weights: tuple[Callable, Callable],
    validated: bool,
    patience: int | None,
    first: dict,
    bar=None,
    unit: str = "images",
    average_from: int | None = None,
) -> tuple[list[dict], int]:
    """Train for ``epochs``; return the history rows (``first`` included) and the
    epoch whose weights are kept.

    ``evaluate()`` gives ``val_loss`` and ``val_accuracy`` (NaN without
    validation); ``weights`` is ``(get, set)`` for keeping the best epoch's. With
    validation the best epoch is kept (``first``, epoch 0, included) and training
    stops after ``patience`` patient epochs without a better one; without it the
    last epoch is kept, or, from epoch ``average_from`` on, the mean of the
    epochs' weights (stochastic weight averaging, Izmailov et al. 2018). ``unit``
    names the rate column (``images_per_second``).
    """
    history = [first]
    get_weights, set_weights = weights
    best = (first["val_accuracy"], -first["val_loss"], 0)
    best_weights = get_weights() if validated else None
    current, since_best = None, 0
    averaged, n_averaged = None, 0
    for epoch in range(1, epochs + 1):
        now = phase(epoch)
        if current is None or now.key != current.key:
            current = now
            current.start(epoch)
        row = {"epoch": epoch, **run_epoch(trainer, batches, unit), **evaluate()}
        row |= current.columns(epoch)
        history.append(row)
        if bar is not None:
            bar.set_postfix(
                {
                    "loss": f"{row['loss']:.3f}",
                    "val_acc": row["val_accuracy"],
                    f"{unit}/s": f"{row[f'{unit}_per_second']:.1f}",
                }
            )
            bar.update()
        if not validated:
            if average_from is not None and epoch >= average_from:
                now_weights, n_averaged = get_weights(), n_averaged + 1
                averaged = mixed_weights(
                    averaged or now_weights, now_weights, 1 / n_averaged
                )
            continue
        score = (row["val_accuracy"], -row["val_loss"], epoch)
        if score[:2] > best[:2]:
            best, since_best = score, 0
            best_weights = get_weights()
        elif current.patient:
            since_best += 1
            if patience is not None and since_best >= patience:
                break
    if bar is not None:
        bar.close()
    if best_weights is not None:
        set_weights(best_weights)
    elif averaged is not None:
        set_weights(averaged)
    return history, (best[2] if validated else len(history) - 1)


def mixed_weights(first: list, second: list, share: float) -> list:
    """``(1 - share) * first + share * second``, array by array (counts and other
    integer weights, equal in both, are taken from ``second``)."""
    return [
        a + share * (b - a) if np.issubdtype(np.asarray(b).dtype, np.floating) else b
        for a, b in zip(first, second)
    ]


def averaged_from(epochs: int, fraction: float) -> int | None:
    """The first epoch of the last ``fraction`` of ``epochs`` (None: none)."""
    count = math.ceil(round(epochs * fraction, 6))
    return epochs - count + 1 if count and epochs else None


def run_epoch(trainer, batches, unit: str = "images") -> dict:
    """One pass over the shuffled batches: mean loss and accuracy (augmented),
    seconds and training inputs (``unit``) per second."""
    started = time.perf_counter()
    batches.shuffle()
    loss = accuracy = seen = 0.0
    for k in range(len(batches)):
        inputs, labels, weights = batches[k]
        logs = train_step(trainer, inputs, labels, weights)
        loss += float(logs["loss"]) * len(labels)
        accuracy += float(logs["accuracy"]) * len(labels)
        seen += len(labels)
    seconds = time.perf_counter() - started
    return {
        "loss": loss / max(seen, 1),
        "accuracy": accuracy / max(seen, 1),
        "seconds": seconds,
        f"{unit}_per_second": seen / seconds if seconds else math.nan,
    }


def train_step(trainer, inputs, labels, weights) -> dict:
    """One optimizer step (the trainer's compiled ``train_step``)."""
    return trainer.train_on_batch(
        inputs, labels, sample_weight=weights, return_dict=True
    )


def epoch_bar(epochs: int, verbose, name: str):
    """A progress bar over epochs (None when not verbose)."""
    if not verbose or not epochs:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, unit="epoch", desc=f"fine-tuning ({name})")


def pixel_chunks(data):
    """Decoded pixels as one chunk, or inputs decoded chunk by chunk."""
    pixels, source = data
    if source is None:
        return [pixels]
    return (batch for _, batch, _ in source.chunks(pixels))


def shuffled_batches(data, rows, batch_size: int, seed: int):
    """Float32 pixel batches of ``data(rows)`` in a seeded order (a batch of one
    class would give BatchNorm that class's statistics, not the data's)."""
    order = np.random.default_rng(seed).permutation(rows)
    for chunk in pixel_chunks(data(order)):
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size].astype(np.float32)


def predict_batches(keras_model, data, batch_size, mirror=False) -> np.ndarray:
    """Run ``keras_model`` on decoded pixels, or on inputs decoded chunk by chunk
    (``mirror``: on their mirror images)."""
    return np.concatenate(
        [
            keras_model.predict(
                (b[:, :, ::-1] if mirror else b).astype(np.float32),
                batch_size=batch_size,
                verbose=0,
            )
            for b in pixel_chunks(data)
        ]
    )


def pooled_features(model, data, batch_size, mirror=False) -> np.ndarray:
    from featurize._tuning import model as tm

    return predict_batches(tm.pooled_model(model), data, batch_size, mirror)


def evaluate(model, val_data, codes, batch_size) -> dict:
    if val_data is None:
        return {"val_loss": math.nan, "val_accuracy": math.nan}
    proba = predict_batches(model.classifier, val_data, batch_size)
    picked = np.clip(proba[np.arange(len(codes)), codes], 1e-7, 1.0)
    return {
        "val_loss": float(-np.log(picked).mean()),
        "val_accuracy": float((proba.argmax(axis=1) == codes).mean()),
    }


def validation_split(rows, codes, fraction, seed):
    """Stratified train/validation rows; no validation when it cannot be drawn."""
    if not fraction:
        return rows, rows[:0]
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(codes[rows]))
    n_val = int(math.ceil(fraction * len(rows)))
    if n_val < n_classes or len(rows) - n_val < n_classes:
        warnings.warn(
            f"validation_fraction={fraction} of {len(rows)} images cannot hold every "
            f"one of the {n_classes} classes: training without validation (no early "
            f"stopping).",
            UserWarning,
            stacklevel=3,
        )
        return rows, rows[:0]
    train, val = train_test_split(
        rows, test_size=n_val, stratify=codes[rows], random_state=seed
    )
    return np.sort(train), np.sort(val)


def fit_seed(random_state) -> int:
    """The seed of one fit: ``random_state``, or a fresh one when it is None."""
    if random_state is not None:
        return random_state
    return int(np.random.default_rng().integers(2**31))


def sample_weights(codes, classes, class_weight) -> np.ndarray:
    if class_weight is None:
        return np.ones(len(codes), np.float32)
    from sklearn.utils.class_weight import compute_class_weight

    if class_weight == "balanced":
        per_class = compute_class_weight(
            "balanced", classes=np.arange(len(classes)), y=codes
        )
    else:
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise errors.InvalidParameterError(
                f"class_weight names labels {sorted(map(str, unknown))} that are not "
                f"in y; the classes are {classes.tolist()}."
            )
        per_class = np.array([class_weight.get(c, 1.0) for c in classes.tolist()])
    return per_class[codes].astype(np.float32)


def plot_history(history, best_epoch: int, title: str, ax=None):
    """Loss and validation accuracy per epoch of a ``history_``, phases marked.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["epoch"], history["loss"], "o-", label="training loss")
    ax.plot(history["epoch"], history["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("epoch (0: linear probe)")
    ax.set_ylabel("loss")
    accuracy = ax.twinx()
    accuracy.plot(
        history["epoch"], history["val_accuracy"], "^-", color="C2",
        label="validation accuracy",
    )  # fmt: skip
    accuracy.set_ylabel("validation accuracy")
    for epoch in history["epoch"][history["unfrozen_stages"].diff() > 0]:
        ax.axvline(epoch - 0.5, color="grey", lw=0.5, ls=":")
    ax.axvline(best_epoch, color="C3", lw=1, label="kept")
    lines = ax.get_legend_handles_labels()
    more = accuracy.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small")
    ax.set_title(title)
    return ax
