"""DICOM, PNG and JPEG decoding: the display pipeline, and the guards that refuse hostile files
(bombs, malformed headers, formats and modalities out of scope) before they cost memory.

The builders of hostile files live in tests/hostile.py (tests/test_service.py and
benchmarks/serve_bombs.py use them too)."""

from __future__ import annotations

import io
import pickle
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.conftest import shared_path
from tests.hostile import (
    Hostile,
    Large,
    bundled_pydicom_files,
    header,
    hostile_files,
    large_dicoms,
    malformed_headers,
    multiframe_bomb,
    progressive_scan_bomb,
    radiograph,
    saved,
)
from tests.hostile import (
    raw as raw_element,
)
from umcl.imaging.display import read_dicom
from umcl.imaging.frame import check_jpeg_stream
from umcl.imaging.images import fit_square, inspect_image, load_image
from umcl.imaging.limits import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    MODALITY_OUT_OF_SCOPE,
    DecodeLimits,
    ImageDecodeError,
)

PICTURE = np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(48, 32)
ANY_MODALITY = DecodeLimits(modalities=None)


def write(
    path: Path, stored: np.ndarray, bits: int, photometric: str = "MONOCHROME2", **extra: object
) -> Path:
    ds = header(*stored.shape, bits=bits, photometric=photometric, modality="CR", **extra)
    path.write_bytes(saved(ds, stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()))
    return path


# --- the display pipeline ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_bit_depths_give_the_same_picture(tmp_path, bits):
    top = 2**bits - 1
    image = read_dicom(write(tmp_path / "a.dcm", np.rint(PICTURE * top), bits))
    assert image.dtype == np.float32 and image.min() == 0 and image.max() == 1
    np.testing.assert_allclose(image, PICTURE, atol=1.5 / top)


def test_monochrome1_is_inverted(tmp_path):
    stored = np.rint(PICTURE * 4095)
    normal = read_dicom(write(tmp_path / "m2.dcm", stored, 12))
    inverted = read_dicom(write(tmp_path / "m1.dcm", stored, 12, "MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1 - normal, atol=1e-6)


def test_rescale_then_window(tmp_path):
    # Stored 0..4095, modality values = 2 * stored - 1000; window on modality values.
    stored = np.rint(PICTURE * 4095)
    path = write(
        tmp_path / "w.dcm",
        stored,
        12,
        RescaleSlope="2",
        RescaleIntercept="-1000",
        WindowCenter="3095",
        WindowWidth="4096",
    )
    image = read_dicom(path)
    expected = np.clip(((2 * stored - 1000) - (3095 - 0.5)) / 4095 + 0.5, 0, 1)
    np.testing.assert_allclose(image, expected, atol=1e-5)
    assert image[0, 0] == 0 and image[-1, -1] == 1  # the window clips both ends


# PS3.3 C.11.2.1.2 and C.11.2.1.3, written out here (not pydicom's code), mapped to [0, 1].
VOI_FUNCTIONS = {
    "LINEAR": lambda x, c, w: np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1),
    "LINEAR_EXACT": lambda x, c, w: np.clip((x - c) / w + 0.5, 0, 1),
    "SIGMOID": lambda x, c, w: 1 / (1 + np.exp(-4 * (x - c) / w)),
}


@pytest.mark.parametrize("function", list(VOI_FUNCTIONS))
def test_the_voi_lut_function_is_honoured_as_pydicom_reads_it(tmp_path, function):
    # A 12-bit DX with a rescale and a narrow window: the function decides the picture.
    stored = np.rint(PICTURE * 4095)
    path = write(
        tmp_path / f"{function}.dcm",
        stored,
        12,
        RescaleSlope="1.5",
        RescaleIntercept="-100",
        WindowCenter="2000",
        WindowWidth="1200",
        VOILUTFunction=function,
    )
    image = read_dicom(path)
    modality = stored * 1.5 - 100
    np.testing.assert_allclose(image, VOI_FUNCTIONS[function](modality, 2000, 1200), atol=1e-5)
    ds = pydicom.dcmread(path)
    by_pydicom = pydicom.pixels.apply_voi_lut(
        pydicom.pixels.apply_modality_lut(ds.pixel_array, ds), ds
    )
    low, high = (
        -100,
        4095 * 1.5 - 100,
    )  # the output range pydicom windows into: the modality values'
    np.testing.assert_allclose(image, (by_pydicom - low) / (high - low), atol=1e-5)


@pytest.mark.parametrize(
    "extra",
    [
        {"RescaleSlope": "", "RescaleIntercept": "0"},  # a blank number is an absent one
        {"RescaleSlope": "1\\1", "RescaleIntercept": "0"},  # the first of several values
        {"VOILUTFunction": ""},  # blank: LINEAR
        {"VOILUTFunction": "linear"},
    ],
    ids=["blank slope", "two slopes", "blank function", "lower-case function"],
)
def test_header_values_reach_pydicom_as_this_module_reads_them(tmp_path, extra):
    stored = np.rint(PICTURE * 4095)
    window = {"WindowCenter": "2000", "WindowWidth": "1000"}
    plain = read_dicom(write(tmp_path / "plain.dcm", stored, 12, **window))
    image = read_dicom(write(tmp_path / "odd.dcm", stored, 12, **window, **extra))
    np.testing.assert_allclose(image, plain, atol=1e-6)


def test_a_modality_lut_claiming_huge_output_bits_is_refused_at_once(tmp_path):
    # pydicom would size the window's range as 2**bits: minutes and gigabytes for 2**32 - 1.
    item = Dataset()
    raw_element(item, "LUTDescriptor", "UL", struct.pack("<3I", 256, 0, 0xFFFFFFFF))
    raw_element(item, "LUTData", "US", struct.pack("<256H", *range(256)))
    ds = header(8, 8, bits=16, modality="CR", WindowCenter="30", WindowWidth="40")
    ds.ModalityLUTSequence = Sequence([item])
    path = tmp_path / "lut.dcm"
    path.write_bytes(saved(ds, bytes(128)))
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="modality LUT is malformed"):
        load_image(path)
    assert time.perf_counter() - started < 1


