"""DICOM → float32 image in [0, 1], displayed the way the header asks — within a pixel budget.

Order follows the DICOM grayscale pipeline: stored values → modality LUT (rescale slope and
intercept) → VOI LUT or window (with its VOILUTFunction) → presentation (MONOCHROME1 means low
values are white, so it is inverted). The LUTs and the window are pydicom's
(`pydicom.pixels.apply_modality_lut`, `apply_voi_lut`, `apply_windowing`), applied a strip of
rows at a time within the bounds below. Only pixels come out: identifying header attributes never leave this module, and no
message quotes a header value (a message names the attribute that is wrong, never its content).

Every file is treated as hostile until its header has been checked (`inspect_dicom`), and what
reading it costs depends on its header and its first frame, never on the rest of the file:
- the header (everything before the pixel data) must lie in the first `HEADER_BYTES` of the file
  (of the inflated dataset, for a deflated file, which has only that much inflated to read it)
  and is parsed in at most `MAX_HEADER_READS` reads (16,000 to 50,000 elements: a radiograph's
  header has a few hundred); nothing after the pixel data element is ever parsed;
- the file meta must name its transfer syntax, and the dataset must hold pixel data;
- Modality must be one of `DecodeLimits.modalities` (CR and DX by default: this model reads
  chest radiographs); a file with no Modality is refused, as Modality is mandatory in every
  DICOM image (UMCL_DICOM_MODALITIES=`*` accepts any file, with or without one);
- grayscale (MONOCHROME1/2) or colour (RGB, YBR: reduced to luminance), 8 or 16 bits;
- Rows × Columns must fit the pixel budget (`UMCL_MAX_PIXELS`); only the first frame of a
  multi-frame file is read from the file and decoded, except that a deflated file must be
  inflated whole, so all its frames count against the budget and it may inflate no further
  than its header declares;
- a compressed first frame is found reading at most twice its decoded size, must declare the
  size the header does (JPEG, JPEG-LS, JPEG 2000), a JPEG frame may hold at most
  `MAX_JPEG_SCANS` scans, and an RLE frame may not expand beyond its size;
- a LUT sequence (parsed when first read) may hold at most `LUT_SEQUENCE_BYTES`;
- anything malformed (a non-numeric window or rescale, an odd LUT descriptor, YBR colour that
  cannot be decoded, …) raises `ImageDecodeError`, never another exception type; an empty VOI
  LUT sequence means no VOI LUT (the window, else min–max, applies).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing, pixel_array
from pydicom.pixels.decoders.base import get_decoder
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
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from umcl.config import DecodeSettings
from umcl.data.scaled import box_mean, reduced_shape, reduction, strips
from umcl.errors import UMCLError

# Reasons an image is refused; ingestion counts out-of-scope objects by these.
IMAGE_MISSING = "image_missing"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_FORMAT_UNSUPPORTED = "image_format_unsupported"
MODALITY_OUT_OF_SCOPE = "modality_out_of_scope"

DEFAULT_MAX_PIXELS = 50_000_000  # a 43 × 43 cm detector at 100 µm is 18.5 MP; 50 MP leaves room
DEFAULT_MODALITIES = ("CR", "DX")
HEADER_BYTES = 4 * 2**20  # everything before the pixel data must fit here
ROUTING_BYTES = 64 * 2**10  # a radiograph's header is a few KB: routing reads no more, mostly
CODE_SEQUENCE_BYTES = 16 * 2**10
# Reads while parsing a header: one to three an element, so 16,000 to 50,000 elements where a
# radiograph's header has hundreds. Parsing costs ~3 µs an element: a header of 450,000 empty
# elements (3.6 MB) took 1.5 s a parse without this bound, and ~0.15 s is the most it costs now.
MAX_HEADER_READS = 50_000
LUT_SEQUENCE_BYTES = 512 * 2**10  # three LUTs of 65,536 16-bit entries fit
TRAILER_BYTES = 64 * 2**10  # elements after the pixel data a deflated file may hold
INFLATE_CHUNK = 2**20
FRAME_READS = 200_000  # reads (item headers, fragments) to find the first compressed frame
# A progressive JPEG has about 10 scans (libjpeg's default script: 10 in colour, 6 in grayscale)
# and each makes the decoder pass over the whole image again, so scans, not bytes, set the cost:
# one 31-byte scan repeated 30,000 times (0.99 MB) took 23 s of CPU. libjpeg-turbo stops at 500
# (TJPARAM_SCANLIMIT); 100 keeps a decode within ~10 times that of an ordinary progressive JPEG.
MAX_JPEG_SCANS = 100
# Scans × pixels a JPEG may cost (each scan is a pass over the whole image): a 50 MP progressive
# JPEG of 10 scans (what encoders write) passes; 99 scans of it took 6 s to decode.
MAX_JPEG_SCAN_PIXELS = 1_000_000_000
# Start-of-frame markers (ISO 10918-1 B.1.1.3, T.87 for JPEG-LS): all of 0xC0–0xCF but DHT, JPG
# and DAC, and JPEG-LS's 0xF7.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
MAX_JPEG_SEGMENTS = 2_000  # a JPEG has tens (APPn, DQT, DHT, SOF, SOS); a DHT before each scan
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


class ImageDecodeError(UMCLError, ValueError):
    """An image file that cannot (or may not) be turned into pixels. The message starts with the
    file's path; `code` says why, for counting (IMAGE_UNREADABLE, IMAGE_TOO_LARGE, …)."""

    def __init__(self, message: str, code: str = IMAGE_UNREADABLE) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[str, str]]:
        # Keeps `code` when the error crosses a process pool (the preprocess stage decodes there).
        return (type(self), (str(self), self.code))


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    """A positive number from the environment variable `name` (`default` when unset or blank);
    `integer`: whole, rounded down (`1e6` is a million; 0.5 is refused). Anything else raises
    ValueError naming the variable. The one reader of UMCL's numeric settings."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = 0.0
    if integer and math.isfinite(value):
        value = int(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a positive number")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """What a file may be: at most `max_pixels` decoded pixels; for DICOM, one of `modalities`
    (None: any file, with or without a Modality)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    modalities: frozenset[str] | None = frozenset(DEFAULT_MODALITIES)

    @classmethod
    def from_names(cls, max_pixels: int, modalities: Iterable[str]) -> DecodeLimits:
        """Limits from a pixel budget and modality names (`*` accepts any); the service reads
        them from the environment, ingestion from params (`decode`)."""
        given = list(modalities)
        names = frozenset(m.strip().upper() for m in given) - {""}
        if not names:
            raise ValueError(f"{given!r} names no DICOM modality")
        return cls(max_pixels=max_pixels, modalities=None if "*" in names else names)

    @classmethod
    def from_settings(cls, settings: DecodeSettings) -> DecodeLimits:
        return cls.from_names(settings.max_pixels, settings.dicom_modalities)

    @classmethod
    def from_env(cls) -> DecodeLimits:
        """UMCL_MAX_PIXELS and UMCL_DICOM_MODALITIES (comma-separated; `*` accepts any)."""
        raw = os.environ.get("UMCL_DICOM_MODALITIES") or ",".join(DEFAULT_MODALITIES)
        return cls.from_names(
            int(env_number("UMCL_MAX_PIXELS", DEFAULT_MAX_PIXELS, integer=True)),
            re.split(r"[\s,]+", raw),
        )


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding its pixels. `pixels` is what decoding it
    will hold: one frame, or every frame of a deflated DICOM (which is inflated whole). `parsed`
    is the checked DICOM header, which `load_image(path, info=…)` reuses instead of parsing the
    same file again (it never leaves this package: it holds every header value). `bits`,
    `photometric` and `modality` describe the encoding without saying whose image it is (a
    DICOM defined term or "none"/"other", never a header's own text): the service's monitor
    records them."""

    format: str
    width: int
    height: int
    pixels: int
    parsed: object = field(default=None, repr=False, compare=False)
    bits: int = 8  # bits stored per sample
    photometric: str = "MONOCHROME2"
    modality: str = "none"

    @property
    def decoded_bytes(self) -> int:
        """Bytes the format's decoder returns for it at full size (1–4 a sample, 3 samples for
        colour): what a decode still holds when everything after it works a strip at a time."""
        samples = 1 if self.photometric.startswith("MONOCHROME") else 3
        return self.pixels * samples * -(-self.bits // 8)


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
    pixel_tag: int = 0
    pixel_vr: str | None = None  # as pydicom read it: None in an implicit VR dataset
    pixel_length: int = 0  # the element's length as declared (0xFFFFFFFF: encapsulated)

    @property
    def value_offset(self) -> int:
        """Where the pixel data element's value begins in the (inflated) dataset."""
        assert self.pixel_offset is not None
        explicit_long = self.pixel_vr is not None and self.pixel_vr in EXPLICIT_VR_LENGTH_32
        return self.pixel_offset + (12 if explicit_long else 8)


