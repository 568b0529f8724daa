"""Modules that import nothing but the standard library, numpy and Pillow.

featurize runs them, and an exported model's folder carries copies of them beside its
``predict.py`` (:mod:`featurize._standalone.serving`), so a model served without
featurize reads its inputs with the very code it was trained with.
"""
