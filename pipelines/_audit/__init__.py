"""The audit: what in a data set makes a score lie (duplicates, leaks, wrong labels,
outliers), found from the embeddings featurize already computes."""
