"""Stage `package`: a candidate that passed the gate goes into the model store, becomes the
champion, and is built into a bento (`bentofile.yaml`) that `bentoml serve` runs.

The stored model's metadata says where it came from: its metrics, the params it was trained with
(`training.json`), the git revision
and the data version (the hashes DVC recorded in `dvc.lock` for the raw data and the triplets).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

from umcl.errors import InputError
from umcl.imports import source_digest
from umcl.model.umcl import read_provenance


def data_version(lock_file: Path = Path("dvc.lock")) -> dict[str, str]:
    """Content hashes of the raw data and of the triplet table, from `dvc.lock` (empty when
    the pipeline has not been run by DVC)."""
    if not lock_file.is_file():
        return {}
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    wanted = {
        "raw_data": ("validate", "deps", "data/raw"),
        "triplets": ("unify", "outs", "data/unified"),
    }
    version = {}
    for key, (stage, kind, path) in wanted.items():
        for entry in stages.get(stage, {}).get(kind, []):
            if entry.get("path") == path and "md5" in entry:
                version[key] = entry["md5"]
    return version


def params_digest(params: dict) -> str:
    """sha256 of the params that shaped a model: equal digests mean the same settings."""
    canonical = json.dumps(params, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def git_revision(root: Path = Path()) -> dict[str, str | bool] | None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # dvc.lock and stage outputs change during `dvc repro`; source edits are what matter.
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", "umcl", "params.yaml")
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": dirty}


def bento_version(bentofile: Path, model_tag: str) -> str:
    """The model's version plus a hash of what the bento packs (its code and bentofile), so a
    rebuild of the same model and code gives the same tag and is not built twice."""
    root = bentofile.parent
    code = source_digest((root / "umcl").rglob("*.py"), root)
    digest = hashlib.sha256(bentofile.read_bytes() + code.encode())
    return f"{model_tag.split(':')[1]}-{digest.hexdigest()[:8]}"


def build_bento(bentofile: Path, model_tag: str) -> str:
    """`bentoml build` of the service, pinned to `model_tag`; returns the bento's tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    version = bento_version(bentofile, model_tag)
    name = yaml.safe_load(bentofile.read_text())["name"]
    try:
        return str(bentoml.bentos.get(f"{name}:{version}").tag)
    except NotFound:
        pass
    # The build imports the service, where UMCL_MODEL would win over the model being packed.
    chosen = os.environ.pop("UMCL_MODEL", None)
    try:
        bento = bentoml.bentos.build_bentofile(
            str(bentofile), build_ctx=str(bentofile.parent), version=version,
            args={"model": model_tag},
        )  # fmt: skip
    finally:
        if chosen is not None:
            os.environ["UMCL_MODEL"] = chosen
    return str(bento.tag)


def package(
    model_dir: Path,
    metrics_path: Path,
    gate_path: Path,
    out: Path,
    bentofile: Path | None = Path("bentofile.yaml"),
) -> dict:
    """Store the candidate, make it the champion and build the bento; writes `out` (json)."""
    from umcl import registry

    gate = json.loads(gate_path.read_text()) if gate_path.is_file() else None
    if not gate or not gate.get("passed"):
        raise InputError(
            f"{gate_path}: the candidate has not passed the gate; run `umcl gate` first"
        )
    metrics = json.loads(metrics_path.read_text())
    metrics.pop("model", None)  # a local path, not a property of the model
    # The params the candidate was trained with, as it recorded them (no data paths), whatever
    # params.yaml says now: the stage reads no params of its own.
    params = read_provenance(model_dir).get("params", {})
    metadata = {
        "metrics": metrics,
        "gate": gate["candidate"]["metrics"],
        "params": params,
        "params_sha256": params_digest(params),
        "data_version": data_version(),
        "git": git_revision(),
    }
    entry, created = registry.add(model_dir, metadata)
    previous = registry.champion()
    champion = registry.promote(entry.tag)
    bento = build_bento(bentofile, champion.tag) if bentofile is not None else None
    report = {
        "model": champion.tag,
        "stored": created,
        "previous_champion": previous.tag if previous and previous.tag != champion.tag else None,
        "promoted": previous is None or previous.tag != champion.tag,
        "bento": bento,
        "gate": gate["candidate"]["metrics"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
