"""Params files in and out: read one (a key given twice is refused), lay a preset over it
(configs/gpu.yaml) and check the result, or write a preset as `dvc exp run -S` settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from umcl.config.base import ConfigError
from umcl.config.settings import Settings, parse_settings


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: otherwise
    the last value silently wins (`lr: 1e-3` … `lr: 50.0`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` is YAML's way to override, not a duplicate
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # the base loader reports unhashable keys itself
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (lines {seen[key]} and {line})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_params(path: str | Path) -> dict:
    """A params file's mapping, unvalidated (a key given twice is refused)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def load_settings(path: str | Path = "params.yaml", overlay: str | Path | None = None) -> Settings:
    """`path`'s settings; with `overlay`, a preset's keys (configs/gpu.yaml) laid over them."""
    raw = read_params(path)
    if overlay is None:
        return parse_settings(raw, origin=str(path))
    return parse_settings(laid_over(raw, read_params(overlay)), origin=f"{path} + {overlay}")


# A backbone's transformers config is one thing: an overlay replaces it whole (a Swin config
# must not keep a ConvNeXt's hidden_sizes).
WHOLE = frozenset({"model.image.config", "model.text.config"})


def laid_over(base: dict, overlay: dict, prefix: str = "") -> dict:
    """`base` with `overlay`'s keys replacing its own; mappings merge key by key, except the
    WHOLE ones; anything else (a list of sources, a value) is replaced whole."""
    merged = dict(base)
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        both_mappings = isinstance(value, dict) and isinstance(base.get(key), dict)
        if both_mappings and name not in WHOLE:
            merged[key] = laid_over(base[key], value, f"{name}.")
        else:
            merged[key] = value
    return merged


def dotted(overlay: dict, prefix: str = "") -> tuple[dict[str, object], list[str]]:
    """An overlay as `dvc exp run -S` settings: (key → value, one per leaf or WHOLE block; the
    WHOLE blocks it sets, which must be emptied first). A list of mappings (data.sources,
    labels.custom) cannot be passed that way: ConfigError."""
    settings: dict[str, object] = {}
    replaced: list[str] = []
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):  # DVC's -S grammar
            raise ConfigError(f"{name}: a preset can set plain keys only; edit params.yaml")
        if isinstance(value, dict) and value and name not in WHOLE:
            inner, emptied = dotted(value, f"{name}.")
            settings |= inner
            replaced += emptied
            continue
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            raise ConfigError(f"{name}: a preset cannot set a list of mappings; edit params.yaml")
        settings[name] = value
        if name in WHOLE:
            replaced.append(name)
    return settings, replaced
