"""DICOM → float32 image in [0, 1], displayed the way the header asks.

Order follows the DICOM grayscale pipeline: stored values → modality LUT (rescale slope and
intercept) → VOI LUT or window → presentation (MONOCHROME1 means low values are white, so it is
inverted). Only pixels come out: identifying header attributes never leave this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut


class ImageDecodeError(ValueError):
    """An image file that cannot be turned into pixels; the message names the file."""


def _first(value: object) -> float:
    # Window center/width may be multi-valued (several presets); the first is the default.
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0]
    return float(value)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 linear window, mapped to [0, 1]."""
    width = max(width, 1.0)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _rescale_to_unit(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return (values - low) / (high - low)


def read_dicom(path: str | Path) -> np.ndarray:
    """Decode a DICOM file to a 2-D float32 array in [0, 1] (first frame of a multi-frame)."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ImageDecodeError(f"{path}: not a readable DICOM file ({exc})") from None
    if "PixelData" not in ds:
        raise ImageDecodeError(f"{path}: DICOM file has no pixel data")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for truncated or odd pixel data
        raise ImageDecodeError(f"{path}: pixel data cannot be decoded ({exc})") from None

    if stored.ndim == 3 and ds.get("SamplesPerPixel", 1) == 1:
        stored = stored[0]
    if stored.ndim == 3:  # colour (e.g. a secondary capture): luminance
        stored = stored[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return _rescale_to_unit(stored).astype(np.float32)

    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if "VOILUTSequence" in ds:
        lut_out = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        image = np.clip(lut_out / (2**bits - 1), 0.0, 1.0)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        image = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        image = _rescale_to_unit(values)

    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)
