"""What featurize holds in memory, released on request: image models and their
compiled functions (the anomaly detector's patch passes too), and loaded text
encoders."""

from __future__ import annotations

from featurize._images.forward import forget_forwards
from featurize._texts.encoders import forget_text_encoders


def forget_models() -> None:
    """Drop every held model, compiled function and text encoder (the framework's
    caches stay)."""
    forget_forwards()
    forget_text_encoders()


def release_models() -> None:
    """Release every model and compiled function featurize holds in this process.

    Featurizers keep working: the next embedding builds its model again. Memory
    held by models is otherwise bounded by ``FEATURIZE_MAX_MODELS`` backbones
    (default 2), least recently used out first.
    """
    import gc

    import keras

    forget_models()
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.clear_caches()  # compiled functions hold their model's constants
    elif backend == "tensorflow":
        # What keras.backend.clear_session() does for TensorFlow, without resetting
        # Keras's global settings (a user's dtype policy): the eager kernel cache
        # keeps every traced model's kernels (measured over 10 backbones in a row:
        # the process grew by 200 MB when it was kept, 135 MB when it was cleared).
        import tensorflow as tf
        from tensorflow.python.eager import context

        context.context().clear_kernel_cache()
        tf.compat.v1.reset_default_graph()
    gc.collect()
