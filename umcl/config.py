"""`params.yaml` → typed, validated settings. The only module that reads params.

Every knob of every stage lives in one pydantic model, so a typo in a key or a wrong type is
caught before any work starts, with the key path in the message (`data.sources.0.kind: …`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from umcl.errors import MissingInputError, UMCLError

SourceKind = Literal["image_text", "image_label", "text_label"]
SourceFormat = Literal[
    "demo", "mimic_cxr", "chexpert", "chestxray14", "openi", "folders", "csv", "dicom_folder"
]
UncertaintyPolicy = Literal["zeros", "ones", "ignore"]
TargetMode = Literal["identity", "exact", "soft"]
# last: the last attended token (a CLIP text tower's end-of-text token, also for prompts).
Pooling = Literal["pooler", "cls", "mean", "last"]
# A per-channel value (one per input channel of the backbone) or one value for every channel.
ChannelValues = Annotated[list[float], Field(min_length=1)] | float


class ConfigError(UMCLError, ValueError):
    """A params file that cannot be used; the message names every offending key path."""


class Strict(BaseModel):
    """Base for every settings block: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The projections a source's `views` may name (umcl/data/views.py keeps images by them): DICOM
# ViewPosition's defined terms, the other values MIMIC-CXR's metadata uses, FRONTAL and LATERAL
# (each side whatever its direction), UNKNOWN (images whose view nothing states).
VIEW_NAMES = frozenset(
    {
        "PA",
        "AP",
        "LL",
        "RL",
        "RLD",
        "LLD",
        "RLO",
        "LLO",
        "LAO",
        "RAO",
        "LPO",
        "RPO",
        "AP AXIAL",
        "PA LLD",
        "PA RLD",
        "AP LLD",
        "AP RLD",
        "SWIMMERS",
        "XTABLE LATERAL",
        "FRONTAL",
        "LATERAL",
        "UNKNOWN",
    }
)


def normalise_view(raw: object) -> str | None:
    """'pa ' → 'PA', 'xtable_lateral' → 'XTABLE LATERAL', '' → None."""
    if raw is None:
        return None
    return " ".join(re.split(r"[\s_]+", str(raw).strip().upper())).strip() or None


class CsvColumns(Strict):
    """Column names of a generic CSV source (`format: csv`)."""

    id: str  # unique record id within the source
    patient: str | None = None  # patient id; each record is its own patient when absent
    image: str | None = None  # image path, relative to the source folder
    text: list[str] = Field(default_factory=list)  # report columns, joined in this order
    labels: list[str] = Field(
        default_factory=list
    )  # label columns, mapped to the label space by name
    identifiers: list[str] = Field(
        default_factory=list
    )  # PHI columns (name, MRN) scrubbed from text
    view: str | None = None  # the image's projection (PA, AP, LATERAL, …), filtered by `views`


class RisColumns(Strict):
    """Column names of a RIS export, joined to a PACS export by accession (`format: dicom_folder`)."""

    accession: str  # the accession number the DICOM headers carry (AccessionNumber)
    text: list[str] = Field(default_factory=list)  # report columns, joined in this order
    patient: str | None = None  # patient id (e.g. the MRN); else the DICOM PatientID
    labels: list[str] = Field(default_factory=list)  # label columns, mapped by name
    identifiers: list[str] = Field(default_factory=list)  # PHI columns scrubbed from the text


