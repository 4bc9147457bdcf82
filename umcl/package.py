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
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from umcl.atomic import write_json
from umcl.errors import InputError
from umcl.imports import source_digest
from umcl.model.folder import CARD_FILE, read_provenance
from umcl.model_card import write_model_card
from umcl.monitor.reference import REFERENCE_FILE


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


def locked_versions(lock: Path) -> dict[str, str]:
    """Exact versions from a pip-compiled lock (`requirements.lock`), by canonical name."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock.read_text(), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def pinned_packages(packages: list[str], lock: Path) -> list[str]:
    """The bento's requirements pinned to the lock: each listed package and everything it
    installs (walked through the installed distributions, which `make install` took from the
    lock) at the lock's exact version. Packages the lock leaves out (torch, whose build depends
    on the machine) keep the bentofile's own specifier; what they install is pinned too."""
    versions = locked_versions(lock)
    pinned: dict[str, str] = {}
    todo = [Requirement(spec) for spec in packages]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in pinned:
            continue
        pinned[name] = f"{name}=={versions[name]}" if name in versions else str(requirement)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        extras = ["", *sorted(requirement.extras)]
        for line in requires:
            needed = Requirement(line)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras
            ):
                todo.append(needed)
    return sorted(pinned.values())


def bento_version(bentofile: Path, model_tag: str, packages: list[str]) -> str:
    """The model's version plus a hash of what the bento packs (its code, bentofile and pinned
    packages), so a rebuild of the same model and code gives the same tag and is not built
    twice."""
    root = bentofile.parent
    code = source_digest((root / "umcl").rglob("*.py"), root)
    packed = bentofile.read_bytes() + code.encode() + "\n".join(packages).encode()
    return f"{model_tag.split(':')[1]}-{hashlib.sha256(packed).hexdigest()[:8]}"


def build_bento(bentofile: Path, model_tag: str, lock: Path = Path("requirements.lock")) -> str:
    """`bentoml build` of the service, pinned to `model_tag` and to the lock's versions; returns
    the bento's tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    spec = yaml.safe_load(bentofile.read_text())
    python = spec.setdefault("python", {})
    python["packages"] = pinned_packages(python.get("packages", []), lock)
    version = bento_version(bentofile, model_tag, python["packages"])
    try:
        return str(bentoml.bentos.get(f"{spec['name']}:{version}").tag)
    except NotFound:
        pass
    # The build imports the service, where UMCL_MODEL would win over the model being packed.
    chosen = os.environ.pop("UMCL_MODEL", None)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            pinned = Path(scratch) / "bentofile.yaml"
            pinned.write_text(yaml.safe_dump(spec, sort_keys=False))
            bento = bentoml.bentos.build_bentofile(
                str(pinned),
                build_ctx=str(bentofile.parent),
                version=version,
                args={"model": model_tag},
            )
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
    reference: Path | None = None,
) -> dict:
    """Store the candidate with its drift `reference`, make it the champion and build the bento;
    writes `out` (json)."""
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
    with (
        tempfile.TemporaryDirectory() as scratch
    ):  # the card, now with the test figures and the gate
        card = Path(scratch) / CARD_FILE
        write_model_card(model_dir, card, metrics, gate, metadata["data_version"])
        registry.attach(entry, card, CARD_FILE)
    if reference is not None:
        if not reference.is_file():
            raise InputError(f"{reference}: no drift reference; run `umcl evaluate --reference`")
        registry.attach(entry, reference, REFERENCE_FILE)
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
    write_json(out, report)
    return report
