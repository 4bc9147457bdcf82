"""The training step waits for no device between log steps, and DDP searches each step's graph for
unused parameters only when the configuration leaves some unused.

A read of a tensor's value (`.item()`, `float(t)`, `bool(t)`, `.tolist()`, …) makes the host wait
for the accelerator to finish everything queued. On the CPU nothing waits, so the test counts
those reads instead: `torch.Tensor`'s read methods are wrapped, and every call made from the
training step or the loss is recorded with its line."""

from __future__ import annotations

import inspect
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

import umcl.model.loss
import umcl.train
import umcl.training.step
from tests.tiny import tiny_batch, tiny_model
from umcl.config import LossWeights, TrainSettings
from umcl.model.loss import UMCLLoss
from umcl.training.runtime import Runtime
from umcl.training.step import optimiser_for, optimiser_step, unreached_parameters

READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")
STEP_AND_LOSS = {umcl.training.step.__file__, umcl.model.loss.__file__}


@contextmanager
def counted_reads(files: set[str]) -> Iterator[Counter]:
    """Every read of a tensor's value made from code in `files`, as 'read file:line (function)'
    → count."""
    calls: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def watched(name: str):
        original = originals[name]

        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename in files:
                code = caller.f_code
                where = f"{Path(code.co_filename).name}:{caller.f_lineno} ({code.co_name})"
                calls[f"{name} {where}"] += 1
            return original(self, *args, **kwargs)

        return read

    for name in READS:
        setattr(torch.Tensor, name, watched(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_the_hook_sees_a_read() -> None:
    """The counter is not blind: a read in the watched code is counted."""
    with counted_reads({__file__}) as calls:
        float(torch.ones(()))
        torch.ones(2).sum().item()
    assert sum(calls.values()) == 2


def test_non_log_steps_read_nothing_from_the_device() -> None:
    model = tiny_model()
    config = TrainSettings(steps=4, accumulate=2, warmup_steps=1)
    runtime = Runtime(torch.device("cpu"))
    optimiser, schedule = optimiser_for(model, config, runtime.device)
    loss_fn = UMCLLoss("exact", LossWeights())
    # One micro-batch without any image among them: the absent modality takes no branch either.
    imageless = tiny_batch(8, seed=2, model=model, imageless=range(8))
    batches = iter([tiny_batch(8, seed=s, model=model) for s in range(6)] + [imageless])
    with counted_reads(STEP_AND_LOSS) as calls:
        results = [
            optimiser_step(model, model, loss_fn, batches, optimiser, schedule, config, runtime)
            for _ in range(3)
        ]
    assert not calls, f"reads on non-log steps: {dict(calls)}"
    with counted_reads(STEP_AND_LOSS) as calls:
        loss, parts, grad_norm = results[-1].read()
    assert sum(calls.values()) == 1  # a log step: one transfer for every number
    assert set(parts) == {"image_text", "image_label", "text_label", "label_prompts"}
    assert loss > 0 and grad_norm > 0


def test_the_training_loop_reads_only_on_log_and_checkpoint_steps(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    """10 steps, logged every 5, saved at the end: reads at the run's first step (its first
    loss), step 5 and step 10 only."""
    from tests.test_train import run

    files = STEP_AND_LOSS | {umcl.train.__file__}
    with counted_reads(files) as calls:
        run(tiny_pipeline, tmp_path, steps=10, log_every=5, checkpoint_every=10, eval_every=100)
    # Validation, at step 10, asks on the host whether a batch has a loss term: not the step.
    lines, first = inspect.getsourcelines(UMCLLoss.has_terms)
    host_only = {f"loss.py:{n}" for n in range(first, first + len(lines))}
    step_reads = sum(
        n
        for k, n in calls.items()
        if ("step.py" in k or "loss.py" in k) and k.split()[1] not in host_only
    )
    assert step_reads == 3, dict(calls)  # StepResult.read at steps 1, 5 and 10
    loop_reads = {k: n for k, n in calls.items() if "train.py" in k}
    assert sum(loop_reads.values()) == 2, loop_reads  # the logit scale, logged at steps 5 and 10


def test_ddp_searches_for_unused_parameters_only_when_some_are_unused() -> None:
    runtime = Runtime(torch.device("cpu"))
    model = tiny_model()
    batch = tiny_batch(8, model=model)
    rng = torch.get_rng_state()
    assert unreached_parameters(model, UMCLLoss("exact", LossWeights()), batch, runtime) == []
    # The probe leaves no trace: no gradient, the same random state.
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    # A batch without images reaches the image tower only through its tie, heads its pooling
    # skips included: it cannot tell, so DDP searches (the safe side).
    no_images = tiny_batch(8, model=model, imageless=range(8))
    unsure = unreached_parameters(model, UMCLLoss("exact", LossWeights()), no_images, runtime)
    assert unsure == ["(the probe batch lacks a modality: assumed)"]

    # No loss term reads the images: the whole image tower is unused, and DDP must know.
    blind = LossWeights(image_text=0, image_label=0, text_label=1, label_prompts=0)
    unused = unreached_parameters(model, UMCLLoss("exact", blind), batch, runtime)
    trainable_image = [f"image.{n}" for n, p in model.image.named_parameters() if p.requires_grad]
    assert unused == trainable_image


def test_only_a_convolutional_tower_goes_channels_last() -> None:
    from transformers import AutoConfig, AutoModel

    from umcl.training.runtime import prefers_channels_last

    assert prefers_channels_last(tiny_model().image)  # ConvNeXt
    vit = AutoConfig.for_model(
        "vit",
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    assert not prefers_channels_last(AutoModel.from_config(vit))
