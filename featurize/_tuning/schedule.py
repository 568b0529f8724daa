"""The learning-rate schedule of every fine-tuning: a linear warm-up, then a decay
to zero over the whole fit, cosine (images) or linear (texts, as SetFit)."""

from __future__ import annotations

import math

import keras
from keras import ops

from featurize._tuning.params import DECAYS


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then ``decay`` to zero, over the whole fit.

    ``offset`` is the global step at which the optimizer using it starts (its own
    step counter starts at 0), so that every depth follows one curve.
    """

    def __init__(
        self,
        peak: float,
        warmup_steps: int,
        total_steps: int,
        offset: int,
        decay: str = "cosine",
    ):
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}; received {decay!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.offset = int(offset)
        self.decay = decay

    def _fall(self, progress, cos):
        if self.decay == "linear":
            return self.peak * (1.0 - progress)
        return self.peak * 0.5 * (1.0 + cos(math.pi * progress))

    def value(self, step: float) -> float:
        """The rate at global step ``step``, in Python (for the history)."""
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self._fall(progress, math.cos)

    def __call__(self, step):
        step = ops.cast(step, "float32") + float(self.offset)
        warm = self.peak * (step + 1.0) / float(max(self.warmup_steps, 1))
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        return ops.where(
            step < float(self.warmup_steps), warm, self._fall(progress, ops.cos)
        )

    def get_config(self) -> dict:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "offset": self.offset,
            "decay": self.decay,
        }


def rate(
    peak: float, warmup_steps: int, total_steps: int, step: int, decay: str = "cosine"
) -> float:
    """The learning rate after ``step`` steps (for the history)."""
    return WarmupDecay(peak, warmup_steps, total_steps, 0, decay).value(step - 1)
