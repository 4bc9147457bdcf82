"""The model card: `README.md` with YAML metadata in the Hugging Face model-card format
(written through huggingface_hub), so that the store, the bento and any hub read the licence,
the training data, the findings and their operating points without parsing prose. Written by
`save_pretrained` from the model folder alone; `umcl evaluate` adds the test figures
(reports/model_card.md) and `umcl package` the gate's verdict (the store's copy)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from umcl.atomic import write_with
from umcl.calibration import Calibration
from umcl.model.folder import ADAPTATION_KEY, describe_model, read_calibration, read_provenance

INTENDED_USE = (
    "Research on chest X-ray representation learning: zero-shot triage experiments, retrieval, "
    "and a pretrained starting point for supervised models. Not a medical device; not for "
    "diagnosis."
)
LIMITS = [
    "Evaluated only on the test split of the sources named here (patients held out); performance "
    "on other hospitals, scanners, populations, collection periods or label definitions is "
    "unknown until measured (`umcl evaluate --model … --triplets …`).",
    "Labels from the report labeler are rule-based and imperfect; uncertain findings were read as "
    "`labels.uncertainty` says in training and `evaluate.uncertainty` in the scores.",
    "Thresholds were chosen on the validation split; a later collection moves them (adapt the "
    "model to the site's own images: `umcl adapt`).",
    "Grounding maps show where the image matches a finding's prompt; on the demo they fail the "
    "pointing game (benchmarks/grounding.py), so they are no localisation.",
    "A model trained on the demo data has learned synthetic findings only.",
]
TAGS = ["medical-imaging", "chest-x-ray", "radiology", "vision-language", "contrastive", "umcl"]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _rule(operating_point: str | dict) -> str:
    """How the validation split chose a threshold, in words."""
    if isinstance(operating_point, dict):
        return "; ".join(f"{measure} ≥ {target:g}" for measure, target in operating_point.items())
    return (
        "max sensitivity + specificity (Youden)" if operating_point == "youden" else operating_point
    )


def operating_points(calibration: Calibration | None, metrics: dict | None) -> dict[str, dict]:
    """Each finding's threshold, how it was chosen, the validation counts it was chosen on and,
    with an evaluation, its test sensitivity and specificity."""
    if calibration is None:
        return {}
    tested = ((metrics or {}).get("calibration") or {}).get("operating_points", {})
    points = {}
    for name, entry in calibration.findings.items():
        point = {
            "threshold": round(entry.threshold, 6),
            "calibrated": calibration.calibrated(name),
            "chosen_by": _rule(calibration.operating_point)
            if entry.fitted
            else f"default 0.5 (not fitted: {entry.reason})",
            "validation": {"positives": entry.positives, "negatives": entry.negatives},
        }
        test = tested.get("per_finding", {}).get(name)
        if test is not None:
            point["test"] = {k: test[k] for k in ("sensitivity", "specificity")}
        points[name] = point
    return points


def _training_data(provenance: dict) -> list[dict]:
    declared = provenance.get("card", {}).get("datasets", {})
    return [
        source | ({"release": declared[source["source"]]} if source["source"] in declared else {})
        for source in provenance.get("data", [])
    ]


def _eval_results(metrics: dict) -> list[EvalResult]:
    """The headline test figures in the hub's `model-index` form."""
    common = {
        "dataset_type": "umcl-triplets",
        "dataset_name": "test split of the training sources (patients held out)",
        "dataset_split": "test",
    }
    found = []
    for kind, result in metrics.get("zero_shot", {}).items():
        if result.get("macro_auroc") is not None:
            found.append(
                EvalResult(
                    task_type="zero-shot-image-classification",
                    metric_type="roc_auc",
                    metric_name=f"zero-shot macro AUROC ({kind} prompts)",
                    metric_value=round(result["macro_auroc"], 4),
                    **common,
                )
            )
    retrieval = (metrics.get("retrieval") or {}).get("image_to_text", {})
    if retrieval.get("recall@5") is not None:
        found.append(
            EvalResult(
                task_type="image-to-text",
                metric_type="recall",
                metric_name="image→report Recall@5",
                metric_value=round(retrieval["recall@5"], 4),
                **common,
            )
        )
    return found


