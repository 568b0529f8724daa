"""Fine-tuning: the Keras model around a backbone, the linear probe, the training loop,
FineTunedClassifier.
"""
