"""Stage logs hold no DICOM header value: `umcl preprocess`, run as `dvc repro` runs it, decodes a
file whose header makes pydicom warn quoting a patient's name, and the log shows the warning
only as withheld (umcl/log_privacy.py, installed by umcl/cli.py: main)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from tests.conftest import REPO
from tests.hostile import header, raw, saved
from umcl.imaging.images import load_image

NAME = "Quentin^Roe"  # a name no other line of the log can hold
KEY = "img-0001"


def chatty_dicom(path: Path) -> Path:
    """A radiograph that decodes, whose Specific Character Set holds a patient's name (a broken
    export shifted a field): pydicom warns "Unknown encoding 'Quentin^Roe'" as it reads it."""
    ds = raw(header(16, 16, PatientName=NAME), "SpecificCharacterSet", "CS", NAME.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns while writing it, too
        path.write_bytes(saved(ds, np.arange(256, dtype=np.uint8).tobytes()))
    return path


def test_the_file_really_makes_pydicom_quote_the_name(tmp_path: Path) -> None:
    path = chatty_dicom(tmp_path / "x.dcm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_image(path).shape == (16, 16)
    assert any(NAME in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_a_stage_log_withholds_pydicoms_warnings(tmp_path: Path) -> None:
    image = chatty_dicom(tmp_path / f"{NAME.replace('^', '_')}.dcm")  # a PACS-style file name too
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["preprocess"].update(image_size=16, workers=1)  # one forked worker decodes, as in a run
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    pl.DataFrame({"sample_id": ["s1"], "image": [KEY]}).write_parquet(tmp_path / "triplets.parquet")
    (tmp_path / "locator").mkdir()
    pl.DataFrame({"image": [KEY], "path": [str(image)]}).write_parquet(
        tmp_path / "locator/demo.parquet"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "always"}  # no warning deduped
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "umcl.cli",
            "--params",
            "params.yaml",
            "preprocess",
            "--triplets",
            "triplets.parquet",
            "--locator",
            "locator",
            "--out",
            "cache",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert json.loads((tmp_path / "cache/meta.json").read_text())["count"] == 1
    assert "Quentin" not in log and "Roe" not in log, log[-3000:]
    assert str(tmp_path) not in log, log[-3000:]
    # Both of pydicom's channels are there, withheld: its logger and its warning.
    assert "pydicom: message withheld" in log, log[-3000:]
    assert "UserWarning at pydicom/charset.py" in log, log[-3000:]
    assert "preprocess: 1 images cached at 16×16" in log  # the stage's own lines as they were