class SourceSettings(Strict):
    """One raw dataset. `format` picks the reader; `kind` says which modalities it carries."""

    name: str
    kind: SourceKind
    format: SourceFormat
    path: Path
    # Required by `format: csv` (CsvColumns) and `format: dicom_folder` (RisColumns).
    columns: CsvColumns | RisColumns | None = None
    images: Path | None = None  # image folder, where the format keeps images apart (openi)
    reports: Path | None = None  # the RIS export (CSV) of a `dicom_folder` source
    # The projections kept, where the format says which an image shows (umcl/data/views.py);
    # UNKNOWN keeps images whose view nothing states.
    views: list[str] = Field(default_factory=lambda: ["PA", "AP"], min_length=1)
    patient_pattern: str | None = (
        None  # regex with one group: patient id from a file name (folders)
    )
    text_columns: list[str] = Field(default_factory=lambda: ["findings", "impression"])  # openi

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes file names (quarantine/<name>.parquet) and sample-id prefixes.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise ValueError("must be letters, digits, '_' or '-' (it names files and sample ids)")
        return name

    @field_validator("patient_pattern")
    @classmethod
    def _one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return pattern
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:  # not a ValueError: it would escape the params check
            raise ValueError(f"not a regular expression ({exc})") from None
        if groups != 1:
            raise ValueError("must be a regular expression with exactly one group")
        return pattern

    @field_validator("views")
    @classmethod
    def _named_views(cls, views: list[str]) -> list[str]:
        normalised = [normalise_view(v) or "" for v in views]
        unknown = [v for v, n in zip(views, normalised, strict=True) if n not in VIEW_NAMES]
        if unknown:
            raise ValueError(f"{unknown} are not views; use {sorted(VIEW_NAMES)}")
        return normalised

    @model_validator(mode="after")
    def _columns_for_the_format(self) -> SourceSettings:
        if self.format == "csv" and not isinstance(self.columns, CsvColumns):
            raise ValueError(
                "format 'csv' needs a 'columns' block naming the id, text and label columns"
            )
        if self.format == "dicom_folder":
            if not isinstance(self.columns, RisColumns) or self.reports is None:
                raise ValueError(
                    "format 'dicom_folder' needs 'reports' (the RIS export, a CSV) and a 'columns' "
                    "block naming its accession column and its text or label columns"
                )
            needed = self.columns.labels if self.kind == "image_label" else self.columns.text
            if self.kind == "text_label" or not needed:
                raise ValueError(
                    "format 'dicom_folder' reads images: kind image_text needs columns.text, "
                    "kind image_label needs columns.labels"
                )
        return self


class SplitSettings(Strict):
    """Deterministic patient-level split; the rest of the patients go to train."""

    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitSettings:
        if self.val + self.test >= 1:
            raise ValueError("val + test must be below 1 so that some patients train")
        return self


class DataSettings(Strict):
    sources: list[SourceSettings] = Field(min_length=1)
    split: SplitSettings = SplitSettings()

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_params(cls, raw: Any) -> Any:
        # A key in params reaches git, dvc.lock and model metadata (umcl/data/pseudonyms.py).
        if isinstance(raw, dict) and "pseudonym_key" in raw:
            raise ValueError(
                "pseudonym_key is no longer read from params: delete it and set the key in the "
                "environment (UMCL_PSEUDONYM_KEY) or in .umcl/pseudonym.key (git-ignored)"
            )
        return raw

    @model_validator(mode="after")
    def _unique_names(self) -> DataSettings:
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique; repeated: {duplicated}")
        return self


