"""`python -m tests.params_read OUT.json umcl ARGS…`: run one `umcl` command and write the params
keys it read (dotted, as in params.yaml) to OUT.json — what `tests/test_dvc_deps.py` compares
with the stage's `params` in `dvc.yaml`.

Every settings block that `load_settings` returns is registered under its key; reading a field
records the key, unless the field is itself a block (its own fields then record themselves); a
block dumped whole (`model_dump`) records the block's key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import umcl.config as config


def track() -> set[str]:
    """Patch the settings classes so that reads are recorded; the set fills as the command runs."""
    keys: dict[int, str] = {}  # id(block) → its dotted key
    read: set[str] = set()

    def register(block: BaseModel, key: str) -> None:
        keys[id(block)] = key
        for name, info in type(block).model_fields.items():
            value = block.__dict__[name]
            child = f"{key}.{info.alias or name}" if key else info.alias or name
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, BaseModel):  # a list of blocks (data.sources) shares its key
                    register(item, child)

    def get(self: BaseModel, name: str) -> Any:
        value = object.__getattribute__(self, name)
        key = keys.get(id(self))
        fields = type(self).model_fields
        if key is not None and name in fields:
            items = value if isinstance(value, list) else [value]
            if not any(isinstance(i, BaseModel) for i in items):
                alias = fields[name].alias or name
                read.add(f"{key}.{alias}" if key else alias)
        return value

    dump, copy, load = BaseModel.model_dump, BaseModel.model_copy, config.load_settings

    def dumped(self: BaseModel, *args: Any, **kwargs: Any) -> Any:
        if id(self) in keys:
            read.add(keys[id(self)] or "<all params>")
        return dump(self, *args, **kwargs)

    def copied(self: BaseModel, *args: Any, **kwargs: Any) -> Any:
        result = copy(self, *args, **kwargs)
        if id(self) in keys:
            register(result, keys[id(self)])
        return result

    def loaded(*args: Any, **kwargs: Any) -> config.Settings:
        settings = load(*args, **kwargs)
        register(settings, "")
        return settings

    config.Strict.__getattribute__ = get  # type: ignore[method-assign]
    config.Strict.model_dump = dumped  # type: ignore[method-assign]
    config.Strict.model_copy = copied  # type: ignore[method-assign]
    config.load_settings = loaded
    return read


def main() -> int:
    out, command = Path(sys.argv[1]), sys.argv[2:]
    assert command[0] == "umcl", command
    read = track()
    from umcl.cli import main as umcl

    code = umcl(command[1:])
    out.write_text(json.dumps(sorted(read)))
    return code


if __name__ == "__main__":
    sys.exit(main())
