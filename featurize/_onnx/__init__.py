"""ONNX: featurize's models as ONNX graphs, run by onnxruntime.

``convert`` traces a Keras computation (the same one the compile path runs) to ONNX,
``quantize`` calibrates int8, and ``runtime`` runs graphs for the featurizers'
``runtime="onnx"``. Whole fitted models are exported by :mod:`featurize._export`.
"""
