"""Decoding at reduced scale: the model takes a 128–512 px square and the page shows 1024 px, so
a 50 MP radiograph need never exist in memory as floats at full size.

A decoder asks `reduction` by how much it may shrink an image, then converts its stored samples
strip by strip (`strips`), each strip averaged down by that factor (`box_mean`): what stays in
memory at full size is only what the format's own decoder returns (1–2 bytes a sample).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# A reduced decode keeps the image's long side at least this (what the page shows) and at least
# twice the model's square, so the antialiased resize to the square still has detail to average.
MIN_DECODED_SIDE = 1024
STRIP_ROWS = 256  # rows converted at once: 256 × 8,000 px of float64 is 16 MB


def decoded_side(model_side: int) -> int:
    """The long side a large image is decoded to at least, for a model of `model_side` px."""
    return max(MIN_DECODED_SIDE, 2 * model_side)


def reduction(height: int, width: int, min_side: int) -> int:
    """The integer factor an image may be shrunk by with its long side still ≥ `min_side` (1: kept
    whole; `min_side` 0 keeps every image whole)."""
    if min_side <= 0:
        return 1
    return max(1, max(height, width) // min_side)


def reduced_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """The shape `box_mean` gives an image of height × width: a partial box at an edge counts."""
    return -(-height // factor), -(-width // factor)


def strips(height: int, factor: int) -> Iterator[slice]:
    """Row ranges of about STRIP_ROWS rows, each a whole number of boxes (but the last)."""
    step = factor * max(1, STRIP_ROWS // factor)
    for start in range(0, height, step):
        yield slice(start, min(height, start + step))


def shrink(values: np.ndarray, min_side: int) -> np.ndarray:
    """A decoded 2-D image box-averaged as a reduced decode would have shrunk it (`reduction`)."""
    return box_mean(values, reduction(*values.shape, min_side))


def box_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each factor × factor box of a 2-D array (a partial box at the right or bottom
    edge: the mean of what it holds), as float32; the array itself when `factor` is 1."""
    if factor == 1:
        return values.astype(np.float32, copy=False)
    rows, columns = values.shape
    row_starts, column_starts = np.arange(0, rows, factor), np.arange(0, columns, factor)
    row_sums = np.add.reduceat(values, row_starts, axis=0, dtype=np.float64)
    sums = np.add.reduceat(row_sums, column_starts, axis=1)
    counts = np.outer(np.diff(row_starts, append=rows), np.diff(column_starts, append=columns))
    return (sums / counts).astype(np.float32)
