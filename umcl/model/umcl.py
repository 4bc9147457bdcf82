"""The UMCL model: image tower + text tower + prompt learner + learned logit scale.

`UMCLModel.from_config` builds a new model from the typed settings; `save_pretrained` writes a
self-contained directory (its layout: `umcl/model/folder.py`) and `from_pretrained` rebuilds the
model from it through that same `from_config`, offline and without executing pickle.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from umcl.atomic import replacing_directory, write_json
from umcl.config import ModelSettings, PromptSettings, TextTowerSettings
from umcl.errors import InputError, MissingInputError
from umcl.model.folder import (
    CALIBRATION_FILE,
    CARD_FILE,
    MODEL_FILE,
    TOKENIZER_DIR,
    TRAINING_FILE,
    WEIGHTS_FILE,
    check_layout,
    describe_model,
    read_calibration,
)
from umcl.model.pretrained import identity, normalisation, preprocessing
from umcl.model.prompts import PromptLearner
from umcl.model.tokenizer import load_tokenizer, tokenize
from umcl.model.towers import ImageTower, TextTower, load_backbone, prepare_for_training
from umcl.model_card import write_model_card

if TYPE_CHECKING:
    from umcl.calibration import Calibration

log = logging.getLogger(__name__)

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100)
# Config keys that describe where a backbone came from, not what it is (a local path).
_CONFIG_ORIGIN_KEYS = ("_name_or_path",)
# Tokenizer kwargs that loading from a local directory adds: how it was loaded, not what it is.
_TOKENIZER_LOAD_KEYS = ("is_local", "local_files_only")


class UMCLModel(nn.Module):
    def __init__(
        self,
        settings: ModelSettings,
        image: ImageTower,
        text: TextTower,
        tokenizer: PreTrainedTokenizerBase,
        label_names: list[str],
        prompt: PromptSettings,
        image_size: int,
    ):
        super().__init__()
        self.settings, self.image, self.text, self.tokenizer = settings, image, text, tokenizer
        self.max_length = settings.text.max_length
        self.prompts = PromptLearner(prompt, label_names, tokenizer, text.token_embedding)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        # Plain attributes, not parameters: the input square's side, and the per-finding
        # calibration (None: identity, i.e. plain sigmoid and 0.5 thresholds).
        self.image_size = int(image_size)
        self.calibration: Calibration | None = None
        # The checkpoint each tower started from ({"checkpoint": name, "sha256": …}), recorded in
        # umcl.json; {} for towers built from a config.
        self.origins: dict[str, dict] = {}

    # -- building, saving, loading --------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        model: ModelSettings,
        prompt: PromptSettings,
        labels: list[str],
        tokenizer: PreTrainedTokenizerBase,
        image_size: int,
    ) -> UMCLModel:
        """A new model: backbones from their configs or local checkpoints, fresh projections
        and prompts. `from_pretrained` builds through here too, then loads the weights."""
        loaded: dict = {}  # a CLIP-style checkpoint both towers name is read once
        image_backbone = load_backbone(model.image, "image", loaded)
        text_backbone = load_backbone(_with_vocabulary(model.text, tokenizer), "text", loaded)
        for part, backbone in (("image", image_backbone), ("text", text_backbone)):
            prepare_for_training(backbone.model, getattr(model, part), part)
        channels = getattr(image_backbone.model.config, "num_channels", 1)
        image = ImageTower(
            image_backbone.model,
            model.image.pooling,
            model.embed_dim,
            *normalisation(model.image, channels),
            image_size,
            image_backbone.projection,
            model.image.standardise,
        )
        _check_text_length(model.text, text_backbone.model.config)
        text = TextTower(
            text_backbone.model, model.text.pooling, model.embed_dim, text_backbone.projection
        )
        built = cls(model, image, text, tokenizer, labels, prompt, image_size)
        if model.image.pretrained is not None:
            _warn_of_size(model.image.pretrained, image_size)
        # Both towers from one CLIP-style model: it also brings the temperature they were trained at.
        scales = (image_backbone.logit_scale, text_backbone.logit_scale)
        if len(loaded) == 1 and all(scale is not None for scale in scales):
            with torch.no_grad():
                built.logit_scale.copy_(image_backbone.logit_scale.clamp(max=LOGIT_SCALE_MAX))
        built.origins = {
            part: identity(getattr(model, part).pretrained)
            for part in ("image", "text")
            if getattr(model, part).pretrained is not None
        }
        return built

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> UMCLModel:
        """A model written by `save_pretrained`, in eval mode on `device`. Offline; the weights
        come from safetensors, so no pickle is executed."""
        directory = Path(directory)
        for required in (MODEL_FILE, WEIGHTS_FILE):
            if not (directory / required).is_file():
                raise MissingInputError(
                    f"{directory}: not a UMCL model directory (needs {MODEL_FILE} and {WEIGHTS_FILE})"
                )
        description = describe_model(directory)
        check_layout(directory, description)
        model = cls.from_config(
            ModelSettings.model_validate(description["model"]),
            PromptSettings.model_validate(description["prompt"]),
            description["labels"],
            load_tokenizer(directory / TOKENIZER_DIR),
            description["image_size"],
        )
        model.load_state_dict(load_file(directory / WEIGHTS_FILE))
        model.calibration = read_calibration(directory)
        model.origins = description.get("pretrained", {})
        return model.to(device).eval()

    def save_pretrained(self, directory: str | Path, provenance: dict | None = None) -> Path:
        """Everything `from_pretrained` needs, in `directory`, which it replaces whole and
        atomically (`umcl/atomic.py`); `provenance` (what the training recorded) goes to its own
        file, apart from what defines the model."""
        with replacing_directory(directory) as folder:
            self.write_into(folder, provenance)
        return Path(directory)

    def write_into(self, folder: Path, provenance: dict | None = None) -> None:
        """The files of `save_pretrained`, in an empty `folder`: for a caller that adds files of
        its own before it puts the folder in place."""
        _portable(self.tokenizer).save_pretrained(folder / TOKENIZER_DIR)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, folder / WEIGHTS_FILE)
        write_json(folder / MODEL_FILE, self.config_dict())
        if self.calibration is not None:
            write_json(folder / CALIBRATION_FILE, self.calibration.to_dict())
        if provenance is not None:
            write_json(folder / TRAINING_FILE, provenance)
        write_model_card(folder, folder / CARD_FILE)

    def effective_settings(self) -> ModelSettings:
        """The model settings with each backbone as its full config: what rebuilds these towers
        without the checkpoint directories they may have come from."""
        towers = {}
        for name, tower in (("image", self.image), ("text", self.text)):
            settings = getattr(self.settings, name)
            update = {"pretrained": None, "config": _config_dict(tower.backbone.config)}
            if name == "image":  # resolved: a reloaded model needs no checkpoint to tell them
                update["mean"], update["std"] = tower.normalisation
            towers[name] = settings.model_copy(update=update)
        return self.settings.model_copy(update=towers)

    def config_dict(self) -> dict[str, Any]:
        """The content of `umcl.json`."""
        return {
            "model": self.effective_settings().model_dump(mode="json"),
            "prompt": self.prompts.settings.model_dump(mode="json"),
            "labels": list(self.label_names),
            "image_size": self.image_size,
        } | ({"pretrained": self.origins} if self.origins else {})

    def parameter_groups(self, weight_decay: float, lr: float | None = None) -> list[dict]:
        """AdamW groups of the trainable parameters: decay on weight matrices and kernels (≥ 2-D);
        none on biases, norms, the logit scale or the prompt contexts (pulling contexts towards
        zero moves them away from the token embeddings they start from). A backbone with
        `lr_scale` ≠ 1 gets groups of its own at `lr` × that scale, after the groups at `lr`
        (the first group's rate is the one logged)."""
        no_decay = {id(p) for p in self.prompts.parameters()}
        scaled = [
            (tower.backbone, getattr(self.settings, name).lr_scale)
            for name, tower in (("image", self.image), ("text", self.text))
            if getattr(self.settings, name).lr_scale != 1.0
        ]
        if scaled and lr is None:
            raise InputError("lr_scale needs the base learning rate: parameter_groups(wd, lr)")
        apart = {id(p) for backbone, _ in scaled for p in backbone.parameters()}
        groups = decay_groups(self, weight_decay, no_decay, apart)
        for backbone, scale in scaled:
            groups += [group | {"lr": lr * scale} for group in decay_groups(backbone, weight_decay)]
        return [g for g in groups if g["params"]] if scaled else groups

    # -- encoding -------------------------------------------------------------------------------

    @property
    def label_names(self) -> list[str]:
        return self.prompts.label_names

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = tokenize(self.tokenizer, texts, self.max_length)
        return {name: ids.to(self.device) for name, ids in tokens.items()}

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image(images)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.text(**self.tokenize(texts))

    def encode_label_sets(self, labels: torch.Tensor) -> torch.Tensor:
        """One prompt embedding per row of (n, K) labels (1 / 0 / NaN); rows must state a label."""
        embeds, mask, inverse = self.prompts.label_set_prompts(labels, self.text.token_embedding)
        return self.text(attention_mask=mask, inputs_embeds=embeds)[inverse.to(self.device)]

    def encode_findings(
        self, names: list[str] | None = None, handcrafted: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(present, absent) prompt embeddings, one row per finding (default: the label space)."""
        embeds, mask = self.prompts.finding_prompts(self.text.token_embedding, names, handcrafted)
        both = self.text(attention_mask=mask, inputs_embeds=embeds)
        return both.chunk(2)

    def forward(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_sets: torch.Tensor,
        findings: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Embeddings of whatever each modality holds (any may be empty), the finding prompts
        (when asked) and the logit scale. Training calls this through DDP."""
        out = {}
        width = self.image.projection.out_features
        out["image"] = self.encode_image(images) if len(images) else self._absent(width, self.image)
        out["text"] = (
            self.text(attention_mask=attention_mask, input_ids=input_ids)
            if len(input_ids)
            else self._absent(width, self.text)
        )
        # Class-specific contexts are reached only by the label sets that state their finding.
        out["label"] = (
            self.encode_label_sets(label_sets) + _tie(self.prompts)
            if len(label_sets)
            else self._absent(width, self.text, self.prompts)
        )
        if findings:
            out["present"], out["absent"] = self.encode_findings()
        out["logit_scale"] = self.logit_scale.exp()
        return out

    def _absent(self, width: int, *towers: nn.Module) -> torch.Tensor:
        """No rows, for a modality this micro-batch lacks, tied to the towers that would have
        encoded it (see `_tie`)."""
        return self.logit_scale.new_zeros(0, width) + _tie(*towers)


def _tie(*modules: nn.Module) -> torch.Tensor | float:
    """0, tied to one element of every trainable parameter of `modules`: added to an output,
    it makes each step reach the same parameters whatever its data (a zero gradient where the
    data did not reach them), so DDP need not search the graph for unused ones."""
    trainable = [p for m in modules for p in m.parameters() if p.requires_grad]
    return torch.stack([p.flatten()[0] for p in trainable]).sum() * 0 if trainable else 0.0


def decay_groups(
    module: nn.Module,
    weight_decay: float,
    no_decay: set[int] | frozenset[int] = frozenset(),
    skip: set[int] | frozenset[int] = frozenset(),
) -> list[dict]:
    """AdamW groups of `module`'s trainable parameters whose id is not in `skip`: decay on weight
    matrices and kernels (≥ 2-D) whose id is not in `no_decay`; none on biases, norms and
    scalars. One rule for the UMCL model (`UMCLModel.parameter_groups`) and any other tower
    trained beside it. Frozen parameters (`lock`) are left out: the optimiser never sees them."""
    decay, rest = [], []
    for parameter in module.parameters():
        if not parameter.requires_grad or id(parameter) in skip:
            continue
        wanted = parameter.ndim >= 2 and id(parameter) not in no_decay
        (decay if wanted else rest).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def finding_logits(
    images: torch.Tensor, present: torch.Tensor, absent: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """(n, F) log-odds that each finding is present: s·(u·w_present − u·w_absent), the logit of
    the 2-way softmax over the present and absent prompts. Calibration acts on these."""
    return scale * (images @ present.T - images @ absent.T)


def _with_vocabulary(
    settings: TextTowerSettings, tokenizer: PreTrainedTokenizerBase
) -> TextTowerSettings:
    """A config-built text tower takes the tokenizer's vocabulary; a config that states its own
    vocab_size (a saved model's full config) keeps it, as the weights were shaped by it."""
    if settings.pretrained is not None:
        return settings
    vocab = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    config = vocab | settings.config
    if config["vocab_size"] < len(tokenizer):
        raise InputError(
            f"model.text.config.vocab_size {config['vocab_size']} is smaller than the "
            f"tokenizer's {len(tokenizer)} tokens"
        )
    return settings.model_copy(update={"config": config})


def _check_text_length(settings: TextTowerSettings, config: PretrainedConfig) -> None:
    """A pretrained text tower has as many positions as it was trained with (CLIP: 77)."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and settings.max_length > positions:
        raise InputError(
            f"model.text.max_length is {settings.max_length}, but the text backbone has "
            f"{positions} positions: set model.text.max_length to at most {positions}"
        )


def _warn_of_size(folder: Path, image_size: int) -> None:
    """Fine-tuning at another size than the checkpoint's works (CNNs, Swin; ViT-like models
    interpolate their position embeddings) but starts further from what it learned."""
    stated = preprocessing(folder).size
    if stated is not None and stated != image_size:
        log.warning(
            "%s was trained on %d px images; this model takes %d px (preprocess.image_size)",
            folder,
            stated,
            image_size,
        )


def _config_dict(config: PretrainedConfig) -> dict:
    """A backbone's full config as AutoConfig kwargs (model_type included), without its origin.
    Keys are sorted: a config read back lists them in another order than the one it came from."""
    full = config.to_dict()
    for key in _CONFIG_ORIGIN_KEYS:
        full.pop(key, None)
    return json.loads(json.dumps(full, sort_keys=True))


def _portable(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer without the load-time kwargs it would otherwise write back, so that a
    loaded model saves the same files as the model it was saved from."""
    clean = copy.copy(tokenizer)
    clean.init_kwargs = {
        k: v for k, v in tokenizer.init_kwargs.items() if k not in _TOKENIZER_LOAD_KEYS
    }
    return clean