# --- reading the file and its header -------------------------------------------------------------


def _file_bytes(path: Path, size: int) -> bytes:
    """The file's first `size` bytes."""
    with _opened(path) as handle:
        return handle.read(size)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: image file is missing", IMAGE_MISSING) from None
    except OSError:
        raise ImageDecodeError(f"{path}: image file cannot be read") from None
    with handle:
        yield handle


def _unreadable(path: Path) -> ImageDecodeError:
    return ImageDecodeError(f"{path}: not a readable DICOM file")


class _Exhausted(Exception):
    """A bounded reader's budget is spent (pydicom may wrap it in another type: the reader's
    `exhausted` says what happened)."""


class _CountedBytesIO(DicomBytesIO):
    """Bytes for pydicom to parse in at most `reads` reads: one to three an element, so a header
    of hundreds of thousands of tiny elements is refused instead of parsed."""

    def __init__(self, data: bytes | bytearray, reads: int) -> None:
        super().__init__(data)
        self.reads_left, self.exhausted = reads, False
        read = self.read

        def counted(size: int = -1, /) -> bytes:
            self.reads_left -= 1
            if self.reads_left < 0:
                self.exhausted = True
                raise _Exhausted
            return read(size)

        self.read = counted  # type: ignore[method-assign]


def _too_many_elements(path: Path) -> ImageDecodeError:
    return ImageDecodeError(
        f"{path}: DICOM header holds too many elements (a radiograph's has hundreds)",
        IMAGE_TOO_LARGE,
    )