def test_a_hierarchical_jpeg_is_refused_from_its_markers():
    # A DHP segment declares the image's size apart from its frame header: 65535² here.
    frame = Image.new("L", (64, 64), 128)
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG")
    data = buffer.getvalue()
    dhp = b"\xff\xde" + struct.pack(">HBHHB", 11, 8, 65535, 65535, 1) + b"\x01\x11\x00"
    with pytest.raises(ImageDecodeError, match="hierarchical JPEG"):
        check_jpeg_stream(Path("h.jpg"), data[:2] + dhp + data[2:])


def test_a_voi_lut_comes_before_a_window_it_never_uses(tmp_path):
    stored = np.rint(PICTURE * 255)
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    lut.add_new("LUTData", "US", list(range(255, -1, -1)))  # inverts
    image = read_dicom(
        write(
            tmp_path / "l.dcm",
            stored,
            8,
            VOILUTSequence=[lut],
            WindowCenter="128",
            WindowWidth="0.5",
        )
    )
    np.testing.assert_allclose(image, 1 - stored / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"VOILUTFunction": "DOE^JANE"}, "VOILUTFunction is none of"),
        ({"WindowWidth": "0"}, "window is malformed"),
    ],
    ids=["unknown function", "width 0"],
)
def test_a_window_no_function_can_use_is_refused_quoting_nothing(tmp_path, extra, reason):
    stored = np.rint(PICTURE * 255)
    window = {"WindowCenter": "128", "WindowWidth": "10"} | extra
    with pytest.raises(ImageDecodeError, match=reason) as refused:
        read_dicom(write(tmp_path / "w.dcm", stored, 8, **window))
    assert "DOE" not in str(refused.value)  # no header value is quoted


def test_window_of_width_one_is_a_threshold(tmp_path):
    stored = np.rint(PICTURE * 255)
    image = read_dicom(write(tmp_path / "t.dcm", stored, 8, WindowCenter="128", WindowWidth="1"))
    np.testing.assert_array_equal(image, (stored > 127.5).astype(np.float32))


def test_an_empty_voi_lut_sequence_means_no_lut(tmp_path):
    stored = np.rint(PICTURE * 255)
    plain = read_dicom(write(tmp_path / "p.dcm", stored, 8))
    assert np.array_equal(
        read_dicom(write(tmp_path / "e.dcm", stored, 8, VOILUTSequence=[])), plain
    )


