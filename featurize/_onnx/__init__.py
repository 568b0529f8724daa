"""ONNX: featurize's models as ONNX graphs, run by onnxruntime.

``convert`` traces a Keras computation (the same one the compile path runs) to ONNX,
``heads`` appends a scikit-learn head, ``quantize`` calibrates int8, ``runtime`` runs
graphs for the featurizers' ``runtime="onnx"``, and ``export`` puts a whole fitted
model into one graph with the metadata a server needs.
"""