def _file_meta(path: Path, data: bytes) -> tuple[FileMetaDataset, int]:
    """The file meta group and where the dataset starts."""
    fp = _CountedBytesIO(data, MAX_HEADER_READS)
    try:
        read_preamble(fp, force=False)
        meta = FileMetaDataset(_read_dataset_until(fp, lambda tag, vr, length: tag >> 16 != 2))
    except MemoryError:
        raise
    except Exception:  # hostile bytes make pydicom raise many types
        raise (_too_many_elements(path) if fp.exhausted else _unreadable(path)) from None
    if fp.exhausted:
        raise _too_many_elements(path)
    return meta, fp.tell()


def _inflate_prefix(path: Path, deflated: bytes, limit: int) -> bytes:
    """At most `limit` bytes of a raw deflate stream: the prefix that holds the header."""
    try:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(deflated, limit)
    except zlib.error:
        raise ImageDecodeError(f"{path}: deflated DICOM data is corrupt") from None


def _inflate_file(path: Path, start: int, limit: int) -> bytearray:
    """The raw deflate stream that starts at `start` in the file, inflated as it is read; it must
    end within `limit` bytes (more is a deflate bomb, less is truncation). Nothing after the
    stream's end is read."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    with _opened(path) as handle:
        handle.seek(start)
        try:
            while not inflater.eof:
                chunk = inflater.unconsumed_tail or handle.read(INFLATE_CHUNK)
                if not chunk:
                    raise ImageDecodeError(f"{path}: deflated DICOM data is truncated")
                out += inflater.decompress(chunk, limit + 1 - len(out))
                if len(out) > limit:
                    raise ImageDecodeError(
                        f"{path}: deflated DICOM data inflates beyond what its header declares",
                        IMAGE_TOO_LARGE,
                    )
        except zlib.error:
            raise ImageDecodeError(f"{path}: deflated DICOM data is corrupt") from None
    return out


@dataclass
class _PixelElement:
    offset: int  # where the element begins in the stream
    tag: int
    vr: str | None
    length: int


def _parse_until_pixels(
    path: Path, stream: bytes, read: Callable[..., Dataset]
) -> tuple[Dataset, _PixelElement | None]:
    """Header elements up to the pixel data, and the pixel data element's place, tag, VR and
    length as pydicom read them (None when the stream ends first). A stream without a name:
    pydicom's warnings then never quote the file's path (an upload's path holds the client's
    file name)."""
    seen: list[tuple[int, str | None, int]] = []

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        if int(tag) in PIXEL_TAGS:
            seen.append((int(tag), vr, length))
            return True
        return False

    fp = _CountedBytesIO(stream, MAX_HEADER_READS)
    try:
        dataset = read(fp, at_pixels)
    except MemoryError:
        raise
    except Exception:  # hostile bytes make pydicom raise many types
        raise (_too_many_elements(path) if fp.exhausted else _unreadable(path)) from None
    if fp.exhausted:  # pydicom ends a dataset quietly at some errors
        raise _too_many_elements(path)
    if not seen:
        return dataset, None
    tag, vr, length = seen[0]
    return dataset, _PixelElement(fp.tell(), tag, vr, length)


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
        stream = _inflate_prefix(path, prefix[start:], HEADER_BYTES)
        dataset, pixel = _parse_until_pixels(path, stream, _read_dataset_until)
    else:
        stream = prefix
        dataset, pixel = _parse_until_pixels(path, stream, _read_file_until)
    if pixel is None and len(stream) >= HEADER_BYTES:
        raise ImageDecodeError(
            f"{path}: DICOM header is over {HEADER_BYTES // 2**20} MB", IMAGE_TOO_LARGE
        )
    dataset.file_meta = meta
    if pixel is None:
        return _Header(dataset, meta, syntax, start, None)
    return _Header(dataset, meta, syntax, start, pixel.offset, pixel.tag, pixel.vr, pixel.length)


# --- checking the header -------------------------------------------------------------------------


def _element(path: Path, ds: Dataset, keyword: str) -> object:
    """An attribute's value, or None when absent: pydicom converts a raw element when it is first
    read, and raises whatever its bytes provoke. A sequence of defined length is parsed only
    then, so it is refused over LUT_SEQUENCE_BYTES instead (the header's read count cannot see
    inside it)."""
    if keyword not in ds:
        return None
    raw = ds.get_item(keyword)
    if (
        isinstance(raw, RawDataElement)
        and keyword.endswith("Sequence")
        and LUT_SEQUENCE_BYTES < raw.length != 0xFFFFFFFF
    ):
        raise ImageDecodeError(
            f"{path}: DICOM {keyword} is over {LUT_SEQUENCE_BYTES // 2**10} KB", IMAGE_TOO_LARGE
        )
    try:
        return ds[keyword].value
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


def modality_name(modality: str) -> str:
    """A Modality as a message may name it: a defined term, else "none" or "other" (a header
    value is never quoted)."""
    if not modality:
        return "none"
    return modality if modality in KNOWN_MODALITIES else "other"


def _check_modality(path: Path, ds: Dataset, limits: DecodeLimits) -> None:
    if limits.modalities is None:  # `*`: any file, with or without a Modality
        return
    value = _value(path, ds, "Modality")
    modality = str(value).strip().upper() if value is not None else ""
    if modality in limits.modalities:
        return
    accepted = ", ".join(sorted(limits.modalities))
    named = modality_name(modality)
    described = (
        "DICOM file has no Modality"
        if named == "none"
        else "DICOM Modality is not a known one"
        if named == "other"
        else f"DICOM Modality is {named}"
    )
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
    path: Path, prefix: bytes, limits: DecodeLimits | None
) -> tuple[_Header, _PixelModule]:
    """The header of a file from its first HEADER_BYTES, checked against `limits`."""
    limits = limits or DecodeLimits.from_env()
    header = _read_header(path, prefix[:HEADER_BYTES])
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
    _voi_function(path, ds)
    _voi_lut_bits(path, ds)
    _modality_lut_bits(path, ds)


VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")  # PS3.3 C.11.2.1.3


def _voi_function(path: Path, ds: Dataset) -> str:
    """VOILUTFunction, LINEAR when absent or blank."""
    function = str(_value(path, ds, "VOILUTFunction") or "LINEAR").strip().upper() or "LINEAR"
    if function not in VOI_FUNCTIONS:
        raise ImageDecodeError(
            f"{path}: DICOM VOILUTFunction is none of {', '.join(VOI_FUNCTIONS)}"
        )
    return function


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


@dataclass(frozen=True)
class _Parsed:
    """A checked header, kept in `ImageInfo.parsed` for `read_dicom` to reuse."""

    path: Path
    header: _Header
    pixels: _PixelModule


def _stored_bits(path: Path, ds: Dataset, allocated: int) -> int:
    """BitsStored (12 of 16 on many detectors), or the allocated bits where it is unusable."""
    try:
        stored = _whole(path, ds, "BitsStored", default=allocated)
    except ImageDecodeError:
        return allocated
    return stored if stored <= allocated else allocated


def _inspect(path: Path, limits: DecodeLimits | None) -> ImageInfo:
    header, pixels = _checked_header(path, _file_bytes(path, HEADER_BYTES), limits)
    pixel_count = _held_pixels(header, pixels)
    parsed = _Parsed(path, header, pixels)
    return ImageInfo(
        "DICOM",
        pixels.columns,
        pixels.rows,
        pixel_count,
        parsed,
        bits=_stored_bits(path, header.dataset, pixels.bits),
        photometric=pixels.photometric,
        modality=_modality_term(path, header.dataset),
    )


def _modality_term(path: Path, ds: Dataset) -> str:
    """The Modality as a defined term, "none" or "other" (a malformed one too: a file accepted
    under `*` is not refused for what only the monitor reads)."""
    try:
        value = _value(path, ds, "Modality")
    except ImageDecodeError:
        return modality_name("malformed")
    return modality_name(str(value).strip().upper() if value is not None else "")


def inspect_dicom(path: str | Path, limits: DecodeLimits | None = None) -> ImageInfo:
    """Check a DICOM file's header against `limits` without decoding its pixels (only the first
    HEADER_BYTES of the file are read)."""
    path = Path(path)
    with _hostile(path):
        return _inspect(path, limits)


def read_file_meta(path: str | Path) -> FileMetaDataset:
    """A DICOM file's meta group (transfer syntax, media storage SOP class): read from its first
    `ROUTING_BYTES`, nothing else parsed. ImageDecodeError when it is not a readable DICOM file."""
    path = Path(path)
    with _hostile(path):
        return _file_meta(path, _file_bytes(path, ROUTING_BYTES))[0]


def read_header_elements(path: str | Path) -> tuple[Dataset, bool]:
    """A DICOM file's header (every element before the pixel data), within the header bounds
    above and without a pixel read or any check: what ingestion routes a file by, and whether
    the pixel data element was reached (not: no pixels, or a file cut short). The first
    `ROUTING_BYTES` hold a radiograph's header; only a file whose header runs past them is read
    further. The dataset holds every header value: it never leaves ingestion."""
    path = Path(path)
    with _hostile(path):
        prefix = _file_bytes(path, ROUTING_BYTES)
        if len(prefix) == ROUTING_BYTES:
            with contextlib.suppress(ImageDecodeError):
                header = _read_header(path, prefix)
                if header.pixel_offset is not None:
                    return header.dataset, True
            prefix = _file_bytes(path, HEADER_BYTES)
        header = _read_header(path, prefix)
        return header.dataset, header.pixel_offset is not None


def header_texts(path: Path, ds: Dataset, keyword: str) -> list[str]:
    """Every value of an attribute as stripped text; [] when absent, empty or malformed."""
    try:
        value = _element(path, ds, keyword)
    except ImageDecodeError:
        return []
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [text for v in values if v is not None and (text := str(v).strip())]


def header_text(path: Path, ds: Dataset, keyword: str) -> str | None:
    """An attribute's first value as stripped text; None when absent, empty or malformed."""
    texts = header_texts(path, ds, keyword)
    return texts[0] if texts else None