class CustomFinding(Strict):
    """A site's own finding: its label name and the words or phrases a report uses for it
    (whole words, any case; a plural `s`/`es` also matches). The labeler's negation and
    uncertainty rules apply to it as to the built-in findings."""

    # Names and phrases hold a letter and no surrounding spaces (the service strips the names
    # callers send, so "Hernia " could never be asked for; a blank phrase would match anywhere).
    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^\S(?:.*\S)?$")]
    phrases: list[Annotated[str, Field(max_length=120, pattern=r"^\S(?:.*\S)?$")]] = Field(
        min_length=1
    )

    @field_validator("name", "phrases")
    @classmethod
    def _has_a_letter(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            if not re.search(r"[^\W\d_]", text):
                raise ValueError(f"{text!r} has no letter")
        return value


class LabelSettings(Strict):
    names: list[str] | None = None  # the label space; default: the 14 CheXpert observations
    synonyms: dict[str, str] = Field(default_factory=dict)  # extra source name → label name
    uncertainty: UncertaintyPolicy = "zeros"  # how -1 (uncertain) is used in training
    # Findings added to the label space, each with the phrases that mention it in a report;
    # a built-in name listed here gets these phrases on top of its own.
    custom: list[CustomFinding] = Field(default_factory=list)


class DemoSettings(Strict):
    """Size and shape of the synthetic demo studies (`umcl demo`)."""

    # Where `umcl demo` writes, as a list so that dvc.yaml makes one demo stage per entry:
    # [] (the default) means no demo stage, no demo data. At most one folder.
    out: list[Path] = Field(default_factory=list, max_length=1)
    image_text_studies: int = Field(2600, ge=1)  # MIMIC-CXR-like image + report studies
    image_label_studies: int = Field(1600, ge=1)  # CheXpert-like image + label-table studies
    text_label_studies: int = Field(1400, ge=1)  # reports with no image
    pacs_studies: int = Field(300, ge=0)  # PACS export (DICOM tree) + RIS export of reports
    labelled_fraction: float = Field(0.5, ge=0, le=1)  # MIMIC-like studies in the chexpert csv
    max_studies_per_patient: int = Field(3, ge=1)
    image_size: int = Field(128, ge=64, le=1024)  # DICOM width in pixels (height varies)
    fault_rate: float = Field(0.006, ge=0, le=0.2)  # planted faults per record and fault kind
    no_finding_fraction: float = Field(0.35, ge=0, le=1)

    @field_validator("out", mode="before")
    @classmethod
    def _one_folder(cls, out: Any) -> Any:
        return [out] if isinstance(out, str | Path) else out

    @property
    def folder(self) -> Path | None:
        """The folder the demo is written to, or None when the demo is off."""
        return self.out[0] if self.out else None


class ValidateSettings(Strict):
    max_bad_fraction: float = Field(0.05, ge=0, le=1)  # a source worse than this stops the run
    # A longer report is quarantined (report_too_long) before de-identification reads it: time
    # and memory per record stay bounded, and a whole export's ingestion never stops on one.
    max_report_chars: int = Field(100_000, ge=1_000, le=900_000)


class DecodeSettings(Strict):
    """What ingestion accepts as an image (the service reads UMCL_MAX_PIXELS and
    UMCL_DICOM_MODALITIES instead). Params, so that DVC reruns ingestion when they change."""

    max_pixels: int = Field(
        50_000_000, ge=1
    )  # decoded pixels per image, read from its header first
    dicom_modalities: list[str] = Field(
        default_factory=lambda: ["CR", "DX"], min_length=1
    )  # ["*"]: any


class PreprocessSettings(Strict):
    image_size: int = Field(64, ge=16, le=1024)  # S of the S×S cache
    workers: int = Field(0, ge=0)  # 0 = one per core


class TowerSettings(Strict):
    """One encoder: a local checkpoint directory, or a transformers config to build from."""

    # Local directory in Hugging Face format (config.json + weights); no hub look-ups. A CLIP or
    # SigLIP folder may be named by both towers: each takes its own half
    # (docs/pretrained-weights.md).
    pretrained: Path | None = None
    # Where that folder comes from (a Hugging Face hub id, e.g. microsoft/swin-tiny-patch4-window7-224):
    # named in the message when the folder is missing. Never fetched: UMCL is offline.
    hub_id: str | None = Field(None, pattern=r"^[\w.\-]+/[\w.\-]+$")
    config: dict = Field(
        default_factory=dict
    )  # AutoConfig kwargs incl. model_type, if no pretrained
    pooling: Pooling = "mean"  # pooler: the model's own pooled output; cls: first token
    # open_clip's --lock-image / --lock-text: the backbone does not train (its projection does).
    lock: bool = False
    # With lock: the backbone's last N layers (stages, for a CNN) and what follows them train.
    unlocked_layers: int = Field(0, ge=0)
    lr_scale: float = Field(1.0, gt=0, le=1000)  # the backbone's learning rate is train.lr × this
    # Recompute activations in the backward pass: less memory for big towers, ~30 % more compute.
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> TowerSettings:
        if self.pretrained is None and "model_type" not in self.config:
            raise ValueError(
                "give either 'pretrained' (a local directory) or a 'config' with a model_type"
            )
        if self.unlocked_layers and not self.lock:
            raise ValueError("unlocked_layers only applies with lock: true")
        return self


class TextTowerSettings(TowerSettings):
    max_length: int = Field(128, ge=8)  # tokens per report; longer ones are truncated
    vocab_size: int = Field(3000, ge=100)  # WordPiece trained on the training texts (no pretrained)
    # A word enters that vocabulary only if the reports of this many distinct patients use it,
    # so a name that slipped past de-identification never becomes a token of the model.
    min_patients: int = Field(5, ge=1)


class ImageTowerSettings(TowerSettings):
    # Cache pixels in [0, 1] are standardised with these before the tower, per channel after a
    # grey image is repeated to a 3-channel stem. null: the pretrained folder's own
    # (preprocessor_config.json: image_mean, image_std), else 0.5 and 0.25.
    mean: ChannelValues | None = None
    std: ChannelValues | None = None
    # Each image's own intensities first: `percentile` stretches its 1st–99th percentile to
    # [0, 1] (clipped), so a detector that renders brighter or flatter films reaches the tower
    # alike. Part of the model: the service and `umcl.load` apply it as training did.
    standardise: Literal["none", "percentile"] = "none"

    @field_validator("std")
    @classmethod
    def _positive(cls, value: ChannelValues | None) -> ChannelValues | None:
        values = value if isinstance(value, list) else [value]
        if value is not None and min(values) <= 0:
            raise ValueError("std must be > 0")
        return value


class ModelSettings(Strict):
    embed_dim: int = Field(128, ge=2)  # shared embedding space of images, texts and prompts
    image: ImageTowerSettings
    text: TextTowerSettings


class PromptInit(Strict):
    present: str  # words whose token embeddings start the present context
    absent: str  # … and the absent context


class PromptSettings(Strict):
    mode: Literal["learned", "handcrafted"] = "learned"  # handcrafted: fixed templates (ablation)
    n_ctx: int = Field(4, ge=1, le=32)  # learned context vectors per context
    class_specific: bool = False  # one context per label (unseen names cannot be prompted)
    init: Literal["random"] | PromptInit = "random"
    # Handcrafted mode: the words that precede a finding's name.
    templates: PromptInit = PromptInit(present="there is", absent="there is no")


class LossWeights(Strict):
    image_text: float = Field(1.0, ge=0)
    image_label: float = Field(1.0, ge=0)
    text_label: float = Field(1.0, ge=0)
    # Per-label present/absent prompt classification of images and texts: trains the prompts
    # that zero-shot evaluation uses directly.
    label_prompts: float = Field(1.0, ge=0)


class LossSettings(Strict):
    target: TargetMode = "soft"  # identity = CLIP; exact = UniCL; soft = cosine of label vectors
    weights: LossWeights = LossWeights()


class ImageAugment(Strict):
    """Random changes of a training image, drawn per sample from (seed, epoch, sample)."""

    # Random resized crop of the cached square, resized back to its size: the kept share of the
    # area and the width/height ratio of the crop.
    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_ratio: tuple[float, float] = (0.85, 1.18)
    rotate_degrees: float = Field(7.0, ge=0, le=45)  # uniform in ±
    translate: float = Field(0.05, ge=0, le=0.3)  # shift in ± this share of the side
    brightness: float = Field(0.15, ge=0, le=1)  # add uniform in ± (pixels in [0, 1])
    contrast: float = Field(0.2, ge=0, le=1)  # scale around the mean by 1 ± this
    gamma: float = Field(0.2, ge=0, le=1)  # pixel ** exp(uniform in ± this)
    noise_std: float = Field(0.0, ge=0, le=0.5)  # Gaussian noise, std uniform in [0, this]
    blur_sigma: float = Field(0.0, ge=0, le=5)  # Gaussian blur, sigma uniform in [0, this] (pixels)
    # Mirror left–right with this probability. 0 by default: laterality carries meaning in a chest
    # X-ray (cardiomegaly, dextrocardia, devices).
    hflip: float = Field(0.0, ge=0, le=1)

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError(f"needs 0 < low ≤ high; got {list(value)}")
        return value


class TextAugment(Strict):
    """Sentence-level changes of a training report (findings and impression)."""

    shuffle: bool = True  # the report's sentences in a random order
    # Each sentence kept with this probability (≥ 1 kept). 1 by default: a dropped sentence can
    # be a finding's only mention, and the report would then contradict its own label vector.
    keep: float = Field(1.0, gt=0, le=1)


class AugmentSettings(Strict):
    enabled: bool = True  # off: training sees the cached images and the reports as they are
    image: ImageAugment = ImageAugment()
    text: TextAugment = TextAugment()


class TrainSettings(Strict):
    steps: int = Field(480, ge=1)  # optimiser steps
    batch_size: int = Field(64, ge=2)  # samples per process per micro-batch
    accumulate: int = Field(1, ge=1)  # micro-batches per optimiser step
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(40, ge=0)  # linear warm-up, then cosine decay to zero
    grad_clip: float = Field(1.0, gt=0)  # max global gradient norm
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    checkpoint_every: int = Field(100, ge=1)  # steps between resumable checkpoints
    log_every: int = Field(10, ge=1)  # steps between logged metrics
    workers: int = Field(0, ge=0)  # DataLoader worker processes
    device: str = "auto"  # auto: cuda if available, else cpu
    # Training processes per node, started by PyTorch's elastic launcher (torch.distributed.run):
    # auto = one per visible GPU (1 on a CPU); a number > 1 on a CPU runs that many gloo processes.
    devices: Literal["auto"] | Annotated[int, Field(ge=1, le=1024)] = "auto"
    nodes: int = Field(1, ge=1)  # machines in the run; > 1 needs `rendezvous` (docs/gpus.md)
    rendezvous: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-\[\]:]+:\d+$")  # host:port
    # Intra-op threads per process: auto = the CPUs this process may use (affinity, cgroup
    # quota) shared by the node's processes, less their loader workers; a number overrides it.
    threads: Literal["auto"] | Annotated[int, Field(ge=1, le=1024)] = "auto"
    compile: bool = False  # torch.compile the towers
    deterministic: bool = True  # deterministic kernels: bit-identical reruns (off for GPU speed)
    # Which kinds of samples train; e.g. [image_text] alone is the plain CLIP data regime.
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["image_text", "image_label", "text_label"], min_length=1
    )
    augment: AugmentSettings = AugmentSettings()  # in the data-loader workers; never in evaluation
    eval_every: int = Field(40, ge=1)  # steps between validation loss and zero-shot AUROC
    # The exported model: the checkpoint with the best validation zero-shot macro AUROC, or the last.
    select: Literal["best_val", "last"] = "best_val"


