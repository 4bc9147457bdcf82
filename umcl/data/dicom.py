"""DICOM → float32 image in [0, 1], displayed the way the header asks — within a pixel budget.

Order follows the DICOM grayscale pipeline: stored values → modality LUT (rescale slope and
intercept) → VOI LUT or window → presentation (MONOCHROME1 means low values are white, so it is
inverted). Only pixels come out: identifying header attributes never leave this module, and no
message quotes a header value (a message names the attribute that is wrong, never its content).

Every file is treated as hostile until its header has been checked (`inspect_dicom`):
- the header (everything before the pixel data) must lie in the first `HEADER_BYTES` of the file
  (of the inflated dataset, for a deflated file, which has only that much inflated to read it);
- the file meta must name its transfer syntax, and the dataset must hold pixel data;
- Modality must be one of `DecodeLimits.modalities` (CR and DX by default: this model reads
  chest radiographs); a file with no Modality is refused, as Modality is mandatory in every
  DICOM image (UMCL_DICOM_MODALITIES=`*` accepts any file, with or without one);
- grayscale (MONOCHROME1/2) or colour (RGB, YBR: reduced to luminance), 8 or 16 bits;
- Rows × Columns must fit the pixel budget (`UMCL_MAX_PIXELS`); only the first frame of a
  multi-frame file is decoded, except that a deflated file must be inflated whole, so all its
  frames count against the budget and it may inflate no further than its header declares;
- a compressed first frame must declare the size the header does (JPEG, JPEG-LS, JPEG 2000), and
  an RLE frame may not expand beyond it;
- anything malformed (a non-numeric window or rescale, an odd LUT descriptor, YBR colour that
  cannot be decoded, …) raises `ImageDecodeError`, never another exception type; an empty VOI
  LUT sequence means no VOI LUT (the window, else min–max, applies).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread, read_dataset, read_partial, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

# Reasons an image is refused; ingestion counts out-of-scope objects by these.
IMAGE_MISSING = "image_missing"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_FORMAT_UNSUPPORTED = "image_format_unsupported"
MODALITY_OUT_OF_SCOPE = "modality_out_of_scope"

DEFAULT_MAX_PIXELS = 50_000_000  # a 43 × 43 cm detector at 100 µm is 18.5 MP; 50 MP leaves room
DEFAULT_MODALITIES = ("CR", "DX")
HEADER_BYTES = 4 * 2**20  # everything before the pixel data must fit here
TRAILER_BYTES = 64 * 2**10  # elements after the pixel data a deflated file may hold
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float and Double Float Pixel Data
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "  # the JP2 signature box, always first and 12 bytes
GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}  # pydicom returns these as RGB
# PS3.3 C.7.3.1.1.1 defined terms, current and retired: only these are quoted back in a message.
MODALITY_TERMS = (
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES FID GM HC "
    "HD IO IOL IVOCT IVUS KER KO LEN LS M3D MG MR NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PA "
    "PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN "
    "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC "
    "AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF"
)
KNOWN_MODALITIES = frozenset(MODALITY_TERMS.split())


class ImageDecodeError(ValueError):
    """An image file that cannot (or may not) be turned into pixels. The message starts with the
    file's path; `code` says why, for counting (IMAGE_UNREADABLE, IMAGE_TOO_LARGE, …)."""

    def __init__(self, message: str, code: str = IMAGE_UNREADABLE) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[str, str]]:
        # Keeps `code` when the error crosses a process pool (the preprocess stage decodes there).
        return (type(self), (str(self), self.code))