def card_metadata(
    model_dir: Path,
    metrics: dict | None = None,
    gate: dict | None = None,
    data_version: dict | None = None,
) -> ModelCardData:
    """The YAML header of the card of the model in `model_dir`."""
    description, provenance = describe_model(model_dir), read_provenance(model_dir)
    declared = provenance.get("card", {})
    training_data = _training_data(provenance)
    extra: dict = {
        "findings": description["labels"],
        "image_size": description["image_size"],
        "training_data": training_data,
        "operating_points": operating_points(read_calibration(model_dir), metrics),
        "intended_use": INTENDED_USE,
        "limitations": LIMITS,
    }
    if description.get("pretrained"):
        extra["started_from"] = description["pretrained"]
    if ADAPTATION_KEY in provenance:
        adaptation = provenance[ADAPTATION_KEY]
        extra["adapted"] = {
            "base": adaptation.get("base"),
            "sample_sha256": adaptation.get("sample_sha256"),
            "images": adaptation.get("images"),
        }
    if gate is not None:
        extra["gated_metrics"] = {
            "passed": gate["passed"],
            "metrics": gate["candidate"]["metrics"],
            "checks": [
                {k: c[k] for k in ("name", "value", "threshold", "passed")} for c in gate["checks"]
            ],
        }
    if data_version:
        extra["data_version"] = data_version
    results = _eval_results(metrics) if metrics else []
    return ModelCardData(
        license=declared.get("license", "unknown"),
        license_name=declared.get("license_name"),
        library_name="umcl",
        pipeline_tag="zero-shot-image-classification",
        tags=TAGS,
        datasets=[source.get("release", source["source"]) for source in training_data] or None,
        model_name="UMCL chest X-ray vision–language model",
        eval_results=results or None,
        **extra,
    )


# -- the text ----------------------------------------------------------------------------------


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


def _operating_points_section(calibration: dict | None, points: dict[str, dict]) -> list[str]:
    """Each finding's threshold; with an evaluation, the test figures and ECE before and after."""
    if not points:
        return ["### Operating points", "", "None: the raw zero-shot sigmoid, threshold 0.5.", ""]
    if calibration is None:
        lines = [
            "### Operating points (chosen on the validation split)",
            "",
            "| finding | threshold | chosen by | validation positives / negatives |",
            "|---|---:|---|---|",
        ]
        for name, p in points.items():
            counts = f"{p['validation']['positives']} / {p['validation']['negatives']}"
            lines.append(f"| {name} | {p['threshold']:.3f} | {p['chosen_by']} | {counts} |")
        return [*lines, ""]
    method = calibration["method"]
    scaling = {
        "platt": "Platt scaling p = sigmoid(a·z + b) of the zero-shot logit z",
        "temperature": "a temperature p = sigmoid(z / T) of the zero-shot logit z",
        "none": "none (the raw zero-shot sigmoid)",
    }.get(method, method)
    before, after = calibration["ece_before"], calibration["ece_after"]
    stats = calibration["operating_points"]
    lines = [
        "### Calibration and operating points (the model's own prompts)",
        "",
        f"Calibration, fitted per finding on the validation split: {scaling}. Each finding's "
        f"decision threshold (on the calibrated probability) was chosen there by: "
        f"{_rule(calibration['operating_point'])}. Expected calibration error on the test split, "
        f"pooled over every (image, finding): {_fmt(before.get('pooled'))} before → "
        f"{_fmt(after.get('pooled'))} after; mean over findings {_fmt(before['macro'])} → "
        f"{_fmt(after['macro'])}.",
        "",
        "| finding | threshold | chosen by | test sensitivity | test specificity | ECE before | ECE after |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, point in stats["per_finding"].items():
        chosen = points.get(name, {}).get("chosen_by", "—")
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
    if calibration["not_fitted"]:
        lines += [
            "",
            "Not fitted (raw sigmoid, threshold 0.5): "
            + "; ".join(f"{n}: {why}" for n, why in calibration["not_fitted"].items()),
        ]
    if stats["skipped"]:
        lines += [
            "",
            "No test sensitivity/specificity (a class is missing): "
            + "; ".join(f"{n}: {why}" for n, why in stats["skipped"].items()),
        ]
    return [*lines, ""]


def _evaluation_section(metrics: dict) -> list[str]:
    lines = [
        f"## Evaluation (test split: {metrics['test']['images']} images, "
        f"{metrics['test']['texts']} reports)",
        "",
    ]
    for kind, result in metrics["zero_shot"].items():
        lines += [f"### Zero-shot classification, {kind} prompts", "", *_auroc_table(result), ""]
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
            f"### Retrieval ({r['pairs']} test image–report pairs)",
            "",
            "| direction | R@1 | R@5 | R@10 |",
            "|---|---:|---:|---:|",
            *(
                f"| {d.replace('_', ' ')} | {_fmt(r[d]['recall@1'])} | {_fmt(r[d]['recall@5'])} | {_fmt(r[d]['recall@10'])} |"
                for d in ("image_to_text", "text_to_image")
            ),
            "",
        ]
    if "linear_probe" in metrics:
        probe = metrics["linear_probe"]
        lines += [
            f"### Linear probe on frozen image embeddings ({probe['train_images']} training images)",
            "",
            *_auroc_table(probe),
            "",
        ]
    return lines


