"""Training metrics for dvclive: the training loss and its parts every `train.log_every` steps,
the validation loss and zero-shot AUROC every `train.eval_every` steps (`dvc plots` draws them)."""

from __future__ import annotations

from pathlib import Path

from umcl.atomic import write_text
from umcl.training.validation import ValidationResult


def open_live(directory: Path, resume: bool, step: int):
    """A dvclive logger whose history never runs past the resumed step (a killed run may have
    logged steps after its last checkpoint; they are rewritten)."""
    from dvclive import Live

    live = Live(str(directory), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
    if resume:
        for tsv in Path(live.plots_dir).rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            column = lines[0].split("\t").index("step")
            kept = [
                lines[0],
                *(line for line in lines[1:] if int(line.split("\t")[column]) <= step),
            ]
            write_text(tsv, "\n".join(kept) + "\n")
    return live


def log_step(
    live,
    step: int,
    loss: float,
    parts: dict[str, float],
    grad_norm: float,
    lr: float,
    scale: float,
) -> None:
    live.step = step
    live.log_metric("train/loss", loss)
    for name, value in parts.items():
        live.log_metric(f"train/{name}", value)
    live.log_metric("train/lr", lr, plot=False)
    live.log_metric("train/logit_scale", scale)
    live.log_metric("train/grad_norm", grad_norm, plot=False)
    live.make_summary()


def log_validation(live, step: int, result: ValidationResult) -> None:
    live.step = step
    if result.loss is not None:
        live.log_metric("val/loss", result.loss)
    if result.zero_shot_auroc is not None:
        live.log_metric("val/zero_shot_auroc", result.zero_shot_auroc)
    live.make_summary()