class OperatingTarget(Strict):
    """A threshold that reaches at least this sensitivity or this specificity (give one)."""

    sensitivity: float | None = Field(None, gt=0, lt=1)
    specificity: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> OperatingTarget:
        if (self.sensitivity is None) == (self.specificity is None):
            raise ValueError("give exactly one of sensitivity or specificity")
        return self


class EvaluateSettings(Strict):
    five_by_n: int = Field(200, ge=1)  # test images per class in the 5×N task (capped by the split)
    batch_size: int = Field(256, ge=1)  # images or texts per encoding batch
    probe_l2: float = Field(1e-3, ge=0)  # L2 penalty of the linear probe's logistic regression
    # Zero-shot probabilities are calibrated per finding on the validation split: platt (a·z + b
    # on the logit z), temperature (z / T), or none.
    calibration: Literal["platt", "temperature", "none"] = "platt"
    # Each finding's decision threshold, chosen on the calibrated validation probabilities:
    # youden (max sensitivity + specificity − 1), {sensitivity: 0.9} or {specificity: 0.9}.
    operating_point: Literal["youden"] | OperatingTarget = "youden"
    # Uncertain labels of the validation and test splits, which every score, the calibration and
    # the thresholds are measured against: ignore (a hedge is not ground truth) | zeros | ones.
    # Training reads them per `labels.uncertainty`.
    uncertainty: UncertaintyPolicy = "ignore"


