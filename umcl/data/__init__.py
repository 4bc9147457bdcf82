"""Training input: every image decoded once into the cache (`preprocess.py`, stage
`preprocess`), the Dataset over the cache and the triplet table (`dataset.py`) and training-time
augmentation (`augment.py`)."""
