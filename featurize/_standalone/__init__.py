"""Modules that import nothing but the standard library, numpy and Pillow (and, to
serve, onnxruntime and tokenizers).

featurize runs them, and an exported model's folder carries copies of them beside its
``predict.py`` (:mod:`featurize._standalone.predict`, serving
:mod:`featurize._standalone.serving`'s model), so a model served without
featurize reads its inputs with the very code it was trained with.
"""