class GateSettings(Strict):
    """What a candidate must reach before it may replace the champion. A threshold
    of null switches that minimum off (e.g. Recall@5 for a site without image–report pairs); the
    no-regression rule covers every metric both candidate and champion have."""

    min_zero_shot_auroc: float | None = Field(0.80, ge=0, le=1)  # macro, the model's own prompts
    min_recall_at_5: float | None = Field(0.20, ge=0, le=1)  # image→text on test pairs
    max_regression: float = Field(0.01, ge=0)  # allowed drop below the champion, per gated metric
    # A minimum whose metric the test split cannot measure (Recall@5 of a site without
    # image–report pairs): fail the candidate, or skip the check (recorded in gate.json). The
    # zero-shot AUROC's minimum is never skipped.
    unmeasurable: Literal["fail", "skip"] = "fail"


class CardSettings(Strict):
    """What the model card (`README.md` in the model folder, the store and the bento) declares
    beyond what training measured: the weights' licence and each source's public release."""

    # The weights' licence as the Hugging Face Hub names licences (apache-2.0, cc-by-4.0, …), or
    # "other" with `license_name` (a data use agreement: MIMIC-CXR's credentialed licence), or
    # "unknown". A model takes the terms of the data it learned from.
    license: str = Field("unknown", min_length=1)
    license_name: str | None = None
    # Source name → the public dataset and release it is, e.g. {mimic: MIMIC-CXR-JPG 2.1.0}.
    datasets: dict[str, str] = {}

    @model_validator(mode="after")
    def _named_when_other(self) -> CardSettings:
        if self.license == "other" and not self.license_name:
            raise ValueError('license "other" needs license_name (the licence\'s name)')
        return self


