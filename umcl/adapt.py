"""`umcl adapt`: fit a trained model to a new site from a small labelled sample of its images.

A model meets a new site's detectors, protocols and population with its ranking mostly intact
and its decisions off: the calibration and thresholds were fitted on the training collection's
validation patients. Adapting (docs/new-site.md):
1. embeds the site's images once with the model's frozen towers (umcl/site_sample.py reads them);
2. optionally tunes only the prompt context vectors on them (CoOp-style, towers frozen), the
   number of steps chosen by cross-validation within the sample (0 = keep the prompts);
3. refits each finding's calibration and operating point on the sample (the model's own method
   and operating point, umcl/calibration.py; a target threshold placed to hold on new images,
   `finite_sample_threshold`), with a bootstrap interval of each threshold; a
   finding with too few positives or negatives keeps the base model's calibration, with the
   reason in the report.
The result is a new model directory: same towers, the refitted calibration (and prompts), the
site sample's drift reference, and provenance naming the base model and the sample's content
hash, never its files or patients. It goes through `umcl evaluate`, `umcl gate` and
`umcl package` like any candidate.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from umcl.atomic import replacing_directory
from umcl.calibration import (
    Calibration,
    FindingCalibration,
    OperatingPoint,
    fit_calibration,
    operating_point_json,
)
from umcl.config import AdaptSettings, Settings
from umcl.errors import InputError
from umcl.evaluate import per_label_auroc
from umcl.model.folder import ADAPTATION_KEY
from umcl.model.umcl import UMCLModel, finding_logits

log = logging.getLogger(__name__)

# A prompt-tuning step count must beat the unchanged prompts' cross-validated AUROC by this much:
# a few dozen images cannot tell smaller differences from noise.
MIN_CV_GAIN = 0.005


@dataclass
class Adapted:
    calibration: Calibration
    report: dict  # per finding: refitted or kept and why, threshold and its interval; tuning


# -- scores ----------------------------------------------------------------------------------------


def sample_logits(model: UMCLModel, embeddings: torch.Tensor, names: list[str]) -> torch.Tensor:
    """(n, F) zero-shot logits of embedded images for `names`, with the model's own prompts;
    differentiable in the prompt contexts."""
    present, absent = model.encode_findings(names)
    return finding_logits(embeddings, present, absent, model.logit_scale.exp())


# -- prompt tuning ---------------------------------------------------------------------------------


def tune_prompts(
    model: UMCLModel,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    steps: int,
    lr: float,
    checkpoints: tuple[int, ...] = (),
) -> dict[int, torch.Tensor]:
    """`steps` Adam steps on the prompt contexts alone (towers frozen): the mean over findings of
    the BCE of their logits against the known labels. Returns the contexts at each of
    `checkpoints` (0 = the untouched ones); the model ends at `steps`."""
    context = model.prompts.context
    saved = {0: context.detach().clone()} if 0 in checkpoints else {}
    frozen = [p for p in model.parameters() if p is not context and p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    known = ~labels.isnan()
    targets = torch.nan_to_num(labels)
    weights = known.float() / known.sum(0).clamp(min=1)  # each finding counts once
    optimizer = torch.optim.Adam([context], lr=lr)
    try:
        for step in range(1, steps + 1):
            optimizer.zero_grad()
            logits = sample_logits(model, embeddings, names)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, targets, reduction="none"
            )
            loss = (loss * weights).sum() / max(int(known.any(0).sum()), 1)
            loss.backward()
            optimizer.step()
            if step in checkpoints:
                saved[step] = context.detach().clone()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return saved


def folds_of(groups: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Row indices of `count` folds that never split a group (a patient)."""
    distinct = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of_group = {g: i % count for i, g in enumerate(distinct)}
    assigned = np.array([fold_of_group[g] for g in groups])
    return [np.flatnonzero(assigned == i) for i in range(count)]


