"""Stored values → display, the DICOM grayscale pipeline: modality LUT (rescale), VOI LUT or
window (with its VOILUTFunction), MONOCHROME1 inverted, through pydicom's functions a strip of
rows at a time; `read_dicom` runs header, first frame and display within the limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing

from umcl.imaging.frame import _first_frame, _first_frame_dataset
from umcl.imaging.header import (
    _element,
    _hostile,
    _inspect,
    _modality_lut_bits,
    _number,
    _Parsed,
    _stored_bits,
    _voi_function,
    _voi_lut_bits,
)
from umcl.imaging.limits import DecodeLimits, ImageDecodeError, ImageInfo
from umcl.imaging.scaled import box_mean, reduced_shape, reduction, strips

# --- stored values → display ---------------------------------------------------------------------


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (H, W, 3) array, one channel at a time to bound memory."""
    luma = rgb[..., 0] * np.float32(0.299)
    luma += rgb[..., 1] * np.float32(0.587)
    luma += rgb[..., 2] * np.float32(0.114)
    return luma


def _display_view(path: Path, ds: Dataset, stored: np.ndarray, photometric: str) -> Dataset:
    """What pydicom's rescale and window read, as this module reads the header: each number its
    first value (a blank one absent), VOILUTFunction LINEAR when blank, the bits and sign of the
    decoded frame; the modality LUT sequence as the file has it (bounded by `_element`)."""
    view = Dataset()
    view.PhotometricInterpretation = photometric
    view.BitsStored = _stored_bits(path, ds, stored.dtype.itemsize * 8)
    view.PixelRepresentation = int(stored.dtype.kind == "i")
    if _modality_lut_bits(path, ds) is not None:
        view.ModalityLUTSequence = _element(path, ds, "ModalityLUTSequence")
    keywords = ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
    numbers = {k: _number(path, ds, k) for k in keywords}
    pairs = (("RescaleSlope", "RescaleIntercept"), ("WindowCenter", "WindowWidth"))
    for pair in pairs:  # pydicom applies each only when both numbers are there
        if all(numbers[k] is not None for k in pair):
            for keyword in pair:  # FD: the float itself, not a DS string pydicom re-validates
                view.add_new(tag_for_keyword(keyword), "FD", numbers[keyword])
    view.VOILUTFunction = _voi_function(path, ds)
    return view


def _modality_values(path: Path, ds: Dataset, view: Dataset, stored: np.ndarray) -> np.ndarray:
    """Stored values → modality values by pydicom (the file's modality LUT, else rescale slope
    and intercept), as a new float64 array the later steps may change."""
    try:
        # The LUT's data is unpacked by the file's byte order: pydicom reads it from the file's
        # own dataset; a rescale from the checked numbers of the view.
        modality = apply_modality_lut(stored, ds if "ModalityLUTSequence" in view else view)
        return np.array(modality, dtype=np.float64)
    except MemoryError:
        raise
    except Exception:
        raise ImageDecodeError(f"{path}: DICOM modality LUT is malformed") from None