class AdaptSettings(Strict):
    """`umcl adapt` and the `adapt` stage: a model fitted to a site's labelled sample
    (docs/new-site.md)."""

    # The sample: a CSV with `path` (image files, relative to it), one column per finding (1, 0,
    # -1 or blank) and optionally `patient`. null: the adapt stage adapts nothing.
    labels: Path | None = None
    min_per_class: int = Field(5, ge=2)  # a finding is refitted only with this many of each class
    bootstrap: int = Field(200, ge=0)  # resamples of each threshold's interval; 0: none
    prompt_tuning: bool = False  # also tune the prompt contexts (towers frozen)
    prompt_steps: list[Annotated[int, Field(ge=1, le=5000)]] = Field(
        default_factory=lambda: [25, 50, 100, 200], min_length=1
    )  # the step counts cross-validation chooses among (beside 0: the prompts as they are)
    prompt_lr: float = Field(2e-3, gt=0)
    folds: int = Field(5, ge=2)  # cross-validation folds (by patient) for the step count
    max_images: int = Field(5000, ge=2)  # rows of the sample, checked before any image is read


class SweepCandidate(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")  # also names its DVC experiment
    overrides: dict[str, Any]  # dotted params keys → values, as `dvc exp run -S key=value`


class SweepSettings(Strict):
    """Candidate configurations the sweep flow trains as DVC experiments; the best by the gate's
    primary metric goes on to the gate and packaging."""

    parallel: int = Field(1, ge=1)  # experiments run at once (each in its own temporary copy)
    candidates: list[SweepCandidate] = []

    @field_validator("candidates")
    @classmethod
    def _names_unique(cls, candidates: list[SweepCandidate]) -> list[SweepCandidate]:
        names = [c.name for c in candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names repeat: {names}")
        return candidates


class MonitorSettings(Strict):
    """What the service records of the images it classifies, and how `umcl drift` judges a window
    of those records against the reference that travels with the model (docs/monitoring.md)."""

    enabled: bool = True  # the service records (UMCL_MONITOR=off switches it off too)
    store: Path = Path("data/monitor")  # date-partitioned Parquet; UMCL_MONITOR_DIR overrides it
    retention_days: int = Field(90, ge=1)  # older day folders are deleted by the service
    flush_records: int = Field(256, ge=1)  # a batch is written when it holds this many records
    flush_seconds: float = Field(5.0, gt=0)  # ... or when its oldest record is this old
    # Test images whose embeddings are stored with the model as its reference; 0 keeps only
    # summary statistics (mean and principal axes: only a moved mean is seen, docs/monitoring.md).
    reference_size: int = Field(1000, ge=0)
    min_images: int = Field(100, ge=2)  # a window with fewer classified images gets no verdict
    max_images: int = Field(2000, ge=2)  # a larger window's embeddings are sampled down to this
    alpha: float = Field(0.01, gt=0, lt=1)  # false-alarm level of each drift test
    permutations: int = Field(500, ge=20)  # of the embedding test's permutation p-value
    # Principal axes of the summary statistics: more axes see more kinds of shift but also the
    # small differences between any two samples of one collection (benchmarks/RESULTS.md).
    summary_axes: int = Field(8, ge=1)
    max_failure_rate: float = Field(0.05, ge=0, le=1)  # refused uploads per upload in a window


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


# The params that shape the weights, and only those (no data paths, no keys): what a checkpoint
# must match to be resumed, what the exported model records, and what the train stage of dvc.yaml
# must list (tests/test_dvc_deps.py). The input size is the preprocess cache's, which the model
# also records (`umcl.json: image_size`); how uncertain validation labels are read decides which
# step `best_val` exports.
WEIGHT_PARAMS = (
    "seed",
    "labels",
    "model",
    "prompt",
    "loss",
    "train",
    "preprocess.image_size",
    "evaluate.uncertainty",
)
# Knobs that change how a stage runs (processes, how often it saves or logs), never what it
# writes: no stage lists them in dvc.yaml, and a resumed run may change them.
RUN_ONLY = frozenset(
    {
        "train.checkpoint_every",
        "train.log_every",
        "train.workers",
        "train.threads",
        "train.rendezvous",
        "preprocess.workers",
    }
)


def weight_params(settings: Settings) -> dict:
    """The values of WEIGHT_PARAMS (nested as in params.yaml), without the RUN_ONLY knobs; only
    those keys are read."""
    params: dict = {}
    for key in WEIGHT_PARAMS:
        *parents, leaf = key.split(".")
        value: Any = settings
        target = params
        for part in parents:
            value, target = getattr(value, part), target.setdefault(part, {})
        value = getattr(value, leaf)
        if isinstance(value, BaseModel):
            run_only = {k.removeprefix(f"{key}.") for k in RUN_ONLY if k.startswith(f"{key}.")}
            value = value.model_dump(mode="json", exclude=run_only or None)
        target[leaf] = value
    for tower in ("image", "text"):  # a pretrained folder counts by its content, not its path
        settings_tower = getattr(settings.model, tower) if settings.model else None
        if settings_tower is not None and settings_tower.pretrained is not None:
            digest = checkpoint_sha256(settings_tower.pretrained)
            params["model"][tower]["pretrained"] = f"sha256:{digest}"
        if settings_tower is not None:  # where to download it names it; the hash is what counts
            params["model"][tower].pop("hub_id", None)
    return params


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
