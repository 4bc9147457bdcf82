"""What importing a module pulls in: the upload guard, which runs before any request reaches the
service, needs image decoding only, never ingestion (de-identification, PACS, polars)."""

from __future__ import annotations

import json
import subprocess
import sys


def imported_by(module: str) -> set[str]:
    script = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_the_upload_guard_depends_on_imaging_not_on_ingestion() -> None:
    loaded = imported_by("umcl.upload_guard")
    assert {"umcl.data.dicom", "umcl.data.images"} <= loaded
    ingestion = {"umcl.data.sources", "umcl.data.deid", "umcl.data.pacs", "spacy", "polars"}
    assert not ingestion & loaded
