"""The parts every modality shares: parameter rules, the embedding cache and one call's
session with it, the result and failure types, reporting, content digests, versions,
the compile path, input and label checks, safe model files. Nothing here knows
images or texts.
"""