def cross_validated_steps(
    model: UMCLModel,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    groups: np.ndarray,
    settings: AdaptSettings,
    seed: int,
) -> tuple[int, dict[int, float | None], torch.Tensor]:
    """The prompt-tuning step count with the best cross-validated macro AUROC (0: keep the
    prompts unless a count beats them by MIN_CV_GAIN), every count's AUROC, and the out-of-fold
    logits at the chosen count (what a new image of the site would get). The AUROC is each
    held-out fold's, averaged: folds tuned apart score on scales of their own, which pooling
    their logits would mix up."""
    candidates = (0, *sorted(set(settings.prompt_steps)))
    count = min(settings.folds, len(np.unique(groups)))
    out_of_fold = {s: torch.zeros(labels.shape) for s in candidates}
    per_fold: dict[int, list[float]] = {s: [] for s in candidates}
    start = model.prompts.context.detach().clone()
    for held in folds_of(groups, count, seed):
        train = np.setdiff1d(np.arange(len(labels)), held)
        with torch.no_grad():
            model.prompts.context.copy_(start)
        states = tune_prompts(
            model,
            embeddings[train],
            labels[train],
            names,
            candidates[-1],
            settings.prompt_lr,
            checkpoints=candidates,
        )
        for steps, state in states.items():
            with torch.no_grad():
                model.prompts.context.copy_(state)
                out_of_fold[steps][held] = sample_logits(model, embeddings[held], names)
            score = per_label_auroc(out_of_fold[steps][held], labels[held], names)["macro_auroc"]
            if score is not None:
                per_fold[steps].append(score)
    with torch.no_grad():
        model.prompts.context.copy_(start)
    scores = {s: float(np.mean(v)) if v else None for s, v in per_fold.items()}
    chosen = 0
    for steps in candidates[1:]:
        best = scores[chosen] if scores[chosen] is not None else -math.inf
        if scores[steps] is not None and scores[steps] > best + MIN_CV_GAIN:
            chosen = steps
    return chosen, scores, out_of_fold[chosen]


# -- calibration -----------------------------------------------------------------------------------


def threshold_logit(entry: FindingCalibration) -> float:
    """The raw logit z at which a finding's calibrated probability meets its threshold."""
    t = min(max(entry.threshold, 1e-12), 1 - 1e-12)
    return (math.log(t / (1 - t)) - entry.b) / entry.a


def finite_sample_threshold(
    probabilities: torch.Tensor, truth: torch.Tensor, point: OperatingPoint
) -> float | None:
    """A threshold that keeps a sensitivity (specificity) target on the site's *next* images, not
    only on the sample: with n positives, the k-th lowest positive probability, k = ⌊(n+1)(1 −
    target)⌋ (a new positive ranks below it with probability k/(n+1) ≤ 1 − target, the
    conformal argument). The in-sample choice misses the target on new images about half the
    time at a few dozen positives. With k = 0 the lowest positive is taken. None for Youden."""
    if not isinstance(point, dict):
        return None
    ((rule, target),) = point.items()
    wanted = truth == (1 if rule == "sensitivity" else 0)
    scores = probabilities[wanted].double().sort().values
    k = math.floor((len(scores) + 1) * (1 - target))
    if rule == "sensitivity":
        return float(scores[max(k, 1) - 1])
    # Specificity: negatives above the threshold are false positives; the k-th highest stays
    # below it, decided negative (positive means p ≥ threshold).
    return float(
        torch.nextafter(scores[len(scores) - max(k, 1)], torch.tensor(2.0, dtype=torch.float64))
    )


def fit_site_calibration(
    logits: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    method: str,
    point: OperatingPoint,
    min_per_class: int,
) -> Calibration:
    """`fit_calibration` with each target threshold made to hold on new images
    (`finite_sample_threshold`)."""
    fitted = fit_calibration(logits, labels, names, method, point, min_per_class)
    findings = dict(fitted.findings)
    for k, name in enumerate(names):
        if not findings[name].fitted:
            continue
        known = ~labels[:, k].isnan()
        probabilities = fitted.probabilities(logits[known][:, [k]], [name])[:, 0]
        threshold = finite_sample_threshold(probabilities, labels[known, k], fitted.operating_point)
        if threshold is not None:
            findings[name] = replace(findings[name], threshold=threshold)
    return Calibration(fitted.method, fitted.operating_point, findings)