def _data_section(training_data: list[dict]) -> list[str]:
    if not training_data:
        return ["## Data", "", "Not recorded (a model saved before the card named its data).", ""]
    lines = [
        "## Data",
        "",
        "Every source of the triplet table, split by patient; the hash is of the source's rows "
        "as trained on (its version).",
        "",
        "| source | release | kind | train | val | test | patients | rows sha256 |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for s in training_data:
        n = s["samples"]
        lines.append(
            f"| {s['source']} | {s.get('release', '—')} | {', '.join(s['kind'])} | "
            f"{n.get('train', 0)} | {n.get('val', 0)} | {n.get('test', 0)} | {s['patients']} | "
            f"`{s['rows_sha256'][:16]}…` |"
        )
    return [*lines, ""]


def _gate_section(gated: dict) -> list[str]:
    lines = [
        f"## Gate: {'passed' if gated['passed'] else 'failed'}",
        "",
        "| check | value | threshold | passed |",
        "|---|---:|---:|---|",
    ]
    for c in gated["checks"]:
        lines.append(
            f"| {c['name']} | {_fmt(c['value'])} | {_fmt(c['threshold'])} | {c['passed']} |"
        )
    if not gated["checks"]:
        lines.append("| (no check configured) | | | |")
    return [*lines, ""]


def card_text(model_dir: Path, data: ModelCardData, metrics: dict | None) -> str:
    """The card's markdown body."""
    description, provenance = describe_model(model_dir), read_provenance(model_dir)
    params, train = provenance.get("params", {}), provenance.get("train", {})
    towers, prompt = description["model"], description["prompt"]
    prompt_text = (
        f"learned continuous context ({prompt['n_ctx']} vectors, {'one per label' if prompt['class_specific'] else 'shared'}) "
        "for present and absent findings; a label set's prompt states its positive findings with the present "
        "context and its negative ones with the absent context"
        if prompt["mode"] == "learned"
        else f"hand-crafted templates ('{prompt['templates']['present']} …' / '{prompt['templates']['absent']} …')"
    )
    licence = data.license_name or data.license
    lines = [
        "# UMCL chest X-ray vision–language model",
        "",
        f"Licence: **{licence}**. Findings: {', '.join(description['labels'])}. Files: safetensors "
        "weights, tower configs, tokenizer, learned prompts, calibration (`umcl.load(folder)`).",
        "",
        "## Model",
        f"- Image tower: `{towers['image']['config'].get('model_type', 'pretrained')}`; "
        f"text tower: `{towers['text']['config'].get('model_type', 'pretrained')}`; "
        f"embedding size {towers['embed_dim']}; images {description['image_size']} px.",
    ]
    for part, origin in sorted(description.get("pretrained", {}).items()):
        lines.append(
            f"- {part} tower continued from `{origin['checkpoint']}` (sha256 `{origin['sha256'][:16]}…`)."
        )
    lines.append(f"- Prompts: {prompt_text}.")
    if "loss" in params:
        lines.append(
            f"- Loss: `{params['loss']['target']}` targets, weights {params['loss']['weights']}."
        )
    if "steps" in train:
        lines.append(
            f"- Training: {train['steps']} steps on {train.get('world_size')}× {train.get('device')} "
            f"({train.get('precision')}), seed {params.get('seed')}, final loss {_fmt(train.get('final_loss'))}."
        )
    adapted = getattr(data, "adapted", None)
    if adapted:
        lines.append(
            f"- Adapted to a site's sample of {adapted['images']} images (sha256 "
            f"`{str(adapted['sample_sha256'])[:16]}…`) from `{(adapted['base'] or {}).get('tag')}`."
        )
    lines += ["", *_data_section(data.training_data)]
    gated = getattr(data, "gated_metrics", None)
    if gated:
        lines += _gate_section(gated)
    if metrics:
        lines += _evaluation_section(metrics)
    lines += _operating_points_section((metrics or {}).get("calibration"), data.operating_points)
    lines += ["## Intended use", "", INTENDED_USE, "", "## Limits", ""]
    lines += [f"- {limit}" for limit in LIMITS]
    return "\n".join(lines) + "\n"


def model_card(
    model_dir: Path,
    metrics: dict | None = None,
    gate: dict | None = None,
    data_version: dict | None = None,
) -> ModelCard:
    """The card of the model in `model_dir`: with `metrics` (eval.json) its test figures, with
    `gate` (gate.json) the verdict, with `data_version` the pipeline's data hashes."""
    data = card_metadata(model_dir, metrics, gate, data_version)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_text(model_dir, data, metrics)}")


def write_model_card(
    model_dir: Path,
    path: Path,
    metrics: dict | None = None,
    gate: dict | None = None,
    data_version: dict | None = None,
) -> None:
    write_with(path, model_card(model_dir, metrics, gate, data_version).save)
