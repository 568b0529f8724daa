"""The text wing: text values, the encoder registry and its implementations (BERT in
Keras, word vectors), TextFeaturizer.
"""
