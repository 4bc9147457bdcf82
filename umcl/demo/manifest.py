"""The manifest `umcl demo` writes beside its data: what it generated, where, and which folders
hold synthetic data. Ingestion reads only that last part, to let the demo's public pseudonym key
name synthetic patients and nothing else (`umcl/ingest/pseudonyms.py`)."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"
DEMO_GENERATOR = "umcl demo"


def demo_folders(demo_root: Path | None) -> list[Path]:
    """The folders `umcl demo` wrote under `demo_root`, as its manifest lists them: data there is
    synthetic. A folder without that manifest is not demo data, wherever it lies."""
    if demo_root is None:  # the demo is off
        return []
    manifest = Path(demo_root) / MANIFEST
    try:
        content = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(content, dict) or content.get("generator") != DEMO_GENERATOR:
        return []
    names = content.get("folders")
    # Plain folder names only: "..", "/" or "a/b" in a manifest must not widen what is synthetic.
    return [
        (Path(demo_root) / name).resolve()
        for name in (names if isinstance(names, list) else [])
        if isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name
    ]
