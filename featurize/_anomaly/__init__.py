"""The anomaly wing: a detector learned from normal images only, on the image wing's
forward pass and cache (:mod:`featurize._images`)."""
