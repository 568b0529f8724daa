"""Choosing what to label: selection on embeddings (stateless, as a queue file on
disk is the whole loop)."""
