"""A pretrained folder's identity: the hash of the files that define the model in it, so a moved
copy is the same checkpoint and a changed file is another. `weight_params`
(`umcl/config/weights.py`) names a folder by it, and `umcl/model/pretrained.py` reports it; it
lives here, beside the settings, because `umcl/model/pretrained.py` itself imports the settings."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from umcl.errors import MissingInputError

# Files of a pretrained folder that do not shape the model loaded from it: documentation, git and
# download-cache metadata, and weights of other frameworks that transformers does not read here.
# Everything else (config, weights in any shard, tokenizer, preprocessor config) is hashed.
_NOT_THE_MODEL = re.compile(
    r"(^|/)\.|(^|/)(readme|license|licence|notice)[^/]*$|\.md$"
    r"|(^|/)(tf_model\.h5|flax_model\.msgpack|rust_model\.ot)$|\.(onnx|tflite|h5|msgpack)$"
    r"|^(onnx|openvino|coreml)/",
    re.IGNORECASE,
)
_DIGESTS: dict[tuple, str] = {}


def checkpoint_files(folder: Path) -> list[Path]:
    """The files that define the model in a pretrained `folder`, by sorted relative path."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file()]
    relevant = [p for p in files if not _NOT_THE_MODEL.search(p.relative_to(folder).as_posix())]
    return sorted(relevant, key=lambda p: p.relative_to(folder).as_posix())


def checkpoint_sha256(folder: Path) -> str:
    """sha256 over the relative paths and bytes of `checkpoint_files(folder)`: the checkpoint's
    identity, the same wherever the folder lies. Read once per process (checkpoints are GBs):
    cached by the resolved path and every file's size and modification time."""
    folder = Path(folder).resolve()
    if not (folder / "config.json").is_file():
        raise MissingInputError(
            f"{folder}: not a local model directory (no config.json); 'pretrained' must point "
            "to a downloaded checkpoint"
        )
    files = checkpoint_files(folder)
    key = (
        str(folder),
        tuple(
            (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in files
        ),
    )
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            name = path.relative_to(folder).as_posix().encode()
            digest.update(
                len(name).to_bytes(8, "big") + name + path.stat().st_size.to_bytes(8, "big")
            )
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]
