"""A DICOM file's header, read within bounds and checked before any pixel: file meta, the
dataset up to the pixel data, the modality, the transfer syntax, the pixel module and the
display values (`inspect_dicom`); and the routing reads of ingestion (`read_header_elements`)."""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from umcl.imaging.limits import (
    CODE_SEQUENCE_BYTES,
    COLOUR,
    GRAYSCALE,
    HEADER_BYTES,
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_MISSING,
    IMAGE_TOO_LARGE,
    INFLATE_CHUNK,
    KNOWN_MODALITIES,
    LUT_SEQUENCE_BYTES,
    MAX_HEADER_READS,
    MODALITY_OUT_OF_SCOPE,
    PIXEL_TAGS,
    ROUTING_BYTES,
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    check_pixel_budget,
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
