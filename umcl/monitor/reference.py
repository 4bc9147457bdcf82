"""The reference a model is monitored against: what its own test images looked like to it.

Written by the evaluate stage (which embeds the test split anyway) and stored with the model by
`umcl package`, so drift is always measured against what this champion was judged on:
- a seeded sample of at most `monitor.reference_size` test-image embeddings (no ids, no pixels;
  0 keeps none),
- summary statistics of every test embedding (mean, principal axes and their variances), which
  the weaker mean-shift test uses when no sample is kept,
- each finding's decision threshold, and its positive rate and mean calibrated probability over
  the test images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load_file, save_file

from umcl.atomic import write_with
from umcl.config import MonitorSettings
from umcl.errors import InputError

if TYPE_CHECKING:
    from umcl.evaluate import Curves
    from umcl.model.umcl import UMCLModel

REFERENCE_FILE = "reference.safetensors"
METADATA_KEY = "umcl_reference"
ARRAYS = (
    "embeddings",
    "mean",
    "axes",
    "variances",
    "thresholds",
    "positive_rate",
    "mean_probability",
)


@dataclass(frozen=True)
class Reference:
    labels: list[str]
    images: int  # test images the statistics summarise
    embeddings: np.ndarray  # (m, D) float32 sample, m ≤ monitor.reference_size
    mean: np.ndarray  # (D,)
    axes: np.ndarray  # (k, D) principal axes, largest variance first
    variances: np.ndarray  # (k,)
    thresholds: np.ndarray  # (L,) on the calibrated probability, as the service decides
    positive_rate: np.ndarray  # (L,) share of test images at or over each finding's threshold
    mean_probability: np.ndarray  # (L,)


def build_reference(
    embeddings: np.ndarray,
    probabilities: np.ndarray,
    thresholds: np.ndarray,
    labels: list[str],
    size: int,
    axes: int,
    seed: int,
) -> Reference:
    """The reference of `embeddings` (n, D) with their calibrated `probabilities` (n, L) and
    each finding's decision threshold (L,)."""
    embeddings = np.asarray(embeddings, np.float64)
    probabilities, thresholds = np.asarray(probabilities), np.asarray(thresholds)
    n, dim = embeddings.shape
    if n < 2:
        raise InputError(f"a drift reference needs at least 2 test images; the test split has {n}")
    mean = embeddings.mean(axis=0)
    _, singular, vt = np.linalg.svd(embeddings - mean, full_matrices=False)
    kept = min(axes, len(singular))
    sample = np.random.default_rng(seed).permutation(n)[: min(size, n)]
    return Reference(
        labels=list(labels),
        images=n,
        embeddings=embeddings[np.sort(sample)].astype(np.float32).reshape(-1, dim),
        mean=mean.astype(np.float32),
        axes=vt[:kept].astype(np.float32),
        variances=(singular[:kept] ** 2 / (n - 1)).astype(np.float32),
        thresholds=np.asarray(thresholds, np.float32),
        positive_rate=(probabilities >= thresholds).mean(axis=0).astype(np.float32),
        mean_probability=np.asarray(probabilities, np.float64).mean(axis=0).astype(np.float32),
    )


def decision_thresholds(model: UMCLModel) -> np.ndarray:
    """(L,) the thresholds the service decides each label with (umcl/calibration.py:
    Calibration.decisions): the calibration's, else 0.5."""
    from umcl.calibration import Calibration

    calibration = model.calibration or Calibration.identity([])
    return np.array([calibration.threshold(n) for n in model.label_names])


def reference_writer(
    path: Path, settings: MonitorSettings, seed: int
) -> Callable[[UMCLModel, Curves], None]:
    """What `umcl evaluate --reference` hands the evaluation: once the test images are scored,
    their reference is written to `path`."""

    def write(model: UMCLModel, curves: Curves) -> None:
        reference = build_reference(
            curves.test_embeddings.numpy(),
            curves.test_probabilities.numpy(),
            decision_thresholds(model),
            model.label_names,
            settings.reference_size,
            settings.summary_axes,
            seed,
        )
        save_reference(reference, path)

    return write


def save_reference(reference: Reference, path: Path) -> None:
    arrays = {name: np.ascontiguousarray(getattr(reference, name)) for name in ARRAYS}
    # One metadata key: safetensors writes its metadata map in an order that changes from run
    # to run, and the file's bytes must not (dvc.lock records them).
    described = json.dumps({"labels": reference.labels, "images": reference.images})
    write_with(
        path,
        lambda temporary: save_file(arrays, str(temporary), metadata={METADATA_KEY: described}),
    )


def load_reference(path: Path) -> Reference:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        described = json.loads((handle.metadata() or {})[METADATA_KEY])
    arrays = load_file(str(path))
    return Reference(
        labels=described["labels"],
        images=int(described["images"]),
        **{name: arrays[name] for name in ARRAYS},
    )


def model_reference(model_dir: Path, tag: str) -> Reference:
    """The reference stored with a model, or the error that says how to get one."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        raise InputError(
            f"{tag} has no drift reference ({REFERENCE_FILE}): it was packaged before monitoring "
            "existed; run the pipeline again (`dvc repro`) so that `umcl package` stores one"
        )
    return load_reference(path)
