"""The settings of the model side: how it is built (towers, prompts), trained (loss,
augmentation, training), judged (evaluation, gate), described (card), fitted to a site (adapt),
searched for (sweep) and watched in service (monitor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from umcl.config.base import SourceKind, Strict, UncertaintyPolicy

TargetMode = Literal["identity", "exact", "soft"]
# last: the last attended token (a CLIP text tower's end-of-text token, also for prompts).
Pooling = Literal["pooler", "cls", "mean", "last"]
# A per-channel value (one per input channel of the backbone) or one value for every channel.
ChannelValues = Annotated[list[float], Field(min_length=1)] | float


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
    datasets: dict[str, str] = {}  # noqa: RUF012 (a pydantic field, copied per instance)

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
    candidates: list[SweepCandidate] = []  # noqa: RUF012 (a pydantic field, copied per instance)

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