def header_codes(path: Path, ds: Dataset, keyword: str) -> list[tuple[str, str]]:
    """(CodeValue, CodeMeaning) of each item of a code sequence (ViewCodeSequence); [] when
    absent, malformed or over CODE_SEQUENCE_BYTES (a view code takes a hundred)."""
    raw = ds.get_item(keyword) if keyword in ds else None
    if isinstance(raw, RawDataElement) and CODE_SEQUENCE_BYTES < raw.length != 0xFFFFFFFF:
        return []
    try:
        items = _element(path, ds, keyword) or []
        return [(str(i.get("CodeValue", "")), str(i.get("CodeMeaning", ""))) for i in items]
    except MemoryError:
        raise
    except Exception:  # hostile items make pydicom raise many types
        return []


# --- the first frame -----------------------------------------------------------------------------


class _BoundedReader:
    """A file as pydicom's frame search reads it: at most `size` bytes in at most `reads` reads
    (seeks are free). Enough for any honest first frame, while a hostile one, with a huge offset
    table or millions of empty fragments, is refused instead of read."""

    def __init__(self, handle: BinaryIO, size: int, reads: int) -> None:
        self.handle, self.bytes_left, self.reads_left = handle, size, reads
        self.exhausted = False
        self.seek, self.tell = handle.seek, handle.tell

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            here = self.handle.tell()
            size = max(0, self.handle.seek(0, os.SEEK_END) - here)
            self.handle.seek(here)
        self.bytes_left -= size
        self.reads_left -= 1
        if self.bytes_left < 0 or self.reads_left < 0:
            self.exhausted = True
            raise _Exhausted
        return self.handle.read(size)


