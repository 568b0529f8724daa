"""What every embedding call shows its user: a progress bar, and a warning naming
the inputs that failed. Shared by the image and text featurizers and fine-tuning."""

from __future__ import annotations

import warnings


def warn_failures(
    failures,
    n_images: int,
    report="featurizer.embed(X).failures",
    noun="images",
    outcome="gave rows of NaN",
    stacklevel: int = 3,
) -> None:
    """Warn that ``failures`` (a failures table) of ``n_images`` inputs failed,
    naming three, saying what became of them and where the whole list is (None:
    nowhere else)."""
    shown = "; ".join(
        f"input {row.index}{_label(row)} {row.input!r}: {row.reason}"
        for row in failures.head(3).itertuples()
    )
    more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    where = f" {report} lists them all." if report else ""
    warnings.warn(
        f"{len(failures)} of {n_images} {noun} could not be used and {outcome} "
        f"({shown}{more}).{where}",
        UserWarning,
        stacklevel=stacklevel,
    )


def _label(row) -> str:
    label = getattr(row, "index_label", None)
    if label is None or label == row.index:
        return ""
    return f" (index label {label!r})"


class ProgressBar:
    """A tqdm bar that only appears on runs longer than two seconds."""

    def __init__(self, total: int, verbose, name: str, unit: str = "img"):
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=f"embedding ({name})", delay=2)

    def __enter__(self):
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
