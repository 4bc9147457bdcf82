"""Decoding at reduced scale (umcl/imaging/scaled.py): a large image comes out as the box mean of
its full-size decode (JPEG: libjpeg's DCT scaling, close to it), an image the model's square
does not need shrunk comes out exactly as before, and a 36 MP DICOM frame or a 50 MP 16-bit PNG
costs under 8 bytes a pixel."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile import header, jpeg_dicom, png16, saved, textured
from umcl.imaging.images import load_image
from umcl.imaging.limits import DecodeLimits
from umcl.imaging.scaled import MIN_DECODED_SIDE, box_mean, decoded_side
from umcl.inference import image_pixels

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 2300, 2600  # over twice MIN_DECODED_SIDE on the long side: shrunk by 2


def dicom(path: Path, stored: np.ndarray, **extra: object) -> Path:
    ds = header(*stored.shape, bits=12, modality="DX", **extra)
    path.write_bytes(saved(ds, stored.astype("<u2").tobytes()))
    return path


def png(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values).save(path, "PNG")
    return path


def test_the_factor_keeps_the_long_side_at_least_the_decoded_side():
    assert decoded_side(128) == MIN_DECODED_SIDE and decoded_side(1024) == 2048
    values = np.arange(7 * 5, dtype=np.float64).reshape(7, 5)
    means = box_mean(values, 2)
    assert means.shape == (4, 3) and means.dtype == np.float32
    assert means[0, 0] == values[:2, :2].mean() and means[3, 2] == values[6, 4]  # a partial box


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda p: png(p, textured(HEIGHT, WIDTH).astype(np.uint16) * 16), id="png16"),
        pytest.param(lambda p: png(p, textured(HEIGHT, WIDTH)), id="png8"),
        pytest.param(
            lambda p: png(p, np.stack([textured(HEIGHT, WIDTH, s) for s in range(3)], -1)),
            id="png-rgb",
        ),
        pytest.param(
            lambda p: dicom(
                p,
                textured(HEIGHT, WIDTH).astype(np.uint16) * 16,
                RescaleSlope="2",
                RescaleIntercept="-1000",
                WindowCenter="2000",
                WindowWidth="3000",
            ),
            id="dicom-rescale-window",
        ),
        pytest.param(
            lambda p: dicom(
                p,
                textured(HEIGHT, WIDTH).astype(np.uint16) * 16,
                PhotometricInterpretation="MONOCHROME1",
            ),
            id="dicom-minmax-monochrome1",
        ),
    ],
)
def test_a_large_image_decodes_as_the_box_mean_of_its_full_decode(tmp_path, write):
    path = write(tmp_path / "image")  # DICOM by its preamble, PNG by its signature
    full = load_image(path)
    reduced = load_image(path, min_side=MIN_DECODED_SIDE)
    assert reduced.shape == (HEIGHT // 2, WIDTH // 2)
    np.testing.assert_allclose(reduced, box_mean(full, 2), atol=2e-6)


def test_a_large_jpeg_is_scaled_while_it_decodes(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(textured(HEIGHT, WIDTH)).save(path, quality=95)
    full = load_image(path)
    reduced = load_image(path, min_side=MIN_DECODED_SIDE)
    assert reduced.shape == (HEIGHT // 2, WIDTH // 2)
    # libjpeg's 1/2 DCT scaling against the mean of each 2 × 2 box of the full decode
    assert float(np.abs(reduced - box_mean(full, 2)).mean()) < 0.01


def test_an_image_the_square_does_not_need_shrunk_decodes_exactly_as_before(tmp_path):
    side = 2 * MIN_DECODED_SIDE - 1  # the largest long side kept whole
    stored = textured(900, side).astype(np.uint16) * 16
    for path in (
        dicom(tmp_path / "a.dcm", stored, WindowCenter="2000", WindowWidth="3000"),
        png(tmp_path / "a.png", stored),
    ):
        assert np.array_equal(load_image(path, min_side=MIN_DECODED_SIDE), load_image(path))


def test_an_array_scores_as_its_png_at_reduced_scale_too(tmp_path):
    values = textured(HEIGHT, WIDTH)
    path = png(tmp_path / "a.png", values)
    limits, side = DecodeLimits(), decoded_side(128)
    from_file = image_pixels(path, "image 0", limits, side)
    np.testing.assert_allclose(image_pixels(values, "image 0", limits, side), from_file, atol=2e-6)
    with Image.open(path) as opened:
        assert np.array_equal(image_pixels(opened, "image 0", limits, side), from_file)


PEAK = textwrap.dedent(
    """
    import sys
    from umcl.data.preprocess import decode_to_square

    def kib(key):
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))

    open("/proc/self/clear_refs", "w").write("5")  # the high-water mark from here on
    before = kib("VmRSS:")
    decode_to_square(sys.argv[1], 128)
    print((kib("VmHWM:") - before) * 1024)
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "name, build, pixels",
    [
        ("frames.dcm", lambda: jpeg_dicom(6000, 2), 36_000_000),  # 2 JPEG frames of 36 MP
        ("detector.png", lambda: png16(7000, 7100), 49_700_000),  # 16-bit, 49.7 MP
    ],
)
def test_a_large_image_costs_under_8_bytes_a_pixel(tmp_path, name, build, pixels):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the high-water mark")
    path = tmp_path / name
    path.write_bytes(build())
    run = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-2000:]
    per_pixel = int(run.stdout.split()[-1]) / pixels
    assert per_pixel < 8, f"{name}: {per_pixel:.1f} bytes a pixel"


def test_a_progressive_jpeg_is_scaled_too(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(textured(HEIGHT, WIDTH)).save(buffer, "JPEG", progressive=True)
    path = tmp_path / "p.jpg"
    path.write_bytes(buffer.getvalue())
    assert load_image(path, min_side=MIN_DECODED_SIDE).shape == (HEIGHT // 2, WIDTH // 2)