def _native_frame_bytes(pixels: _PixelModule) -> int:
    """Bytes of one uncompressed frame (YBR_FULL_422 stores two samples a pixel)."""
    samples = 2 if pixels.photometric == "YBR_FULL_422" else pixels.samples
    return pixels.rows * pixels.columns * samples * pixels.bits // 8


def _native_frame(path: Path, source: BinaryIO, header: _Header, pixels: _PixelModule) -> bytes:
    """The first frame's bytes of uncompressed pixel data, read alone from `source`."""
    frame_bytes = _native_frame_bytes(pixels)
    if header.pixel_length == 0xFFFFFFFF:
        raise ImageDecodeError(f"{path}: DICOM pixel data is malformed")
    if header.pixel_length < frame_bytes * pixels.frames:
        raise ImageDecodeError(f"{path}: DICOM pixel data is shorter than its header declares")
    source.seek(header.value_offset)
    # An odd frame keeps its pad byte: pydicom swaps OW words of a big endian file in pairs.
    frame = source.read(min(frame_bytes + frame_bytes % 2, header.pixel_length))
    if len(frame) < frame_bytes:
        raise ImageDecodeError(f"{path}: DICOM pixel data is truncated")
    return frame


def _compressed_frame(path: Path, handle: BinaryIO, header: _Header, pixels: _PixelModule) -> bytes:
    """The first frame of encapsulated pixel data, found by pydicom reading at most twice the
    frame's decoded size (plus 1 MB) from the file."""
    offsets = _element(path, header.dataset, "ExtendedOffsetTable")
    lengths = _element(path, header.dataset, "ExtendedOffsetTableLengths")
    extended = (offsets, lengths) if offsets is not None and lengths is not None else None
    handle.seek(header.value_offset)
    reader = _BoundedReader(handle, 2 * pixels.frame_bytes + 2**20, FRAME_READS)
    try:
        frame = get_frame(
            reader,  # type: ignore[arg-type]
            0,
            number_of_frames=pixels.frames,
            extended_offsets=extended,  # type: ignore[arg-type]
        )
    except MemoryError:
        raise
    except Exception:
        frame = None
    if reader.exhausted:  # even where pydicom took the refusal for the end of the data
        raise ImageDecodeError(
            f"{path}: DICOM compressed first frame is larger than its header allows"
        )
    if frame is None:
        raise ImageDecodeError(f"{path}: DICOM compressed pixel data is malformed")
    return frame


