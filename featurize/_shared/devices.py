"""Where Keras computes: what the CPU-or-accelerator defaults of both wings ask."""

from __future__ import annotations


def on_accelerator() -> bool:
    """Whether the Keras backend computes on a GPU or TPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False
