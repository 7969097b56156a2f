"""Dataset sources, slicing, normalisation, masks and splits."""