def _frame_dataset(header: _Header, pixels: _PixelModule, frame: bytes) -> Dataset:
    """The header with the first frame as its only pixel data, for pydicom's decoders."""
    # New dicts (a Dataset made from another shares its elements' dict): the header is left as
    # it is, for a caller that decodes the same inspected file again.
    ds = Dataset(dict(header.dataset.items()))
    meta = FileMetaDataset(dict(header.meta.items()))
    if header.syntax == DeflatedExplicitVRLittleEndian:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what is left once inflated
    ds.file_meta = meta
    for tag in (0x7FE00001, 0x7FE00002, *PIXEL_TAGS):  # extended offsets, any pixel data
        ds.pop(tag, None)
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = 1
    if pixels.syntax.is_encapsulated:
        ds.add_new(0x7FE00010, "OB", encapsulate([frame]))
        ds["PixelData"].is_undefined_length = True
    else:
        # As the file says: 8-bit pixels in OW words are byte-swapped in a big endian file.
        vr = header.pixel_vr if header.pixel_vr in ("OB", "OW") else None
        ds.add_new(0x7FE00010, vr or ("OW" if pixels.bits > 8 else "OB"), frame)
    return ds


def _first_frame_dataset(path: Path, header: _Header, pixels: _PixelModule) -> Dataset:
    """Only the first frame's bytes are read: nothing after it (later frames, trailing
    elements, padding) costs time or memory. A deflated file is inflated whole, within what its
    header declares."""
    if header.pixel_tag != 0x7FE00010:
        raise ImageDecodeError(
            f"{path}: DICOM float pixel data is not supported", IMAGE_FORMAT_UNSUPPORTED
        )
    if header.syntax == DeflatedExplicitVRLittleEndian:
        assert header.pixel_offset is not None
        declared = header.value_offset + pixels.frame_bytes * pixels.frames + 1 + TRAILER_BYTES
        inflated = _inflate_file(path, header.data_start, declared)
        frame = _native_frame(path, DicomBytesIO(inflated), header, pixels)
        del inflated
    else:
        with _opened(path) as handle:
            if pixels.syntax.is_encapsulated:
                frame = _compressed_frame(path, handle, header, pixels)
                _check_first_frame(path, frame, pixels)
            else:
                frame = _native_frame(path, handle, header, pixels)
    return _frame_dataset(header, pixels, frame)


