"""The whole of `params.yaml` as one `Settings`, and its check: `parse_settings` reports every
problem with its key path, including label names that map to no label."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError, model_validator

from umcl.config.base import ConfigError, Strict
from umcl.config.data import (
    DataSettings,
    DecodeSettings,
    DemoSettings,
    LabelSettings,
    PreprocessSettings,
    ValidateSettings,
)
from umcl.config.model import (
    AdaptSettings,
    CardSettings,
    EvaluateSettings,
    GateSettings,
    LossSettings,
    ModelSettings,
    MonitorSettings,
    PromptSettings,
    SweepSettings,
    TrainSettings,
)


class Settings(Strict):
    seed: int = 42
    labels: LabelSettings = LabelSettings()
    demo: DemoSettings = DemoSettings()
    data: DataSettings
    validate_: ValidateSettings = Field(ValidateSettings(), alias="validate")
    decode: DecodeSettings = DecodeSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    model: ModelSettings | None = None  # required by train
    prompt: PromptSettings = PromptSettings()
    loss: LossSettings = LossSettings()
    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    gate: GateSettings = GateSettings()
    sweep: SweepSettings = SweepSettings()
    monitor: MonitorSettings = MonitorSettings()
    adapt: AdaptSettings = AdaptSettings()
    card: CardSettings = CardSettings()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _demo_only_when_read(self) -> Settings:
        # The demo stage exists while demo.out names a folder; nobody wants it generated unread.
        folder = self.demo.folder
        read = [p for s in self.data.sources for p in (s.path, s.reports, s.images) if p]
        if folder is not None and not any(
            Path(p).resolve().is_relative_to(folder.resolve()) for p in read
        ):
            raise ValueError(
                f"demo.out names {folder}, but no source in data.sources reads from it: "
                "set demo.out: [] so that no demo data is generated"
            )
        return self


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see params.yaml in the repository)"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message}; got {error['input']!r}"
    return f"  {where}: {message}"


def _unknown_label_names(settings: Settings) -> list[str]:
    """Key paths of label names that map to no label: they would be accepted and stay empty."""
    from umcl.labels import CHEXPERT_LABELS, LabelSpace, normalise

    base = settings.labels.names or list(CHEXPERT_LABELS)
    names = base + [c.name for c in settings.labels.custom if c.name not in base]
    problems = [
        f"  labels.synonyms.{source_name}: {target!r} is not a label (labels: {names})"
        for source_name, target in settings.labels.synonyms.items()
        if target not in names
    ]
    keys = [normalise(k) for k in settings.labels.synonyms]
    problems += [
        f"  labels.synonyms.{k}: the same name as another synonym once case, spaces, '_' and '-' are ignored"
        for k in settings.labels.synonyms
        if keys.count(normalise(k)) > 1
    ]
    if problems:
        return problems
    space = LabelSpace.from_settings(settings.labels)
    for i, source in enumerate(settings.data.sources):
        for j, column in enumerate(source.columns.labels if source.columns else []):
            if space.resolve(column) is None:
                problems.append(
                    f"  data.sources.{i}.columns.labels.{j}: {column!r} maps to no label; name it "
                    f"as a label or add it to labels.synonyms (e.g. {{{column}: ...}})"
                )
    repeated = sorted(
        {normalise(n) for n in names if [normalise(m) for m in names].count(normalise(n)) > 1}
    )
    problems += [f"  labels.names + labels.custom: {n!r} appears more than once" for n in repeated]
    return problems


def parse_settings(raw: dict, origin: str = "params") -> Settings:
    """Validate a params mapping; every problem is reported with its key path."""
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError(f"{origin} is not valid:\n" + "\n".join(lines)) from None
    problems = _unknown_label_names(settings)
    if problems:
        raise ConfigError(f"{origin} is not valid:\n" + "\n".join(problems))
    return settings