def test_real_monochrome_pair_are_exact_inverses():
    """Identical JPEG-compressed pixel data; one header says MONOCHROME1. The right picture of
    the MONOCHROME1 file is the inverse of the other (low stored values are white)."""
    normal = read_dicom(shared_path("fixtures/siim-cr-chest.dcm"))
    inverted = read_dicom(shared_path("fixtures/siim-cr-chest-monochrome1.dcm"))
    assert normal.shape == (1024, 1024)
    np.testing.assert_allclose(inverted, 1 - normal, atol=1e-6)
    assert not np.allclose(normal, inverted)


def test_not_dicom_and_no_pixels_name_the_file(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not a dicom file at all" * 10)
    with pytest.raises(ImageDecodeError, match=r"junk\.dcm") as caught:
        read_dicom(junk)
    assert caught.value.code == IMAGE_UNREADABLE
    ds = pydicom.dcmread(write(tmp_path / "p.dcm", np.zeros((4, 4)), 8))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match=r"nopixels\.dcm: DICOM file has no pixel data"):
        read_dicom(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match="missing") as caught:
        load_image(tmp_path / "absent.png")
    assert caught.value.code == "image_missing"


def test_real_png_and_square_fit():
    image = load_image(shared_path("fixtures/nih-00000001_000.png"))
    assert image.shape == (512, 512) and 0 <= image.min() < image.max() <= 1
    tall = fit_square(np.ones((100, 50), np.float32), 32)
    assert tall.shape == (32, 32) and tall.dtype == np.uint8
    assert tall[:, :8].max() == 0 and tall[:, 8:24].min() == 255  # centred, aspect kept


# --- guards --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Hostile]]:
    root = tmp_path_factory.mktemp("hostile")
    files = {}
    for name, bomb in hostile_files().items():
        (root / bomb.file_name).write_bytes(bomb.data)
        files[name] = (root / bomb.file_name, bomb)
    return files


def cost(read: Callable[[], object]) -> tuple[object, float, int]:
    """What `read` returns (or the ImageDecodeError it raises), its seconds, and its peak traced
    memory, from two runs: tracemalloc slows a parse of many small objects tenfold."""
    outcomes = []
    for traced in (False, True):
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            outcome: object = read()
        except ImageDecodeError as exc:
            outcome = exc
        outcomes.append((outcome, time.perf_counter() - started))
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return outcomes[0][0], outcomes[0][1], peak


@pytest.mark.timeout(60)  # a guard that regresses may leave pydicom spinning
def test_every_bomb_is_refused_in_little_time_and_memory(hostile):
    for name, (path, bomb) in hostile.items():
        assert len(bomb.data) < 2**20, name  # within a 1 MB upload limit
        for reader in (load_image, inspect_image) if bomb.in_header else (load_image,):
            error, seconds, peak = cost(lambda reader=reader, path=path: reader(path))
            assert isinstance(error, ImageDecodeError), f"{name}: {reader.__name__} accepted it"
            assert error.code == bomb.code, f"{name}: {error}"
            assert str(error).startswith(f"{path}: "), name
            assert seconds < 1.0, f"{name}: {seconds:.2f} s"
            assert peak < 32 * 2**20, f"{name}: {peak / 2**20:.0f} MB traced"


@pytest.mark.timeout(60)  # before the first frame was read alone, these took up to a minute
@pytest.mark.parametrize("name", list(large_dicoms()))
def test_a_dicom_costs_its_header_and_first_frame_not_its_size(tmp_path, name):
    """Trailing data, later frames and header bloat are never read (or refused), whatever their
    size: each file is answered in under a second and ~2 frames of memory."""
    file, code = large_dicoms()[name]
    path = tmp_path / "large.dcm"
    if isinstance(file, Large):
        file.write(path)  # sparse: hundreds of MB on disk cost nothing to write
    else:
        path.write_bytes(file)
    image, seconds, peak = cost(lambda: load_image(path))
    if isinstance(image, ImageDecodeError):
        assert image.code == code, f"{name}: {image}"
        image = None
    assert (image is None) == (code is not None), name
    assert seconds < 1.0, f"{name}: {seconds:.2f} s"
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MB traced"  # a 2000² frame: 8 MB
    if image is not None and image.shape == (64, 64):  # the radiograph itself, trailer ignored
        (tmp_path / "plain.dcm").write_bytes(radiograph())
        np.testing.assert_array_equal(image, load_image(tmp_path / "plain.dcm"))
    elif image is not None:  # the first frame, a ramp 0..4095 (min–max: no window)
        assert image.shape == (2000, 2000)
        ramp = (np.arange(2000 * 2000) % 4096).reshape(2000, 2000) / 4095
        np.testing.assert_allclose(image, ramp, atol=1e-6)


