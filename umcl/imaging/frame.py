"""The first frame of a checked DICOM file: read from the file (native or encapsulated, a
deflated file inflated within its budget), its compressed stream checked against the header
(JPEG markers and scans, JPEG 2000 size, RLE expansion) and decoded by pydicom."""

from __future__ import annotations

import mmap
import os
import re
import struct
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.filebase import DicomBytesIO
from pydicom.pixels import pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from umcl.imaging.header import _element, _Exhausted, _Header, _inflate_file, _opened, _PixelModule
from umcl.imaging.limits import (
    _JPEG_FRAME_MARKERS,
    FRAME_READS,
    IMAGE_FORMAT_UNSUPPORTED,
    JP2_SIGNATURE,
    MAX_JPEG_SCAN_PIXELS,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    PIXEL_TAGS,
    TRAILER_BYTES,
    ImageDecodeError,
)

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
