"""`params.yaml` → typed, validated settings. The only package that reads params.

Every knob of every stage lives in one pydantic model, so a typo in a key or a wrong type is
caught before any work starts, with the key path in the message (`data.sources.0.kind: …`).

One job per module: `base.py` (the error, the strict base, shared value types), `data.py` (the
data side: sources to the preprocessed cache), `model.py` (the model side: towers to monitoring),
`settings.py` (the whole `Settings` and its check), `params.py` (reading params files and
presets), `weights.py` (the params that shape the weights) and `pretrained_id.py` (a pretrained
folder's content hash). Import from `umcl.config` itself, never from those modules: this file
re-exports every public name, so the split stays an inner detail, and what `tests/params_read.py`
patches here (`load_settings`) is what the stages call.
"""

from __future__ import annotations

from umcl.config.base import ConfigError, SourceKind, Strict, UncertaintyPolicy
from umcl.config.data import (
    VIEW_NAMES,
    CsvColumns,
    CustomFinding,
    DataSettings,
    DecodeSettings,
    DemoSettings,
    LabelSettings,
    PreprocessSettings,
    RisColumns,
    SourceFormat,
    SourceSettings,
    SplitSettings,
    ValidateSettings,
    normalise_view,
)
from umcl.config.model import (
    AdaptSettings,
    AugmentSettings,
    CardSettings,
    ChannelValues,
    EvaluateSettings,
    GateSettings,
    ImageAugment,
    ImageTowerSettings,
    LossSettings,
    LossWeights,
    ModelSettings,
    MonitorSettings,
    OperatingTarget,
    Pooling,
    PromptInit,
    PromptSettings,
    SweepCandidate,
    SweepSettings,
    TargetMode,
    TextAugment,
    TextTowerSettings,
    TowerSettings,
    TrainSettings,
)
from umcl.config.params import WHOLE, dotted, laid_over, load_settings, read_params
from umcl.config.pretrained_id import checkpoint_files, checkpoint_sha256
from umcl.config.settings import Settings, parse_settings
from umcl.config.weights import RUN_ONLY, WEIGHT_PARAMS, weight_params

__all__ = [
    "RUN_ONLY",
    "VIEW_NAMES",
    "WEIGHT_PARAMS",
    "WHOLE",
    "AdaptSettings",
    "AugmentSettings",
    "CardSettings",
    "ChannelValues",
    "ConfigError",
    "CsvColumns",
    "CustomFinding",
    "DataSettings",
    "DecodeSettings",
    "DemoSettings",
    "EvaluateSettings",
    "GateSettings",
    "ImageAugment",
    "ImageTowerSettings",
    "LabelSettings",
    "LossSettings",
    "LossWeights",
    "ModelSettings",
    "MonitorSettings",
    "OperatingTarget",
    "Pooling",
    "PreprocessSettings",
    "PromptInit",
    "PromptSettings",
    "RisColumns",
    "Settings",
    "SourceFormat",
    "SourceKind",
    "SourceSettings",
    "SplitSettings",
    "Strict",
    "SweepCandidate",
    "SweepSettings",
    "TargetMode",
    "TextAugment",
    "TextTowerSettings",
    "TowerSettings",
    "TrainSettings",
    "UncertaintyPolicy",
    "ValidateSettings",
    "checkpoint_files",
    "checkpoint_sha256",
    "dotted",
    "laid_over",
    "load_settings",
    "normalise_view",
    "parse_settings",
    "read_params",
    "weight_params",
]