def threshold_interval(
    logits: torch.Tensor,
    truth: torch.Tensor,
    groups: np.ndarray,
    method: str,
    point: OperatingPoint,
    final: FindingCalibration,
    settings: AdaptSettings,
    seed: int,
) -> dict | None:
    """95 % percentile interval of a finding's threshold over bootstrap resamples of patients,
    each refitted as the point estimate was (same minimum per class) and expressed on the adapted
    model's probability scale (`final`), and how many resamples could be refitted. For a
    sensitivity target the threshold is an extreme order statistic: read the interval as the
    spread a sample of this size gives, not as exact coverage."""
    if settings.bootstrap == 0:
        return None
    rng = np.random.default_rng(seed)
    distinct = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in distinct}
    thresholds = []
    for _ in range(settings.bootstrap):
        rows = np.concatenate([members[g] for g in rng.choice(distinct, len(distinct))])
        z, y = logits[rows], truth[rows]
        entry = fit_site_calibration(
            z[:, None], y[:, None], ["f"], method, point, settings.min_per_class
        ).findings["f"]
        if entry.fitted:
            thresholds.append(1 / (1 + math.exp(-(final.a * threshold_logit(entry) + final.b))))
    if not thresholds:
        return {"interval": None, "resamples_used": 0}
    low, high = np.percentile(thresholds, [2.5, 97.5])
    return {"interval": [float(low), float(high)], "resamples_used": len(thresholds)}


def refittable(labels: torch.Tensor, names: list[str], min_per_class: int) -> list[str]:
    """The findings with at least `min_per_class` known positives and negatives."""
    positives, negatives = (labels == 1).sum(0), (labels == 0).sum(0)
    return [n for k, n in enumerate(names) if min(positives[k], negatives[k]) >= min_per_class]


