"""The image wing: reading and decoding images, the batch loop with the cache, compiled
forward passes, ImageFeaturizer.
"""