# A marker in entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart marker
# (RST0–7: part of the scan) nor another 0xFF (fill) (ISO 10918-1 B.1.1.5, B.1.1.2).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def check_jpeg_stream(
    path: Path, data: bytes | bytearray | mmap.mmap, scans: bool = True
) -> tuple[int, int] | None:
    """Walks a JPEG stream's marker segments (ISO 10918-1 B.1) up to the end of its first image
    (an MPO's other pictures are never decoded) and refuses one with over MAX_JPEG_SEGMENTS
    segments or, when `scans`, over MAX_JPEG_SCANS start-of-scan segments: the decoder passes
    over the whole image once per scan. A JPEG-LS stream (`scans=False`) is walked to its first
    scan only (its entropy-coded data escapes 0xFF differently). Anything that is not a
    well-formed marker sequence is left for the decoder to refuse. Costs one pass of a regular
    expression over the scans' data. Returns the first frame header's (rows, columns), None
    without one."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, end, segments, scan_count, pixels = 2, len(data), 0, 0, 0
    size: tuple[int, int] | None = None
    while pos + 1 < end:
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF) or 0xD0 <= data[pos + 1] <= 0xD7:
            found = _JPEG_MARKER.search(data, pos)  # fill bytes or garbage before the next marker
            if found is None:
                return size
            pos = found.start()
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            return size
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageDecodeError(
                f"{path}: JPEG data holds over {MAX_JPEG_SEGMENTS:,} marker segments "
                "(an image has tens)"
            )
        if marker == 0xDE:  # DHP: a hierarchical image, whose size the frame header does not give
            raise ImageDecodeError(
                f"{path}: hierarchical JPEG is not supported", IMAGE_FORMAT_UNSUPPORTED
            )
        if marker in (0x01, 0xD8):  # TEM, SOI: no length
            pos += 2
            continue
        if marker in _JPEG_FRAME_MARKERS and pos + 9 <= end:
            # The largest frame counts (a second, tiny SOF does not lower the cost); a height
            # of 0 is defined later by a DNL segment: as high as a frame can be.
            rows = int.from_bytes(data[pos + 5 : pos + 7], "big")
            columns = int.from_bytes(data[pos + 7 : pos + 9], "big")
            size = size or (rows, columns)
            pixels = max(pixels, (rows or 0xFFFF) * columns)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker != 0xDA:
            continue
        if not scans:
            return size
        scan_count += 1
        if scan_count > MAX_JPEG_SCANS or scan_count * pixels > MAX_JPEG_SCAN_PIXELS:
            raise ImageDecodeError(
                f"{path}: JPEG data holds {scan_count}+ scans of {pixels / 1e6:.1f} MP, over the "
                f"{MAX_JPEG_SCANS} scans or {MAX_JPEG_SCAN_PIXELS / 1e9:.0f} G scan-pixels a "
                "JPEG may cost (a progressive JPEG has about 10 scans)"
            )
        found = _JPEG_MARKER.search(data, pos)  # the end of the scan's entropy-coded data
        if found is None:
            return size
        pos = found.start()
    return size


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


def _check_first_frame(path: Path, frame: bytes, pixels: _PixelModule) -> None:
    """A compressed frame must decode to the size the header declares, not more, and a JPEG
    frame may not hold more scans than any honest encoder writes."""
    jpeg = pixels.syntax in JPEGTransferSyntaxes or pixels.syntax in JPEGLSTransferSyntaxes
    if jpeg:
        size = check_jpeg_stream(path, frame, scans=pixels.syntax in JPEGTransferSyntaxes)
        fits = size == (pixels.rows, pixels.columns)
    elif pixels.syntax == RLELossless:
        fits = _rle_expands_within(frame, pixels)
    elif pixels.syntax in JPEG2000TransferSyntaxes:
        fits = _j2k_size(frame) == (pixels.rows, pixels.columns)
    else:
        fits = False
    if not fits:
        raise ImageDecodeError(
            f"{path}: DICOM compressed frame does not match the size its header declares"
        )


# CharLS (pyjpegls) refuses a JPEG-LS stream it cannot decode to the end; libjpeg, pydicom's
# first choice, fills a garbage or empty scan with noise and returns it as the picture.
STRICT_PLUGINS = dict.fromkeys(JPEGLSTransferSyntaxes, "pyjpegls")


def _first_frame(path: Path, ds: Dataset, pixels: _PixelModule) -> np.ndarray:
    plugin = STRICT_PLUGINS.get(pixels.syntax, "")
    try:
        frame = pixel_array(ds, index=0, decoding_plugin=plugin)
    except MemoryError:
        raise
    except Exception:  # pydicom raises many types for truncated or odd pixel data
        raise ImageDecodeError(f"{path}: pixel data cannot be decoded") from None
    expected = (pixels.rows, pixels.columns) + ((3,) if pixels.samples == 3 else ())
    if frame.shape != expected:
        raise ImageDecodeError(f"{path}: pixel data cannot be decoded to the header's size")
    return frame


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


def _modality_lut_bits(path: Path, ds: Dataset) -> int | None:
    """Output bits of the first modality LUT, or None when there is none. pydicom sizes the
    window's output range by them (2**bits) before any check of its own, so a descriptor
    claiming 2**32 - 1 bits would cost minutes and gigabytes: refused here unless 1–16."""
    sequence = _element(path, ds, "ModalityLUTSequence")
    if not sequence:
        return None
    try:
        bits = int(sequence[0].LUTDescriptor[2])  # type: ignore[index]
    except MemoryError:
        raise
    except Exception:
        raise ImageDecodeError(f"{path}: DICOM modality LUT is malformed") from None
    if not 1 <= bits <= 16:
        raise ImageDecodeError(f"{path}: DICOM modality LUT is malformed")
    return bits


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