def cross_validated_operating_points(
    logits: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    base: Calibration,
    groups: np.ndarray,
    settings: AdaptSettings,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Per refittable finding, the sensitivity and specificity that refitting would give on the
    site's next images: each fold's images decided at the threshold refitted on the other folds
    (by patient). What `umcl adapt` promises, measured within the sample."""
    count = min(settings.folds, len(np.unique(groups)))
    decided = torch.full(labels.shape, float("nan"))
    for held in folds_of(groups, count, seed):
        train = np.setdiff1d(np.arange(len(labels)), held)
        fitted = fit_site_calibration(
            logits[train],
            labels[train],
            names,
            base.method,
            base.operating_point,
            settings.min_per_class,
        )
        probabilities = fitted.probabilities(logits[held], names)
        for k, name in enumerate(names):
            if fitted.findings[name].fitted:
                decided[held, k] = (probabilities[:, k] >= fitted.findings[name].threshold).float()
    out = {}
    for k, name in enumerate(names):
        known = ~labels[:, k].isnan() & ~decided[:, k].isnan()
        y, said = labels[known, k], decided[known, k]
        if (y == 1).any() and (y == 0).any():
            out[name] = {
                "sensitivity": float(said[y == 1].mean()),
                "specificity": float(1 - said[y == 0].mean()),
                "images": int(known.sum()),
            }
    return out


def refit_calibration(
    base: Calibration,
    logits: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    groups: np.ndarray,
    settings: AdaptSettings,
    seed: int,
    tuned_shared: bool = False,
) -> Adapted:
    """The base calibration with each of `names` refitted on the sample where it has at least
    `min_per_class` positives and negatives. `tuned_shared`: the prompts' shared context was
    tuned, so the findings it could not refit no longer score as their base calibration
    assumed: they lose it (raw probability, threshold 0.5), and the report says so."""
    fitted = fit_site_calibration(
        logits, labels, names, base.method, base.operating_point, settings.min_per_class
    )
    findings = dict(base.findings)
    report = {}
    dropped = "its prompts changed with the tuned shared context, and the sample cannot refit it"
    for k, name in enumerate(names):
        entry = fitted.findings[name]
        if not entry.fitted:
            if tuned_shared and name in findings:
                findings[name] = _unfitted(findings[name], dropped)
                report[name] = {"refitted": False, "reason": f"{entry.reason}; {dropped}"}
            else:
                report[name] = {
                    "refitted": False,
                    "reason": f"{entry.reason}: the base model's "
                    "calibration and threshold are kept",
                }
            continue
        known = ~labels[:, k].isnan()
        interval = threshold_interval(
            logits[known, k],
            labels[known, k],
            groups[known.numpy()],
            base.method,
            base.operating_point,
            entry,
            settings,
            seed + k,
        )
        before = base.findings.get(name)
        findings[name] = entry
        report[name] = {
            "refitted": True,
            "positives": entry.positives,
            "negatives": entry.negatives,
            "threshold": entry.threshold,
            "threshold_bootstrap": interval,
            "base_threshold_logit": threshold_logit(before) if before else None,
            "threshold_logit": threshold_logit(entry),
        }
    if tuned_shared:
        for name in findings.keys() - set(names):
            findings[name] = _unfitted(findings[name], dropped)
            report[name] = {"refitted": False, "reason": f"not in the sample; {dropped}"}
    return Adapted(Calibration(base.method, base.operating_point, findings), report)


def _unfitted(entry: FindingCalibration, reason: str) -> FindingCalibration:
    return replace(entry, a=1.0, b=0.0, threshold=0.5, fitted=False, reason=reason)


def base_calibration(model: UMCLModel, settings: Settings) -> Calibration:
    """The calibration adapting starts from: the model's own, else the identity with the
    configured method and operating point (the refit's)."""
    if model.calibration is not None:
        return model.calibration
    identity = Calibration.identity(model.label_names)
    point = operating_point_json(settings.evaluate.operating_point)
    return Calibration(settings.evaluate.calibration, point, identity.findings)


def adapt_embedded(
    model: UMCLModel,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    groups: np.ndarray,
    settings: Settings,
    prompt_tuning: bool,
) -> Adapted:
    """Adapt `model` in place (its prompts, when tuned, and its calibration) to embedded site
    images with labels (n, F) over `names`."""
    adapt = settings.adapt
    base = base_calibration(model, settings)
    fittable = refittable(labels, names, adapt.min_per_class)
    tuning: dict = {"asked": prompt_tuning}
    logits = None
    if prompt_tuning and not model.prompts.learned:
        raise InputError("a model with handcrafted prompts has no contexts to tune")
    if prompt_tuning and (not fittable or len(np.unique(groups)) < 2):
        tuning["skipped"] = "no finding can be refitted, or the sample holds one patient"
    elif prompt_tuning:
        # Only findings that will be refitted steer the prompts: a class-specific context of a
        # finding that keeps its base calibration must not move under it.
        steering = labels.clone()
        steering[:, [k for k, n in enumerate(names) if n not in fittable]] = float("nan")
        steps, scores, out_of_fold = cross_validated_steps(
            model, embeddings, steering, names, groups, adapt, settings.seed
        )
        tuning |= {"steps": steps, "cross_validated_auroc": scores}
        if steps:
            tune_prompts(model, embeddings, steering, names, steps, adapt.prompt_lr)
            # In-sample, the tuned prompts' logits are over-confident: the thresholds come from
            # the out-of-fold logits, which stand in for new images of the site (each fold's
            # prompts differ a little from the final ones, as in stacking).
            logits = out_of_fold
    if logits is None:
        with torch.no_grad():
            logits = sample_logits(model, embeddings, names)
    if not fittable and not tuning.get("steps"):
        counts = {
            n: f"{int((labels[:, k] == 1).sum())}+/{int((labels[:, k] == 0).sum())}-"
            for k, n in enumerate(names)
        }
        raise InputError(
            f"nothing to adapt: no finding has {adapt.min_per_class} positives and negatives in "
            f"the sample ({counts}); label more studies or lower adapt.min_per_class"
        )
    tuned_shared = bool(tuning.get("steps")) and not model.prompts.settings.class_specific
    adapted = refit_calibration(
        base, logits, labels, names, groups, adapt, settings.seed, tuned_shared
    )
    model.calibration = adapted.calibration
    expected = cross_validated_operating_points(
        logits, labels, names, base, groups, adapt, settings.seed
    )
    adapted.report = {
        "findings": adapted.report,
        "prompt_tuning": tuning,
        "cross_validated_operating_points": expected,
    }
    return adapted


# -- the command -----------------------------------------------------------------------------------


def adapt_model(
    source: str, labels_csv: Path, out: Path, settings: Settings, prompt_tuning: bool | None = None
) -> dict:
    """Adapt the model at `source` (a directory or a store tag) to the sample `labels_csv` and
    save the result in `out` (replaced only once the new model is complete); returns the report
    (also in its `training.json`)."""
    from umcl import registry
    from umcl.imaging.limits import DecodeLimits
    from umcl.inference import Predictor, resolve
    from umcl.model.folder import read_provenance
    from umcl.monitor.reference import (
        REFERENCE_FILE,
        build_reference,
        decision_thresholds,
        save_reference,
    )
    from umcl.site_sample import read_sample

    prompt_tuning = settings.adapt.prompt_tuning if prompt_tuning is None else prompt_tuning
    base_dir = resolve(source)
    out = check_destination(Path(out), base_dir)
    predictor = Predictor(
        UMCLModel.from_pretrained(base_dir), DecodeLimits.from_settings(settings.decode)
    )
    model = predictor.model
    sample = read_sample(
        Path(labels_csv), model.label_names, predictor.square, settings.adapt.max_images
    )
    for refusal in sample.refused:
        log.warning("adapt: row %d refused: %s", refusal.row, refusal.reason)
    # Usable outside inference mode (prompt tuning needs autograd through the text tower).
    embeddings = torch.from_numpy(predictor.embed_squares(sample.squares))
    adapted = adapt_embedded(
        model, embeddings, sample.labels, sample.names, sample.groups, settings, prompt_tuning
    )
    report = {
        "base": {"tag": stored_tag(source), "model_sha256": registry.model_digest(base_dir)},
        "sample_sha256": sample.digest,
        "sample": sample.report() | {"images": len(sample.rows), "findings": sample.names},
        **adapted.report,
    }
    provenance = copy.deepcopy(read_provenance(base_dir))
    # The refusals name rows of the site's own table: they go to the log and the report file, not
    # into the model.
    provenance[ADAPTATION_KEY] = {k: v for k, v in report.items() if k != "sample"} | {
        "images": len(sample.rows)
    }
    with torch.no_grad():
        probabilities, _ = predictor.score(embeddings.numpy())
    reference = build_reference(
        embeddings.numpy(),
        probabilities.numpy(),
        decision_thresholds(model),
        model.label_names,
        settings.monitor.reference_size,
        settings.monitor.summary_axes,
        settings.seed,
    )
    with replacing_directory(out) as folder:
        model.write_into(folder, provenance)
        save_reference(reference, folder / REFERENCE_FILE)
    return report


def check_destination(out: Path, base_dir: Path) -> Path:
    """`out` if the adapted model may go there: not the base model's directory, neither inside
    it nor holding it, and either absent or an earlier model directory (which it replaces)."""
    from umcl.model.folder import MODEL_FILE

    resolved, base = out.resolve(), base_dir.resolve()
    if resolved == base or base.is_relative_to(resolved) or resolved.is_relative_to(base):
        raise InputError(f"{out}: the adapted model needs a directory apart from the base model's")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"{out}: not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MODEL_FILE).is_file():
        raise InputError(f"{out}: holds files but no model; name an empty or a model directory")
    return resolved


def stored_tag(source: str) -> str | None:
    """The store version `source` names (`umcl:champion` resolved to it), None for a directory."""
    from umcl import registry
    from umcl.inference import CHAMPION

    if Path(source).expanduser().is_dir():
        return None
    if source == f"{registry.MODEL_NAME}:{CHAMPION}":
        return registry.champion().tag
    return source
