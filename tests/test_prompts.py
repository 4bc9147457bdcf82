"""The continuous prompt learner: sequence layout, gradients, handcrafted mode, new names."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import LABELS, tiny_model

NAN = float("nan")
M = 3


def phrase_length(model, name: str) -> int:
    return len(model.tokenizer(name.lower(), add_special_tokens=False)["input_ids"])


def test_label_set_prompt_layout_and_shapes() -> None:
    model = tiny_model({"n_ctx": M})
    labels = torch.tensor([[NAN, 1, 0, NAN], [NAN, 1, 1, NAN], [NAN, 1, 0, NAN]])
    embeds, mask, inverse = model.prompts.label_set_prompts(labels, model.text.token_embedding)
    assert embeds.shape[0] == 2 and inverse.tolist() == [
        inverse[0],
        inverse[1],
        inverse[0],
    ]  # shared
    lengths = mask.sum(1)[inverse].tolist()
    cardio, effusion = phrase_length(model, LABELS[1]), phrase_length(model, LABELS[2])
    assert lengths[0] == 1 + M + cardio + M + effusion + 1  # [CLS] present… absent… [SEP]
    assert lengths[1] == 1 + M + cardio + effusion + 1  # one present context for both
    assert embeds.shape[-1] == model.text.token_embedding.embedding_dim
    assert model.encode_label_sets(labels).shape == (3, 16)


def test_class_specific_contexts_precede_each_finding() -> None:
    model = tiny_model({"n_ctx": M, "class_specific": True})
    assert model.prompts.context.shape == (2, len(LABELS), M, 16)
    labels = torch.tensor([[NAN, 1, 1, NAN]])
    _, mask, _ = model.prompts.label_set_prompts(labels, model.text.token_embedding)
    assert (
        mask.sum()
        == 1 + 2 * M + phrase_length(model, LABELS[1]) + phrase_length(model, LABELS[2]) + 1
    )


def test_context_receives_gradient() -> None:
    model = tiny_model({"n_ctx": M})
    present, absent = model.encode_findings()
    assert present.shape == absent.shape == (len(LABELS), 16)
    (present - absent).pow(2).sum().backward()
    assert model.prompts.context.grad is not None
    assert (
        model.prompts.context.grad[0].abs().sum() > 0
        and model.prompts.context.grad[1].abs().sum() > 0
    )


def test_handcrafted_mode_has_no_context_parameters() -> None:
    model = tiny_model({"mode": "handcrafted"})
    assert list(model.prompts.parameters()) == []
    _embeds, mask = model.prompts.finding_prompts(model.text.token_embedding)
    template = len(model.tokenizer("there is", add_special_tokens=False)["input_ids"])
    assert mask[0].sum() == 1 + template + phrase_length(model, LABELS[0]) + 1
    with pytest.raises(ValueError, match="no learned context"):
        model.prompts.finding_prompts(model.text.token_embedding, handcrafted=False)


def test_learned_model_can_also_be_prompted_with_templates() -> None:
    model = tiny_model({"n_ctx": M})
    learned, _ = model.encode_findings()
    handcrafted, _ = model.encode_findings(handcrafted=True)
    assert not torch.allclose(learned, handcrafted)


def test_unseen_finding_names_use_the_shared_context() -> None:
    model = tiny_model({"n_ctx": M})
    present, _absent = model.encode_findings(["Pneumothorax", "Cardiomegaly"])
    assert present.shape == (2, 16)
    known, _ = model.encode_findings()
    assert torch.allclose(present[1], known[1], atol=1e-6)  # a known name is prompted as before
    specific = tiny_model({"n_ctx": M, "class_specific": True})
    with pytest.raises(ValueError, match="Pneumothorax"):
        specific.encode_findings(["Pneumothorax"])


def test_context_initialised_from_words() -> None:
    model = tiny_model({"n_ctx": M, "init": {"present": "there is", "absent": "there is no"}})
    ids = model.tokenizer("there is no", add_special_tokens=False)["input_ids"]
    expected = model.text.token_embedding.weight[ids]
    assert torch.allclose(model.prompts.context[1, 0, : len(ids)], expected)
    with pytest.raises(ValueError, match="n_ctx"):
        tiny_model({"n_ctx": 1, "init": {"present": "there is", "absent": "no"}})
