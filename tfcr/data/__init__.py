"""Data sources (MovieLens files, TFDS, synthetic), the common schema and the split."""
