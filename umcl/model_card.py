"""A model card (markdown) from the packaged model, the triplet table and the evaluation."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from umcl.model.umcl import describe_model, read_provenance


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _auroc_table(result: dict) -> list[str]:
    lines = ["| label | AUROC |", "|---|---:|"]
    lines += [f"| {name} | {_fmt(v)} |" for name, v in result["per_label"].items()]
    lines += [
        f"| **macro ({len(result['per_label'])} labels)** | **{_fmt(result['macro_auroc'])}** |"
    ]
    if result["skipped"]:
        lines += [
            "",
            "Skipped (no AUROC without both classes): "
            + "; ".join(f"{n}: {why}" for n, why in result["skipped"].items()),
        ]
    return lines


def _rule(operating_point: str | dict) -> str:
    """How the validation split chose a threshold, in words."""
    if isinstance(operating_point, dict):
        return "; ".join(f"{measure} ≥ {target:g}" for measure, target in operating_point.items())
    return (
        "max sensitivity + specificity (Youden)" if operating_point == "youden" else operating_point
    )


def _calibration_section(calibration: dict) -> list[str]:
    """Method, each finding's operating point on the test split, and ECE before and after."""
    method = calibration["method"]
    scaling = {
        "platt": "Platt scaling p = sigmoid(a·z + b) of the zero-shot logit z",
        "temperature": "a temperature p = sigmoid(z / T) of the zero-shot logit z",
        "none": "none (the raw zero-shot sigmoid)",
    }.get(method, method)
    before, after = calibration["ece_before"], calibration["ece_after"]
    stats, not_fitted = calibration["operating_points"], calibration["not_fitted"]
    rule = _rule(calibration["operating_point"])
    lines = [
        "### Calibration and operating points (the model's own prompts)",
        "",
        f"Calibration, fitted per finding on the validation split: {scaling}. Each finding's "
        f"decision threshold (on the calibrated probability) was chosen there by: {rule}. "
        f"Expected calibration error on the test split, pooled over every (image, finding): "
        f"{_fmt(before.get('pooled'))} before → {_fmt(after.get('pooled'))} after; mean over "
        f"findings {_fmt(before['macro'])} → {_fmt(after['macro'])}.",
        "",
        "| finding | threshold | chosen by | test sensitivity | test specificity | ECE before | ECE after |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, point in stats["per_finding"].items():
        chosen = "default 0.5 (not fitted)" if name in not_fitted else rule
        lines.append(
            f"| {name} | {point['threshold']:.3f} | {chosen} | {_fmt(point['sensitivity'])} | "
            f"{_fmt(point['specificity'])} | {_fmt(before['per_finding'].get(name))} | "
            f"{_fmt(after['per_finding'].get(name))} |"
        )
    macro = stats["macro"] or {}
    lines.append(
        f"| **macro** | | | **{_fmt(macro.get('sensitivity'))}** | "
        f"**{_fmt(macro.get('specificity'))}** | **{_fmt(before['macro'])}** | "
        f"**{_fmt(after['macro'])}** |"
    )
    if not_fitted:
        lines += [
            "",
            "Not fitted (raw sigmoid, threshold 0.5): "
            + "; ".join(f"{n}: {why}" for n, why in not_fitted.items()),
        ]
    if stats["skipped"]:
        lines += [
            "",
            "No test sensitivity/specificity (a class is missing): "
            + "; ".join(f"{n}: {why}" for n, why in stats["skipped"].items()),
        ]
    return [*lines, ""]


def _started_from(origins: dict) -> list[str]:
    """The public checkpoints the towers continued from (umcl.json: pretrained), if any."""
    if not origins:
        return []
    named = [
        f"{part} tower `{origin['checkpoint']}` (sha256 `{origin['sha256'][:16]}…`)"
        for part, origin in sorted(origins.items())
    ]
    return [f"- Continued from: {'; '.join(named)}."]


def write_model_card(model_dir: Path, triplets_path: Path, metrics: dict, path: Path) -> None:
    description = describe_model(model_dir)
    provenance = read_provenance(model_dir)
    params, train = provenance.get("params", {}), provenance.get("train", {})
    towers = description["model"]
    table = pl.read_parquet(triplets_path)
    counts = table.group_by("split", "kind").len().sort("split", "kind")
    prompt = description["prompt"]
    prompt_text = (
        f"learned continuous context ({prompt['n_ctx']} vectors, {'one per label' if prompt['class_specific'] else 'shared'}) "
        "for present and absent findings; a label set's prompt states its positive findings with the present "
        "context and its negative ones with the absent context, and the per-finding prompts used here are "
        "also trained directly (loss.weights.label_prompts)"
        if prompt["mode"] == "learned"
        else f"hand-crafted templates ('{prompt['templates']['present']} …' / '{prompt['templates']['absent']} …')"
    )
    lines = [
        "# Model card — UMCL chest X-ray vision–language model",
        "",
        f"Model directory: `{model_dir}` (safetensors weights, tower configs, tokenizer, prompts, labels).",
        "",
        "## Model",
        f"- Image tower: `{towers['image']['config'].get('model_type', 'pretrained')}`; "
        f"text tower: `{towers['text']['config'].get('model_type', 'pretrained')}`; "
        f"embedding size {towers['embed_dim']}.",
        *_started_from(description.get("pretrained", {})),
        f"- Prompts: {prompt_text}.",
        f"- Loss: `{params.get('loss', {}).get('target')}` targets, weights {params.get('loss', {}).get('weights')}.",
        f"- Training: {train.get('steps')} steps on {train.get('world_size')}× {train.get('device')} ({train.get('precision')}), "
        f"seed {params.get('seed')}, loss {_fmt(train.get('first_loss'))} → {_fmt(train.get('final_loss'))}.",
        "",
        "## Data",
        f"Triplet table `{triplets_path}`: {table.height} samples, {table['patient_id'].n_unique()} patients, split by patient.",
        "",
        "| split | kind | samples |",
        "|---|---|---:|",
        *(f"| {r['split']} | {r['kind']} | {r['len']} |" for r in counts.iter_rows(named=True)),
        "",
        f"## Evaluation (test split: {metrics['test']['images']} images, {metrics['test']['texts']} reports)",
        "",
    ]
    for kind, result in metrics["zero_shot"].items():
        lines += [f"### Zero-shot classification, {kind} prompts", "", *_auroc_table(result), ""]
    if "calibration" in metrics:
        lines += _calibration_section(metrics["calibration"])
    five = metrics["five_by_n"]
    lines += [
        f"### 5×N accuracy: {_fmt(five['accuracy'])}",
        "",
        f"Not measured: {five['skipped']}."
        if "skipped" in five
        else f"Images per class: {five['per_class']}",
        "",
    ]
    if "retrieval" in metrics:
        r = metrics["retrieval"]
        lines += [
            f"### Retrieval ({r['pairs']} test image–report pairs)", "",
            "| direction | R@1 | R@5 | R@10 |", "|---|---:|---:|---:|",
            *(f"| {d.replace('_', ' ')} | {_fmt(r[d]['recall@1'])} | {_fmt(r[d]['recall@5'])} | {_fmt(r[d]['recall@10'])} |" for d in ("image_to_text", "text_to_image")),
            "",
        ]  # fmt: skip
    if "linear_probe" in metrics:
        lines += [
            f"### Linear probe on frozen image embeddings ({metrics['linear_probe']['train_images']} training images)",
            "",
            *_auroc_table(metrics["linear_probe"]),
            "",
        ]
    lines += [
        "## Intended use",
        "Research on chest X-ray representation learning: zero-shot triage experiments, retrieval, and as a "
        "pretrained starting point for supervised models. Not a medical device; not for diagnosis.",
        "",
        "## Limits",
        "- Evaluated only on the test split named above; performance on other hospitals, scanners, "
        "populations or label definitions is unknown until measured (`umcl evaluate --model … --triplets …`).",
        "- Labels from the report labeler are rule-based and imperfect (see benchmarks/RESULTS.md); "
        "uncertain findings were read per `labels.uncertainty` in training and per "
        "`evaluate.uncertainty` in the scores.",
        "- Labels listed as skipped were not evaluated. A demo-data model has learned synthetic findings only.",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
