"""Export: a fitted model as a folder that serves it without featurize.

``parts`` takes a model apart (network, head, tokenizer, metadata) the same way for
every format; ``heads`` folds a linear scikit-learn head; ``onnx`` and
``tensorflow`` (SavedModel, LiteRT) turn the parts into graphs; ``folder`` writes
them with ``predict.py`` (:mod:`featurize._standalone`); ``export`` chooses the
format.
"""
