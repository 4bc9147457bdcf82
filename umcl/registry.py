"""The model registry: packaged models in BentoML's model store, one of them the champion.

Every packaged model is `umcl:<version>` in the store (`$BENTOML_HOME`, default ~/bentoml; the
version is the hash of its weights and calibration: what decides its answers),
holding the files of a `models/candidate` directory and metadata — metrics, params, git
revision, data version. Labels say which model is the champion and when each was promoted, so
the marking travels with the model into a bento. Rollback returns to the most recent earlier
champion that has not itself been rolled back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from umcl.atomic import write_text, write_with
from umcl.errors import UMCLError
from umcl.model.folder import CALIBRATION_FILE, MODEL_FILE, WEIGHTS_FILE

MODEL_NAME = "umcl"
CHAMPION, PROMOTED_AT, ROLLED_BACK = "champion", "promoted_at", "rolled_back"
VERSION_LENGTH = 16


class RegistryError(UMCLError, ValueError):
    """A registry operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Entry:
    tag: str
    path: Path
    created: datetime
    labels: dict[str, str]
    metadata: dict[str, Any]

    @property
    def champion(self) -> bool:
        return self.labels.get(CHAMPION) == "true"


def version_tag(digest: str) -> str:
    """The store's tag of a model with this `model_digest`: the version is the model's hash, so
    the same training gives the same tag on any machine."""
    return f"{MODEL_NAME}:{digest[:VERSION_LENGTH]}"


def model_digest(model_dir: Path) -> str:
    """sha256 of the weights and the calibration: the same model is never stored twice, and a
    model adapted to a site (same weights, refitted thresholds, `umcl adapt`) is another model."""
    digest = hashlib.sha256()
    with (Path(model_dir) / WEIGHTS_FILE).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    calibration = Path(model_dir) / CALIBRATION_FILE
    if calibration.is_file():
        digest.update(calibration.read_bytes())
    return digest.hexdigest()


def _entry(model) -> Entry:
    return Entry(
        tag=str(model.tag),
        path=Path(model.path),
        created=model.info.creation_time,
        labels=dict(model.info.labels),
        metadata=dict(model.info.metadata),
    )


def _metadata_safe(value: Any) -> Any:
    """BentoML metadata holds no None: drop null entries, keep the structure."""
    if isinstance(value, dict):
        return {str(k): _metadata_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_metadata_safe(v) for v in value if v is not None]
    return value


def entries() -> list[Entry]:
    """Every UMCL model in the store, newest first."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        found = [_entry(m) for m in bentoml.models.list(MODEL_NAME)]
    except NotFound:  # an empty store
        return []
    return sorted(found, key=lambda e: e.created, reverse=True)


def get(tag: str) -> Entry:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return _entry(bentoml.models.get(tag))
    except NotFound:
        raise RegistryError(f"no model {tag} in the store ({store_path()})") from None


def bentoml_home() -> Path:
    """BentoML's home ($BENTOML_HOME, default ~/bentoml): the model store, and the monitor's
    records where no project names a folder for them."""
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))


def store_path() -> Path:
    return bentoml_home() / "models"


def champion() -> Entry | None:
    marked = [e for e in entries() if e.champion]
    if len(marked) > 1:  # only a hand-edited store gets here; the latest promotion wins
        marked.sort(key=lambda e: e.labels.get(PROMOTED_AT, ""), reverse=True)
    return marked[0] if marked else None


def add(model_dir: Path, metadata: dict[str, Any]) -> tuple[Entry, bool]:
    """Store a model directory; returns (entry, created). A model whose weights are already in
    the store is not stored again: its entry comes back with created=False."""
    import bentoml

    model_dir = Path(model_dir)
    for required in (MODEL_FILE, WEIGHTS_FILE):
        if not (model_dir / required).is_file():
            raise RegistryError(f"{model_dir}: not a UMCL model directory (no {required})")
    digest = model_digest(model_dir)
    tag = version_tag(digest)
    for existing in entries():
        known = existing.metadata.get("model_sha256")
        if known is None and "weights_sha256" in existing.metadata:  # stored before calibration
            known = model_digest(existing.path)  # entered the version: hash its files again
        if existing.tag == tag or known == digest:
            return existing, False
    labels = {CHAMPION: "false", "framework": "pytorch", "project": "umcl"}
    with bentoml.models.create(
        tag, labels=labels, metadata=_metadata_safe(metadata | {"model_sha256": digest})
    ) as stored:
        shutil.copytree(model_dir, stored.path, dirs_exist_ok=True)
    return get(str(stored.tag)), True


def attach(entry: Entry, source: Path, name: str) -> None:
    """Put `source` into a stored model as `name` (atomically; replacing an older copy): the
    drift reference, which evaluation writes after the weights were stored, and the model card
    with the gate's verdict."""
    write_with(entry.path / name, lambda temporary: shutil.copyfile(source, temporary))


def _relabel(entry: Entry, changes: dict[str, str | None]) -> None:
    # BentoML has no public call to change a stored model's labels; they live in its model.yaml,
    # which the store re-reads on every lookup.
    info_file = entry.path / "model.yaml"
    info = yaml.safe_load(info_file.read_text())
    labels = dict(info.get("labels") or {})
    for key, value in changes.items():
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    info["labels"] = labels
    write_text(info_file, yaml.safe_dump(info, sort_keys=False))


def promote(tag: str) -> Entry:
    """Make `tag` the champion (the previous one stays in the store for rollback)."""
    target = get(tag)
    if target.champion:
        return target  # already: its promotion time (rollback's order) stays
    for entry in entries():
        if entry.champion and entry.tag != target.tag:
            _relabel(entry, {CHAMPION: "false"})
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    _relabel(target, {CHAMPION: "true", PROMOTED_AT: now, ROLLED_BACK: None})
    return get(target.tag)


def rollback() -> tuple[Entry, Entry]:
    """Demote the champion and restore the one promoted before it: (restored, demoted)."""
    current = champion()
    if current is None:
        raise RegistryError("there is no champion to roll back")
    since = current.labels.get(PROMOTED_AT, "")
    earlier = [
        e
        for e in entries()
        if e.tag != current.tag
        and e.labels.get(PROMOTED_AT, "") not in ("", None)
        and e.labels[PROMOTED_AT] < since
        and e.labels.get(ROLLED_BACK) != "true"
    ]
    if not earlier:
        raise RegistryError(
            f"{current.tag} is the first champion: there is no earlier one to roll back to"
        )
    previous = max(earlier, key=lambda e: e.labels[PROMOTED_AT])
    _relabel(current, {CHAMPION: "false", ROLLED_BACK: "true"})
    _relabel(previous, {CHAMPION: "true"})
    return get(previous.tag), get(current.tag)