class _Display:
    """How a strip of stored values becomes display values in [0, 1]: the modality LUT or
    rescale, then the VOI LUT, else the window, else min–max over the whole frame (its range
    found in a first pass, so that converting strip by strip changes no value)."""

    def __init__(self, path: Path, ds: Dataset, stored: np.ndarray, photometric: str) -> None:
        self.path, self.ds, self.colour = path, ds, stored.ndim == 3
        self.inverted = photometric == "MONOCHROME1"
        self.view = None if self.colour else _display_view(path, ds, stored, photometric)
        self.lut_bits = None if self.colour else _voi_lut_bits(path, ds)
        windowed = self.view is not None and "WindowWidth" in self.view
        # pydicom's window writes into the range of the modality values (PS3.3 C.11.2.1.2):
        # its ends, found by windowing the lowest and highest values there are, map to [0, 1].
        self.window_ends = None
        if windowed and self.lut_bits is None:  # a VOI LUT comes before the window
            low, high = self._window(np.array([-np.inf, np.inf]))
            self.window_ends = (float(low), float(high))
        self.range: tuple[float, float] | None = None
        if self.colour or (self.lut_bits is None and self.window_ends is None):
            self.range = self._range(stored)

    def _values(self, stored: np.ndarray) -> np.ndarray:
        """Luminance of colour, modality values of grey: values whose range min–max maps."""
        if self.view is None:
            return _luminance(stored)
        return _modality_values(self.path, self.ds, self.view, stored)

    def _range(self, stored: np.ndarray) -> tuple[float, float]:
        low, high = np.inf, -np.inf
        for rows in strips(stored.shape[0], 1):
            values = self._values(stored[rows])
            low, high = min(low, float(values.min())), max(high, float(values.max()))
        return low, high

    def _window(self, values: np.ndarray) -> np.ndarray:
        """The window and its function (VOILUTFunction: LINEAR, LINEAR_EXACT or SIGMOID), by
        pydicom."""
        try:
            with np.errstate(over="ignore"):  # SIGMOID far from its centre: exp → inf → 0
                return np.asarray(apply_windowing(values, self.view), np.float64)
        except MemoryError:
            raise
        except Exception:  # a width its function cannot use (LINEAR under 1, others 0)
            raise ImageDecodeError(f"{self.path}: DICOM window is malformed") from None

    def convert(self, stored: np.ndarray) -> np.ndarray:
        """A strip of stored values → float64 in [0, 1] (checked finite)."""
        values = self._values(stored)
        if self.range is not None:
            low, high = self.range
            if high <= low:  # a flat frame: black, then inverted as any other (MONOCHROME1)
                values = np.zeros(values.shape, np.float64)
            else:
                values = np.divide(np.subtract(values, low, dtype=np.float64), high - low)
        elif self.lut_bits is not None:
            try:
                lut_out = np.asarray(apply_voi_lut(values, self.ds, prefer_lut=True), np.float64)
            except MemoryError:
                raise
            except Exception:
                raise ImageDecodeError(f"{self.path}: DICOM VOI LUT is malformed") from None
            values = np.clip(lut_out / (2**self.lut_bits - 1), 0.0, 1.0)
        else:
            assert self.window_ends is not None
            low, high = self.window_ends
            if high == low:  # a rescale slope of 0: every value the same, black
                values = np.zeros(values.shape, np.float64)
            else:
                values = np.clip((self._window(values) - low) / (high - low), 0.0, 1.0)
        if self.inverted:
            np.subtract(1.0, values, out=values)
        if not np.isfinite(values).all():
            raise ImageDecodeError(f"{self.path}: DICOM LUTs give pixel values that are not finite")
        return values


def _to_unit(
    path: Path, ds: Dataset, stored: np.ndarray, photometric: str, min_side: int
) -> np.ndarray:
    """Stored frame → 2-D float32 in [0, 1], converted a strip at a time and shrunk by
    `reduction` as it goes: no full-size float copy of a large frame is ever made."""
    display = _Display(path, ds, stored, photometric)
    height, width = stored.shape[:2]
    factor = reduction(height, width, min_side)
    image = np.empty(reduced_shape(height, width, factor), np.float32)
    for rows in strips(height, factor):
        image[rows.start // factor : -(-rows.stop // factor)] = box_mean(
            display.convert(stored[rows]), factor
        )
    return image


def read_dicom(
    path: str | Path,
    limits: DecodeLimits | None = None,
    info: ImageInfo | None = None,
    min_side: int = 0,
) -> np.ndarray:
    """Decode a DICOM file to a 2-D float32 array in [0, 1] (first frame of a multi-frame).
    `info`: what `inspect_dicom` returned for this same file, whose header is then not parsed
    again. `min_side`: a large frame is shrunk while converting, its long side still at least
    this (0: full size)."""
    path = Path(path)
    with _hostile(path):
        parsed = info.parsed if info is not None else None
        if not isinstance(parsed, _Parsed) or parsed.path != path:
            parsed = _inspect(path, limits).parsed
        assert isinstance(parsed, _Parsed)
        header, pixels = parsed.header, parsed.pixels
        stored = _first_frame(path, _first_frame_dataset(path, header, pixels), pixels)
        return _to_unit(path, header.dataset, stored, pixels.photometric, min_side)