def test_a_dicom_header_is_parsed_once_when_inspected_first(tmp_path, monkeypatch):
    """The service inspects every upload, then decodes it: the header it parsed is reused."""
    from umcl.imaging import header

    path = tmp_path / "a.dcm"
    path.write_bytes(radiograph())
    parses = []
    parse = header._parse_until_pixels
    monkeypatch.setattr(header, "_parse_until_pixels", lambda *a: parses.append(1) or parse(*a))
    info = inspect_image(path)
    image = load_image(path, info=info)
    assert len(parses) == 1 and image.shape == (64, 64)
    assert load_image(path).shape == (64, 64) and len(parses) == 2  # alone: parsed by itself


def test_a_multiframe_file_decodes_its_first_frame_only(tmp_path):
    path = tmp_path / "frames.dcm"
    path.write_bytes(multiframe_bomb())
    tracemalloc.start()
    started = time.perf_counter()
    image = read_dicom(path)
    seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert image.shape == (512, 512) and seconds < 1.0
    assert peak < 24 * 2**20  # 200 frames would be 52 MB of uint8 before any conversion
    frames = np.stack([np.full((4, 4), v, np.uint8) for v in (0, 200, 50)])
    frames[0, 0, 0] = 100  # frame 0 alone: a single bright pixel
    ds = header(4, 4, NumberOfFrames=3)
    (tmp_path / "three.dcm").write_bytes(saved(ds, frames.tobytes()))
    expected = np.zeros((4, 4), np.float32)
    expected[0, 0] = 1
    np.testing.assert_array_equal(read_dicom(tmp_path / "three.dcm"), expected)


def test_a_deflated_file_within_its_header_decodes(tmp_path):
    stored = np.rint(PICTURE * 255).astype(np.uint8)
    plain = write(tmp_path / "plain.dcm", stored, 8)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "deflated.dcm").file_meta.TransferSyntaxUID.is_deflated
    np.testing.assert_array_equal(read_dicom(tmp_path / "deflated.dcm"), read_dicom(plain))


def test_the_pixel_budget_follows_umcl_max_pixels(tmp_path, monkeypatch):
    path = write(tmp_path / "a.dcm", np.rint(PICTURE * 255), 8)
    png = tmp_path / "a.png"
    Image.new("L", (40, 40)).save(png)
    monkeypatch.setenv("UMCL_MAX_PIXELS", "1000")  # 48 × 32 and 40 × 40 are over
    for file in (path, png):
        with pytest.raises(
            ImageDecodeError, match=r"megapixels, over the 0\.001 MP limit"
        ) as caught:
            load_image(file)
        assert caught.value.code == IMAGE_TOO_LARGE
    monkeypatch.setenv("UMCL_MAX_PIXELS", "1e6")
    assert load_image(path).shape == (48, 32) and inspect_image(png).pixels == 1600
    for raw in ("lots", "0.5", "inf"):
        monkeypatch.setenv("UMCL_MAX_PIXELS", raw)
        with pytest.raises(ValueError, match=f"UMCL_MAX_PIXELS='{raw}' is not a positive number"):
            load_image(path)


@pytest.mark.parametrize("name", list(malformed_headers()))
def test_malformed_headers_raise_image_decode_error_without_their_values(tmp_path, name):
    ds, code = malformed_headers()[name]
    path = tmp_path / f"{name.replace(' ', '_')}.dcm"
    path.write_bytes(saved(ds, bytes(16 * 16)))
    for reader in (load_image, inspect_image):
        with pytest.raises(ImageDecodeError) as caught:
            reader(path)
        message = str(caught.value)
        assert caught.value.code == code, message
        assert message.startswith(f"{path}: "), message
        assert "Doe" not in message and "DOE" not in message
    if code == MODALITY_OUT_OF_SCOPE:
        assert ("is CT" in message) == (name == "CT slice"), message


