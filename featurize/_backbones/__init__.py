"""Image backbones: the registry (one row of data each), where pretrained weights come
from and how they load, building and cutting models, their stages.
"""
