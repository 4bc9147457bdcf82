"""The image–text–label loss: targets, the CLIP special case, and modality masking."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.tiny import cpu_step_loss, tiny_batch, tiny_model
from umcl.model.loss import soft_contrastive, targets

NAN = float("nan")


def unit(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_identity_targets_give_the_clip_loss() -> None:
    a, b = unit(6, seed=1), unit(6, seed=2)
    labels = torch.tensor([[1.0, 0.0]] * 6)  # shared labels must not matter under identity
    scale = torch.tensor(1 / 0.07)
    logits = scale * a @ b.T
    clip = (
        F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))
    ) / 2
    ours = soft_contrastive(a, b, targets(labels, labels, "identity"), scale)
    assert torch.allclose(ours, clip, atol=1e-6)


def test_exact_targets_for_repeated_label_vectors() -> None:
    labels = torch.tensor(
        [[1, 0, 0], [1, 0, 0], [0, 1, 0], [NAN, NAN, NAN], [0, 1, NAN], [0, 0, 0]],
        dtype=torch.float,
    )
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 1, 0],  # unknown counts as not mentioned: [0,1,NaN] == [0,1,0]
            [0, 0, 0, 1, 0, 0],  # no labels: only its own pair
            [0, 0, 1, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.float,
    )
    assert torch.equal(targets(labels, labels, "exact"), expected)


def test_soft_targets_are_label_cosines_with_the_true_pair_at_one() -> None:
    labels = torch.tensor(
        [[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=torch.float
    )
    t = targets(labels, labels, "soft")
    assert t[0, 1] == pytest.approx(1 / math.sqrt(2))
    assert t[0, 2] == 0 and t[1, 2] == 0
    assert t[3, 4] == 1  # two all-negative studies say the same thing
    assert t[0, 3] == 0
    assert torch.equal(t.diagonal(), torch.ones(5))
    assert torch.allclose(t, t.T)


def test_same_marks_true_pairs_of_a_rectangular_block() -> None:
    a = torch.tensor([[1, 0], [0, 1]], dtype=torch.float)
    b = torch.tensor([[0, 1], [0, 1], [1, 0]], dtype=torch.float)
    same = torch.tensor([[False, False, True], [True, False, False]])
    t = targets(a, b, "exact", same)
    assert torch.equal(t, torch.tensor([[0, 0, 1], [1, 1, 0]], dtype=torch.float))


def test_a_row_without_a_positive_is_still_a_negative_column() -> None:
    a, b = unit(3, seed=3), unit(2, seed=4)
    t = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # a[1] matches nothing in b
    logits = 10.0 * a @ b.T
    a_to_b = F.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]))  # a[1] has no row term…
    b_to_a = F.cross_entropy(logits.T, torch.tensor([0, 2]))  # …but competes as a negative
    assert torch.allclose(soft_contrastive(a, b, t, torch.tensor(10.0)), (a_to_b + b_to_a) / 2)


@pytest.mark.parametrize("target", ["identity", "exact", "soft"])
def test_absent_modalities_get_no_gradient(target: str) -> None:
    model = tiny_model()
    batch = tiny_batch(8)
    images = batch["images"].clone().requires_grad_(True)
    batch["images"] = images
    loss, parts = cpu_step_loss(model, batch, target)
    loss.backward()
    # The batch holds only the samples that have an image: each of them gets a gradient.
    assert len(images) == int(batch["present"]["image"].sum()) < len(batch["sample_ids"])
    assert (images.grad.abs().flatten(1).sum(1) > 0).all()
    assert set(parts) == {"image_text", "image_label", "text_label", "label_prompts"}


def test_a_batch_without_images_leaves_the_image_tower_unchanged() -> None:
    model = tiny_model()
    batch = tiny_batch(8)
    batch["images"] = batch["images"][:0]
    batch["present"]["image"][:] = False
    loss, parts = cpu_step_loss(model, batch, "soft")
    loss.backward()
    assert parts["image_text"] == 0 and parts["image_label"] == 0
    # Reached with a zero gradient, so that every step reaches the same parameters (DDP then
    # needs no search for unused ones).
    image = [p for p in model.image.parameters() if p.requires_grad]
    assert image and all(p.grad is not None and not p.grad.any() for p in image)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text.parameters())


@pytest.mark.parametrize("target", ["identity", "exact", "soft"])
def test_masked_rows_and_columns_equal_the_pairs_taken_out(target: str) -> None:
    """The loss masks the samples that lack a modality instead of indexing them out (indexing
    waits for the device): values and gradients equal those of the submatrix."""
    g = torch.Generator().manual_seed(4)
    a = F.normalize(torch.randn(10, 8, generator=g), dim=1).requires_grad_(True)
    b = F.normalize(torch.randn(10, 8, generator=g), dim=1).requires_grad_(True)
    labels = torch.randint(0, 2, (10, 5), generator=g).float()
    rows, cols = torch.rand(10, generator=g) > 0.3, torch.rand(10, generator=g) > 0.4
    scale = torch.tensor(12.0)
    full = targets(labels, labels, target) * (rows[:, None] & cols[None, :])
    masked = soft_contrastive(a, b, full, scale, rows, cols)
    (grad_a, grad_b) = torch.autograd.grad(masked, (a, b))
    sub = targets(
        labels[rows], labels[cols], target, torch.eye(10, dtype=torch.bool)[rows][:, cols]
    )
    taken = soft_contrastive(a[rows], b[cols], sub, scale)
    (sub_a, sub_b) = torch.autograd.grad(taken, (a, b))
    assert torch.allclose(masked, taken, atol=1e-6)
    assert torch.allclose(grad_a, sub_a, atol=1e-6) and torch.allclose(grad_b, sub_b, atol=1e-6)