def test_umcl_dicom_modalities_widens_the_scope(tmp_path, monkeypatch):
    ct = tmp_path / "ct.dcm"
    ct.write_bytes(saved(header(16, 16, modality="CT"), bytes(256)))
    with pytest.raises(ImageDecodeError, match=r"Modality is CT; .*accepted modalities: CR, DX"):
        load_image(ct)
    monkeypatch.setenv("UMCL_DICOM_MODALITIES", "dx, ct")
    assert load_image(ct).shape == (16, 16)
    monkeypatch.setenv("UMCL_DICOM_MODALITIES", "*")
    none = tmp_path / "none.dcm"
    none.write_bytes(saved(header(16, 16, modality=None), bytes(256)))
    assert load_image(none).shape == (16, 16)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP", "WEBP", "PPM"])
def test_pillow_formats_other_than_png_and_jpeg_are_refused(tmp_path, fmt):
    path = tmp_path / "picture.png"  # the suffix does not matter: the content does
    Image.new("L", (16, 16), 7).save(path, fmt)
    with pytest.raises(ImageDecodeError, match=f"{fmt} images are not accepted") as caught:
        load_image(path)
    assert caught.value.code == IMAGE_FORMAT_UNSUPPORTED


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_decoded_upright_as_its_exif_orientation_says(tmp_path, orientation):
    """As every viewer shows it (ImageOps.exif_transpose's table); a PNG's EXIF is not read."""
    from PIL import ImageOps

    stored = Image.fromarray(np.rint(PICTURE * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)), np.float32) / 255
    image = load_image(path)
    assert image.shape == upright.shape and image.flags.c_contiguous
    np.testing.assert_allclose(image, upright, atol=1e-6)
    info = inspect_image(path)
    assert (info.height, info.width) == upright.shape


def test_png_and_jpeg_still_decode(tmp_path):
    for fmt in ("PNG", "JPEG"):
        path = tmp_path / f"a.{fmt.lower()}"
        Image.fromarray(np.rint(PICTURE * 255).astype(np.uint8)).save(path, fmt)
        info = inspect_image(path)
        assert (info.format, info.width, info.height) == (fmt, 32, 48)
        np.testing.assert_allclose(load_image(path), PICTURE, atol=0.02)


def test_every_file_of_pydicoms_corpus_decodes_or_raises_image_decode_error():
    """Any modality allowed, so the decoder itself meets every encoder's output; with the
    default scope, CT and MR slices are refused by name."""
    files = bundled_pydicom_files()
    assert len(files) > 60
    decoded = 0
    for path in files:
        try:
            image = load_image(path, ANY_MODALITY)
        except ImageDecodeError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            continue
        assert image.ndim == 2 and image.dtype == np.float32, path.name
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1, path.name
        decoded += 1
    assert decoded > 30  # RLE, JPEG, JPEG-LS, JPEG 2000, YBR, big endian, deflated …
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        with pytest.raises(ImageDecodeError, match=f"Modality is {modality};") as caught:
            load_image(files[0].parent / name)
        assert caught.value.code == MODALITY_OUT_OF_SCOPE


def test_the_error_code_survives_a_process_pool():
    error = pickle.loads(pickle.dumps(ImageDecodeError("x.png: too big", IMAGE_TOO_LARGE)))
    assert (str(error), error.code) == ("x.png: too big", IMAGE_TOO_LARGE)


def test_a_jpeg_may_cost_scans_times_pixels_up_to_a_budget() -> None:
    """Each scan is a pass over the whole image: a 49 MP progressive JPEG as encoders write it
    (a handful of scans) passes, the same with 20 more scans is refused from its markers, and
    many scans of a small image still pass."""
    check_jpeg_stream(Path("written.jpg"), progressive_scan_bomb(side=7_000, repeats=0))
    with pytest.raises(ImageDecodeError, match="scan-pixels") as refused:
        check_jpeg_stream(Path("many.jpg"), progressive_scan_bomb(side=7_000, repeats=20))
    assert refused.value.code == IMAGE_UNREADABLE and "49.0 MP" in str(refused.value)
    check_jpeg_stream(Path("small.jpg"), progressive_scan_bomb(side=1_000, repeats=80))
    # A 1×1 frame header slipped in before the scans does not make them cheap.
    bomb = progressive_scan_bomb(side=4_000, repeats=70)
    first_scan = bomb.index(b"\xff\xda")
    tiny_frame = bytes.fromhex("ffc2000b08000100010101 1100".replace(" ", ""))
    with pytest.raises(ImageDecodeError, match="scan-pixels"):
        check_jpeg_stream(Path("two.jpg"), bomb[:first_scan] + tiny_frame + bomb[first_scan:])