def _env_number(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{name}={raw!r} is not a positive number")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """What a file may be: at most `max_pixels` decoded pixels; for DICOM, one of `modalities`
    (None: any file, with or without a Modality)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    modalities: frozenset[str] | None = frozenset(DEFAULT_MODALITIES)

    @classmethod
    def from_env(cls) -> DecodeLimits:
        """UMCL_MAX_PIXELS and UMCL_DICOM_MODALITIES (comma-separated; `*` accepts any)."""
        raw = os.environ.get("UMCL_DICOM_MODALITIES") or ",".join(DEFAULT_MODALITIES)
        names = frozenset(re.split(r"[\s,]+", raw.strip().upper())) - {""}
        if not names:
            raise ValueError(f"UMCL_DICOM_MODALITIES={raw!r} names no modality")
        return cls(
            max_pixels=_env_number("UMCL_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            modalities=None if "*" in names else names,
        )


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding its pixels. `pixels` is what decoding it
    will hold: one frame, or every frame of a deflated DICOM (which is inflated whole)."""

    format: str
    width: int
    height: int
    pixels: int


def check_pixel_budget(path: Path, pixels: int, limits: DecodeLimits) -> None:
    if pixels > limits.max_pixels:
        raise ImageDecodeError(
            f"{path}: image has {pixels / 1e6:.1f} megapixels, over the "
            f"{limits.max_pixels / 1e6:g} MP limit (UMCL_MAX_PIXELS)",
            IMAGE_TOO_LARGE,
        )


@dataclass(frozen=True)
class _PixelModule:
    rows: int
    columns: int
    frames: int
    samples: int
    bits: int
    photometric: str
    syntax: UID

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples * self.bits // 8


@dataclass(frozen=True)
class _Header:
    dataset: Dataset
    meta: FileMetaDataset
    syntax: UID
    data_start: int  # where the dataset begins in the file (after preamble and file meta)
    pixel_offset: int | None  # where the pixel data element begins in the (inflated) dataset


# --- reading the file and its header -------------------------------------------------------------


def _file_bytes(path: Path, size: int = -1) -> bytes:
    """The file's first `size` bytes (all when negative)."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: image file is missing", IMAGE_MISSING) from None
    except OSError:
        raise ImageDecodeError(f"{path}: image file cannot be read") from None


def _unreadable(path: Path) -> ImageDecodeError:
    return ImageDecodeError(f"{path}: not a readable DICOM file")


def _file_meta(path: Path, data: bytes) -> tuple[FileMetaDataset, int]:
    """The file meta group and where the dataset starts."""
    fp = DicomBytesIO(data)
    try:
        read_preamble(fp, force=False)
        meta = FileMetaDataset(_read_dataset_until(fp, lambda tag, vr, length: tag >> 16 != 2))
    except MemoryError:
        raise
    except Exception:  # hostile bytes make pydicom raise many types
        raise _unreadable(path) from None
    return meta, fp.tell()


def _inflate(path: Path, deflated: bytes, limit: int, *, partial: bool) -> bytes:
    """At most `limit` bytes of a raw deflate stream. `partial`: a prefix is all that is wanted;
    otherwise the stream must end within `limit` (more is a deflate bomb, less is truncation)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(deflated, limit)
        if partial or inflater.eof:
            return out
        more = inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error:
        raise ImageDecodeError(f"{path}: deflated DICOM data is corrupt") from None
    if more:
        raise ImageDecodeError(
            f"{path}: deflated DICOM data inflates beyond what its header declares",
            IMAGE_TOO_LARGE,
        )
    raise ImageDecodeError(f"{path}: deflated DICOM data is truncated")


def _parse_until_pixels(
    path: Path, stream: bytes, read: Callable[..., Dataset]
) -> tuple[Dataset, int | None]:
    """Header elements up to the pixel data, and where the pixel data element starts in `stream`
    (None when the stream ends first). A stream without a name: pydicom's warnings then never
    quote the file's path (an upload's path holds the client's file name)."""
    seen: list[int] = []

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        if int(tag) in PIXEL_TAGS:
            seen.append(int(tag))
            return True
        return False

    fp = DicomBytesIO(stream)
    try:
        dataset = read(fp, at_pixels)
    except MemoryError:
        raise
    except Exception:  # hostile bytes make pydicom raise many types
        raise _unreadable(path) from None
    return dataset, (fp.tell() if seen else None)


def _read_dataset_until(fp: DicomBytesIO, stop: Callable[..., bool]) -> Dataset:
    return read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=stop)


def _read_file_until(fp: DicomBytesIO, stop: Callable[..., bool]) -> Dataset:
    return read_partial(fp, stop_when=stop)  # preamble, file meta, then the dataset


def _read_header(path: Path, prefix: bytes) -> _Header:
    """The header from the first HEADER_BYTES of a file (inflated, for a deflated one)."""
    meta, start = _file_meta(path, prefix)
    value = _value(path, meta, "TransferSyntaxUID")
    if value is None:  # mandatory in a DICOM file; guessing the encoding reads garbage too
        raise ImageDecodeError(f"{path}: DICOM file meta has no transfer syntax")
    syntax = UID(str(value).strip())
    if syntax == DeflatedExplicitVRLittleEndian:
        stream = _inflate(path, prefix[start:], HEADER_BYTES, partial=True)
        dataset, pixel_offset = _parse_until_pixels(path, stream, _read_dataset_until)
    else:
        stream = prefix
        dataset, pixel_offset = _parse_until_pixels(path, stream, _read_file_until)
    if pixel_offset is None and len(stream) >= HEADER_BYTES:
        raise ImageDecodeError(
            f"{path}: DICOM header is over {HEADER_BYTES // 2**20} MB", IMAGE_TOO_LARGE
        )
    dataset.file_meta = meta
    return _Header(dataset, meta, syntax, start, pixel_offset)


# --- checking the header -------------------------------------------------------------------------


def _element(path: Path, ds: Dataset, keyword: str) -> object:
    """An attribute's value, or None when absent: pydicom converts a raw element when it is first
    read, and raises whatever its bytes provoke."""
    try:
        return ds[keyword].value if keyword in ds else None
    except MemoryError:
        raise
    except Exception:
        raise ImageDecodeError(f"{path}: DICOM {keyword} is malformed") from None


def _value(path: Path, ds: Dataset, keyword: str) -> object:
    """An attribute's first value, or None when absent or empty."""
    value = _element(path, ds, keyword)
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    return None if value is None or value == "" else value


def _number(path: Path, ds: Dataset, keyword: str) -> float | None:
    value = _value(path, ds, keyword)
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImageDecodeError(f"{path}: DICOM {keyword} is not a number") from None
    if not math.isfinite(number):
        raise ImageDecodeError(f"{path}: DICOM {keyword} is not a finite number")
    return number


def _whole(path: Path, ds: Dataset, keyword: str, default: int | None = None) -> int:
    number = _number(path, ds, keyword)
    if number is None:
        if default is None:
            raise ImageDecodeError(f"{path}: DICOM file has no {keyword}")
        return default
    if number != int(number) or number < 1:
        raise ImageDecodeError(f"{path}: DICOM {keyword} is not a positive whole number")
    return int(number)


def _check_modality(path: Path, ds: Dataset, limits: DecodeLimits) -> None:
    if limits.modalities is None:  # `*`: any file, with or without a Modality
        return
    value = _value(path, ds, "Modality")
    modality = str(value).strip().upper() if value is not None else ""
    if modality in limits.modalities:
        return
    accepted = ", ".join(sorted(limits.modalities))
    if not modality:
        described = "DICOM file has no Modality"
    elif modality in KNOWN_MODALITIES:
        described = f"DICOM Modality is {modality}"
    else:
        described = "DICOM Modality is not a known one"
    raise ImageDecodeError(
        f"{path}: {described}; this model reads radiographs "
        f"(accepted modalities: {accepted}; UMCL_DICOM_MODALITIES)",
        MODALITY_OUT_OF_SCOPE,
    )


def _check_syntax(path: Path, syntax: UID) -> UID:
    try:
        available = get_decoder(syntax).is_available
    except (NotImplementedError, ValueError):
        available = False
    if not available:
        named = f"transfer syntax {syntax.name}" if syntax.is_transfer_syntax else "its encoding"
        raise ImageDecodeError(
            f"{path}: DICOM pixel data in {named} cannot be decoded here",
            IMAGE_FORMAT_UNSUPPORTED,
        )
    return syntax


def _pixel_module(path: Path, ds: Dataset, syntax: UID) -> _PixelModule:
    photometric = str(_value(path, ds, "PhotometricInterpretation") or "").strip().upper()
    samples = _whole(path, ds, "SamplesPerPixel", default=1)
    if photometric not in GRAYSCALE | COLOUR:
        raise ImageDecodeError(
            f"{path}: DICOM photometric interpretation is not grayscale, RGB or YBR",
            IMAGE_FORMAT_UNSUPPORTED,
        )
    if samples != (1 if photometric in GRAYSCALE else 3):
        raise ImageDecodeError(f"{path}: DICOM SamplesPerPixel does not match its colour space")
    bits = _whole(path, ds, "BitsAllocated")
    if bits not in (8, 16):
        raise ImageDecodeError(
            f"{path}: DICOM pixels of other than 8 or 16 bits are not supported",
            IMAGE_FORMAT_UNSUPPORTED,
        )
    return _PixelModule(
        rows=_whole(path, ds, "Rows"),
        columns=_whole(path, ds, "Columns"),
        frames=_whole(path, ds, "NumberOfFrames", default=1),
        samples=samples,
        bits=bits,
        photometric=photometric,
        syntax=syntax,
    )


def _held_pixels(header: _Header, pixels: _PixelModule) -> int:
    frames = pixels.frames if header.syntax == DeflatedExplicitVRLittleEndian else 1
    return pixels.rows * pixels.columns * frames


def _checked_header(
    path: Path, data: bytes, limits: DecodeLimits | None
) -> tuple[_Header, _PixelModule]:
    """The header of a file (its first HEADER_BYTES suffice), checked against `limits`."""
    limits = limits or DecodeLimits.from_env()
    header = _read_header(path, data[:HEADER_BYTES])
    if header.pixel_offset is None:  # before the modality: a corrupt dataset has neither
        raise ImageDecodeError(f"{path}: DICOM file has no pixel data")
    _check_modality(path, header.dataset, limits)
    syntax = _check_syntax(path, header.syntax)
    pixels = _pixel_module(path, header.dataset, syntax)
    check_pixel_budget(path, _held_pixels(header, pixels), limits)
    _check_display_values(path, header.dataset)
    return header, pixels


def _check_display_values(path: Path, ds: Dataset) -> None:
    """The numbers the display pipeline will read: refused here, before any pixel is decoded."""
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        _number(path, ds, keyword)
    _voi_lut_bits(path, ds)


@contextlib.contextmanager
def _hostile(path: Path) -> Iterator[None]:
    """The last line of defence: whatever a hostile file provokes in pydicom that no check here
    anticipated still leaves as an ImageDecodeError (a 4xx in the service, never a 500)."""
    try:
        yield
    except (ImageDecodeError, MemoryError):
        raise
    except Exception:
        raise _unreadable(path) from None


def inspect_dicom(path: str | Path, limits: DecodeLimits | None = None) -> ImageInfo:
    """Check a DICOM file's header against `limits` without decoding its pixels."""
    path = Path(path)
    with _hostile(path):
        header, pixels = _checked_header(path, _file_bytes(path, HEADER_BYTES), limits)
        return ImageInfo("DICOM", pixels.columns, pixels.rows, _held_pixels(header, pixels))


# --- the first frame -----------------------------------------------------------------------------


def _full_dataset(path: Path, data: bytes, header: _Header, pixels: _PixelModule) -> Dataset:
    """The whole dataset; a deflated one inflated no further than its header declares."""
    if header.syntax != DeflatedExplicitVRLittleEndian:
        try:
            return dcmread(DicomBytesIO(data), force=False)
        except MemoryError:
            raise
        except Exception:
            raise _unreadable(path) from None
    assert header.pixel_offset is not None
    declared = header.pixel_offset + 12 + pixels.frame_bytes * pixels.frames + 1 + TRAILER_BYTES
    inflated = _inflate(path, data[header.data_start :], declared, partial=False)
    try:
        dataset = read_dataset(DicomBytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    except MemoryError:
        raise
    except Exception:
        raise _unreadable(path) from None
    meta = FileMetaDataset(header.meta)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what is left once inflated
    dataset.file_meta = meta
    return dataset


def _jpeg_size(frame: bytes) -> tuple[int, int] | None:
    info = _get_jpg_parameters(frame)
    return (info["height"], info["width"]) if "height" in info else None


def _jp2_codestream_start(frame: bytes) -> int | None:
    """Where the codestream starts, walking a JP2 wrapper's boxes (ISO 15444-1 I.4) as pydicom
    does; None when a box's length cannot lead there (pydicom 3.0 loops forever on a zero one)."""
    if not frame.startswith(JP2_SIGNATURE):
        return 0
    offset = len(JP2_SIGNATURE)
    while offset + 8 <= len(frame):
        length = int.from_bytes(frame[offset : offset + 4], "big")
        if frame[offset + 4 : offset + 8] == b"jp2c":
            return offset + 8
        if length < 8:
            return None
        offset += length
    return None


def _j2k_size(frame: bytes) -> tuple[int, int] | None:
    """Height and width from a JPEG 2000 codestream's SIZ segment (ISO 15444-1 A.5.1)."""
    codestream = _jp2_codestream_start(frame)
    if codestream is None:
        return None
    start = frame.find(b"\xff\x4f\xff\x51", codestream)
    if start < 0 or len(frame) < start + 24:
        return None
    width, height, x0, y0 = struct.unpack(">4I", frame[start + 8 : start + 24])
    return height - y0, width - x0


def _rle_expands_within(frame: bytes, pixels: _PixelModule) -> bool:
    """Whether every RLE segment of the frame decodes to at most one plane (PS3.5 G.3): pydicom
    decodes a segment whole before checking its length, so a tiny segment could expand 64×."""
    if len(frame) < 64:
        return False
    count, *offsets = struct.unpack("<16I", frame[:64])
    if not 1 <= count <= 15:
        return False
    bounds = [*offsets[:count], len(frame)]
    plane = pixels.rows * pixels.columns
    limit = plane + plane // 64 + 64  # some encoders pad a segment; pydicom trims that
    return all(_rle_segment_length(frame[a:b], limit) <= limit for a, b in pairwise(bounds))


def _rle_segment_length(segment: bytes, limit: int) -> int:
    """Bytes a PackBits segment decodes to, counted until it passes `limit`."""
    decoded, pos, end = 0, 0, len(segment)
    while pos < end and decoded <= limit:
        header = segment[pos]
        if header < 128:  # copy the next header + 1 bytes
            decoded += header + 1
            pos += header + 2
        elif header > 128:  # repeat the next byte 257 - header times
            decoded += 257 - header
            pos += 2
        else:
            pos += 1
    return decoded


def _check_first_frame(path: Path, ds: Dataset, pixels: _PixelModule) -> None:
    """A compressed frame must decode to the size the header declares, not more."""
    if not pixels.syntax.is_encapsulated:
        return
    size_of: Callable[[bytes], tuple[int, int] | None] | None
    if pixels.syntax in JPEGTransferSyntaxes or pixels.syntax in JPEGLSTransferSyntaxes:
        size_of = _jpeg_size
    elif pixels.syntax in JPEG2000TransferSyntaxes:
        size_of = _j2k_size
    else:
        size_of = None
    offsets = _element(path, ds, "ExtendedOffsetTable")
    lengths = _element(path, ds, "ExtendedOffsetTableLengths")
    extended = (offsets, lengths) if offsets is not None and lengths is not None else None
    try:
        frame = get_frame(
            ds.PixelData, 0, number_of_frames=pixels.frames, extended_offsets=extended
        )
    except MemoryError:
        raise
    except Exception:
        raise ImageDecodeError(f"{path}: DICOM compressed pixel data is malformed") from None
    if pixels.syntax == RLELossless:
        fits = _rle_expands_within(frame, pixels)
    elif size_of is not None:
        fits = size_of(frame) == (pixels.rows, pixels.columns)
    else:
        fits = False
    if not fits:
        raise ImageDecodeError(
            f"{path}: DICOM compressed frame does not match the size its header declares"
        )


def _first_frame(path: Path, ds: Dataset, pixels: _PixelModule) -> np.ndarray:
    _check_first_frame(path, ds, pixels)
    try:
        frame = pixel_array(ds, index=0)
    except MemoryError:
        raise
    except Exception:  # pydicom raises many types for truncated or odd pixel data
        raise ImageDecodeError(f"{path}: pixel data cannot be decoded") from None
    expected = (pixels.rows, pixels.columns) + ((3,) if pixels.samples == 3 else ())
    if frame.shape != expected:
        raise ImageDecodeError(f"{path}: pixel data cannot be decoded to the header's size")
    return frame


# --- stored values → display ---------------------------------------------------------------------


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 linear window, mapped to [0, 1], in place."""
    if width <= 1.0:  # a threshold at the centre (C.11.2.1.2.1 with w = 1)
        return (values > center - 0.5).astype(np.float64)
    np.subtract(values, center - 0.5, out=values)
    np.divide(values, width - 1.0, out=values)
    np.add(values, 0.5, out=values)
    return np.clip(values, 0.0, 1.0, out=values)


def _rescale_to_unit(values: np.ndarray) -> np.ndarray:
    """Min–max to [0, 1], in place."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    np.subtract(values, low, out=values)
    return np.divide(values, high - low, out=values)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (H, W, 3) array, one channel at a time to bound memory."""
    luma = rgb[..., 0] * np.float32(0.299)
    luma += rgb[..., 1] * np.float32(0.587)
    luma += rgb[..., 2] * np.float32(0.114)
    return luma


def _modality_values(path: Path, ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Stored values → modality values (float64, a new array the later steps may change)."""
    if _element(path, ds, "ModalityLUTSequence"):
        try:
            return np.array(apply_modality_lut(stored, ds), dtype=np.float64)
        except MemoryError:
            raise
        except Exception:
            raise ImageDecodeError(f"{path}: DICOM modality LUT is malformed") from None
    slope, intercept = _number(path, ds, "RescaleSlope"), _number(path, ds, "RescaleIntercept")
    values = stored.astype(np.float64)
    if slope is not None and intercept is not None:  # as pydicom's apply_modality_lut, in place
        values *= slope
        values += intercept
    return values


def _voi_lut_bits(path: Path, ds: Dataset) -> int | None:
    """Output bits of the first VOI LUT, or None when there is none (an empty sequence is none)."""
    sequence = _element(path, ds, "VOILUTSequence")
    if not sequence:
        return None
    try:
        item = sequence[0]  # type: ignore[index]
        entries, _, bits = (int(v) for v in item.LUTDescriptor)
        lut_data = item.LUTData
        data_entries = len(lut_data) if isinstance(lut_data, MultiValue | list) else 0
    except MemoryError:
        raise
    except Exception:
        raise ImageDecodeError(f"{path}: DICOM VOI LUT is malformed") from None
    if not 1 <= bits <= 16 or data_entries < (entries or 65536):
        raise ImageDecodeError(f"{path}: DICOM VOI LUT is malformed")
    return bits


def _displayed(path: Path, ds: Dataset, values: np.ndarray) -> np.ndarray:
    """VOI LUT, else window, else min–max: values of interest → [0, 1]."""
    bits = _voi_lut_bits(path, ds)
    if bits is not None:
        try:
            lut_out = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64)
        except MemoryError:
            raise
        except Exception:
            raise ImageDecodeError(f"{path}: DICOM VOI LUT is malformed") from None
        return np.clip(lut_out / (2**bits - 1), 0.0, 1.0)
    center, width = _number(path, ds, "WindowCenter"), _number(path, ds, "WindowWidth")
    if center is not None and width is not None:
        return _window(values, center, width)
    return _rescale_to_unit(values)


def _grayscale_to_unit(path: Path, ds: Dataset, values: np.ndarray, photometric: str) -> np.ndarray:
    image = _displayed(path, ds, values)
    if photometric == "MONOCHROME1":
        np.subtract(1.0, image, out=image)
    if not np.isfinite(image).all():
        raise ImageDecodeError(f"{path}: DICOM LUTs give pixel values that are not finite")
    return image.astype(np.float32)


def read_dicom(path: str | Path, limits: DecodeLimits | None = None) -> np.ndarray:
    """Decode a DICOM file to a 2-D float32 array in [0, 1] (first frame of a multi-frame)."""
    path = Path(path)
    with _hostile(path):
        data = _file_bytes(path)
        header, pixels = _checked_header(path, data, limits)
        dataset = _full_dataset(path, data, header, pixels)
        del data
        stored = _first_frame(path, dataset, pixels)
        del dataset.PixelData  # from here on, only the decoded frame and the header are needed
        if stored.ndim == 3:  # colour (e.g. a secondary capture): luminance
            return _rescale_to_unit(_luminance(stored)).astype(np.float32, copy=False)
        values = _modality_values(path, dataset, stored)
        del stored
        return _grayscale_to_unit(path, dataset, values, pixels.photometric)
