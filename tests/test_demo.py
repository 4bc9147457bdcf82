import filecmp

import pydicom

from umcl.config import DemoSettings
from umcl.demo.generator import generate_demo


def small(**extra) -> DemoSettings:
    sizes = {
        "image_text_studies": 12,
        "image_label_studies": 8,
        "text_label_studies": 6,
        "pacs_studies": 8,
        "image_size": 64,
    }
    return DemoSettings(**(sizes | extra))


def test_same_seed_same_bytes(tmp_path):
    generate_demo(small(), tmp_path / "a", seed=3, workers=1)
    generate_demo(small(), tmp_path / "b", seed=3, workers=2)
    files = sorted(
        str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert len(match) == len(files) > 20 and not mismatch and not errors


def test_dicoms_vary_like_real_ones_and_carry_planted_phi(tmp_path):
    manifest = generate_demo(small(image_text_studies=60, fault_rate=0.0), tmp_path / "d", seed=5)
    assert manifest["faults"] == []
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "d").rglob("*.dcm")]
    assert {h.BitsStored for h in headers} == {12, 16}
    assert {h.PhotometricInterpretation for h in headers} == {"MONOCHROME1", "MONOCHROME2"}
    assert any("RescaleSlope" in h for h in headers) and any("WindowCenter" in h for h in headers)
    assert {str(h.PatientID) for h in headers} <= set(manifest["phi"]["mrns"])
    assert len({h.Rows for h in headers}) > 1  # portrait detectors of varying height
